//! The per-worker lifecycle as a sans-IO core. It never reads a clock: inputs come in as
//! `handle_*(now, …)` with `now` the time since the worker was registered, and each call
//! returns the actions for the async shell (`supervise`) to carry out. The core owns
//! every deadline of the worker; the shell sleeps until `poll_timeout()` and then calls
//! `handle_timeout(now)`.
//!
//! ```text
//! Uninitialized ─start─▶ Starting ─ready─▶ Ready ─exit─▶ Restarting ─due─▶ Starting …
//!       ▲                   │ fail (user start)   │ exit, breaker open ▶ BreakerOpen
//!       │                   ▼                     │ stop, memory verdict, (hang: SIGKILL)
//!       │                 Failed                  ▼
//!       └──────(stop: no-op)               Stopping ─exit─▶ Stopped (or Starting, memory)
//! ```
//! A start asked for by a user that fails ends in `Failed` with the reason (no retry
//! loop behind the caller's back); a restart after a crash that fails counts as one
//! more failure for the breaker. Inputs that make no sense in a state are ignored and
//! logged, never a panic.
//!
//! Deadlines (`deadlines.rs`), each belonging to one state and cleared when it is left:
//! - grace (`Stopping`): SIGKILL `grace` (30 s) after the SIGTERM;
//! - restart (`Restarting`): the breaker's backoff (0.5 s doubling, up to 20 % jitter);
//! - heartbeat (`Ready`): `heartbeat_timeout` (5 s) without a heartbeat is a hang, and
//!   the worker is killed;
//! - memory and disk samples (`Ready`): every `sample_interval` (1 s) the shell is asked
//!   to measure, and the core judges the figure (`resources.rs`).
//!
//! Memory: a warning at 80 % of the limit; at 95 %, or when the growth rate reaches the
//! limit within 5 s, a checkpoint (bounded by the shell, 5 s), then an oversight request
//! to double the limit, then a planned stop and start that is not counted as a failure
//! (with `owner_restarts`, only a flag the owner acts on). Disk: an alert at 80 % of the
//! quota with a cleanup proposal, read-only mode at 95 % until use is back under 80 %.
//! The init timeout (60 s) is the shell's: start-up is one await there (spawn, ready
//! line, endpoint connect), and the core only words its failure.

use super::breaker::{RestartBreaker, RestartDecision, RestartPolicy};
use super::disk::{DiskPolicy, DiskWatch};
use super::memory::{MemoryPolicy, MemoryWatch};
use super::oversight::OversightRequest;
use crate::env::{ExitStatus, Signal};
use std::fmt;
use std::time::Duration;

mod deadlines;
mod resources;

pub use deadlines::Deadlines;

/// What a worker is doing, as reported by `health`, `get` and `list`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Registered, never started.
    Uninitialized,
    Starting {
        attempt: u32,
    },
    Ready {
        pid: u32,
        port: u16,
    },
    /// Crashed (or restarting for memory); a new process starts after a backoff.
    Restarting {
        failures: u32,
    },
    Stopping,
    Stopped,
    Failed {
        reason: String,
    },
    /// Restarts stopped after too many failures in the window.
    BreakerOpen {
        failures: u32,
    },
}

impl WorkerStatus {
    /// Whether a process may be running or about to run.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            WorkerStatus::Starting { .. }
                | WorkerStatus::Ready { .. }
                | WorkerStatus::Restarting { .. }
                | WorkerStatus::Stopping
        )
    }
}

impl fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerStatus::Uninitialized => f.write_str("uninitialized"),
            WorkerStatus::Starting { attempt } => write!(f, "starting (attempt {attempt})"),
            WorkerStatus::Ready { pid, port } => write!(f, "ready (pid {pid}, port {port})"),
            WorkerStatus::Restarting { failures } => {
                write!(f, "restarting after {failures} failures")
            }
            WorkerStatus::Stopping => f.write_str("stopping"),
            WorkerStatus::Stopped => f.write_str("stopped"),
            WorkerStatus::Failed { reason } => write!(f, "failed: {reason}"),
            WorkerStatus::BreakerOpen { failures } => {
                write!(f, "breaker open after {failures} failures")
            }
        }
    }
}

/// Why a process ended, from its exit status.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(0), _) => "exited cleanly (code 0)".to_string(),
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(11)) => "crashed: segmentation fault (SIGSEGV)".to_string(),
        (None, Some(9)) => "killed by SIGKILL (OOM killer or operator)".to_string(),
        (None, Some(sig)) => format!("terminated by signal {sig}"),
        (None, None) => "ended with an unknown status".to_string(),
    }
}

