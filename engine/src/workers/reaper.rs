//! The reaper: children the supervisor gave up on are killed and kept here until their
//! exit status is collected, so none stays a zombie holding a PID slot.
//!
//! A child is given up on when it missed its init timeout, hung, or belonged to a
//! worker that was replaced or dropped. Waiting for it inline could block the caller
//! for as long as the kernel takes to deliver SIGKILL; the watchdog collects it instead.

use crate::env::{ChildProc, ExitStatus, Signal};
use std::sync::Mutex;

struct Adopted {
    worker: String,
    child: Box<dyn ChildProc>,
}

#[derive(Default)]
pub struct Reaper {
    children: Mutex<Vec<Adopted>>,
    reaped: Mutex<u64>,
}

impl Reaper {
    pub fn new() -> Self {
        Reaper::default()
    }

    /// Kills `child` (SIGKILL; a zombie ignores it) and keeps it until it is reaped.
    pub fn adopt(&self, worker: &str, child: Box<dyn ChildProc>) {
        let pid = child.pid();
        if let Err(e) = child.signal(Signal::Kill) {
            tracing::debug!(worker, pid, error = %e, "kill before adoption failed (already gone)");
        }
        tracing::info!(worker, pid, "child handed to the reaper");
        self.children
            .lock()
            .expect("reaper poisoned")
            .push(Adopted {
                worker: worker.to_string(),
                child,
            });
    }

    /// Children waiting to be reaped.
    pub fn pending(&self) -> usize {
        self.children.lock().expect("reaper poisoned").len()
    }

    /// Children reaped so far.
    pub fn reaped(&self) -> u64 {
        *self.reaped.lock().expect("reaper poisoned")
    }

    /// Collects every adopted child that has exited; returns (pid, status) of each.
    pub fn sweep(&self) -> Vec<(u32, ExitStatus)> {
        let mut done = Vec::new();
        let mut children = self.children.lock().expect("reaper poisoned");
        children.retain_mut(|adopted| match adopted.child.try_wait() {
            Ok(Some(status)) => {
                let pid = adopted.child.pid();
                tracing::warn!(worker = %adopted.worker, pid, %status, "zombie reaped");
                done.push((pid, status));
                false
            }
            Ok(None) => true,
            Err(e) => {
                // ECHILD: someone else reaped it, or its host vanished; nothing to keep.
                tracing::info!(worker = %adopted.worker, pid = adopted.child.pid(), error = %e, "adopted child already gone");
                false
            }
        });
        *self.reaped.lock().expect("reaper poisoned") += done.len() as u64;
        done
    }
}
