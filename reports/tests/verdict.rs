//! The verdict rules one at a time: from a clean input that is ready, each rule's
//! condition alone makes it not ready, with a blocker of that rule's kind; conditions the
//! rules call not blocking leave it ready.

mod common;

use common::{entry, record, report_of, report_with, shard_file};
use reports::catalog::{EntryStatus, Risk};
use reports::merge::{Merged, merge};
use reports::readiness::{
    BlockerKind, Outcome, Policy, Readiness, VerdictName, WaiverStatus, elapsed_of,
};
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

fn with_planned_high(id: &str) -> Vec<reports::catalog::CatalogEntry> {
    let mut catalog = clean_catalog();
    catalog.push(entry(id, "plugins", Risk::High, EntryStatus::Planned));
    catalog
}

fn policy(text: &str) -> Policy {
    Policy::parse("ci/readiness-policy.toml", text).unwrap()
}

fn waiver(entry: &str, owner: &str, expires: &str) -> String {
    format!(
        "[[waiver]]\nentry = \"{entry}\"\nreason = \"plugins subsystem not built yet\"\n\
         owner = \"{owner}\"\nexpires = \"{expires}\"\n"
    )
}

#[test]
fn a_waiver_in_force_makes_coverage_ready_while_a_failing_run_still_blocks() {
    let catalog = with_planned_high("core.EC-059");
    let p = policy(&waiver("core.EC-05*", "engine team", "2027-03-31"));
    let r = report_with(&clean_merge(), &catalog, &p, None);
    assert!(r.verdict.ready, "{:#?}", r.verdict);
    assert_eq!(
        (r.verdict.coverage.pass, r.verdict.coverage.waived),
        (true, 1)
    );
    assert_eq!(r.policy.waivers[0].status, WaiverStatus::Used);
    assert_eq!(r.policy.waivers[0].covers, vec!["core.EC-059"]);
    // Without the waiver the same input blocks coverage.
    let bare = report_of(&clean_merge(), &catalog);
    assert!(!bare.verdict.coverage.pass && bare.verdict.regression.pass);
    // A failing run blocks regression whatever the waivers say.
    let mut merged = clean_merge();
    merged.records[0].verdict = Verdict::Fail;
    let r = report_with(&merged, &catalog, &p, None);
    assert!(!r.verdict.ready);
    assert!(r.verdict.coverage.pass);
    assert_eq!(
        (r.verdict.regression.pass, r.verdict.regression.blocking),
        (false, 1)
    );
    assert_eq!(kinds(&r), vec![BlockerKind::Failing]);
    assert_eq!(r.verdict.blocking[0].verdict, VerdictName::Regression);
}

#[test]
fn an_expired_waiver_blocks_naming_its_owner_and_date() {
    let catalog = with_planned_high("core.EC-059");
    // The fixture's today is 2026-11-23: a waiver holds on its last day, not after.
    let on_its_day = policy(&waiver("core.EC-059", "plugin team", "2026-11-23"));
    assert!(
        report_with(&clean_merge(), &catalog, &on_its_day, None)
            .verdict
            .ready
    );
    let p = policy(&waiver("core.EC-059", "plugin team", "2026-11-22"));
    let r = report_with(&clean_merge(), &catalog, &p, None);
    assert_eq!(kinds(&r), vec![BlockerKind::ExpiredWaiver]);
    let b = &r.verdict.blocking[0];
    assert_eq!(b.verdict, VerdictName::Coverage);
    assert_eq!(
        b.message,
        "the waiver for core.EC-059 (owner plugin team) expired on 2026-11-22; it still \
         covers 1 planned entry: core.EC-059"
    );
    assert_eq!(r.policy.waivers[0].status, WaiverStatus::Expired);
    assert!(r.verdict.regression.pass && !r.verdict.coverage.pass);
    assert_eq!(r.verdict.coverage.waived, 0);
}

