//! What a simulated program sees: its arguments, its standard streams, its host's
//! environment, a memory gauge and its signals.

use super::process::ProcShared;
use engine::env::{BoxFuture, Env, ExitStatus, Signal};
use std::fmt;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// A pipe end a program reads from: the same type as the engine's `ChildOutput`.
pub type ReadEnd = Box<dyn AsyncRead + Send + Unpin>;
/// A pipe end a program writes to: the same type as the engine's `ChildStdin`.
pub type WriteEnd = Box<dyn AsyncWrite + Send + Unpin>;

/// A program binary installed on a host: called once per spawn, its future is the
/// process's main; the value it returns is the exit code.
pub type SimProgram = Arc<dyn Fn(ProgramCtx) -> BoxFuture<'static, i32> + Send + Sync>;

/// A running program's view of its process.
pub struct ProgramCtx {
    pub pid: u32,
    /// Arguments after the program path (`argv[1..]`).
    pub args: Vec<String>,
    /// Environment variables, in the order the parent set them. A simulated host has no
    /// variables of its own to inherit.
    pub vars: Vec<(String, String)>,
    /// Working directory on the host's disk, if the parent chose one.
    pub cwd: Option<String>,
    /// Reads what the parent writes; EOF once the parent drops its end.
    pub stdin: ReadEnd,
    pub stdout: WriteEnd,
    pub stderr: WriteEnd,
    /// The host's environment: the program's clock, disk, network and launcher.
    pub env: Env,
    /// Where the program reports its resident memory.
    pub memory: MemoryGauge,
    /// SIGTERM, SIGINT and SIGHUP, once the program installs handlers.
    pub signals: Signals,
}

impl ProgramCtx {
    /// Installs handlers for SIGTERM, SIGINT and SIGHUP: from now on they arrive at
    /// `self.signals.recv()` instead of terminating the process.
    pub fn handle_signals(&self) {
        self.signals.handle();
    }
}

impl fmt::Debug for ProgramCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgramCtx")
            .field("pid", &self.pid)
            .field("args", &self.args)
            .field("vars", &self.vars)
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

/// The program's resident memory, as `/proc/PID/statm` would report it. Every update is
/// checked against the host's memory limit: going over it gets the process OOM-killed
/// (SIGKILL) at once, and the program's task stops at its next await.
#[derive(Clone)]
pub struct MemoryGauge {
    pub(crate) proc: Arc<ProcShared>,
}

impl MemoryGauge {
    /// Sets the resident bytes (a leak keeps growing from this new base).
    pub fn set(&self, bytes: u64) {
        self.proc.set_memory(Some(bytes), None);
    }

    /// Adds to the resident bytes (an allocation).
    pub fn add(&self, bytes: u64) {
        let now = self.bytes();
        self.proc.set_memory(Some(now.saturating_add(bytes)), None);
    }

    /// Leaks `bytes_per_s` bytes per second of virtual time from now on (0 stops it).
    pub fn set_growth(&self, bytes_per_s: u64) {
        self.proc.set_memory(None, Some(bytes_per_s));
    }

    /// The current resident bytes (0 once the process has ended).
    pub fn bytes(&self) -> u64 {
        self.proc.resident_bytes().unwrap_or(0)
    }
}

/// The program's signal dispositions and its queue of handled signals.
pub struct Signals {
    pub(crate) proc: Arc<ProcShared>,
    pub(crate) rx: mpsc::Receiver<Signal>,
}

impl Signals {
    /// Installs handlers for SIGTERM, SIGINT and SIGHUP (like `sigaction`): they queue
    /// for [`Signals::recv`] instead of terminating. SIGKILL and SIGSEGV cannot be handled.
    pub fn handle(&self) {
        self.proc.set_handling_signals(true);
    }

    /// Restores the default dispositions: SIGTERM, SIGINT and SIGHUP terminate again.
    pub fn reset(&self) {
        self.proc.set_handling_signals(false);
    }

    /// The next handled signal. Pending forever if none comes; a process that is
    /// terminated stops at this await.
    pub async fn recv(&mut self) -> Option<Signal> {
        self.rx.recv().await
    }

    /// `kill(getpid(), signal)`: a handled signal is queued; any other ends the process
    /// now, with that signal as its status, and the task stops at its next await.
    pub fn raise(&self, signal: Signal) {
        // Our own process is running (we are its code), so delivery cannot fail.
        let _ = self.proc.deliver(signal);
    }

    /// Ends the process with `signal` as its status whatever the dispositions (a crash,
    /// or a re-raise after resetting a handler). Counts nothing: callers that model a
    /// fault count it.
    pub(crate) fn die(&self, signal: Signal) {
        self.proc
            .terminate(ExitStatus::from_signal(signal.number()));
    }
}
