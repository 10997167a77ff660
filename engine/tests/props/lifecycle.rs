//! `Lifecycle` beside a reference model of the worker lifecycle, written from the state
//! diagram and rules in `workers/lifecycle.rs` (deadlines, resource verdicts) with
//! `ReferenceBreaker` for the restart decisions and the reference memory and disk
//! watches for the verdicts. Steps come at non-decreasing times: events from the shell,
//! heartbeats, time moving to `poll_timeout()` (or anywhere) and the timeout handled,
//! and what the shell feeds back (memory and disk figures, a checkpoint done, a failed
//! read-only change). Steps are mostly the ones the shell takes in each state, with any
//! step now and then: one that makes no sense must be ignored and logged, never a panic.
//!
//! After each step the real status, pid and deadlines must be the model's (a restart
//! deadline is the breaker's backoff jittered by the step's draw with `retry::jittered`,
//! which `retry.rs` checks on its own), and the actions other than logs must be the
//! model's, in order. Each step also checks rules on the real core alone: a status
//! change is published once, before any spawn, signal or abandon; at most one non-log
//! action of each kind; a spawn only into `Starting`; no process starts between a stop
//! request and the next start request; an open breaker stays open until a start
//! request; the failure counts in `Restarting` and `BreakerOpen` respect
//! `failures_max`; each deadline is armed only in its state (grace: `Stopping`;
//! restart: `Restarting`, within the jitter band; heartbeat and samples: `Ready`) and
//! never earlier than when it was armed; `poll_timeout()` is the earliest deadline; and
//! a timeout handled with deadlines due leaves one fewer due, so the shell's loop ends.

mod model;
mod steps;

use crate::reference::within_jitter_band;
use engine::workers::WorkerStatus;
use engine::workers::lifecycle::{Action, Deadlines, Event, Lifecycle};
use model::{Model, effect_agrees, same_status};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use std::mem::discriminant;
use std::time::Duration;
use steps::{Step, lifecycle_policy};

pub struct LifecycleMachine;

impl ReferenceStateMachine for LifecycleMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        lifecycle_policy().prop_map(Model::new).boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Step> {
        steps::next(model)
    }

    /// `Timeout` needs a deadline to move to.
    fn preconditions(model: &Model, step: &Step) -> bool {
        !matches!(step, Step::Timeout) || model.deadlines.earliest().is_some()
    }

    fn apply(mut model: Model, step: &Step) -> Model {
        model.apply(step);
        model
    }
}

pub struct Sut {
    core: Lifecycle,
    now: Duration,
}

