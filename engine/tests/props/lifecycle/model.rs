//! The reference model of the worker lifecycle: the state diagram and rules of
//! `workers/lifecycle.rs` (its deadlines and resource verdicts included), written out
//! again with `ReferenceBreaker` and the reference memory and disk watches.

use super::steps::Step;
use crate::reference::{Expected, ReferenceBreaker, ReferenceDiskWatch, ReferenceMemoryWatch};
use engine::env::Signal;
use engine::workers::disk::DiskVerdict;
use engine::workers::lifecycle::{Action, Deadlines, Event, LifecyclePolicy, Note};
use engine::workers::memory::MemoryVerdict;
use engine::workers::retry::jittered;
use engine::workers::{OversightRequest, WorkerStatus};
use std::time::Duration;

/// What the core steps on, as the model sees it.
#[derive(Clone, Debug)]
enum Input {
    Shell(Event),
    GraceElapsed,
    RestartDue,
    HeartbeatLost,
    MemoryRestart,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub(super) policy: LifecyclePolicy,
    pub(super) now: Duration,
    pub(super) status: WorkerStatus,
    /// Whether a `Failed` status's reason is known word for word (a start failure's
    /// reason is passed through; the others are worded by the core).
    pub(super) reason_known: bool,
    pub(super) attempt: u32,
    pub(super) pid: Option<u32>,
    /// The current start was asked for by a user.
    pub(super) user_start: bool,
    /// The current stop is a memory restart.
    pub(super) restart_after_stop: bool,
    /// A memory verdict asked for a checkpoint; the stop follows when it is done.
    pub(super) memory_stop_pending: bool,
    pub(super) ready_at: Duration,
    pub(super) breaker: ReferenceBreaker,
    pub(super) memory: Option<ReferenceMemoryWatch>,
    pub(super) disk: Option<ReferenceDiskWatch>,
    pub(super) deadlines: Deadlines,
    /// The nominal backoff of the latest restart decision (its deadline must lie in
    /// this delay's jitter band).
    pub(super) restart_nominal: Duration,
    /// What the last step must do besides logging (a `Failed` reason the core words
    /// itself is compared loosely, see `same_status`).
    pub(super) effects: Vec<Action>,
    /// The last step made no sense in its state: it must only be logged.
    pub(super) ignored: bool,
    /// A stop was requested and no start since: no process may start.
    pub(super) stopped_by_user: bool,
}

impl Model {
    pub(super) fn new(policy: LifecyclePolicy) -> Self {
        Model {
            breaker: ReferenceBreaker::new(policy.restart.clone()),
            memory: policy.memory.clone().map(ReferenceMemoryWatch::new),
            disk: policy.disk.clone().map(ReferenceDiskWatch::new),
            policy,
            now: Duration::ZERO,
            status: WorkerStatus::Uninitialized,
            reason_known: true,
            attempt: 0,
            pid: None,
            user_start: false,
            restart_after_stop: false,
            memory_stop_pending: false,
            ready_at: Duration::ZERO,
            deadlines: Deadlines::default(),
            restart_nominal: Duration::ZERO,
            effects: Vec::new(),
            ignored: false,
            stopped_by_user: false,
        }
    }

    /// Takes one step of the test: what it must do goes to `effects`.
    pub(super) fn apply(&mut self, step: &Step) {
        self.effects.clear();
        self.ignored = false;
        match step {
            Step::Event {
                after,
                event,
                random,
            } => {
                self.now += *after;
                self.dispatch(Input::Shell(event.clone()), *random);
                match event {
                    Event::StopRequested => self.stopped_by_user = true,
                    Event::StartRequested => self.stopped_by_user = false,
                    _ => {}
                }
            }
            Step::Heartbeat { after } => {
                self.now += *after;
                if let (Some(_), Some(timeout)) =
                    (self.deadlines.heartbeat, self.policy.heartbeat_timeout)
                {
                    self.deadlines.heartbeat = Some(self.now + timeout);
                }
            }
            Step::Timeout => {
                let at = self.deadlines.earliest().expect("precondition");
                self.now = self.now.max(at);
                self.timeout();
            }
            Step::Wake { after } => {
                self.now += *after;
                self.timeout();
            }
            Step::MemorySample { after, bytes } => {
                self.now += *after;
                self.memory_sample(*bytes);
            }
            Step::CheckpointDone { after } => {
                self.now += *after;
                self.checkpoint_done();
            }
            Step::DiskSample { used } => self.disk_sample(*used),
            Step::ReadOnlyFailed { on } => {
                if let Some(watch) = self.disk.as_mut()
                    && watch.read_only == *on
                {
                    watch.undo();
                }
            }
        }
    }

