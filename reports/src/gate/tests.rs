use super::*;
use crate::record::{FailureClass, Verdict};

fn record(id: &str, seed: u64, pass: bool, fired: bool) -> RunRecord {
    RunRecord {
        id: id.to_string(),
        seed,
        verdict: if pass { Verdict::Pass } else { Verdict::Fail },
        failure_class: (!pass).then_some(FailureClass::Correctness),
        message: (!pass).then(|| "an oracle said no".to_string()),
        trace_hash: format!("{seed:016x}"),
        sim_time_ns: 1,
        events: 1,
        faults: if fired {
            [("disk.enospc".to_string(), 1)].into()
        } else {
            BTreeMap::new()
        },
        swarm_faults: BTreeMap::new(),
        faults_expected: vec!["disk.enospc".to_string()],
        faults_expected_fired: fired,
        wall_ms: 0,
        repro: format!("chaos run {id} --seed {seed}"),
        plan_digest: None,
        provenance: None,
    }
}

fn baseline(entries: &[(&str, Expected)]) -> Baseline {
    Baseline {
        schema: BASELINE_SCHEMA.to_string(),
        seed_start: 1,
        seeds: 2,
        determinism_sample: 1,
        scenarios: entries.iter().map(|(id, e)| (id.to_string(), *e)).collect(),
        reasons: BTreeMap::new(),
        provenance: None,
    }
}

fn kinds(outcome: &GateOutcome) -> Vec<(FindingKind, String, Option<u64>)> {
    outcome
        .findings
        .iter()
        .map(|f| (f.kind, f.id.clone(), f.seed))
        .collect()
}

#[test]
fn all_as_expected_is_green() {
    let records = [record("a", 1, true, true), record("a", 2, true, false)];
    let outcome = judge(&baseline(&[("a", Expected::Pass)]), &records, &[], &[]);
    assert!(outcome.passed(), "{outcome:?}");
    assert!(outcome.notes.is_empty());
}

#[test]
fn a_passing_scenario_that_fails_is_a_regression_with_its_repro() {
    let records = [record("a", 1, true, true), record("a", 2, false, true)];
    let outcome = judge(&baseline(&[("a", Expected::Pass)]), &records, &[], &[]);
    assert_eq!(
        kinds(&outcome),
        [(FindingKind::Regression, "a".to_string(), Some(2))]
    );
    assert_eq!(
        outcome.findings[0].repro.as_deref(),
        Some("chaos run a --seed 2")
    );
    assert!(
        outcome.findings[0]
            .to_string()
            .contains("correctness failure")
    );
}

#[test]
fn known_failures_fixes_and_new_scenarios_are_notes_unless_new_ones_fail() {
    let records = [
        record("known", 1, false, true),
        record("fixed", 1, true, true),
        record("new", 1, true, true),
        record("newbad", 1, false, true),
    ];
    let base = baseline(&[("known", Expected::Fail), ("fixed", Expected::Fail)]);
    let outcome = judge(&base, &records, &[], &[]);
    assert_eq!(
        kinds(&outcome),
        [(FindingKind::NewFailure, "newbad".to_string(), Some(1))]
    );
    assert_eq!(outcome.notes.len(), 3, "{:?}", outcome.notes);
    // A known failure accepted with a reason shows it.
    let mut base = base;
    base.reasons
        .insert("known".to_string(), "upstream bug #7".to_string());
    let outcome = judge(&base, &records, &[], &[]);
    assert!(
        outcome
            .notes
            .iter()
            .any(|n| n
                == "known: known failure (fails 1 of 1 run), accepted because: upstream bug #7"),
        "{:?}",
        outcome.notes
    );
}

#[test]
fn old_baselines_without_reasons_or_provenance_still_parse() {
    let old = r#"{"schema": "chaos-gate-baseline/1", "seed_start": 1, "seeds": 2,
        "determinism_sample": 1, "scenarios": {"a": "pass", "b": "fail"}}"#;
    let base = Baseline::parse(old).unwrap();
    assert!(base.reasons.is_empty() && base.provenance.is_none());
    let mut with = base.clone();
    with.reasons.insert("b".to_string(), "why".to_string());
    with.provenance = Some(crate::provenance::sample("abc", false));
    assert_eq!(Baseline::parse(&with.to_json()), Ok(with));
}

#[test]
fn gone_inert_and_nondeterministic_scenarios_are_red() {
    let records = [
        record("quiet", 1, true, false),
        record("quiet", 2, true, false),
    ];
    let base = baseline(&[("quiet", Expected::Pass), ("gone", Expected::Pass)]);
    let flaky = DeterminismFinding {
        id: "quiet".to_string(),
        seed: 2,
        first_hash: "1".to_string(),
        second_hash: "2".to_string(),
        first_difference: Some("event 7".to_string()),
    };
    let outcome = judge(&base, &records, &["implemented.only".to_string()], &[flaky]);
    assert_eq!(
        kinds(&outcome),
        [
            (FindingKind::Disappeared, "gone".to_string(), None),
            (
                FindingKind::Disappeared,
                "implemented.only".to_string(),
                None
            ),
            (FindingKind::Inert, "quiet".to_string(), None),
            (FindingKind::Nondeterministic, "quiet".to_string(), Some(2)),
        ]
    );
    assert!(outcome.findings[3].message.contains("event 7"));
}

#[test]
fn accepting_records_statuses_and_round_trips() {
    let records = [record("a", 1, true, true), record("b", 1, false, true)];
    let base = Baseline::accept(&records, 1, 1, 3);
    assert_eq!(base.scenarios["a"], Expected::Pass);
    assert_eq!(base.scenarios["b"], Expected::Fail);
    assert_eq!(Baseline::parse(&base.to_json()), Ok(base.clone()));
    assert!(judge(&base, &records, &[], &[]).passed());
}

#[test]
fn bad_baselines_say_what_is_wrong() {
    assert!(
        Baseline::parse("{")
            .unwrap_err()
            .contains("not a gate baseline")
    );
    let mut base = baseline(&[]);
    base.schema = "other/1".to_string();
    assert!(
        Baseline::parse(&base.to_json())
            .unwrap_err()
            .contains("schema")
    );
    let mut base = baseline(&[]);
    base.seeds = 0;
    assert!(
        Baseline::parse(&base.to_json())
            .unwrap_err()
            .contains("seeds")
    );
    let text = baseline(&[])
        .to_json()
        .replace("\"seeds\"", "\"extra\": 1, \"seeds\"");
    assert!(Baseline::parse(&text).is_err());
}

#[test]
fn samples_spread_over_the_jobs() {
    assert_eq!(sample_indices(10, 5), [0, 2, 4, 6, 8]);
    assert_eq!(sample_indices(3, 5), [0, 1, 2]);
    assert_eq!(sample_indices(7, 0), Vec::<usize>::new());
    let picks = sample_indices(1000, 7);
    assert_eq!(picks.len(), 7);
    assert!(picks.windows(2).all(|w| w[0] < w[1]) && picks[6] < 1000);
}
