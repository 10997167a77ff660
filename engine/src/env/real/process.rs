use crate::env::process::{ChildOutput, ChildStdin};
use crate::env::{BoxFuture, ChildProc, ExitStatus, ProcSpec, ProcessLauncher, Signal};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::process::{Child, Command};

/// Real child processes.
///
/// The faults the simulated launcher injects and counts happen here for real, and are
/// said the same way (`engine::met`, under the simulator's kinds): a spawn the OS
/// refuses (`proc.spawn_fail`), and a child ended by a signal this launcher did not
/// send (`proc.crash_segv` for SIGSEGV, `proc.kill` for SIGKILL, SIGTERM, SIGINT and
/// SIGHUP from outside, `proc.crash_signal` for any other).
pub struct RealProcs {
    data_dir: PathBuf,
}

impl RealProcs {
    pub fn new(data_dir: PathBuf) -> Self {
        RealProcs { data_dir }
    }
}

impl ProcessLauncher for RealProcs {
    fn spawn<'a>(&'a self, spec: &'a ProcSpec) -> BoxFuture<'a, io::Result<Box<dyn ChildProc>>> {
        Box::pin(async move {
            let mut command = Command::new(&spec.program);
            command
                .args(&spec.args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            if spec.env_clear {
                command.env_clear();
            }
            command.envs(spec.env.iter().map(|(k, v)| (k, v)));
            if let Some(cwd) = &spec.cwd {
                crate::env::check_relative_path(cwd)?;
                command.current_dir(self.data_dir.join(cwd));
            }
            let child = command.spawn().inspect_err(|e| {
                crate::met!("proc.spawn_fail", "spawn of {} failed: {e}", spec.program);
            })?;
            let pid = child.id().unwrap_or(0);
            Ok(Box::new(RealChild {
                child,
                pid,
                reaped: None,
                sent: AtomicU64::new(0),
            }) as Box<dyn ChildProc>)
        })
    }
}

struct RealChild {
    child: Child,
    pid: u32,
    reaped: Option<ExitStatus>,
    /// The signals this launcher sent the child (bit `n` for signal `n`).
    sent: AtomicU64,
}

fn convert(status: std::process::ExitStatus) -> ExitStatus {
    ExitStatus::from_raw(status.into_raw())
}

impl RealChild {
    /// The child was reaped with `status`: a signal we did not send is a fault that
    /// reached it from outside (or a crash).
    fn reaped_with(&mut self, status: ExitStatus) {
        self.reaped = Some(status);
        let Some(signal) = status.signal() else {
            return;
        };
        let ours =
            (0..64).contains(&signal) && self.sent.load(Ordering::Relaxed) & (1u64 << signal) != 0;
        if ours {
            return;
        }
        let pid = self.pid;
        match signal {
            11 => crate::met!("proc.crash_segv", "pid {pid} ended by SIGSEGV"),
            1 | 2 | 9 | 15 => crate::met!(
                "proc.kill",
                "pid {pid} killed by signal {signal} from outside"
            ),
            _ => crate::met!("proc.crash_signal", "pid {pid} ended by signal {signal}"),
        }
    }
}

impl ChildProc for RealChild {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take().map(|s| Box::new(s) as ChildStdin)
    }

    fn take_stdout(&mut self) -> Option<ChildOutput> {
        self.child.stdout.take().map(|s| Box::new(s) as ChildOutput)
    }

    fn take_stderr(&mut self) -> Option<ChildOutput> {
        self.child.stderr.take().map(|s| Box::new(s) as ChildOutput)
    }

    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>> {
        Box::pin(async move {
            if let Some(status) = self.reaped {
                return Ok(status);
            }
            let status = convert(self.child.wait().await?);
            self.reaped_with(status);
            Ok(status)
        })
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.reaped {
            return Ok(Some(status));
        }
        let status = self.child.try_wait()?.map(convert);
        if let Some(status) = status {
            self.reaped_with(status);
        }
        Ok(status)
    }

    fn signal(&self, signal: Signal) -> io::Result<()> {
        if self.reaped.is_some() || self.pid == 0 {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child,
        // not yet reaped, so it cannot have been reused.
        let rc = unsafe { libc::kill(self.pid as libc::pid_t, signal.number()) };
        if rc == 0 {
            self.sent
                .fetch_or(1u64 << signal.number(), Ordering::Relaxed);
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn resident_bytes(&self) -> io::Result<u64> {
        if self.reaped.is_some() {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid))?;
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable statm"))?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Ok(pages * page.max(1) as u64)
    }
}