/// What the shell reports: commands, and what became of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    StartRequested,
    StopRequested,
    Spawned {
        pid: u32,
    },
    /// Spawning, readiness or connecting failed before the worker was ready.
    StartFailed {
        reason: String,
    },
    /// Ready line seen and endpoint connected, `startup` after the spawn.
    Connected {
        port: u16,
        startup: Duration,
    },
    InitTimedOut,
    Exited {
        status: ExitStatus,
    },
}

/// What the core steps on: an event from the shell, or one of its own (a deadline that
/// passed, a memory stop once its checkpoint is done). Named as before the deadlines
/// moved into the core, so a log line about an ignored step reads the same.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Shell(Event),
    GraceElapsed,
    RestartDue,
    HeartbeatLost,
    MemoryRestart,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Shell(event) => write!(f, "{event:?}"),
            Step::GraceElapsed => f.write_str("GraceElapsed"),
            Step::RestartDue => f.write_str("RestartDue"),
            Step::HeartbeatLost => f.write_str("HeartbeatLost"),
            Step::MemoryRestart => f.write_str("MemoryRestart"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a process (port, spawn, ready handshake, connect) and report back.
    Spawn,
    Signal(Signal),
    /// Give up on the current process: SIGKILL it and hand it to the reaper.
    Abandon,
    Publish(WorkerStatus),
    /// Read the process's resident bytes; pass them to `handle_memory_sample`.
    SampleMemory,
    /// Measure the worker's directory; pass the bytes to `handle_disk_sample`.
    SampleDisk,
    /// Ask the worker on `port` to checkpoint its session before a memory stop, and call
    /// `handle_checkpoint_done` once it answered, failed or ran out of time.
    Checkpoint {
        port: u16,
    },
    /// Tell the worker on `port` to enter (`on`) or leave read-only mode; if that fails,
    /// call `handle_read_only_failed`. The figures are the sample's, for the log.
    SetReadOnly {
        port: u16,
        on: bool,
        used_bytes: u64,
        percent: u64,
    },
    /// List the worker's files over `large_file_bytes` and, if there are any, file an
    /// `OversightRequest::ApproveCleanup` for them (an empty proposal asks nothing).
    ProposeCleanup {
        used_bytes: u64,
        quota_bytes: u64,
        large_file_bytes: u64,
    },
    /// File a request for a human.
    FileOversight(OversightRequest),
    /// Count (and log, with its figures) something the core decided.
    Note(Note),
    Warn(String),
    Info(String),
}

/// A decision the shell counts in `WorkerStats`. What the shell's own I/O did (spawns,
/// checkpoints taken, read-only changes made) it counts itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// A process ended while ready.
    Crash,
    SlowStartup,
    /// The grace period ran out: SIGKILL follows.
    ForcedKill,
    /// A restart's backoff ran out: a new process starts.
    Restart,
    /// No heartbeat within the timeout: the worker is killed.
    HangDetected,
    MemoryWarning {
        bytes: u64,
        percent: u64,
    },
    /// A restart verdict left to the owner (`MemoryPolicy::owner_restarts`).
    MemoryRestartDue {
        bytes: u64,
        percent: u64,
        growth_bytes_per_s: u64,
    },
    /// A restart verdict the supervisor acts on: checkpoint, then stop and start.
    MemoryRestart {
        bytes: u64,
        percent: u64,
        growth_bytes_per_s: u64,
    },
    DiskAlert {
        used_bytes: u64,
        quota_bytes: u64,
        percent: u64,
    },
}

/// Limits the core needs.
#[derive(Clone, Debug)]
pub struct LifecyclePolicy {
    pub init_timeout: Duration,
    pub startup_warn_after: Duration,
    pub grace: Duration,
    pub restart: RestartPolicy,
    /// Silence this long while ready is a hang. `None`: the worker sends no heartbeats.
    pub heartbeat_timeout: Option<Duration>,
    pub memory: Option<MemoryPolicy>,
    pub disk: Option<DiskPolicy>,
}

#[derive(Clone, Debug)]
pub struct Lifecycle {
    policy: LifecyclePolicy,
    status: WorkerStatus,
    breaker: RestartBreaker,
    deadlines: Deadlines,
    memory: Option<MemoryWatch>,
    disk: Option<DiskWatch>,
    attempt: u32,
    /// The current start was asked for by a user (not an automatic restart).
    user_start: bool,
    /// The current stop is a planned restart (memory), not a user stop.
    restart_after_stop: bool,
    /// A memory verdict asked for a checkpoint; the stop follows when it is done.
    memory_stop_pending: bool,
    spawned_at: Option<Duration>,
    ready_at: Option<Duration>,
    pid: Option<u32>,
}