    fn ready_port(&self) -> Option<u16> {
        match self.status {
            WorkerStatus::Ready { port, .. } => Some(port),
            _ => None,
        }
    }

    fn begin_start(&mut self, user: bool, out: &mut Vec<Action>) {
        self.attempt += 1;
        self.user_start = user;
        self.pid = None;
        if let Some(watch) = self.memory.as_mut() {
            watch.reset();
        }
        if let Some(watch) = self.disk.as_mut() {
            watch.reset();
        }
        self.status = WorkerStatus::Starting {
            attempt: self.attempt,
        };
        out.push(Action::Spawn);
    }

    fn fail(&mut self, reason: Option<String>) {
        self.reason_known = reason.is_some();
        self.status = WorkerStatus::Failed {
            reason: reason.unwrap_or_default(),
        };
    }

    /// A start that failed: a user's ends in `Failed` with the reason; a restart's counts
    /// as one more failure for the breaker.
    fn start_failed(&mut self, reason: Option<String>, random: u64, out: &mut Vec<Action>) {
        if self.pid.take().is_some() {
            out.push(Action::Abandon);
        }
        if self.user_start {
            self.fail(reason);
        } else {
            self.after_failure(random);
        }
    }

    fn after_failure(&mut self, random: u64) {
        match self.breaker.on_failure(self.now) {
            Expected::RestartAround(nominal) => {
                self.status = WorkerStatus::Restarting {
                    failures: self.breaker.in_window(),
                };
                self.restart_nominal = nominal;
                let delay = jittered(nominal, self.policy.restart.jitter_percent, random);
                self.deadlines.restart = Some(self.now + delay);
            }
            Expected::Open { failures } => self.status = WorkerStatus::BreakerOpen { failures },
            Expected::Disabled => self.fail(None),
        }
    }

    fn stop(&mut self, out: &mut Vec<Action>) {
        self.status = WorkerStatus::Stopping;
        out.push(Action::Signal(Signal::Term));
        self.deadlines.grace = Some(self.now + self.policy.grace);
    }

    /// One step of the state machine; a status change is published first, and the
    /// deadlines of the state left go while those of the state entered are armed.
    fn dispatch(&mut self, input: Input, random: u64) {
        let before = self.status.clone();
        let mut out = Vec::new();
        self.react(input, random, &mut out);
        if self.status != before {
            out.insert(0, Action::Publish(self.status.clone()));
            self.entered();
        }
        self.effects.extend(out);
    }

    fn entered(&mut self) {
        use WorkerStatus as S;
        self.memory_stop_pending = false;
        let now = self.now;
        let ready = matches!(self.status, S::Ready { .. });
        let d = &mut self.deadlines;
        d.heartbeat = self
            .policy
            .heartbeat_timeout
            .filter(|_| ready)
            .map(|t| now + t);
        let memory = self.policy.memory.as_ref().filter(|_| ready);
        d.memory_sample = memory.map(|p| now + p.sample_interval);
        let disk = self.policy.disk.as_ref().filter(|_| ready);
        d.disk_sample = disk.map(|p| now + p.sample_interval);
        if self.status != S::Stopping {
            d.grace = None;
        }
        if !matches!(self.status, S::Restarting { .. }) {
            d.restart = None;
        }
    }

