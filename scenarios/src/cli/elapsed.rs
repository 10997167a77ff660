//! The elapsed wall time of a command, recorded in the sweep files it writes so a report
//! can show it beside the summed run time (runs run in parallel).

#![allow(
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "the one place the CLI times itself: wall time for people, never part of a run or a trace"
)]

use std::time::Instant;

/// Started when created.
pub struct Stopwatch(Instant);

impl Stopwatch {
    pub fn start() -> Stopwatch {
        Stopwatch(Instant::now())
    }

    /// Milliseconds since the start.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}
