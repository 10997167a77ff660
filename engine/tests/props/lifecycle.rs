//! `Lifecycle` beside a reference model of the worker lifecycle, written from the state
//! diagram and rules in `workers/lifecycle.rs` with `ReferenceBreaker` for the restart
//! decisions, over random event sequences at non-decreasing times. Events are mostly
//! the ones the shell sends in each state, with any event now and then: one that makes
//! no sense in its state must be ignored and logged, never a panic.
//!
//! After each event the real status and pid must be the model's, and the actions other
//! than logs must be the model's, in order (a restart timer within the jitter band of
//! the model's backoff). Each step also checks rules on the real actions alone: a status
//! change is published first and only then, at most one non-log action of each kind, a
//! spawn only into `Starting`, no process starts between a stop request and the next
//! start request, an open breaker stays open until a start request, and the failure
//! counts in `Restarting` and `BreakerOpen` respect `failures_max`.

use crate::reference::{Expected, ReferenceBreaker, ms, restart_policy, within_jitter_band};
use engine::env::{ExitStatus, Signal};
use engine::workers::WorkerStatus;
use engine::workers::lifecycle::{Action, Event, Lifecycle, LifecyclePolicy};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use std::mem::discriminant;
use std::time::Duration;

/// An action other than a log line, as the model expects it.
#[derive(Clone, Debug)]
enum Effect {
    Publish(WorkerStatus),
    Spawn,
    ArmInitTimer(Duration),
    Signal(Signal),
    ArmGraceTimer(Duration),
    /// A restart timer within the jitter band of this nominal backoff.
    ArmRestartTimerAround(Duration),
    Abandon,
}

#[derive(Clone, Debug)]
pub struct Model {
    policy: LifecyclePolicy,
    now: Duration,
    status: WorkerStatus,
    /// Whether a `Failed` status's reason is known word for word (a start failure's
    /// reason is passed through; the others are worded by the core).
    reason_known: bool,
    attempt: u32,
    pid: Option<u32>,
    /// The current start was asked for by a user.
    user_start: bool,
    /// The current stop is a memory restart.
    restart_after_stop: bool,
    ready_at: Duration,
    breaker: ReferenceBreaker,
    /// What the last event must do besides logging.
    effects: Vec<Effect>,
    /// The last event made no sense in its state: it must only be logged.
    ignored: bool,
    /// A stop was requested and no start since: no process may start.
    stopped_by_user: bool,
}

impl Model {
    fn begin_start(&mut self, user: bool) {
        self.attempt += 1;
        self.user_start = user;
        self.pid = None;
        self.status = WorkerStatus::Starting {
            attempt: self.attempt,
        };
        self.effects.push(Effect::Spawn);
    }

    fn fail(&mut self, reason: Option<String>) {
        self.reason_known = reason.is_some();
        self.status = WorkerStatus::Failed {
            reason: reason.unwrap_or_default(),
        };
    }

    /// A start that failed: a user's ends in `Failed` with the reason; a restart's counts
    /// as one more failure for the breaker.
    fn start_failed(&mut self, reason: Option<String>) {
        if self.pid.take().is_some() {
            self.effects.push(Effect::Abandon);
        }
        if self.user_start {
            self.fail(reason);
        } else {
            self.after_failure();
        }
    }

    fn after_failure(&mut self) {
        match self.breaker.on_failure(self.now) {
            Expected::RestartAround(nominal) => {
                self.status = WorkerStatus::Restarting {
                    failures: self.breaker.in_window(),
                };
                self.effects.push(Effect::ArmRestartTimerAround(nominal));
            }
            Expected::Open { failures } => self.status = WorkerStatus::BreakerOpen { failures },
            Expected::Disabled => self.fail(None),
        }
    }

    fn stop(&mut self) {
        self.restart_after_stop = false;
        self.status = WorkerStatus::Stopping;
        self.effects.push(Effect::Signal(Signal::Term));
        self.effects.push(Effect::ArmGraceTimer(self.policy.grace));
    }

