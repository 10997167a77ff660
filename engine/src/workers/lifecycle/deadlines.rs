//! The lifecycle's deadlines: kept as times since the worker was registered (the same
//! clock as `now`), each belonging to one state. The shell sleeps until
//! `poll_timeout()`; `handle_timeout(now)` fires one due deadline per call, in the
//! order grace, restart, heartbeat, memory sample, disk sample, so the shell feeds in
//! what the previous one caused (the exit a SIGKILL brings) before the next fires.

use super::{Action, Lifecycle, Note, Step, WorkerStatus};
use std::time::Duration;

/// When each timer of a worker is due, if armed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadlines {
    /// `Stopping`: SIGKILL once the grace period after the SIGTERM is over.
    pub grace: Option<Duration>,
    /// `Restarting`: start the next process once the backoff is over.
    pub restart: Option<Duration>,
    /// `Ready`: no heartbeat by then is a hang.
    pub heartbeat: Option<Duration>,
    /// `Ready`: ask the shell for the resident size.
    pub memory_sample: Option<Duration>,
    /// `Ready`: ask the shell to measure the worker's directory.
    pub disk_sample: Option<Duration>,
}

impl Deadlines {
    /// In firing order.
    fn all(&self) -> [Option<Duration>; 5] {
        [
            self.grace,
            self.restart,
            self.heartbeat,
            self.memory_sample,
            self.disk_sample,
        ]
    }

    pub fn earliest(&self) -> Option<Duration> {
        self.all().into_iter().flatten().min()
    }
}

impl Lifecycle {
    /// The deadlines armed now.
    pub fn deadlines(&self) -> Deadlines {
        self.deadlines
    }

    /// When `handle_timeout` must be called next (it may be in the past: the shell was
    /// busy), or `None` when nothing is armed.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.deadlines.earliest()
    }

    /// Fires the first due deadline, if any (see the module header for the order).
    pub fn handle_timeout(&mut self, now: Duration) -> Vec<Action> {
        let due = |at: Option<Duration>| at.is_some_and(|at| at <= now);
        let d = self.deadlines;
        let mut out = Vec::new();
        // A deadline's step never fails a start, so it needs no random draw.
        if due(d.grace) {
            self.deadlines.grace = None;
            out.push(Action::Note(Note::ForcedKill));
            self.dispatch(now, Step::GraceElapsed, 0, &mut out);
        } else if due(d.restart) {
            self.deadlines.restart = None;
            out.push(Action::Note(Note::Restart));
            self.dispatch(now, Step::RestartDue, 0, &mut out);
        } else if due(d.heartbeat) {
            // Not re-armed: the worker is killed, and its exit ends `Ready`.
            self.deadlines.heartbeat = None;
            out.push(Action::Note(Note::HangDetected));
            self.dispatch(now, Step::HeartbeatLost, 0, &mut out);
        } else if let (true, Some(policy)) = (due(d.memory_sample), &self.policy.memory) {
            self.deadlines.memory_sample = Some(now + policy.sample_interval);
            out.push(Action::SampleMemory);
        } else if let (true, Some(policy)) = (due(d.disk_sample), &self.policy.disk) {
            self.deadlines.disk_sample = Some(now + policy.sample_interval);
            out.push(Action::SampleDisk);
        }
        out
    }

    /// A heartbeat line from the worker: the hang deadline moves on. Only while it is
    /// armed (ready, heartbeats expected, no hang declared yet).
    pub fn handle_heartbeat(&mut self, now: Duration) {
        if let (Some(_), Some(timeout)) = (self.deadlines.heartbeat, self.policy.heartbeat_timeout)
        {
            self.deadlines.heartbeat = Some(now + timeout);
        }
    }

    /// The status changed at `now`: the deadlines of the state left go, those of the
    /// state entered are armed (grace and restart are armed by the step itself, with
    /// the delay it chose).
    pub(super) fn entered(&mut self, now: Duration) {
        self.memory_stop_pending = false;
        let d = &mut self.deadlines;
        if matches!(self.status, WorkerStatus::Ready { .. }) {
            d.heartbeat = self.policy.heartbeat_timeout.map(|t| now + t);
            d.memory_sample = self.policy.memory.as_ref().map(|p| now + p.sample_interval);
            d.disk_sample = self.policy.disk.as_ref().map(|p| now + p.sample_interval);
        } else {
            d.heartbeat = None;
            d.memory_sample = None;
            d.disk_sample = None;
        }
        if self.status != WorkerStatus::Stopping {
            d.grace = None;
        }
        // A stop while restarting ends the backoff: a restart due later would be
        // ignored, and must not be counted as one.
        if !matches!(self.status, WorkerStatus::Restarting { .. }) {
            d.restart = None;
        }
    }
}
