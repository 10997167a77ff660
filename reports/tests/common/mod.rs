//! A small hand-built input for the readiness tests: a catalog of six entries and a sweep
//! of four scenarios × seeds 1..=4 in three shards, of which shard 2 is left out.
//!
//! - `core.EC-001` (high, implemented): passes; its own fault fires;
//! - `core.EC-002` (medium, implemented): fails at seeds 2 (correctness) and 4 (liveness);
//! - `pattern.1.1` (low, implemented): passes but its own fault never fires: inert;
//! - `enable.1.1.1` (high, implemented): no run in the input: not run;
//! - `core.EC-003` (high, planned): blocks;
//! - `core.EC-004` (low, planned): counted, does not block;
//! - `api.CODE-001` (low, not-applicable, with a reason);
//! - `sim.net.partition-heal-no-loss`: a simulator self-check outside the catalog, passes.
//!
//! The policy waives `core.EC-00*` (so the planned `core.EC-003` does not block coverage)
//! and holds an expired waiver that covers nothing; `core.EC-002` declares a fault plan
//! (its failures suggest `chaos shrink`). The previous report, for the trend, is of an
//! earlier build: complete, `core.EC-001` failing at seed 1, `core.EC-002` passing, and
//! `enable.1.1.1` still planned.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the fixture"
)]

use reports::catalog::{CatalogEntry, EntryStatus, Risk};
use reports::merge::{Merged, merge};
use reports::readiness::{
    Date, KnownScenario, Policy, PreviousReport, Readiness, ReportInput, build,
};
use reports::record::{FailureClass, RunRecord, Verdict};
use reports::render::json;
use reports::shard::Shard;
use reports::sweep_file::{DeterminismFinding, LoadedSweep, SWEEP_SCHEMA, SweepFile};
use std::collections::BTreeMap;

pub const GENERATED_AT: &str = "2026-11-23T10:11:12Z";
/// The day waivers are judged on.
pub const TODAY: &str = "2026-11-23";

/// The fixture's policy file.
pub const POLICY: &str = r#"
[coverage]
block_planned = ["high"]

[[waiver]]
entry = "core.EC-00*"
reason = "gateway subsystem not built yet"
owner = "engine team"
expires = "2027-03-31"

[[waiver]]
entry = "cwm.EC-0*"
reason = "windows subsystem not built yet"
owner = "windows team"
expires = "2026-01-31"
"#;

pub fn policy() -> Policy {
    Policy::parse("ci/readiness-policy.toml", POLICY).expect("the fixture policy parses")
}

pub fn today() -> Date {
    Date::parse(TODAY).unwrap()
}

/// Seed documents' titles.
pub fn documents() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "000_338ed706851a2ca5.txt".to_string(),
            "Edge Case Matrix - Core Engine".to_string(),
        ),
        (
            "004_327fc7c032567eef.txt".to_string(),
            "MEMO-010: POC 1 Edge Case Analysis".to_string(),
        ),
    ])
}

pub fn entry(id: &str, subsystem: &str, risk: Risk, status: EntryStatus) -> CatalogEntry {
    let source = match id.split('.').next() {
        Some("core") => "000_338ed706851a2ca5.txt",
        Some("enable") => "001_ecc96e162557ab1e.txt",
        Some("api") => "003_b21b109604bba31c.txt",
        _ => "004_327fc7c032567eef.txt",
    };
    CatalogEntry {
        id: id.to_string(),
        source: source.to_string(),
        subsystem: subsystem.to_string(),
        category: "boundary".to_string(),
        risk,
        status,
        title: format!("title of {id}"),
        reason: if status == EntryStatus::NotApplicable {
            "a naming note with no runtime behaviour".to_string()
        } else {
            String::new()
        },
    }
}

