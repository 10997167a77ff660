//! `DiskWatch` beside a model of its documented rules over random usage samples: an
//! alert once per excursion at the alert line, read-only mode at the critical line, and
//! writable again only once use is back under the alert line (hysteresis). The model
//! places a sample against a line by exact integer comparison (`used * 100 >=
//! line * quota`), not by the watch's rounded percentage.
//!
//! Besides the model's verdicts, each step checks the documented promises directly:
//! read-only starts only at or above the critical line and ends only under the alert
//! line; an excursion (the samples between two under the alert line) alerts at most
//! once, and its first sample at or above the alert line is the one that alerts.

use crate::reference::{ReferenceDiskWatch, Zone};
use engine::workers::disk::{DiskPolicy, DiskVerdict, DiskWatch};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

#[derive(Clone, Debug)]
pub struct Model {
    watch: ReferenceDiskWatch,
    /// The verdict the last sample called for.
    expected: Option<DiskVerdict>,
}

#[derive(Clone, Debug)]
pub enum Step {
    Sample(u64),
    /// The worker could not be told about the last mode change.
    UndoModeChange,
    /// A new process.
    Reset,
}

pub struct DiskMachine;

pub fn disk_policy() -> impl Strategy<Value = DiskPolicy> {
    (1..=10_000u64, 0..=100u64, 0..=100u64).prop_map(|(quota, a, b)| DiskPolicy {
        alert_percent: a.min(b),
        critical_percent: a.max(b),
        ..DiskPolicy::with_quota(quota)
    })
}

impl ReferenceStateMachine for DiskMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        prop_oneof![
            // The production lines, 80 and 95.
            (1..=10_000u64).prop_map(DiskPolicy::with_quota),
            disk_policy(),
        ]
        .prop_map(|policy| Model {
            watch: ReferenceDiskWatch::new(policy),
            expected: None,
        })
        .boxed()
    }

    fn transitions(model: &Model) -> BoxedStrategy<Step> {
        let policy = &model.watch.policy;
        let quota = policy.quota_bytes;
        let at = |percent: u64| quota * percent / 100;
        // Samples cluster around the two lines, where off-by-one mistakes live.
        let near = |line: u64| (line.saturating_sub(2)..=line + 2).prop_map(Step::Sample);
        let sample = prop_oneof![
            2 => (0..=quota * 2).prop_map(Step::Sample),
            2 => near(at(policy.alert_percent)),
            2 => near(at(policy.critical_percent)),
            1 => Just(Step::Sample(0)),
        ];
        if matches!(
            model.expected,
            Some(DiskVerdict::ReadOnly { .. } | DiskVerdict::Writable { .. })
        ) {
            prop_oneof![6 => sample, 1 => Just(Step::UndoModeChange), 1 => Just(Step::Reset)]
                .boxed()
        } else {
            prop_oneof![12 => sample, 1 => Just(Step::Reset)].boxed()
        }
    }

    /// The supervisor undoes a mode change only right after the verdict that asked
    /// for it, when telling the worker failed.
    fn preconditions(model: &Model, step: &Step) -> bool {
        !matches!(step, Step::UndoModeChange)
            || matches!(
                model.expected,
                Some(DiskVerdict::ReadOnly { .. } | DiskVerdict::Writable { .. })
            )
    }

    fn apply(mut model: Model, step: &Step) -> Model {
        match step {
            Step::Sample(used) => model.expected = Some(model.watch.sample(*used)),
            Step::UndoModeChange => {
                model.watch.undo();
                model.expected = None;
            }
            Step::Reset => {
                model.watch.reset();
                model.expected = None;
            }
        }
        model
    }
}

fn alerts(verdict: DiskVerdict) -> bool {
    matches!(
        verdict,
        DiskVerdict::Alert { .. } | DiskVerdict::ReadOnly { alert: true, .. }
    )
}

/// The watch, and what its verdicts so far say about the current excursion (the
/// documented promises are checked on the real verdicts, not on the model's).
pub struct Sut {
    watch: DiskWatch,
    /// Alerts since the last sample under the alert line (or the last reset).
    alerts_this_excursion: u32,
    /// Whether this excursion has had a sample at or above the alert line yet.
    excursion_started: bool,
}

impl StateMachineTest for DiskMachine {
    type SystemUnderTest = Sut;
    type Reference = DiskMachine;

    fn init_test(model: &Model) -> Sut {
        Sut {
            watch: DiskWatch::new(model.watch.policy.clone()),
            alerts_this_excursion: 0,
            excursion_started: false,
        }
    }

    fn apply(mut sut: Sut, model: &Model, step: Step) -> Sut {
        match step {
            Step::Sample(used) => {
                let was_read_only = sut.watch.read_only();
                let verdict = sut.watch.sample(used);
                let zone = model.watch.zone(used);
                assert_eq!(Some(verdict), model.expected, "sample of {used} bytes");
                match verdict {
                    DiskVerdict::ReadOnly { .. } => assert!(
                        zone == Zone::Critical && !was_read_only,
                        "read-only at {used} bytes, zone {zone:?}"
                    ),
                    DiskVerdict::Writable { .. } => assert!(
                        zone == Zone::UnderAlert && was_read_only,
                        "writable again at {used} bytes, zone {zone:?}"
                    ),
                    _ => {}
                }
                if zone == Zone::UnderAlert {
                    sut.alerts_this_excursion = 0;
                    sut.excursion_started = false;
                } else {
                    let first = !sut.excursion_started;
                    sut.excursion_started = true;
                    if alerts(verdict) {
                        sut.alerts_this_excursion += 1;
                    }
                    assert!(
                        sut.alerts_this_excursion <= 1,
                        "a second alert in one excursion at {used} bytes"
                    );
                    assert!(
                        !first || alerts(verdict),
                        "the excursion's first sample at or above the alert line ({used} bytes) did not alert: {verdict:?}"
                    );
                }
            }
            Step::UndoModeChange => sut.watch.undo_mode_change(),
            Step::Reset => {
                sut.watch.reset();
                sut.alerts_this_excursion = 0;
                sut.excursion_started = false;
            }
        }
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(sut.watch.read_only(), model.watch.read_only, "read_only");
    }
}

prop_state_machine! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_disk_watch_follows_its_documented_rules(sequential 1..60 => DiskMachine);
}
