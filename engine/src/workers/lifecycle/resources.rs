//! What the lifecycle makes of the shell's measurements while the worker is ready: the
//! memory watch's verdicts (warn; restart: checkpoint, oversight request, planned stop;
//! or leave the restart to the owner) and the disk watch's (alert with a cleanup
//! proposal, read-only mode on and off).

use super::{Action, Lifecycle, Note, Step, WorkerStatus};
use crate::workers::disk::DiskVerdict;
use crate::workers::memory::MemoryVerdict;
use crate::workers::oversight::OversightRequest;
use std::time::Duration;

impl Lifecycle {
    /// The port of a ready worker, or a log line saying why `what` is ignored.
    fn ready_port(&self, what: &str, out: &mut Vec<Action>) -> Option<u16> {
        match self.status {
            WorkerStatus::Ready { port, .. } => Some(port),
            _ => {
                out.push(Action::Info(format!(
                    "{what} ignored in state {}",
                    self.status
                )));
                None
            }
        }
    }

    /// The resident size the shell read after `Action::SampleMemory`.
    pub fn handle_memory_sample(&mut self, now: Duration, bytes: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(port) = self.ready_port("memory sample", &mut out) else {
            return out;
        };
        if self.memory_stop_pending {
            out.push(Action::Info(
                "memory sample ignored: a memory stop is pending".into(),
            ));
            return out;
        }
        let Some(watch) = self.memory.as_mut() else {
            out.push(Action::Info(
                "memory sample ignored: no memory watch".into(),
            ));
            return out;
        };
        match watch.sample(now, bytes) {
            MemoryVerdict::Normal => {}
            MemoryVerdict::Warn { percent } => {
                out.push(Action::Note(Note::MemoryWarning { bytes, percent }));
            }
            MemoryVerdict::Restart {
                percent,
                growth_bytes_per_s,
            } if watch.policy().owner_restarts => {
                out.push(Action::Note(Note::MemoryRestartDue {
                    bytes,
                    percent,
                    growth_bytes_per_s,
                }));
            }
            MemoryVerdict::Restart {
                percent,
                growth_bytes_per_s,
            } => {
                out.push(Action::Note(Note::MemoryRestart {
                    bytes,
                    percent,
                    growth_bytes_per_s,
                }));
                // No more samples: the verdict stands until the stop.
                self.deadlines.memory_sample = None;
                self.memory_stop_pending = true;
                out.push(Action::Checkpoint { port });
            }
        }
        out
    }

    /// The checkpoint asked for by a memory verdict is over (taken, failed or timed out:
    /// the stop follows either way, since a worker stuck allocating never answers).
    pub fn handle_checkpoint_done(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        if !std::mem::take(&mut self.memory_stop_pending) {
            out.push(Action::Info(format!(
                "checkpoint done ignored in state {}: no memory stop pending",
                self.status
            )));
            return out;
        }
        if let Some(policy) = &self.policy.memory {
            let limit = policy.limit_bytes;
            out.push(Action::FileOversight(OversightRequest::RaiseMemoryLimit {
                current_bytes: limit,
                proposed_bytes: limit.saturating_mul(2),
            }));
        }
        // A planned stop never fails a start, so it needs no random draw.
        self.dispatch(now, Step::MemoryRestart, 0, &mut out);
        out
    }

    /// The bytes the shell measured in the worker's directory after `Action::SampleDisk`.
    pub fn handle_disk_sample(&mut self, used_bytes: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(port) = self.ready_port("disk sample", &mut out) else {
            return out;
        };
        let Some(watch) = self.disk.as_mut() else {
            out.push(Action::Info("disk sample ignored: no disk watch".into()));
            return out;
        };
        let (alert, mode) = match watch.sample(used_bytes) {
            DiskVerdict::Normal => (false, None),
            DiskVerdict::Alert { .. } => (true, None),
            DiskVerdict::ReadOnly { alert, .. } => (alert, Some(true)),
            DiskVerdict::Writable { .. } => (false, Some(false)),
        };
        let percent = watch.percent(used_bytes);
        let policy = watch.policy();
        if alert {
            out.push(Action::Note(Note::DiskAlert {
                used_bytes,
                quota_bytes: policy.quota_bytes,
                percent,
            }));
            out.push(Action::ProposeCleanup {
                used_bytes,
                quota_bytes: policy.quota_bytes,
                large_file_bytes: policy.large_file_bytes,
            });
        }
        if let Some(on) = mode {
            out.push(Action::SetReadOnly {
                port,
                on,
                used_bytes,
                percent,
            });
        }
        out
    }

    /// The worker could not be told to switch read-only mode to `on`: the watch keeps
    /// the old mode, so the next sample asks again.
    pub fn handle_read_only_failed(&mut self, on: bool) {
        if let Some(watch) = self.disk.as_mut()
            && watch.read_only() == on
        {
            watch.undo_mode_change();
        }
    }
}