/// The deadlines at or before `now`.
fn due(deadlines: &Deadlines, now: Duration) -> usize {
    [
        deadlines.grace,
        deadlines.restart,
        deadlines.heartbeat,
        deadlines.memory_sample,
        deadlines.disk_sample,
    ]
    .into_iter()
    .flatten()
    .filter(|at| *at <= now)
    .count()
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
        let before = sut.core.status().clone();
        let deadlines_before = sut.core.deadlines();
        let actions = match step.clone() {
            Step::Event {
                after,
                event,
                random,
            } => {
                sut.now += after;
                sut.core.handle_event(sut.now, event, random)
            }
            Step::Heartbeat { after } => {
                sut.now += after;
                sut.core.handle_heartbeat(sut.now);
                Vec::new()
            }
            Step::Timeout => {
                let at = sut.core.poll_timeout().expect("the model has a deadline");
                sut.now = sut.now.max(at);
                sut.core.handle_timeout(sut.now)
            }
            Step::Wake { after } => {
                sut.now += after;
                sut.core.handle_timeout(sut.now)
            }
            Step::MemorySample { after, bytes } => {
                sut.now += after;
                sut.core.handle_memory_sample(sut.now, bytes)
            }
            Step::CheckpointDone { after } => {
                sut.now += after;
                sut.core.handle_checkpoint_done(sut.now)
            }
            Step::DiskSample { used } => sut.core.handle_disk_sample(used),
            Step::ReadOnlyFailed { on } => {
                sut.core.handle_read_only_failed(on);
                Vec::new()
            }
        };
        let status = sut.core.status();
        let deadlines = sut.core.deadlines();
        let context = format!("{step:?} at {:?} in {before:?} gave {actions:?}", sut.now);

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

        // Rules on the real core alone.
        let publishes: Vec<usize> = (0..actions.len())
            .filter(|i| matches!(actions[*i], Action::Publish(_)))
            .collect();
        assert_eq!(publishes.len(), usize::from(*status != before), "{context}");
        if let Some(&at) = publishes.first() {
            assert_eq!(actions[at], Action::Publish(status.clone()), "{context}");
            assert!(
                !actions[..at]
                    .iter()
                    .any(|a| matches!(a, Action::Spawn | Action::Signal(_) | Action::Abandon)),
                "{context}: acted on the new status before publishing it"
            );
        }
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
        if matches!(before, WorkerStatus::BreakerOpen { .. })
            && !matches!(
                step,
                Step::Event {
                    event: Event::StartRequested,
                    ..
                }
            )
        {
            assert_eq!(
                *status, before,
                "{context}: the open breaker closed by itself"
            );
        }
        let restart = &model.policy.restart;
        match *status {
            WorkerStatus::Restarting { failures } => {
                assert!((1..restart.failures_max).contains(&failures), "{context}")
            }
            WorkerStatus::BreakerOpen { failures } => {
                assert_eq!(failures, restart.failures_max, "{context}")
            }
            _ => {}
        }

        // Deadlines: each in its own state, none armed in the past, the earliest polled.
        let ready = matches!(status, WorkerStatus::Ready { .. });
        assert!(
            deadlines.grace.is_none() || *status == WorkerStatus::Stopping,
            "{context}: a grace period outside Stopping: {deadlines:?}"
        );
        assert!(
            deadlines.restart.is_none() || matches!(status, WorkerStatus::Restarting { .. }),
            "{context}: a restart deadline outside Restarting: {deadlines:?}"
        );
        assert!(
            ready
                || (
                    deadlines.heartbeat,
                    deadlines.memory_sample,
                    deadlines.disk_sample
                ) == (None, None, None),
            "{context}: a hang or sample deadline outside Ready: {deadlines:?}"
        );
        let armed = [
            (deadlines_before.grace, deadlines.grace),
            (deadlines_before.restart, deadlines.restart),
            (deadlines_before.heartbeat, deadlines.heartbeat),
            (deadlines_before.memory_sample, deadlines.memory_sample),
            (deadlines_before.disk_sample, deadlines.disk_sample),
        ];
        for (old, new) in armed {
            if let Some(at) = new
                && old != new
            {
                assert!(at >= sut.now, "{context}: armed in the past: {deadlines:?}");
            }
        }
        if let Some(at) = deadlines.restart
            && deadlines_before.restart != deadlines.restart
        {
            let delay = at - sut.now;
            assert!(
                delay <= restart.backoff_max
                    && within_jitter_band(delay, model.restart_nominal, restart.jitter_percent),
                "{context}: a restart in {delay:?}, nominal {:?}",
                model.restart_nominal
            );
        }
        assert_eq!(sut.core.poll_timeout(), deadlines.earliest(), "{context}");
        if matches!(step, Step::Timeout | Step::Wake { .. }) {
            let due_now = due(&deadlines_before, sut.now);
            if due_now > 0 {
                assert_eq!(
                    due(&deadlines, sut.now),
                    due_now - 1,
                    "{context}: a timeout with {due_now} deadlines due fired other than one"
                );
            } else {
                assert!(actions.is_empty(), "{context}: acted with nothing due");
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
        assert_eq!(sut.core.deadlines(), model.deadlines, "deadlines");
    }
}

prop_state_machine! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_lifecycle_follows_its_reference_model(sequential 1..100 => LifecycleMachine);
}