pub fn catalog() -> Vec<CatalogEntry> {
    use EntryStatus::*;
    vec![
        entry("core.EC-001", "sessions", Risk::High, Implemented),
        entry("core.EC-002", "metering", Risk::Medium, Implemented),
        entry("core.EC-003", "gateway", Risk::High, Planned),
        entry("core.EC-004", "gateway", Risk::Low, Planned),
        entry("enable.1.1.1", "workers", Risk::High, Implemented),
        entry("api.CODE-001", "deploy", Risk::Low, NotApplicable),
        entry("pattern.1.1", "workers", Risk::Low, Implemented),
    ]
}

/// What the build knows: every implemented entry of `catalog` and the self-check;
/// `core.EC-002` declares a fault plan.
pub fn known(catalog: &[CatalogEntry]) -> BTreeMap<String, KnownScenario> {
    let mut known: BTreeMap<String, KnownScenario> = catalog
        .iter()
        .filter(|e| e.status == EntryStatus::Implemented)
        .map(|e| {
            (
                e.id.clone(),
                KnownScenario {
                    title: e.title.clone(),
                    has_plan: e.id == "core.EC-002",
                },
            )
        })
        .collect();
    known.insert(
        "sim.net.partition-heal-no-loss".to_string(),
        KnownScenario {
            title: "A partition healed mid-stream loses and reorders no bytes".to_string(),
            has_plan: false,
        },
    );
    known
}

/// The scenario's own fault kind, and the faults a run of it sees.
fn faults_of(id: &str, seed: u64) -> (&'static str, BTreeMap<String, u64>) {
    match id {
        "core.EC-001" => (
            "host.crash",
            BTreeMap::from([
                ("host.crash".to_string(), 1),
                ("net.reset".to_string(), seed),
            ]),
        ),
        "core.EC-002" => (
            "disk.torn_write",
            BTreeMap::from([("disk.torn_write".to_string(), 2)]),
        ),
        // Inert: its own kind never fires, other faults do.
        "pattern.1.1" => (
            "proc.oom_kill",
            BTreeMap::from([("net.reset".to_string(), 3)]),
        ),
        _ => (
            "net.partition",
            BTreeMap::from([("net.partition".to_string(), 1)]),
        ),
    }
}

pub fn record(id: &str, seed: u64) -> RunRecord {
    let (own, faults) = faults_of(id, seed);
    let (verdict, failure_class, message) = match (id, seed) {
        ("core.EC-002", 2) => (
            Verdict::Fail,
            Some(FailureClass::Correctness),
            Some("quota went negative: <-1> | expected \"≥ 0\" & more".to_string()),
        ),
        ("core.EC-002", 4) => (
            Verdict::Fail,
            Some(FailureClass::Liveness),
            Some("did not converge within 30 s".to_string()),
        ),
        _ => (Verdict::Pass, None, None),
    };
    RunRecord {
        id: id.to_string(),
        seed,
        verdict,
        failure_class,
        message,
        trace_hash: format!("{:016x}", seed * 0x1234_5678 + id.len() as u64),
        sim_time_ns: seed * 1_000_000,
        events: 10 + seed,
        faults_expected_fired: faults.get(own).is_some_and(|n| *n > 0),
        faults,
        swarm_faults: Default::default(),
        faults_expected: vec![own.to_string()],
        // Wall clock: differs between runs of the test suite in real life; redacted.
        wall_ms: 100 + seed * 37 + id.len() as u64,
        repro: format!(
            "cargo run --release -p scenarios --bin chaos -- run {id} --seed {seed} --trace"
        ),
        plan_digest: None,
        provenance: None,
    }
}

pub const IDS: [&str; 4] = [
    "sim.net.partition-heal-no-loss",
    "pattern.1.1",
    "core.EC-002",
    "core.EC-001",
];

