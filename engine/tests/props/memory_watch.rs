//! `MemoryWatch` beside a model of its documented verdicts over random samples at
//! non-decreasing times: restart at the critical line, or when the growth rate over the
//! samples kept (whole bytes per second) would reach the limit within the horizon; a
//! warning once per excursion above the warning line; normal otherwise. The model puts
//! samples against the lines and the horizon by exact integer comparison, not by the
//! watch's rounded percentages.
//!
//! Each step also checks, on the real verdicts: every sample at or above the critical
//! line restarts (so none reaches the limit unnoticed), a restart reports the watch's
//! growth rate, and an excursion above the warning line warns at most once.

use crate::reference::{ReferenceMemoryWatch, ms};
use engine::workers::memory::{MemoryPolicy, MemoryVerdict, MemoryWatch};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Model {
    watch: ReferenceMemoryWatch,
    now: Duration,
    /// The verdict the last sample called for.
    expected: Option<MemoryVerdict>,
}

#[derive(Clone, Debug)]
pub enum Step {
    /// Time moves on by `after`, then resident memory reads `bytes`.
    Sample { after: Duration, bytes: u64 },
    /// A new process.
    Reset,
}

pub struct MemoryMachine;

pub fn memory_policy() -> impl Strategy<Value = MemoryPolicy> {
    (
        1..=1_000_000u64,
        0..=100u64,
        0..=100u64,
        0..=10_000u64,
        2..=6usize,
    )
        .prop_map(|(limit, a, b, horizon_ms, samples_kept)| MemoryPolicy {
            warn_percent: a.min(b),
            critical_percent: a.max(b),
            horizon: ms(horizon_ms),
            samples_kept,
            ..MemoryPolicy::with_limit(limit)
        })
}

impl ReferenceStateMachine for MemoryMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        prop_oneof![
            // The production lines and horizon: 80 %, 95 %, 5 s.
            (1..=1_000_000u64).prop_map(MemoryPolicy::with_limit),
            memory_policy(),
        ]
        .prop_map(|policy| Model {
            watch: ReferenceMemoryWatch::new(policy),
            now: Duration::ZERO,
            expected: None,
        })
        .boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Step> {
        let policy = &model.watch.policy;
        let limit = policy.limit_bytes;
        let last = model.watch.last().unwrap_or(limit / 2);
        let line = |percent: u64| limit * percent / 100;
        let near = |bytes: u64| bytes.saturating_sub(2)..=bytes + 2;
        // Flat, growing and jumping memory, and samples right at the two lines.
        let bytes = prop_oneof![
            2 => 0..=limit + limit / 5,
            2 => Just(last),
            3 => (0..=limit / 10).prop_map(move |step| last.saturating_add(step)),
            1 => near(line(policy.warn_percent)),
            1 => near(line(policy.critical_percent)),
        ];
        let after = prop_oneof![Just(0u64), Just(1_000), 0..=3_000u64].prop_map(ms);
        prop_oneof![
            12 => (after, bytes).prop_map(|(after, bytes)| Step::Sample { after, bytes }),
            1 => Just(Step::Reset),
        ]
        .boxed()
    }

    fn apply(mut model: Model, step: &Step) -> Model {
        match step {
            Step::Sample { after, bytes } => {
                model.now += *after;
                model.expected = Some(model.watch.sample(model.now, *bytes));
            }
            Step::Reset => {
                model.watch.reset();
                model.expected = None;
            }
        }
        model
    }
}

/// The watch, and the warnings its verdicts gave in the current excursion above the
/// warning line (the documented promises are checked on the real verdicts).
pub struct Sut {
    watch: MemoryWatch,
    now: Duration,
    warnings_this_excursion: u32,
}

impl StateMachineTest for MemoryMachine {
    type SystemUnderTest = Sut;
    type Reference = MemoryMachine;

    fn init_test(model: &Model) -> Sut {
        Sut {
            watch: MemoryWatch::new(model.watch.policy.clone()),
            now: Duration::ZERO,
            warnings_this_excursion: 0,
        }
    }

    fn apply(mut sut: Sut, model: &Model, step: Step) -> Sut {
        match step {
            Step::Sample { after, bytes } => {
                sut.now += after;
                let verdict = sut.watch.sample(sut.now, bytes);
                assert_eq!(
                    Some(verdict),
                    model.expected,
                    "{bytes} bytes at {:?}",
                    sut.now
                );
                if model
                    .watch
                    .at_or_above(bytes, model.watch.policy.critical_percent)
                {
                    assert!(
                        matches!(verdict, MemoryVerdict::Restart { .. }),
                        "{bytes} bytes is at or above the critical line: {verdict:?}"
                    );
                }
                if let MemoryVerdict::Restart {
                    growth_bytes_per_s, ..
                } = verdict
                {
                    assert_eq!(growth_bytes_per_s, sut.watch.growth_bytes_per_s());
                }
                if !model
                    .watch
                    .at_or_above(bytes, model.watch.policy.warn_percent)
                {
                    sut.warnings_this_excursion = 0;
                }
                if matches!(verdict, MemoryVerdict::Warn { .. }) {
                    sut.warnings_this_excursion += 1;
                    assert!(
                        sut.warnings_this_excursion <= 1,
                        "a second warning in one excursion at {bytes} bytes"
                    );
                }
            }
            Step::Reset => {
                sut.watch.reset();
                sut.warnings_this_excursion = 0;
            }
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(
            sut.watch.growth_bytes_per_s(),
            model.watch.growth(),
            "growth"
        );
    }
}

prop_state_machine! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_memory_watch_gives_its_documented_verdicts(sequential 1..60 => MemoryMachine);
}