impl Lifecycle {
    pub fn new(policy: LifecyclePolicy) -> Self {
        Lifecycle {
            breaker: RestartBreaker::new(policy.restart.clone()),
            memory: policy.memory.clone().map(MemoryWatch::new),
            disk: policy.disk.clone().map(DiskWatch::new),
            policy,
            status: WorkerStatus::Uninitialized,
            deadlines: Deadlines::default(),
            attempt: 0,
            user_start: false,
            restart_after_stop: false,
            memory_stop_pending: false,
            spawned_at: None,
            ready_at: None,
            pid: None,
        }
    }

    pub fn status(&self) -> &WorkerStatus {
        &self.status
    }

    /// The running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Handles an event from the shell. `random` jitters a restart's backoff.
    pub fn handle_event(&mut self, now: Duration, event: Event, random: u64) -> Vec<Action> {
        let mut out = Vec::new();
        self.dispatch(now, Step::Shell(event), random, &mut out);
        out
    }

    /// Takes one step and appends its actions to `out`. A status change is published
    /// before the actions that follow from it run (a spawn takes the whole start-up,
    /// and until then the world must see `Starting`, not the status before), and the
    /// deadlines of the state left are cleared, those of the state entered armed.
    fn dispatch(&mut self, now: Duration, step: Step, random: u64, out: &mut Vec<Action>) {
        let mut actions = Vec::new();
        let before = self.status.clone();
        self.step(now, step, random, &mut actions);
        if self.status != before {
            actions.insert(0, Action::Publish(self.status.clone()));
            self.entered(now);
        }
        out.extend(actions);
    }

    fn set(&mut self, status: WorkerStatus) {
        self.status = status;
    }

    fn begin_start(&mut self, user: bool, out: &mut Vec<Action>) {
        self.attempt += 1;
        self.user_start = user;
        self.pid = None;
        self.spawned_at = None;
        self.ready_at = None;
        // A fresh process: the old one's samples and excursions say nothing about it.
        if let Some(watch) = self.memory.as_mut() {
            watch.reset();
        }
        if let Some(watch) = self.disk.as_mut() {
            watch.reset();
        }
        self.set(WorkerStatus::Starting {
            attempt: self.attempt,
        });
        out.push(Action::Spawn);
    }

    /// SIGTERM now, SIGKILL when the grace period is over.
    fn begin_stop(&mut self, now: Duration, out: &mut Vec<Action>) {
        self.set(WorkerStatus::Stopping);
        out.push(Action::Signal(Signal::Term));
        self.deadlines.grace = Some(now + self.policy.grace);
    }

