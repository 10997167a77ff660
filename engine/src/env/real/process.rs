use crate::env::process::{ChildOutput, ChildStdin};
use crate::env::{BoxFuture, ChildProc, ExitStatus, ProcSpec, ProcessLauncher, Signal};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Real child processes.
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
            let child = command.spawn()?;
            let pid = child.id().unwrap_or(0);
            Ok(Box::new(RealChild {
                child,
                pid,
                reaped: None,
            }) as Box<dyn ChildProc>)
        })
    }
}

struct RealChild {
    child: Child,
    pid: u32,
    reaped: Option<ExitStatus>,
}

fn convert(status: std::process::ExitStatus) -> ExitStatus {
    ExitStatus::from_raw(status.into_raw())
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
            self.reaped = Some(status);
            Ok(status)
        })
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.reaped {
            return Ok(Some(status));
        }
        let status = self.child.try_wait()?.map(convert);
        self.reaped = status;
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
