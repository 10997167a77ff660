use super::BoxFuture;
use std::fmt;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// What to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Variables set for the child, in order.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment instead of inheriting the parent's.
    pub env_clear: bool,
    /// Working directory (a disk path of the host); `None` keeps the parent's.
    pub cwd: Option<String>,
}

impl ProcSpec {
    pub fn new(program: impl Into<String>) -> Self {
        ProcSpec {
            program: program.into(),
            ..ProcSpec::default()
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Signals the engine sends or observes, with their Linux numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    Hup,
    Int,
    Kill,
    Segv,
    Term,
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Kill => 9,
            Signal::Segv => 11,
            Signal::Term => 15,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Hup => "SIGHUP",
            Signal::Int => "SIGINT",
            Signal::Kill => "SIGKILL",
            Signal::Segv => "SIGSEGV",
            Signal::Term => "SIGTERM",
        }
    }
}

/// How a process ended, as the OS reports it: either an exit code or a terminating
/// signal, never both (like `std::os::unix::process::ExitStatusExt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitStatus {
    code: Option<i32>,
    signal: Option<i32>,
}

impl ExitStatus {
    pub fn from_code(code: i32) -> Self {
        ExitStatus {
            code: Some(code & 0xff),
            signal: None,
        }
    }

    pub fn from_signal(signal: i32) -> Self {
        ExitStatus {
            code: None,
            signal: Some(signal),
        }
    }

    /// Decodes a raw `waitpid` status word.
    pub fn from_raw(raw: i32) -> Self {
        if raw & 0x7f == 0 {
            ExitStatus::from_code((raw >> 8) & 0xff)
        } else {
            ExitStatus::from_signal(raw & 0x7f)
        }
    }

    /// The raw `waitpid` status word (no core-dump bit).
    pub fn into_raw(self) -> i32 {
        match (self.code, self.signal) {
            (Some(code), _) => (code & 0xff) << 8,
            (None, Some(sig)) => sig & 0x7f,
            (None, None) => 0,
        }
    }

    pub fn code(self) -> Option<i32> {
        self.code
    }

    pub fn signal(self) -> Option<i32> {
        self.signal
    }

    pub fn success(self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit status: {code}"),
            (None, Some(sig)) => write!(f, "signal: {sig}"),
            (None, None) => f.write_str("unknown status"),
        }
    }
}

/// Starts child processes for one host.
pub trait ProcessLauncher: Send + Sync {
    /// Starts `spec` with piped stdin, stdout and stderr. Fails with the OS error the
    /// real `execve`/`fork` would give (`ENOENT`, `EACCES`, `EAGAIN`…).
    fn spawn<'a>(&'a self, spec: &'a ProcSpec) -> BoxFuture<'a, io::Result<Box<dyn ChildProc>>>;
}

pub type ChildStdin = Box<dyn AsyncWrite + Send + Unpin>;
pub type ChildOutput = Box<dyn AsyncRead + Send + Unpin>;

/// A started child process.
pub trait ChildProc: Send {
    fn pid(&self) -> u32;
    fn take_stdin(&mut self) -> Option<ChildStdin>;
    fn take_stdout(&mut self) -> Option<ChildOutput>;
    fn take_stderr(&mut self) -> Option<ChildOutput>;
    /// Waits for the child to exit and reaps it.
    fn wait(&mut self) -> BoxFuture<'_, io::Result<ExitStatus>>;
    /// Reaps the child if it has exited.
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>>;
    /// Sends a signal; `ESRCH` if the process is gone (reaped).
    fn signal(&self, signal: Signal) -> io::Result<()>;
    /// Kills the process (SIGKILL); reap it with `wait` afterwards.
    fn kill(&self) -> io::Result<()> {
        self.signal(Signal::Kill)
    }
    /// Resident memory in bytes, as the OS reports it (`/proc/PID/statm`).
    fn resident_bytes(&self) -> io::Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_statuses_round_trip_through_the_raw_wait_word() {
        for code in [0, 1, 3, 127, 255] {
            let status = ExitStatus::from_code(code);
            assert_eq!(ExitStatus::from_raw(status.into_raw()), status);
            assert_eq!((status.code(), status.signal()), (Some(code), None));
        }
        for signal in [Signal::Kill, Signal::Segv, Signal::Term] {
            let status = ExitStatus::from_signal(signal.number());
            assert_eq!(ExitStatus::from_raw(status.into_raw()), status);
            assert_eq!(status.code(), None, "a signalled process has no exit code");
            assert!(!status.success());
        }
        // What waitpid reports for `exit(2)` and for a SIGKILL.
        assert_eq!(ExitStatus::from_raw(0x0200).code(), Some(2));
        assert_eq!(ExitStatus::from_raw(9).signal(), Some(9));
        assert_eq!(
            ExitStatus::from_code(256 + 7).code(),
            Some(7),
            "codes are 8 bits"
        );
    }

    #[test]
    fn signals_have_their_linux_numbers() {
        let numbers: Vec<i32> = [
            Signal::Hup,
            Signal::Int,
            Signal::Kill,
            Signal::Segv,
            Signal::Term,
        ]
        .iter()
        .map(|s| s.number())
        .collect();
        assert_eq!(numbers, vec![1, 2, 9, 11, 15]);
        assert_eq!(Signal::Kill.name(), "SIGKILL");
    }
}