    fn react(&mut self, event: &Event) {
        use WorkerStatus as S;
        let idle = matches!(
            self.status,
            S::Uninitialized | S::Stopped | S::Failed { .. } | S::BreakerOpen { .. }
        );
        match (&self.status, event) {
            (_, Event::StartRequested) if idle => {
                // A start by hand closes an open breaker.
                self.breaker.reset();
                self.begin_start(true);
            }
            (_, Event::StopRequested) if idle => self.ignored = true,
            (
                S::Starting { .. } | S::Ready { .. } | S::Restarting { .. },
                Event::StartRequested,
            ) => self.ignored = true,
            // A stop while stopping cancels a planned restart; the stop is under way.
            (S::Stopping, Event::StopRequested) => self.restart_after_stop = false,
            (S::Starting { .. } | S::Ready { .. }, Event::StopRequested) => {
                if self.pid.is_none() {
                    self.status = S::Stopped;
                    self.effects.push(Effect::Abandon);
                } else {
                    self.stop();
                }
            }
            (S::Restarting { .. }, Event::StopRequested) => self.status = S::Stopped,
            (S::Starting { .. }, Event::Spawned { pid }) => {
                self.pid = Some(*pid);
                self.effects
                    .push(Effect::ArmInitTimer(self.policy.init_timeout));
            }
            (S::Starting { .. }, Event::StartFailed { reason }) => {
                self.start_failed(Some(reason.clone()))
            }
            (S::Starting { .. }, Event::InitTimedOut) => self.start_failed(None),
            (S::Starting { .. }, Event::Exited { .. }) => {
                self.pid = None;
                self.start_failed(None);
            }
            (S::Starting { .. }, Event::Connected { port, .. }) => match self.pid {
                Some(pid) => {
                    self.ready_at = self.now;
                    self.status = S::Ready { pid, port: *port };
                }
                // Connected without a process: nothing to be ready.
                None => self.ignored = true,
            },
            (S::Ready { .. }, Event::Exited { .. }) => {
                self.pid = None;
                self.breaker.on_uptime(self.now - self.ready_at);
                self.after_failure();
            }
            (S::Ready { .. }, Event::HeartbeatLost) => {
                self.effects.push(Effect::Signal(Signal::Kill))
            }
            (S::Ready { .. }, Event::MemoryRestart) => {
                self.stop();
                self.restart_after_stop = true;
            }
            (S::Stopping, Event::GraceElapsed) => self.effects.push(Effect::Signal(Signal::Kill)),
            (S::Stopping, Event::Exited { .. }) => {
                self.pid = None;
                if std::mem::take(&mut self.restart_after_stop) {
                    self.begin_start(false);
                } else {
                    self.status = S::Stopped;
                }
            }
            (S::Restarting { .. }, Event::RestartDue) => self.begin_start(false),
            _ => self.ignored = true,
        }
    }
}

/// The real status is the expected one (a `Failed` reason the core words itself only
/// has to be there).
fn same_status(model: &Model, expected: &WorkerStatus, real: &WorkerStatus) -> bool {
    match (expected, real) {
        (WorkerStatus::Failed { .. }, WorkerStatus::Failed { reason }) if !model.reason_known => {
            !reason.is_empty()
        }
        _ => expected == real,
    }
}

fn effect_agrees(model: &Model, effect: &Effect, action: &Action) -> bool {
    match (effect, action) {
        (Effect::Publish(expected), Action::Publish(real)) => same_status(model, expected, real),
        (Effect::Spawn, Action::Spawn) | (Effect::Abandon, Action::Abandon) => true,
        (Effect::ArmInitTimer(a), Action::ArmInitTimer(b))
        | (Effect::ArmGraceTimer(a), Action::ArmGraceTimer(b)) => a == b,
        (Effect::Signal(a), Action::Signal(b)) => a == b,
        (Effect::ArmRestartTimerAround(nominal), Action::ArmRestartTimer(delay)) => {
            within_jitter_band(*delay, *nominal, model.policy.restart.jitter_percent)
        }
        _ => false,
    }
}

#[derive(Clone, Debug)]
pub struct Step {
    after: Duration,
    event: Event,
    random: u64,
}

pub struct LifecycleMachine;

