//! The elapsed wall time of a command, recorded in the sweep files it writes so a report
//! can show it beside the summed run time (runs run in parallel).

use std::time::Instant;

/// Started when created.
#[allow(
    clippy::disallowed_types,
    reason = "wall time for people; never part of a run or a trace"
)]
pub struct Stopwatch(Instant);

#[allow(
    clippy::disallowed_types,
    reason = "wall time for people; never part of a run or a trace"
)]
impl Stopwatch {
    pub fn start() -> Stopwatch {
        #[allow(
            clippy::disallowed_methods,
            reason = "wall time for people; never part of a run or a trace"
        )]
        let now = Instant::now();
        Stopwatch(now)
    }

    /// Milliseconds since the start.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