    fn step(&mut self, now: Duration, step: Step, random: u64, out: &mut Vec<Action>) {
        use Event as E;
        use Step::Shell;
        use WorkerStatus as S;
        match (&self.status, step) {
            (
                S::Uninitialized | S::Stopped | S::Failed { .. } | S::BreakerOpen { .. },
                Shell(E::StartRequested),
            ) => {
                // A start by hand closes an open breaker: an operator decided to retry.
                self.breaker.reset();
                self.begin_start(true, out);
            }
            (
                S::Starting { .. } | S::Ready { .. } | S::Restarting { .. },
                Shell(E::StartRequested),
            ) => {
                out.push(Action::Info(format!(
                    "start ignored: already {}",
                    self.status
                )));
            }
            (
                S::Uninitialized | S::Stopped | S::Failed { .. } | S::BreakerOpen { .. },
                Shell(E::StopRequested),
            ) => {
                out.push(Action::Info(format!("stop is a no-op: {}", self.status)));
            }
            (S::Starting { .. } | S::Ready { .. } | S::Stopping, Shell(E::StopRequested)) => {
                if self.status == S::Stopping {
                    self.restart_after_stop = false;
                    return;
                }
                if self.pid.is_none() {
                    self.set(S::Stopped);
                    out.push(Action::Abandon);
                    return;
                }
                self.restart_after_stop = false;
                self.begin_stop(now, out);
            }
            (S::Restarting { .. }, Shell(E::StopRequested)) => self.set(S::Stopped),
            (S::Starting { .. }, Shell(E::Spawned { pid })) => {
                self.pid = Some(pid);
                self.spawned_at = Some(now);
            }
            (S::Starting { .. }, Shell(E::StartFailed { reason })) => {
                self.start_failed(now, reason, random, out)
            }
            (S::Starting { .. }, Shell(E::InitTimedOut)) => {
                let reason = format!(
                    "not ready within {} ms (init timeout)",
                    self.policy.init_timeout.as_millis()
                );
                self.start_failed(now, reason, random, out);
            }
            (S::Starting { .. }, Shell(E::Exited { status })) => {
                let reason = format!("exited during startup: {}", describe_exit(status));
                self.pid = None;
                self.start_failed(now, reason, random, out);
            }
            (S::Starting { .. }, Shell(E::Connected { port, startup })) => {
                let Some(pid) = self.pid else {
                    out.push(Action::Warn("connected without a process; ignored".into()));
                    return;
                };
                // Measured by the shell: it runs the init sequence before this event is
                // handled, so `now` minus the spawn event's time would read zero.
                let took = startup;
                if took > self.policy.startup_warn_after {
                    out.push(Action::Note(Note::SlowStartup));
                    out.push(Action::Warn(format!(
                        "slow startup: ready after {} ms (warning above {} ms)",
                        took.as_millis(),
                        self.policy.startup_warn_after.as_millis()
                    )));
                }
                out.push(Action::Info(format!("ready in {} ms", took.as_millis())));
                self.ready_at = Some(now);
                self.set(S::Ready { pid, port });
            }
            (S::Ready { .. }, Shell(E::Exited { status })) => {
                out.push(Action::Note(Note::Crash));
                self.pid = None;
                let uptime = now.saturating_sub(self.ready_at.unwrap_or(now));
                self.breaker.on_uptime(uptime);
                let reason = describe_exit(status);
                out.push(Action::Warn(format!(
                    "worker process ended: {reason} (status {status})"
                )));
                self.after_failure(now, random, reason, out);
            }
            (S::Ready { .. }, Step::HeartbeatLost) => {
                out.push(Action::Warn("no heartbeat: worker hung; killing it".into()));
                out.push(Action::Signal(Signal::Kill));
            }
            (S::Ready { .. }, Step::MemoryRestart) => {
                out.push(Action::Warn(
                    "memory near its limit: restarting the worker before the OOM killer does"
                        .into(),
                ));
                self.restart_after_stop = true;
                self.begin_stop(now, out);
            }
            (S::Stopping, Step::GraceElapsed) => {
                out.push(Action::Warn(format!(
                    "slow shutdown: still running {} ms after SIGTERM; sending SIGKILL",
                    self.policy.grace.as_millis()
                )));
                out.push(Action::Signal(Signal::Kill));
            }
            (S::Stopping, Shell(E::Exited { status })) => {
                self.pid = None;
                out.push(Action::Info(format!("stopped: {}", describe_exit(status))));
                if std::mem::take(&mut self.restart_after_stop) {
                    self.begin_start(false, out);
                } else {
                    self.set(S::Stopped);
                }
            }
            (S::Restarting { .. }, Step::RestartDue) => self.begin_start(false, out),
            (status, step) => {
                out.push(Action::Info(format!(
                    "event {step} ignored in state {status}"
                )));
            }
        }
    }

    fn start_failed(&mut self, now: Duration, reason: String, random: u64, out: &mut Vec<Action>) {
        if self.pid.take().is_some() {
            out.push(Action::Abandon);
        }
        out.push(Action::Warn(format!(
            "start attempt {} failed: {reason}",
            self.attempt
        )));
        if self.user_start {
            self.set(WorkerStatus::Failed { reason });
        } else {
            self.after_failure(now, random, reason, out);
        }
    }

    fn after_failure(&mut self, now: Duration, random: u64, reason: String, out: &mut Vec<Action>) {
        match self.breaker.on_failure(now, random) {
            RestartDecision::RestartAfter(delay) => {
                out.push(Action::Info(format!(
                    "restarting in {} ms",
                    delay.as_millis()
                )));
                self.set(WorkerStatus::Restarting {
                    failures: self.breaker.failures_in_window(),
                });
                self.deadlines.restart = Some(now + delay);
            }
            RestartDecision::BreakerOpen { failures } => {
                out.push(Action::Warn(format!(
                    "circuit breaker open: {failures} failures in the window; not restarting"
                )));
                self.set(WorkerStatus::BreakerOpen { failures });
            }
            RestartDecision::Disabled => self.set(WorkerStatus::Failed { reason }),
        }
    }
}

#[cfg(test)]
mod tests;
