//! Errors of the worker supervisor: each says which worker and what to do about it.

use super::lifecycle::WorkerStatus;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerError {
    NotRegistered {
        name: String,
    },
    InvalidName {
        name: String,
        reason: String,
    },
    /// The process could not be started (`ENOENT`, `EACCES`, `EAGAIN`…).
    SpawnFailed {
        name: String,
        reason: String,
    },
    /// The host ran out of file descriptors (`EMFILE`/`ENFILE`).
    FdExhausted {
        name: String,
        detail: String,
    },
    /// Every port of the range was taken.
    PortsExhausted {
        name: String,
        first: u16,
        last: u16,
        tried: u32,
    },
    /// The worker did not say it was ready in time.
    InitTimeout {
        name: String,
        after: Duration,
    },
    /// The worker's endpoint never accepted a connection.
    ConnectFailed {
        name: String,
        attempts: u32,
        last: String,
    },
    /// The worker exited before it was ready.
    ExitedDuringInit {
        name: String,
        status: String,
    },
    /// Too many failures in the window: restarts stopped until a manual start.
    BreakerOpen {
        name: String,
        failures: u32,
    },
    /// The worker ran out of disk space for its cache: the disk is full (`ENOSPC`), or
    /// its quota is used up.
    DiskQuotaExceeded {
        name: String,
        /// The worker's quota, if it has one.
        quota_bytes: Option<u64>,
        /// What failed, as the worker reported it (path and OS error).
        detail: String,
    },
    /// The worker's disk is near its quota: the supervisor put it in read-only mode
    /// until space is freed.
    ReadOnly {
        name: String,
        detail: String,
    },
    /// The operation needs a running worker.
    NotRunning {
        name: String,
        status: WorkerStatus,
    },
    /// The worker broke the protocol or its connection failed mid-request.
    Protocol {
        name: String,
        detail: String,
    },
    /// The worker answered with an error.
    Refused {
        name: String,
        code: String,
        message: String,
    },
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WorkerError::*;
        match self {
            NotRegistered { name } => write!(f, "no worker named {name:?} is registered"),
            InvalidName { name, reason } => write!(f, "invalid worker name {name:?}: {reason}"),
            SpawnFailed { name, reason } => {
                write!(f, "worker {name:?} could not be spawned: {reason}")
            }
            FdExhausted { name, detail } => write!(
                f,
                "worker {name:?}: file descriptors exhausted ({detail}); raise the descriptor limit (ulimit -n) or run fewer workers"
            ),
            PortsExhausted {
                name,
                first,
                last,
                tried,
            } => write!(
                f,
                "worker {name:?}: no free port in {first}..={last} after {tried} tries; widen the port range"
            ),
            InitTimeout { name, after } => write!(
                f,
                "worker {name:?} was not ready within {} ms; it was killed",
                after.as_millis()
            ),
            ConnectFailed {
                name,
                attempts,
                last,
            } => write!(
                f,
                "worker {name:?}: endpoint refused {attempts} connection attempts; last error: {last}"
            ),
            ExitedDuringInit { name, status } => {
                write!(f, "worker {name:?} exited before it was ready ({status})")
            }
            BreakerOpen { name, failures } => write!(
                f,
                "worker {name:?} failed {failures} times in the restart window; restarts are stopped until it is started by hand"
            ),
            DiskQuotaExceeded {
                name,
                quota_bytes: Some(quota),
                detail,
            } => write!(
                f,
                "worker {name:?} ran out of disk space ({detail}); its quota is {quota} bytes: free space or raise the quota"
            ),
            DiskQuotaExceeded {
                name,
                quota_bytes: None,
                detail,
            } => write!(
                f,
                "worker {name:?} ran out of disk space ({detail}); free space on the disk holding its directory"
            ),
            ReadOnly { name, detail } => write!(
                f,
                "worker {name:?} is read-only ({detail}); approve the cleanup of its large files or raise its quota"
            ),
            NotRunning { name, status } => {
                write!(f, "worker {name:?} is not running (status: {status})")
            }
            Protocol { name, detail } => write!(f, "worker {name:?} protocol error: {detail}"),
            Refused {
                name,
                code,
                message,
            } => write!(f, "worker {name:?} refused the request ({code}): {message}"),
        }
    }
}

impl std::error::Error for WorkerError {}
