//! The knobs of one host's simulated processes: fixed limits first, then swarm rates.

use crate::seed::Ratio;
use std::time::Duration;

/// Settings and fault rates of one host's children. Every rate is drawn once per spawn,
/// from the host's own random stream, so a run replays from its seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcsOptions {
    /// Capacity of each stdin, stdout and stderr pipe in bytes (Linux: 64 KiB). A writer
    /// facing a full pipe blocks until the reader drains it: a parent that never reads
    /// its child's stdout stalls the child.
    pub pipe_bytes_max: usize,
    /// Resident memory a child may reach, in bytes; going over it gets the child
    /// SIGKILLed by the OOM killer (status: signal 9).
    pub memory_limit_bytes: u64,
    /// Resident memory of a child before its program reports any, in bytes (the
    /// loader's pages: `/proc/PID/statm` of a live process is never 0).
    pub resident_bytes_initial: u64,
    /// Children alive at once on the host; a spawn beyond it fails with `EAGAIN`, like
    /// `fork` at `RLIMIT_NPROC`. A bound on the process table, not a fault.
    pub children_max: usize,
    /// Shortest virtual time between `spawn` and the program's first instruction.
    pub start_delay_min: Duration,
    /// Longest such delay; the delay is uniform in `[start_delay_min, start_delay_max]`
    /// (a cold binary, a loaded machine). Counted as `proc.slow_start` when non-zero.
    pub start_delay_max: Duration,
    /// Probability (swarm) that a spawn starts slowly on top of the delay above: up to
    /// `slow_start_max` more, uniform. Counted as `proc.slow_start`.
    pub slow_start_rate: Ratio,
    /// The longest extra delay of a swarm slow start.
    pub slow_start_max: Duration,
    /// Probability that a spawn fails with `EAGAIN` (fork at its limits).
    pub spawn_fail_rate: Ratio,
    /// Probability that a child dies of SIGSEGV at a uniform time in
    /// `[0, fault_after_max]` after its spawn.
    pub crash_rate: Ratio,
    /// Probability that a child stops making progress at a uniform time in
    /// `[0, fault_after_max]` after its spawn: it is never polled again, reads and
    /// writes nothing, ignores handled signals, and only SIGKILL (or an unhandled
    /// signal) ends it.
    pub hang_rate: Ratio,
    /// Probability that a child's stdout is garbled: every write has one byte replaced
    /// by a different random value.
    pub garble_rate: Ratio,
    /// Probability that a child's stdout is truncated: after a uniform number of bytes in
    /// `[0, truncate_after_bytes_max]` the parent reads EOF, the rest is dropped, and the
    /// child keeps running as if its writes succeeded.
    pub truncate_rate: Ratio,
    /// Latest time after spawn at which a swarm crash or hang fires.
    pub fault_after_max: Duration,
    /// Most bytes a truncated stdout delivers before its early EOF.
    pub truncate_after_bytes_max: u64,
}

impl ProcsOptions {
    /// No faults: children start at once and only end the way their program says. Limits
    /// are the ones of a small Linux machine.
    pub fn quiet() -> Self {
        ProcsOptions {
            pipe_bytes_max: 64 * 1024,
            memory_limit_bytes: 4 << 30,
            resident_bytes_initial: 1 << 20,
            children_max: 1024,
            start_delay_min: Duration::ZERO,
            start_delay_max: Duration::ZERO,
            slow_start_rate: Ratio::ZERO,
            slow_start_max: Duration::from_millis(1_000),
            spawn_fail_rate: Ratio::ZERO,
            crash_rate: Ratio::ZERO,
            hang_rate: Ratio::ZERO,
            garble_rate: Ratio::ZERO,
            truncate_rate: Ratio::ZERO,
            fault_after_max: Duration::from_secs(10),
            truncate_after_bytes_max: 4096,
        }
    }

    /// Panics with the offending field when the options contradict themselves: they are
    /// data written by people and by the swarm generator, and a silent clamp would hide
    /// a wrong plan.
    pub fn check(&self) {
        assert!(
            self.pipe_bytes_max > 0,
            "pipe_bytes_max must be positive: a pipe holds at least one byte"
        );
        assert!(self.children_max > 0, "children_max must be positive");
        assert!(
            self.start_delay_min <= self.start_delay_max,
            "start_delay_min {:?} exceeds start_delay_max {:?}",
            self.start_delay_min,
            self.start_delay_max
        );
        assert!(
            self.resident_bytes_initial <= self.memory_limit_bytes,
            "resident_bytes_initial {} exceeds memory_limit_bytes {}: every child would be OOM-killed at birth",
            self.resident_bytes_initial,
            self.memory_limit_bytes
        );
    }
}

/// How a scripted child ends once its lines are written and its run time is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScriptedEnding {
    /// Exits with this code.
    Exit(i32),
    /// Dies of this signal (default action, handlers reset first). Counted as
    /// `proc.crash_segv` for SIGSEGV, `proc.crash_signal` otherwise.
    Crash(engine::env::Signal),
    /// The main part stops making progress forever (counted as `proc.hang`); signal
    /// handling goes on as configured, so SIGTERM still ends it unless ignored.
    Hang,
}

/// A declarative child: what a scenario installs when it needs a worker that misbehaves
/// in one precise way. Start from [`ScriptedBehaviour::exits`] and set fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedBehaviour {
    /// Virtual time before the first line (on top of the host's slow start).
    pub start_delay: Duration,
    /// Lines written to stdout, each followed by `\n`. A write error (the parent closed
    /// stdout) stops the writing; the child goes on to its ending.
    pub stdout_lines: Vec<String>,
    /// Pause before each line after the first; zero writes them back to back.
    pub line_interval: Duration,
    /// Resident memory reported at start, in bytes; 0 keeps the host's initial value.
    pub memory_bytes_initial: u64,
    /// Leak: resident memory grows by this many bytes per second of virtual time, until
    /// the host's memory limit gets the child OOM-killed.
    pub memory_growth_bytes_per_s: u64,
    /// Virtual time between the last line and the ending.
    pub run_time: Duration,
    pub ending: ScriptedEnding,
    /// SIGTERM does nothing (the supervisor must escalate to SIGKILL). SIGINT and SIGHUP
    /// still follow `term_exit_delay`.
    pub ignore_sigterm: bool,
    /// `Some(d)`: SIGTERM, SIGINT and SIGHUP are handled: the child shuts down
    /// gracefully and exits 0 after `d`. `None`: they terminate it at once (default
    /// action), unless `ignore_sigterm` covers SIGTERM.
    pub term_exit_delay: Option<Duration>,
}

impl ScriptedBehaviour {
    /// A child that writes nothing and exits with `code` at once.
    pub fn exits(code: i32) -> Self {
        ScriptedBehaviour {
            start_delay: Duration::ZERO,
            stdout_lines: Vec::new(),
            line_interval: Duration::ZERO,
            memory_bytes_initial: 0,
            memory_growth_bytes_per_s: 0,
            run_time: Duration::ZERO,
            ending: ScriptedEnding::Exit(code),
            ignore_sigterm: false,
            term_exit_delay: None,
        }
    }

    /// Whether the script installs handlers for SIGTERM, SIGINT and SIGHUP.
    pub(crate) fn handles_signals(&self) -> bool {
        self.ignore_sigterm || self.term_exit_delay.is_some()
    }
}
