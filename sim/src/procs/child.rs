//! The parent's handle on a simulated child: the engine's `ChildProc`.

use super::pipe::{PipeReader, PipeWriter};
use super::process::{Phase, ProcShared};
use super::program::{ReadEnd, WriteEnd};
use engine::env::{BoxFuture, ChildProc, ExitStatus, Signal};
use std::io;
use std::sync::Arc;

pub(crate) struct SimChild {
    pub(crate) proc: Arc<ProcShared>,
    pub(crate) stdin: Option<PipeWriter>,
    pub(crate) stdout: Option<PipeReader>,
    pub(crate) stderr: Option<PipeReader>,
}

impl ChildProc for SimChild {
    fn pid(&self) -> u32 {
        self.proc.pid
    }

    fn take_stdin(&mut self) -> Option<WriteEnd> {
        self.stdin.take().map(|s| Box::new(s) as WriteEnd)
    }

    fn take_stdout(&mut self) -> Option<ReadEnd> {
        self.stdout.take().map(|s| Box::new(s) as ReadEnd)
    }

    fn take_stderr(&mut self) -> Option<ReadEnd> {
        self.stderr.take().map(|s| Box::new(s) as ReadEnd)
    }

    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>> {
        Box::pin(async move {
            self.proc.ended().await;
            let status = self.proc.try_reap()?;
            Ok(status.expect("a process that ended has a status or an error"))
        })
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.proc.try_reap()
    }

    fn signal(&self, signal: Signal) -> io::Result<()> {
        self.proc.deliver(signal)
    }

    fn resident_bytes(&self) -> io::Result<u64> {
        self.proc.resident_bytes()
    }
}

impl Drop for SimChild {
    /// Like the real launcher (`kill_on_drop`): a child whose handle is dropped is
    /// SIGKILLed if still running, and reaped in the background.
    fn drop(&mut self) {
        if self.proc.phase() == Phase::Running {
            self.proc
                .terminate(ExitStatus::from_signal(Signal::Kill.number()));
        }
        // Vanished children have no status to collect; nothing else can fail here.
        let _ = self.proc.try_reap();
    }
}