fn lifecycle_policy() -> impl Strategy<Value = LifecyclePolicy> {
    (1..=60_000u64, 0..=5_000u64, 1..=30_000u64, restart_policy()).prop_map(
        |(init_ms, warn_ms, grace_ms, restart)| LifecyclePolicy {
            init_timeout: ms(init_ms),
            startup_warn_after: ms(warn_ms),
            grace: ms(grace_ms),
            restart,
        },
    )
}

fn exit_status() -> impl Strategy<Value = ExitStatus> {
    prop_oneof![
        (0..=255i32).prop_map(ExitStatus::from_code),
        prop::sample::select(vec![6, 9, 11, 15]).prop_map(ExitStatus::from_signal),
    ]
}

fn exited() -> impl Strategy<Value = Event> {
    exit_status().prop_map(|status| Event::Exited { status })
}

fn start_failed() -> impl Strategy<Value = Event> {
    "[A-Z]{1,8}".prop_map(|reason| Event::StartFailed { reason })
}

fn spawned() -> impl Strategy<Value = Event> {
    (1..=50_000u32).prop_map(|pid| Event::Spawned { pid })
}

fn connected() -> impl Strategy<Value = Event> {
    (1..=u16::MAX, 0..=10_000u64).prop_map(|(port, startup_ms)| Event::Connected {
        port,
        startup: ms(startup_ms),
    })
}

fn any_event() -> BoxedStrategy<Event> {
    prop_oneof![
        Just(Event::StartRequested),
        Just(Event::StopRequested),
        spawned(),
        start_failed(),
        connected(),
        Just(Event::InitTimedOut),
        exited(),
        Just(Event::HeartbeatLost),
        Just(Event::MemoryRestart),
        Just(Event::GraceElapsed),
        Just(Event::RestartDue),
    ]
    .boxed()
}

/// The events the shell sends in the model's state, weighted towards progress.
fn likely_event(model: &Model) -> BoxedStrategy<Event> {
    use WorkerStatus as S;
    let stop = Just(Event::StopRequested);
    match model.status {
        S::Uninitialized | S::Stopped | S::Failed { .. } | S::BreakerOpen { .. } => {
            prop_oneof![4 => Just(Event::StartRequested), 1 => stop].boxed()
        }
        S::Starting { .. } if model.pid.is_none() => {
            prop_oneof![6 => spawned(), 2 => start_failed(), 1 => stop].boxed()
        }
        S::Starting { .. } => prop_oneof![
            6 => connected(),
            1 => Just(Event::InitTimedOut),
            1 => exited(),
            1 => start_failed(),
            1 => stop,
        ]
        .boxed(),
        S::Ready { .. } => prop_oneof![
            4 => exited(),
            1 => Just(Event::HeartbeatLost),
            2 => Just(Event::MemoryRestart),
            2 => stop,
            1 => Just(Event::StartRequested),
        ]
        .boxed(),
        S::Stopping => prop_oneof![
            4 => exited(),
            2 => Just(Event::GraceElapsed),
            2 => stop,
        ]
        .boxed(),
        S::Restarting { .. } => prop_oneof![
            6 => Just(Event::RestartDue),
            1 => stop,
            1 => Just(Event::StartRequested),
        ]
        .boxed(),
    }
}

impl ReferenceStateMachine for LifecycleMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        lifecycle_policy()
            .prop_map(|policy| Model {
                breaker: ReferenceBreaker::new(policy.restart.clone()),
                policy,
                now: Duration::ZERO,
                status: WorkerStatus::Uninitialized,
                reason_known: true,
                attempt: 0,
                pid: None,
                user_start: false,
                restart_after_stop: false,
                ready_at: Duration::ZERO,
                effects: Vec::new(),
                ignored: false,
                stopped_by_user: false,
            })
            .boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Step> {
        let restart = &model.policy.restart;
        let window_ms = restart.window.as_millis() as u64;
        let long_ms = window_ms.max(restart.stable_after.as_millis() as u64) * 2;
        // Gaps from "at once" to "past the window and the stable time", so failures both
        // pile up in one window and slide out of it, and runs are both short and stable.
        let after = prop_oneof![Just(0), 0..=window_ms / 2, 0..=long_ms].prop_map(ms);
        let event = prop_oneof![6 => likely_event(model), 1 => any_event()];
        (after, event, any::<u64>())
            .prop_map(|(after, event, random)| Step {
                after,
                event,
                random,
            })
            .boxed()
    }

    fn apply(mut model: Model, step: &Step) -> Model {
        model.now += step.after;
        model.effects.clear();
        model.ignored = false;
        let before = model.status.clone();
        model.react(&step.event);
        if model.status != before {
            model
                .effects
                .insert(0, Effect::Publish(model.status.clone()));
        }
        match step.event {
            Event::StopRequested => model.stopped_by_user = true,
            Event::StartRequested => model.stopped_by_user = false,
            _ => {}
        }
        model
    }
}