/// Shard `index` of `count` of the fixture sweep (seeds 1..=4).
pub fn shard_file(index: u64, count: u64) -> LoadedSweep {
    let jobs: Vec<(String, u64)> = IDS
        .iter()
        .flat_map(|id| (1..=4).map(move |seed| (id.to_string(), seed)))
        .collect();
    let jobs_total = jobs.len() as u64;
    let shard = Shard::new(index, count).expect("valid shard");
    let mine = shard.select(jobs, |j| j.clone());
    let mut scenarios: Vec<String> = mine.iter().map(|(id, _)| id.clone()).collect();
    scenarios.sort();
    scenarios.dedup();
    LoadedSweep {
        name: format!("results/shard-{index}-of-{count}.json"),
        legacy: false,
        file: SweepFile {
            schema: SWEEP_SCHEMA.to_string(),
            shard,
            seed_start: 1,
            seeds: 4,
            prefix: None,
            filters: Vec::new(),
            jobs_total,
            scenarios,
            records: mine.iter().map(|(id, seed)| record(id, *seed)).collect(),
            determinism: None,
            // One build ran every shard (a merge of two builds is refused).
            provenance: Some(reports::provenance::Provenance {
                commit: "0123456789abcdef0123456789abcdef01234567".to_string(),
                dirty: false,
                version: "0.1.0".to_string(),
                toolchain: "rustc 1.95.0 (fixture)".to_string(),
                target: "x86_64-unknown-linux-gnu".to_string(),
                host: format!("runner-{index}"),
                date: "2026-12-01T00:00:00Z".to_string(),
            }),
            elapsed_ms: Some(1000 + index * 100),
        },
    }
}

/// Shards 1 and 3 of 3 (shard 2 missing), the first carrying a determinism finding.
pub fn partial_merge() -> Merged {
    let mut first = shard_file(1, 3);
    first.file.determinism = Some(vec![DeterminismFinding {
        id: "core.EC-001".to_string(),
        seed: 3,
        first_hash: "00000000deadbeef".to_string(),
        second_hash: "00000000feedface".to_string(),
        first_difference: Some("event 17: <net> send 5 bytes vs 6 bytes".to_string()),
    }]);
    merge(vec![first, shard_file(3, 3)]).expect("fixture shards merge")
}

/// The report of `merged` under the built-in policy, with no previous report.
pub fn report_of(merged: &Merged, catalog: &[CatalogEntry]) -> Readiness {
    report_with(merged, catalog, &Policy::builtin(), None)
}

pub fn report_with(
    merged: &Merged,
    catalog: &[CatalogEntry],
    policy: &Policy,
    previous: Option<&PreviousReport>,
) -> Readiness {
    build(&ReportInput {
        merged,
        catalog,
        known: &known(catalog),
        documents: &documents(),
        policy,
        today: today(),
        generated_at: GENERATED_AT.to_string(),
        elapsed_ms: Some(1300),
        previous,
    })
}

/// The earlier build's report, as `chaos report --previous` reads it back.
pub fn previous() -> PreviousReport {
    let mut files: Vec<LoadedSweep> = (1..=3).map(|i| shard_file(i, 3)).collect();
    for f in &mut files {
        for r in &mut f.file.records {
            if r.id == "core.EC-002" {
                *r = RunRecord {
                    verdict: Verdict::Pass,
                    failure_class: None,
                    message: None,
                    ..r.clone()
                };
            }
            if r.id == "core.EC-001" && r.seed == 1 {
                r.verdict = Verdict::Fail;
                r.failure_class = Some(FailureClass::Crash);
                r.message = Some("panicked".to_string());
            }
            // One fault kind fired less often then.
            r.faults.remove("host.crash");
        }
    }
    let merged = merge(files).expect("fixture shards merge");
    let mut catalog = catalog();
    catalog
        .iter_mut()
        .filter(|e| e.id == "enable.1.1.1")
        .for_each(|e| e.status = EntryStatus::Planned);
    let mut earlier = report_of(&merged, &catalog);
    earlier.generated_at = "2026-11-20T09:00:00Z".to_string();
    let text = json(&earlier).expect("renders");
    PreviousReport::parse("results/previous/readiness.json", &text).expect("reads back")
}

/// The report the snapshot tests render.
pub fn report() -> Readiness {
    report_with(&partial_merge(), &catalog(), &policy(), Some(&previous()))
}
