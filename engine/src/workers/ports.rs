//! Port allocation for worker endpoints: check before spawning, move on when taken.
//!
//! Availability is checked by binding the port and letting it go: a port another
//! process holds fails with `AddrInUse` and the next one is tried. The cursor rotates
//! through the range so that ports freed by stopped workers are not reused at once (a
//! late connection to the old worker would otherwise reach the new one).

use super::WorkerError;
use super::config::PortRange;
use crate::env::Env;
use std::io;
use std::sync::Mutex;

/// Most ports tried for one allocation.
pub(super) const PORT_TRIES_MAX: u32 = 64;

pub(crate) struct PortAllocator {
    range: PortRange,
    cursor: Mutex<u16>,
}

impl PortAllocator {
    pub(crate) fn new(range: PortRange) -> Self {
        assert!(
            range.first > 0 && range.first <= range.last,
            "bad port range {range:?}"
        );
        PortAllocator {
            range,
            cursor: Mutex::new(range.first),
        }
    }

    fn next_candidate(&self) -> u16 {
        let mut cursor = self.cursor.lock().expect("port cursor poisoned");
        let port = *cursor;
        *cursor = if port >= self.range.last {
            self.range.first
        } else {
            port + 1
        };
        port
    }

    /// A port that was free a moment ago, for `worker`.
    pub(crate) async fn allocate(&self, env: &Env, worker: &str) -> Result<u16, WorkerError> {
        let size = u32::from(self.range.last - self.range.first) + 1;
        let tries = size.min(PORT_TRIES_MAX);
        for _ in 0..tries {
            let port = self.next_candidate();
            match env.net().bind(port).await {
                Ok(listener) => {
                    drop(listener);
                    return Ok(port);
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    tracing::info!(
                        worker,
                        port,
                        "port taken by another process; trying the next one"
                    );
                }
                Err(e) if matches!(e.raw_os_error(), Some(24) | Some(23)) => {
                    return Err(WorkerError::FdExhausted {
                        name: worker.to_string(),
                        detail: format!("binding port {port}: {e}"),
                    });
                }
                Err(e) => {
                    tracing::warn!(worker, port, error = %e, "port check failed; trying the next one");
                }
            }
        }
        Err(WorkerError::PortsExhausted {
            name: worker.to_string(),
            first: self.range.first,
            last: self.range.last,
            tried: tries,
        })
    }
}