pub struct Sut {
    core: Lifecycle,
    now: Duration,
}

impl StateMachineTest for LifecycleMachine {
    type SystemUnderTest = Sut;
    type Reference = LifecycleMachine;

    fn init_test(model: &Model) -> Sut {
        Sut {
            core: Lifecycle::new(model.policy.clone()),
            now: Duration::ZERO,
        }
    }

    fn apply(mut sut: Sut, model: &Model, step: Step) -> Sut {
        sut.now += step.after;
        let before = sut.core.status().clone();
        let actions = sut.core.on(sut.now, step.event.clone(), step.random);
        let status = sut.core.status();
        let context = format!("{:?} in {before:?} gave {actions:?}", step.event);

        let (logs, effects): (Vec<&Action>, Vec<&Action>) = actions
            .iter()
            .partition(|a| matches!(a, Action::Warn(_) | Action::Info(_)));
        assert!(
            effects.len() == model.effects.len()
                && model
                    .effects
                    .iter()
                    .zip(&effects)
                    .all(|(e, a)| effect_agrees(model, e, a)),
            "{context}; the model expected {:?}",
            model.effects
        );
        if model.ignored {
            assert!(!logs.is_empty(), "{context}: ignored without a log line");
        }

        // Rules on the real actions alone.
        let publishes = actions
            .iter()
            .filter(|a| matches!(a, Action::Publish(_)))
            .count();
        if *status != before {
            assert_eq!(
                actions.first(),
                Some(&Action::Publish(status.clone())),
                "{context}"
            );
        }
        assert_eq!(publishes, usize::from(*status != before), "{context}");
        for (i, a) in effects.iter().enumerate() {
            assert!(
                !effects[i + 1..]
                    .iter()
                    .any(|b| discriminant(*a) == discriminant(*b)),
                "{context}: more than one {a:?}"
            );
        }
        if actions.contains(&Action::Spawn) {
            assert!(matches!(status, WorkerStatus::Starting { .. }), "{context}");
            assert!(
                !model.stopped_by_user,
                "{context}: a process starts after a stop request"
            );
        }
        if model.stopped_by_user {
            assert!(
                !matches!(status, WorkerStatus::Restarting { .. }),
                "{context}: a restart is scheduled after a stop request"
            );
        }
        if matches!(before, WorkerStatus::BreakerOpen { .. }) && step.event != Event::StartRequested
        {
            assert_eq!(
                *status, before,
                "{context}: the open breaker closed by itself"
            );
        }
        let failures_max = model.policy.restart.failures_max;
        match *status {
            WorkerStatus::Restarting { failures } => {
                assert!((1..failures_max).contains(&failures), "{context}")
            }
            WorkerStatus::BreakerOpen { failures } => {
                assert_eq!(failures, failures_max, "{context}")
            }
            _ => {}
        }
        for action in &actions {
            if let Action::ArmRestartTimer(delay) = action {
                assert!(*delay <= model.policy.restart.backoff_max, "{context}");
            }
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert!(
            same_status(model, &model.status, sut.core.status()),
            "status {:?}, the model has {:?}",
            sut.core.status(),
            model.status
        );
        assert_eq!(sut.core.pid(), model.pid, "pid");
    }
}

prop_state_machine! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_lifecycle_follows_its_reference_model(sequential 1..80 => LifecycleMachine);
}
