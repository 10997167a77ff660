//! The verdict rules one at a time: from a clean input that is ready, each rule's
//! condition alone makes it not ready, with a blocker of that rule's kind; conditions the
//! rules call not blocking leave it ready.

mod common;

use common::{entry, record, report_of, shard_file};
use reports::catalog::{EntryStatus, Risk};
use reports::merge::{Merged, merge};
use reports::readiness::{BlockerKind, Outcome, Readiness};
use reports::record::{FailureClass, Verdict};
use reports::sweep_file::DeterminismFinding;

/// Only the passing scenarios of the fixture, with every shard present.
fn clean_merge() -> Merged {
    let keep = |mut f: reports::sweep_file::LoadedSweep| {
        f.file
            .records
            .retain(|r| r.id == "core.EC-001" || r.id.starts_with("sim."));
        f
    };
    merge(vec![keep(shard_file(1, 2)), keep(shard_file(2, 2))]).unwrap()
}

fn clean_catalog() -> Vec<reports::catalog::CatalogEntry> {
    vec![
        entry(
            "core.EC-001",
            "sessions",
            Risk::High,
            EntryStatus::Implemented,
        ),
        entry("core.EC-004", "gateway", Risk::Medium, EntryStatus::Planned),
        entry(
            "api.CODE-001",
            "deploy",
            Risk::Low,
            EntryStatus::NotApplicable,
        ),
    ]
}

fn kinds(r: &Readiness) -> Vec<BlockerKind> {
    r.verdict.blocking.iter().map(|b| b.kind).collect()
}

#[test]
fn a_clean_input_is_ready_despite_non_blocking_gaps() {
    let mut catalog = clean_catalog();
    // Implemented but not in the input: listed, not blocking (rule 6).
    catalog.push(entry(
        "enable.1.1.1",
        "workers",
        Risk::High,
        EntryStatus::Implemented,
    ));
    let r = report_of(&clean_merge(), &catalog);
    assert!(r.verdict.ready, "{:#?}", r.verdict);
    assert_eq!(r.totals.scenarios_not_run, 1);
    assert_eq!(r.totals.runs, 8);
}

#[test]
fn a_missing_shard_blocks() {
    let mut merged = clean_merge();
    let whole = merged.records.len();
    merged = merge(vec![shard_file(1, 2)]).unwrap();
    merged
        .records
        .retain(|r| r.id == "core.EC-001" || r.id.starts_with("sim."));
    assert!(merged.records.len() < whole);
    let r = report_of(&merged, &clean_catalog());
    assert_eq!(kinds(&r), vec![BlockerKind::PartialMerge]);
    assert!(r.verdict.blocking[0].message.contains("shard 2/2"));
}

#[test]
fn one_failing_run_blocks_and_a_failing_high_risk_entry_is_named() {
    let mut merged = clean_merge();
    let run = merged
        .records
        .iter_mut()
        .find(|r| r.id == "core.EC-001" && r.seed == 3)
        .unwrap();
    run.verdict = Verdict::Fail;
    run.failure_class = Some(FailureClass::Crash);
    run.message = Some("panicked".to_string());
    let r = report_of(&merged, &clean_catalog());
    assert_eq!(kinds(&r), vec![BlockerKind::Failing]);
    assert_eq!(
        r.verdict.blocking[0].message,
        "high-risk scenario core.EC-001 failed 1 of 4 runs; first at seed 3 (crash)"
    );
    assert_eq!(r.failures.len(), 1);
}

#[test]
fn an_inert_scenario_blocks_even_when_every_run_passed() {
    let mut merged = clean_merge();
    for run in merged.records.iter_mut().filter(|r| r.id == "core.EC-001") {
        run.faults_expected_fired = false;
    }
    let r = report_of(&merged, &clean_catalog());
    assert_eq!(kinds(&r), vec![BlockerKind::Inert]);
    let s = r.scenarios.iter().find(|s| s.id == "core.EC-001").unwrap();
    assert_eq!((s.outcome, s.passed, s.runs), (Outcome::Inert, 4, 4));
}

#[test]
fn a_determinism_finding_blocks_and_an_empty_check_does_not() {
    let mut merged = clean_merge();
    merged.determinism = Some(vec![]);
    let r = report_of(&merged, &clean_catalog());
    assert!(r.verdict.ready && r.determinism.recorded);
    merged.determinism = Some(vec![DeterminismFinding {
        id: "core.EC-001".to_string(),
        seed: 1,
        first_hash: "a".to_string(),
        second_hash: "b".to_string(),
        first_difference: None,
    }]);
    let r = report_of(&merged, &clean_catalog());
    assert_eq!(kinds(&r), vec![BlockerKind::Nondeterministic]);
}

#[test]
fn a_planned_entry_blocks_only_when_high_risk_under_the_builtin_policy() {
    let mut catalog = clean_catalog();
    catalog.push(entry(
        "core.EC-005",
        "store",
        Risk::High,
        EntryStatus::Planned,
    ));
    let r = report_of(&clean_merge(), &catalog);
    assert_eq!(kinds(&r), vec![BlockerKind::Planned]);
    assert_eq!(r.verdict.blocking[0].id.as_deref(), Some("core.EC-005"));
    // A high-risk not-applicable entry is counted, not blocking.
    catalog.pop();
    catalog.push(entry(
        "core.EC-005",
        "store",
        Risk::High,
        EntryStatus::NotApplicable,
    ));
    assert!(report_of(&clean_merge(), &catalog).verdict.ready);
}

#[test]
fn a_failing_inert_scenario_is_failed_and_blocks_twice() {
    let mut merged = clean_merge();
    for run in merged.records.iter_mut().filter(|r| r.id == "core.EC-001") {
        run.faults_expected_fired = false;
    }
    merged.records[0] = {
        let mut r = record("core.EC-001", 1);
        r.faults_expected_fired = false;
        r.verdict = Verdict::Fail;
        r.failure_class = Some(FailureClass::Liveness);
        r
    };
    let r = report_of(&merged, &clean_catalog());
    assert_eq!(kinds(&r), vec![BlockerKind::Failing, BlockerKind::Inert]);
    let s = r.scenarios.iter().find(|s| s.id == "core.EC-001").unwrap();
    assert_eq!(s.outcome, Outcome::Failed);
    assert!(s.inert);
    assert_eq!(
        (r.totals.scenarios_failed, r.totals.scenarios_inert),
        (1, 0)
    );
}

#[test]
fn absent_determinism_data_reads_none_recorded() {
    let r = report_of(&clean_merge(), &clean_catalog());
    assert!(!r.determinism.recorded);
    let md = reports::render::markdown(&r);
    assert!(md.contains("None recorded"), "{md}");
    let html = reports::render::html(&r).unwrap();
    assert!(html.contains("None recorded"), "{html}");
    assert!(md.contains("# Release readiness: READY"), "{md}");
}
