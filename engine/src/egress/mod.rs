//! Sandbox egress (catalog `enable.1.2.1`): a session's outbound requests (a model's
//! `fetch` tool) leave the engine here. Probes with a 5 s connect timeout tell when the
//! outside is unreachable; meanwhile requests wait in a buffer bounded by count (1000)
//! and age (5 min), a request past either bound failing with a clear error; probes
//! back off exponentially with full jitter; once one connects the waiting requests go
//! out in the order they came. The sessions' side (checkpoint, telling the user) is
//! `sessions/egress.rs`.
//!
//! Chosen where the catalog leaves it open: a request that was sent but got no whole
//! answer (a reset, the exchange timeout) counts as unreached and is sent again after
//! the outage (the requests are GETs, safe to repeat); the probe target is the host of
//! the request that found egress down; probes back off from 1 s to 60 s.
//!
//! Sans-IO cores: `buffer.rs` (the bounded FIFO), `probe.rs` (up/down and the probe
//! schedule); `exchange.rs` is one HTTP GET (hyper) and the target syntax; `shell.rs`
//! is the async shell, one per engine (built in `Engine::start`).

mod buffer;
mod config;
mod error;
mod exchange;
mod probe;
mod shell;

pub use buffer::EgressBuffer;
pub use config::EgressConfig;
pub use error::EgressError;
pub use probe::{ProbeCore, ProbeDelay, ProbeSchedule};
pub(crate) use shell::Sent;

/// A fetch target as the engine reads it from a query (`[http://]HOST:PORT[/PATH]`),
/// written back in its full form (`http://HOST:PORT/PATH`), or why it is refused: the
/// fuzzers' door to the parser.
pub fn normalize_target(text: &str) -> Result<String, EgressError> {
    exchange::Target::parse(text).map(|t| t.to_string())
}
pub use shell::{Egress, EgressStats, ProbeRecord};
