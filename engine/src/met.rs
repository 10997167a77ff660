//! Edge cases the engine met: one event per occurrence, target `engine::met`.
//!
//! When the engine detects a condition the catalog names (a malformed frame, a session
//! cap reached, an expired token, a corrupt file on load), it says so with [`met!`]: an
//! INFO event whose `kind` field names the condition (`client.malformed_json`). In
//! production it is a log line an operator can count; in a simulated world the trace
//! layer counts it as a fault that reached the system. That is the only way a
//! scenario's fault count moves besides the simulated devices: scenario code never
//! announces its own fault, so a condition the engine failed to notice leaves the
//! count at zero and the run inert.

/// Records that the engine met the edge case `kind` (`"client.malformed_json"`), with a
/// formatted detail: `met!("sessions.cap_reached", "{live} of {max} live")`.
#[macro_export]
macro_rules! met {
    ($kind:literal, $($detail:tt)+) => {
        tracing::info!(target: "engine::met", kind = $kind, $($detail)+)
    };
}