#[test]
fn an_unused_waiver_is_listed_and_does_not_block_even_when_expired() {
    let text = waiver("core.EC-059", "a", "2027-01-01") + &waiver("cwm.EC-0*", "b", "2020-01-01");
    let r = report_with(
        &clean_merge(),
        &with_planned_high("core.EC-059"),
        &policy(&text),
        None,
    );
    assert!(r.verdict.ready, "{:#?}", r.verdict);
    let statuses: Vec<_> = r.policy.waivers.iter().map(|w| w.status).collect();
    assert_eq!(statuses, vec![WaiverStatus::Used, WaiverStatus::Unused]);
    let md = reports::render::markdown(&r);
    assert!(md.contains("unused: remove it?"), "{md}");
    assert!(
        md.contains("policy: ci/readiness-policy.toml (2 waivers: 1 used, 0 expired, 1 unused"),
        "{md}"
    );
}

#[test]
fn the_policy_decides_which_risks_block() {
    let mut catalog = clean_catalog();
    // clean_catalog holds a medium-risk planned entry, core.EC-004.
    let r = report_with(
        &clean_merge(),
        &catalog,
        &policy("[coverage]\nblock_planned = [\"high\", \"medium\"]\n"),
        None,
    );
    assert_eq!(kinds(&r), vec![BlockerKind::Planned]);
    assert_eq!(r.verdict.blocking[0].id.as_deref(), Some("core.EC-004"));
    assert!(
        r.rules
            .iter()
            .any(|rule| rule.contains("high- or medium-risk"))
    );
    catalog.push(entry(
        "core.EC-005",
        "store",
        Risk::High,
        EntryStatus::Planned,
    ));
    let r = report_with(
        &clean_merge(),
        &catalog,
        &policy("[coverage]\nblock_planned = []\n"),
        None,
    );
    assert!(r.verdict.ready, "{:#?}", r.verdict);
}

#[test]
fn runs_of_an_id_this_build_does_not_know_block_and_never_pass() {
    let mut merged = clean_merge();
    for r in merged
        .records
        .iter_mut()
        .filter(|r| r.id.starts_with("sim."))
    {
        r.id = "sim.net.renamed-long-ago".to_string();
    }
    let r = report_of(&merged, &clean_catalog());
    assert_eq!(kinds(&r), vec![BlockerKind::Unknown]);
    let s = r
        .scenarios
        .iter()
        .find(|s| s.id == "sim.net.renamed-long-ago")
        .unwrap();
    assert_eq!((s.outcome, s.unknown), (Outcome::Unknown, true));
    assert_eq!(s.subsystem, "unknown");
    assert_eq!(
        (r.totals.scenarios_unknown, r.totals.scenarios_passed),
        (1, 1)
    );
    assert!(
        r.verdict.blocking[0]
            .message
            .starts_with("scenario sim.net.renamed-long-ago is unknown to this build: 4 runs"),
        "{}",
        r.verdict.blocking[0].message
    );
    let md = reports::render::markdown(&r);
    assert!(md.contains("**UNKNOWN** to this build"), "{md}");
    let xml = reports::render::junit(&r).unwrap();
    assert!(xml.contains("type=\"unknown\""), "{xml}");
}

#[test]
fn elapsed_time_is_the_longest_input_file() {
    let mut files = vec![shard_file(1, 2), shard_file(2, 2)];
    files[0].file.elapsed_ms = Some(900);
    files[1].file.elapsed_ms = Some(1400);
    assert_eq!(elapsed_of(&files), Some(1400));
    files[1].file.elapsed_ms = None;
    assert_eq!(elapsed_of(&files), Some(900));
    files[0].file.elapsed_ms = None;
    assert_eq!(elapsed_of(&files), None);
    let mut r = report_of(&clean_merge(), &clean_catalog());
    r.totals.wall_ms = 274_000;
    r.totals.elapsed_ms = Some(141_000);
    let md = reports::render::markdown(&r);
    assert!(
        md.contains("Run time 274.000 s summed over runs; 141.000 s elapsed"),
        "{md}"
    );
}
