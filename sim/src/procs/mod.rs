//! Simulated child processes of one host: subprocesses as a fault domain (BRIEF §8).
//!
//! # Fault contract
//!
//! `SimProcs` implements the engine's `ProcessLauncher` with the semantics of Linux, so
//! the conformance suite can run the same contract against real processes. On top of
//! that it injects the faults a supervisor of workers meets in production. Each one is
//! counted in the run's [`FaultCounters`] when it actually fires, under the kind named:
//!
//! - **Spawn failure** (`proc.spawn_fail`): `fail_next_spawn` with `ENOENT`, `EACCES` or
//!   `EAGAIN`, or the swarm's `spawn_fail_rate` (`EAGAIN`). A supervisor must report the
//!   error and retry with backoff, not crash or spin. (A program that is not installed
//!   gives `ENOENT` like a missing binary; that is not an injected fault.)
//! - **Slow start** (`proc.slow_start`): the program begins after a delay in
//!   `[start_delay_min, start_delay_max]`. Readiness must be awaited, never assumed.
//! - **Crash** (`proc.crash_segv`): SIGSEGV at a random time (`crash_rate`), from
//!   `kill_with(pid, Signal::Segv)`, or a scripted crash (`proc.crash_signal` for other
//!   signals). The status is signal 11 with no code; the session it served must fail
//!   cleanly and the worker be restarted.
//! - **External kill** (`proc.kill`): `kill_with` any other signal (an operator, the
//!   kernel). SIGTERM, SIGINT and SIGHUP reach a handler if the program installed one.
//! - **OOM kill** (`proc.oom_kill`): resident memory (the program's `MemoryGauge`, plus a
//!   scripted leak per second of virtual time) over `memory_limit_bytes` gets SIGKILL at
//!   once: status signal 9. Checked on every gauge update, at the exact virtual instant
//!   a leak crosses the limit, and when the limit changes.
//! - **Leak** (`proc.leak`): `leak(pid, bytes_per_s)` makes a running child's resident
//!   memory grow linearly in virtual time from the moment of the call, whatever its
//!   program does (a leak the program itself does not know about). Unchecked, it ends in
//!   the OOM kill above; a supervisor that watches memory must restart the worker first.
//! - **Hang** (`proc.hang`): `hang(pid)`, `hang_rate`, or a scripted hang: the child is
//!   never polled again. It reads and writes nothing and ignores handled signals; only
//!   SIGKILL or an unhandled signal ends it. A supervisor must time out, then escalate.
//! - **Full pipe** (`proc.pipe_full`, once per blocking episode, only if a writer really
//!   blocked): pipes hold `pipe_bytes_max` bytes. A child writing to a stdout nobody reads
//!   stalls; a parent writing to a stdin the child does not read stalls too.
//! - **Garbled stdout** (`proc.garble`): every write of the child has one byte replaced.
//!   Framing and parsing errors must fail the session, not the engine.
//! - **Truncated stdout** (`proc.truncate`): the parent reads EOF early while the child
//!   runs on. EOF is not an exit: the supervisor must still wait for the status.
//! - **Host crash** (`crash`): every child vanishes with no status for anyone; pipes
//!   close. Pids are never reused within a run.
//!
//! Linux semantics kept on purpose (a correct supervisor relies on them): an exit status
//! is a code or a signal, never both; an exited child stays a zombie (`zombie_pids`)
//! until `wait`/`try_wait` reaps it; `signal` to a zombie succeeds with no effect; after
//! reaping, `signal` and `resident_bytes` fail with `ESRCH`; SIGTERM, SIGINT and SIGHUP
//! terminate with that signal unless handled, SIGKILL always terminates at once;
//! dropping the parent's stdin sends EOF (`shutdown` does not, as in tokio); after the
//! child exits, the parent reads what is buffered, then EOF; dropping the child handle
//! SIGKILLs a running child (the real launcher uses `kill_on_drop`).
//!
//! Randomness comes only from the host's `SimRng`, drawn in a fixed order at each spawn;
//! a rate of zero draws nothing. Time is tokio's (virtual in a world). The child's task
//! is spawned through the host's `Spawner`, so a host crash also kills it.

mod child;
mod coreutils;
mod host;
mod launch;
mod options;
mod pipe;
mod process;
mod program;
mod script;
mod standalone;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_faults;

pub use coreutils::{cat, exits, install_coreutils, sh};
pub use host::SimProcs;
pub use options::{ProcsOptions, ScriptedBehaviour, ScriptedEnding};
pub use program::{MemoryGauge, ProgramCtx, ReadEnd, Signals, SimProgram, WriteEnd};
pub use standalone::standalone_env;

#[cfg(doc)]
use crate::faults::FaultCounters;