    fn react(&mut self, input: Input, random: u64, out: &mut Vec<Action>) {
        use Input::Shell;
        use WorkerStatus as S;
        let idle = matches!(
            self.status,
            S::Uninitialized | S::Stopped | S::Failed { .. } | S::BreakerOpen { .. }
        );
        match (&self.status, input) {
            (_, Shell(Event::StartRequested)) if idle => {
                // A start by hand closes an open breaker.
                self.breaker.reset();
                self.begin_start(true, out);
            }
            (_, Shell(Event::StopRequested)) if idle => self.ignored = true,
            (
                S::Starting { .. } | S::Ready { .. } | S::Restarting { .. },
                Shell(Event::StartRequested),
            ) => self.ignored = true,
            // A stop while stopping cancels a planned restart; the stop is under way.
            (S::Stopping, Shell(Event::StopRequested)) => self.restart_after_stop = false,
            (S::Starting { .. } | S::Ready { .. }, Shell(Event::StopRequested)) => {
                if self.pid.is_none() {
                    self.status = S::Stopped;
                    out.push(Action::Abandon);
                } else {
                    self.restart_after_stop = false;
                    self.stop(out);
                }
            }
            (S::Restarting { .. }, Shell(Event::StopRequested)) => self.status = S::Stopped,
            (S::Starting { .. }, Shell(Event::Spawned { pid })) => self.pid = Some(pid),
            (S::Starting { .. }, Shell(Event::StartFailed { reason })) => {
                self.start_failed(Some(reason), random, out)
            }
            (S::Starting { .. }, Shell(Event::InitTimedOut)) => {
                self.start_failed(None, random, out)
            }
            (S::Starting { .. }, Shell(Event::Exited { .. })) => {
                self.pid = None;
                self.start_failed(None, random, out);
            }
            (S::Starting { .. }, Shell(Event::Connected { port, startup })) => match self.pid {
                Some(pid) => {
                    if startup > self.policy.startup_warn_after {
                        out.push(Action::Note(Note::SlowStartup));
                    }
                    self.ready_at = self.now;
                    self.status = S::Ready { pid, port };
                }
                // Connected without a process: nothing to be ready.
                None => self.ignored = true,
            },
            (S::Ready { .. }, Shell(Event::Exited { .. })) => {
                out.push(Action::Note(Note::Crash));
                self.pid = None;
                self.breaker.on_uptime(self.now - self.ready_at);
                self.after_failure(random);
            }
            (S::Ready { .. }, Input::HeartbeatLost) => out.push(Action::Signal(Signal::Kill)),
            (S::Ready { .. }, Input::MemoryRestart) => {
                self.restart_after_stop = true;
                self.stop(out);
            }
            (S::Stopping, Input::GraceElapsed) => out.push(Action::Signal(Signal::Kill)),
            (S::Stopping, Shell(Event::Exited { .. })) => {
                self.pid = None;
                if std::mem::take(&mut self.restart_after_stop) {
                    self.begin_start(false, out);
                } else {
                    self.status = S::Stopped;
                }
            }
            (S::Restarting { .. }, Input::RestartDue) => self.begin_start(false, out),
            _ => self.ignored = true,
        }
    }

    /// The first due deadline fires, in the order grace, restart, heartbeat, memory
    /// sample, disk sample.
    fn timeout(&mut self) {
        let now = self.now;
        let due = |at: Option<Duration>| at.is_some_and(|at| at <= now);
        let d = self.deadlines;
        if due(d.grace) {
            self.deadlines.grace = None;
            self.effects.push(Action::Note(Note::ForcedKill));
            self.dispatch(Input::GraceElapsed, 0);
        } else if due(d.restart) {
            self.deadlines.restart = None;
            self.effects.push(Action::Note(Note::Restart));
            self.dispatch(Input::RestartDue, 0);
        } else if due(d.heartbeat) {
            self.deadlines.heartbeat = None;
            self.effects.push(Action::Note(Note::HangDetected));
            self.dispatch(Input::HeartbeatLost, 0);
        } else if due(d.memory_sample) {
            let interval = self.policy.memory.as_ref().expect("armed").sample_interval;
            self.deadlines.memory_sample = Some(now + interval);
            self.effects.push(Action::SampleMemory);
        } else if due(d.disk_sample) {
            let interval = self.policy.disk.as_ref().expect("armed").sample_interval;
            self.deadlines.disk_sample = Some(now + interval);
            self.effects.push(Action::SampleDisk);
        }
    }

