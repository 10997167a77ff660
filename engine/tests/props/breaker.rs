//! `RestartBreaker` beside `ReferenceBreaker` over random sequences of failures, uptimes
//! and resets at non-decreasing times: every decision must be the model's (the backoff
//! doubles per consecutive failure up to `backoff_max`, jittered within its band; the
//! breaker opens at the `failures_max`-th failure within the window; a stable run clears
//! the streak; a reset clears everything), and so must `is_open` and
//! `failures_in_window`.

use crate::reference::{Expected, ReferenceBreaker, ms, restart_policy};
use engine::workers::breaker::RestartBreaker;
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Model {
    breaker: ReferenceBreaker,
    now: Duration,
    /// The decision the last `Failure` called for.
    expected: Option<Expected>,
}

#[derive(Clone, Debug)]
pub enum Step {
    /// Time moves on by `after`, then the worker fails.
    Failure { after: Duration, random: u64 },
    /// The worker had been up this long before its last exit.
    Uptime(Duration),
    /// An operator's manual start.
    Reset,
}

pub struct BreakerMachine;

impl ReferenceStateMachine for BreakerMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        restart_policy()
            .prop_map(|policy| Model {
                breaker: ReferenceBreaker::new(policy),
                now: Duration::ZERO,
                expected: None,
            })
            .boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Step> {
        let window_ms = model.breaker.policy.window.as_millis() as u64;
        let stable_ms = model.breaker.policy.stable_after.as_millis() as u64;
        // Gaps from "at once" to "past the window", so failures both pile up in one
        // window and slide out of it.
        let failure = (
            prop_oneof![Just(0), 0..=window_ms / 2, 0..=window_ms * 2],
            any::<u64>(),
        )
            .prop_map(|(after, random)| Step::Failure {
                after: ms(after),
                random,
            });
        let uptime = (0..=stable_ms * 2).prop_map(|n| Step::Uptime(ms(n)));
        if model.breaker.is_open() {
            prop_oneof![3 => Just(Step::Reset), 1 => uptime].boxed()
        } else {
            prop_oneof![8 => failure, 2 => uptime, 1 => Just(Step::Reset)].boxed()
        }
    }

    /// No failure is fed to an open breaker: the lifecycle leaves `BreakerOpen` only by
    /// a manual start, which resets it, and the breaker's own invariant (at most
    /// `failures_max` failures in the window) assumes as much. Checked again here
    /// because shrinking may delete the reset that closed it.
    fn preconditions(model: &Model, step: &Step) -> bool {
        !(model.breaker.is_open() && matches!(step, Step::Failure { .. }))
    }

    fn apply(mut model: Model, step: &Step) -> Model {
        match step {
            Step::Failure { after, .. } => {
                model.now += *after;
                model.expected = Some(model.breaker.on_failure(model.now));
            }
            Step::Uptime(uptime) => model.breaker.on_uptime(*uptime),
            Step::Reset => model.breaker.reset(),
        }
        model
    }
}

pub struct Sut {
    breaker: RestartBreaker,
    now: Duration,
}

impl StateMachineTest for BreakerMachine {
    type SystemUnderTest = Sut;
    type Reference = BreakerMachine;

    fn init_test(model: &Model) -> Sut {
        Sut {
            breaker: RestartBreaker::new(model.breaker.policy.clone()),
            now: Duration::ZERO,
        }
    }

    fn apply(mut sut: Sut, model: &Model, step: Step) -> Sut {
        match step {
            Step::Failure { after, random } => {
                sut.now += after;
                let decision = sut.breaker.on_failure(sut.now, random);
                let expected = model.expected.as_ref().expect("the model decided");
                assert!(
                    model.breaker.agrees(expected, &decision),
                    "at {:?}: the breaker decided {decision:?}, the model expected {expected:?}",
                    sut.now
                );
            }
            Step::Uptime(uptime) => sut.breaker.on_uptime(uptime),
            Step::Reset => sut.breaker.reset(),
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(sut.breaker.is_open(), model.breaker.is_open(), "is_open");
        assert_eq!(
            sut.breaker.failures_in_window(),
            model.breaker.in_window(),
            "failures_in_window"
        );
        assert!(sut.breaker.failures_in_window() <= model.breaker.policy.failures_max);
    }
}

prop_state_machine! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_breaker_decides_as_its_reference_model(sequential 1..60 => BreakerMachine);
}
