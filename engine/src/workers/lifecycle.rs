//! The per-worker lifecycle as a plain state machine: it takes `now`, an event and a
//! random draw, and returns actions for the async shell (`supervise`) to carry out.
//!
//! ```text
//! Uninitialized ─start─▶ Starting ─ready─▶ Ready ─exit─▶ Restarting ─due─▶ Starting …
//!       ▲                   │ fail (user start)   │ exit, breaker open ▶ BreakerOpen
//!       │                   ▼                     │ stop
//!       │                 Failed                  ▼
//!       └──────(stop: no-op)               Stopping ─exit─▶ Stopped
//! ```
//! A start asked for by a user that fails ends in `Failed` with the reason (no retry
//! loop behind the caller's back); a restart after a crash that fails counts as one
//! more failure for the breaker. Events that make no sense in a state are ignored and
//! logged, never a panic.

use super::breaker::{RestartBreaker, RestartDecision, RestartPolicy};
use crate::env::{ExitStatus, Signal};
use std::fmt;
use std::time::Duration;

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
    /// No heartbeat within the timeout: the worker is hung.
    HeartbeatLost,
    /// The memory watch wants a restart before the OOM killer acts.
    MemoryRestart,
    GraceElapsed,
    RestartDue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a process (port, spawn, ready handshake, connect) and report back.
    Spawn,
    ArmInitTimer(Duration),
    Signal(Signal),
    ArmGraceTimer(Duration),
    ArmRestartTimer(Duration),
    /// Give up on the current process: SIGKILL it and hand it to the reaper.
    Abandon,
    Publish(WorkerStatus),
    Warn(String),
    Info(String),
}

/// Limits the core needs.
#[derive(Clone, Debug)]
pub struct LifecyclePolicy {
    pub init_timeout: Duration,
    pub startup_warn_after: Duration,
    pub grace: Duration,
    pub restart: RestartPolicy,
}

#[derive(Clone, Debug)]
pub struct Lifecycle {
    policy: LifecyclePolicy,
    status: WorkerStatus,
    breaker: RestartBreaker,
    attempt: u32,
    /// The current start was asked for by a user (not an automatic restart).
    user_start: bool,
    /// The current stop is a planned restart (memory), not a user stop.
    restart_after_stop: bool,
    spawned_at: Option<Duration>,
    ready_at: Option<Duration>,
    pid: Option<u32>,
}

impl Lifecycle {
    pub fn new(policy: LifecyclePolicy) -> Self {
        Lifecycle {
            breaker: RestartBreaker::new(policy.restart.clone()),
            policy,
            status: WorkerStatus::Uninitialized,
            attempt: 0,
            user_start: false,
            restart_after_stop: false,
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

    pub fn on(&mut self, now: Duration, event: Event, random: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let before = self.status.clone();
        self.step(now, event, random, &mut out);
        if self.status != before {
            // Published before the actions that follow from it run: a spawn takes the
            // whole start-up, and until then the world must see `Starting`, not the
            // status the worker had before.
            out.insert(0, Action::Publish(self.status.clone()));
        }
        out
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
        self.set(WorkerStatus::Starting {
            attempt: self.attempt,
        });
        out.push(Action::Spawn);
    }

    fn step(&mut self, now: Duration, event: Event, random: u64, out: &mut Vec<Action>) {
        use WorkerStatus as S;
        match (&self.status, event) {
            (
                S::Uninitialized | S::Stopped | S::Failed { .. } | S::BreakerOpen { .. },
                Event::StartRequested,
            ) => {
                // A start by hand closes an open breaker: an operator decided to retry.
                self.breaker.reset();
                self.begin_start(true, out);
            }
            (
                S::Starting { .. } | S::Ready { .. } | S::Restarting { .. },
                Event::StartRequested,
            ) => {
                out.push(Action::Info(format!(
                    "start ignored: already {}",
                    self.status
                )));
            }
            (
                S::Uninitialized | S::Stopped | S::Failed { .. } | S::BreakerOpen { .. },
                Event::StopRequested,
            ) => {
                out.push(Action::Info(format!("stop is a no-op: {}", self.status)));
            }
            (S::Starting { .. } | S::Ready { .. } | S::Stopping, Event::StopRequested) => {
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
                self.set(S::Stopping);
                out.push(Action::Signal(Signal::Term));
                out.push(Action::ArmGraceTimer(self.policy.grace));
            }
            (S::Restarting { .. }, Event::StopRequested) => self.set(S::Stopped),
            (S::Starting { .. }, Event::Spawned { pid }) => {
                self.pid = Some(pid);
                self.spawned_at = Some(now);
                out.push(Action::ArmInitTimer(self.policy.init_timeout));
            }
            (S::Starting { .. }, Event::StartFailed { reason }) => {
                self.start_failed(now, reason, random, out)
            }
            (S::Starting { .. }, Event::InitTimedOut) => {
                let reason = format!(
                    "not ready within {} ms (init timeout)",
                    self.policy.init_timeout.as_millis()
                );
                self.start_failed(now, reason, random, out);
            }
            (S::Starting { .. }, Event::Exited { status }) => {
                let reason = format!("exited during startup: {}", describe_exit(status));
                self.pid = None;
                self.start_failed(now, reason, random, out);
            }
            (S::Starting { .. }, Event::Connected { port, startup }) => {
                let Some(pid) = self.pid else {
                    out.push(Action::Warn("connected without a process; ignored".into()));
                    return;
                };
                // Measured by the shell: it runs the init sequence before this event is
                // handled, so `now` minus the spawn event's time would read zero.
                let took = startup;
                if took > self.policy.startup_warn_after {
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
            (S::Ready { .. }, Event::Exited { status }) => {
                self.pid = None;
                let uptime = now.saturating_sub(self.ready_at.unwrap_or(now));
                self.breaker.on_uptime(uptime);
                let reason = describe_exit(status);
                out.push(Action::Warn(format!(
                    "worker process ended: {reason} (status {status})"
                )));
                self.after_failure(now, random, reason, out);
            }
            (S::Ready { .. }, Event::HeartbeatLost) => {
                out.push(Action::Warn("no heartbeat: worker hung; killing it".into()));
                out.push(Action::Signal(Signal::Kill));
            }
            (S::Ready { .. }, Event::MemoryRestart) => {
                out.push(Action::Warn(
                    "memory near its limit: restarting the worker before the OOM killer does"
                        .into(),
                ));
                self.restart_after_stop = true;
                self.set(S::Stopping);
                out.push(Action::Signal(Signal::Term));
                out.push(Action::ArmGraceTimer(self.policy.grace));
            }
            (S::Stopping, Event::GraceElapsed) => {
                out.push(Action::Warn(format!(
                    "slow shutdown: still running {} ms after SIGTERM; sending SIGKILL",
                    self.policy.grace.as_millis()
                )));
                out.push(Action::Signal(Signal::Kill));
            }
            (S::Stopping, Event::Exited { status }) => {
                self.pid = None;
                out.push(Action::Info(format!("stopped: {}", describe_exit(status))));
                if std::mem::take(&mut self.restart_after_stop) {
                    self.begin_start(false, out);
                } else {
                    self.set(S::Stopped);
                }
            }
            (S::Restarting { .. }, Event::RestartDue) => self.begin_start(false, out),
            (status, event) => {
                out.push(Action::Info(format!(
                    "event {event:?} ignored in state {status}"
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
                out.push(Action::ArmRestartTimer(delay));
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