    fn memory_sample(&mut self, bytes: u64) {
        let (Some(port), false, Some(watch)) = (
            self.ready_port(),
            self.memory_stop_pending,
            self.memory.as_mut(),
        ) else {
            self.ignored = true;
            return;
        };
        let owner = watch.policy.owner_restarts;
        match watch.sample(self.now, bytes) {
            MemoryVerdict::Normal => {}
            MemoryVerdict::Warn { percent } => self
                .effects
                .push(Action::Note(Note::MemoryWarning { bytes, percent })),
            MemoryVerdict::Restart {
                percent,
                growth_bytes_per_s,
            } if owner => self.effects.push(Action::Note(Note::MemoryRestartDue {
                bytes,
                percent,
                growth_bytes_per_s,
            })),
            MemoryVerdict::Restart {
                percent,
                growth_bytes_per_s,
            } => {
                self.effects.push(Action::Note(Note::MemoryRestart {
                    bytes,
                    percent,
                    growth_bytes_per_s,
                }));
                self.effects.push(Action::Checkpoint { port });
                self.deadlines.memory_sample = None;
                self.memory_stop_pending = true;
            }
        }
    }

    fn checkpoint_done(&mut self) {
        if !std::mem::take(&mut self.memory_stop_pending) {
            self.ignored = true;
            return;
        }
        let limit = self
            .policy
            .memory
            .as_ref()
            .expect("a memory stop")
            .limit_bytes;
        self.effects
            .push(Action::FileOversight(OversightRequest::RaiseMemoryLimit {
                current_bytes: limit,
                proposed_bytes: limit.saturating_mul(2),
            }));
        self.dispatch(Input::MemoryRestart, 0);
    }

    fn disk_sample(&mut self, used: u64) {
        let (Some(port), Some(watch)) = (self.ready_port(), self.disk.as_mut()) else {
            self.ignored = true;
            return;
        };
        let percent = watch.percent(used);
        let quota = watch.policy.quota_bytes;
        let (alert, mode) = match watch.sample(used) {
            DiskVerdict::Normal => (false, None),
            DiskVerdict::Alert { .. } => (true, None),
            DiskVerdict::ReadOnly { alert, .. } => (alert, Some(true)),
            DiskVerdict::Writable { .. } => (false, Some(false)),
        };
        if alert {
            self.effects.push(Action::Note(Note::DiskAlert {
                used_bytes: used,
                quota_bytes: quota,
                percent,
            }));
            self.effects.push(Action::ProposeCleanup {
                used_bytes: used,
                quota_bytes: quota,
                large_file_bytes: watch.policy.large_file_bytes,
            });
        }
        if let Some(on) = mode {
            self.effects.push(Action::SetReadOnly {
                port,
                on,
                used_bytes: used,
                percent,
            });
        }
    }

    /// The last step's read-only change, if it asked for one.
    pub(super) fn read_only_asked(&self) -> Option<bool> {
        self.effects.iter().find_map(|a| match a {
            Action::SetReadOnly { on, .. } => Some(*on),
            _ => None,
        })
    }
}

/// The real status is the expected one (a `Failed` reason the core words itself only
/// has to be there).
pub(super) fn same_status(model: &Model, expected: &WorkerStatus, real: &WorkerStatus) -> bool {
    match (expected, real) {
        (WorkerStatus::Failed { .. }, WorkerStatus::Failed { reason }) if !model.reason_known => {
            !reason.is_empty()
        }
        _ => expected == real,
    }
}

pub(super) fn effect_agrees(model: &Model, expected: &Action, real: &Action) -> bool {
    match (expected, real) {
        (Action::Publish(expected), Action::Publish(real)) => same_status(model, expected, real),
        _ => expected == real,
    }
}
