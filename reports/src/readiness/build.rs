//! From merged runs and the catalog to a [`Readiness`].

use super::coverage::coverage;
use super::trend::{PreviousReport, trend};
use super::verdict::{rules, verdict};
use super::*;
use crate::catalog::{CatalogEntry, id_prefix};
use crate::merge::Merged;
use crate::record::RunRecord;
use crate::summary::summarize;
use crate::sweep_file::LoadedSweep;

/// What the build running the report knows of one of its scenarios.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownScenario {
    pub title: String,
    /// It declares a fault plan, so `chaos shrink` applies to its failures.
    pub has_plan: bool,
}

/// Everything a report is built from.
pub struct ReportInput<'a> {
    pub merged: &'a Merged,
    pub catalog: &'a [CatalogEntry],
    /// Every scenario this build knows, by id (catalog scenarios and self-checks alike).
    /// Runs of any other id are flagged as unknown to this build, never passed.
    pub known: &'a BTreeMap<String, KnownScenario>,
    /// Seed documents' titles, by file name.
    pub documents: &'a BTreeMap<String, String>,
    /// Which planned entries block coverage, and the waivers.
    pub policy: &'a Policy,
    /// The day waivers are judged on (UTC); passed in so building stays pure.
    pub today: Date,
    /// When the report is made (UTC, RFC 3339); passed in so building stays pure.
    pub generated_at: String,
    /// The sweep's elapsed wall time ([`elapsed_of`] the inputs).
    pub elapsed_ms: Option<u64>,
    /// An earlier report to compare with.
    pub previous: Option<&'a PreviousReport>,
}

/// The elapsed wall time of a set of sweep files: the longest file's. Shards run side by
/// side on separate machines, so the sweep took as long as its slowest shard (their sum
/// would be machine time, which `wall_ms` already shows). `None` when no file recorded it.
pub fn elapsed_of(files: &[LoadedSweep]) -> Option<u64> {
    files.iter().filter_map(|f| f.file.elapsed_ms).max()
}

/// The command that shrinks a failing run.
fn shrink_command(id: &str, seed: u64) -> String {
    format!("cargo run --release -p scenarios --bin chaos -- shrink {id} --seed {seed}")
}

/// Builds the report. Pure: the same input gives the same report.
pub fn build(input: &ReportInput<'_>) -> Readiness {
    let merged = input.merged;
    let scenarios = scenarios(input);
    let mut failures: Vec<FailedRun> = merged
        .records
        .iter()
        .filter(|r| !r.passed())
        .map(|r| failed_run(r, input))
        .collect();
    failures.sort_by(|a, b| (&a.id, a.seed).cmp(&(&b.id, b.seed)));
    let determinism = Determinism {
        recorded: merged.determinism.is_some(),
        findings: merged.determinism.clone().unwrap_or_default(),
    };
    let planned = open_entries(input.catalog, EntryStatus::Planned);
    let not_applicable = open_entries(input.catalog, EntryStatus::NotApplicable);
    let judged = verdict(
        merged,
        &scenarios,
        &determinism,
        input.catalog,
        input.policy,
        input.today,
    );
    let count = |o: Outcome| scenarios.iter().filter(|s| s.outcome == o).count() as u64;
    let totals = Totals {
        runs: merged.records.len() as u64,
        runs_passed: merged.records.iter().filter(|r| r.passed()).count() as u64,
        runs_failed: failures.len() as u64,
        scenarios_run: scenarios.iter().filter(|s| s.runs > 0).count() as u64,
        scenarios_passed: count(Outcome::Passed),
        scenarios_failed: count(Outcome::Failed),
        scenarios_inert: count(Outcome::Inert),
        scenarios_not_run: count(Outcome::NotRun),
        scenarios_unknown: count(Outcome::Unknown),
        wall_ms: merged.records.iter().map(|r| r.wall_ms).sum(),
        elapsed_ms: input.elapsed_ms,
    };
    let mut coverage = coverage(input.catalog);
    for row in &mut coverage.by_source {
        row.document_title = row
            .document
            .as_ref()
            .and_then(|d| input.documents.get(d).cloned());
    }
    let mut report = Readiness {
        schema: READINESS_SCHEMA.to_string(),
        generated_at: input.generated_at.clone(),
        verdict: judged.verdict,
        rules: rules(input.policy),
        policy: PolicyReport {
            source: input.policy.source.clone(),
            today: input.today.to_string(),
            blocking_risks: input.policy.blocking_risks.clone(),
            waivers: judged.waivers,
        },
        trend: None,
        build: merged.provenance.clone(),
        inputs: Inputs {
            files: merged
                .inputs
                .iter()
                .map(|f| InputFileReport {
                    name: f.name.clone(),
                    shard: f.shard.to_string(),
                    legacy: f.legacy,
                    runs: f.runs,
                    sweep: f.sweep.clone(),
                })
                .collect(),
            partial: merged.partial(),
            missing_shards: merged
                .missing
                .iter()
                .map(|m| MissingShardReport {
                    sweep: m.sweep.clone(),
                    shard: m.shard.to_string(),
                })
                .collect(),
        },
        totals,
        coverage,
        faults: fault_totals(&merged.records),
        scenarios,
        failures,
        determinism,
        planned,
        not_applicable,
    };
    report.trend = input.previous.map(|p| trend(p, &report));
    report
}

fn failed_run(r: &RunRecord, input: &ReportInput<'_>) -> FailedRun {
    let has_plan = input.known.get(&r.id).is_some_and(|k| k.has_plan);
    FailedRun {
        id: r.id.clone(),
        seed: r.seed,
        class: r.failure_class,
        message: r.message.clone(),
        repro: r.repro.clone(),
        shrink: has_plan.then(|| shrink_command(&r.id, r.seed)),
    }
}

/// One row per scenario with runs, plus `implemented` entries without any, by id.
fn scenarios(input: &ReportInput<'_>) -> Vec<ScenarioReport> {
    let mut rows: BTreeMap<String, ScenarioReport> = BTreeMap::new();
    // A merge leaves records in (id, seed) order, so a scenario's runs are adjacent and
    // its first failure is the one with the lowest seed.
    let mut records = std::borrow::Cow::Borrowed(&input.merged.records);
    if !records.is_sorted_by(|a, b| (&a.id, a.seed) <= (&b.id, b.seed)) {
        records
            .to_mut()
            .sort_by(|a, b| (&a.id, a.seed).cmp(&(&b.id, b.seed)));
    }
    for own in records.chunk_by(|a, b| a.id == b.id) {
        let Some(s) = summarize(own).pop() else {
            continue;
        };
        let first_failure = own
            .iter()
            .find(|r| !r.passed())
            .map(|r| failed_run(r, input));
        let inert = s.inert();
        let unknown = !input.known.contains_key(&s.id);
        let outcome = if s.failed > 0 {
            Outcome::Failed
        } else if unknown {
            Outcome::Unknown
        } else if inert {
            Outcome::Inert
        } else {
            Outcome::Passed
        };
        let mut row = blank_row(&s.id, input);
        row.outcome = outcome;
        row.inert = inert && !unknown;
        row.unknown = unknown;
        row.runs = s.runs;
        row.passed = s.passed;
        row.failed = s.failed;
        row.runs_faults_fired = s.runs_with_expected_faults;
        row.faults_expected = own
            .first()
            .map(|r| r.faults_expected.clone())
            .unwrap_or_default();
        row.faults = s.faults;
        row.first_failure = first_failure;
        row.wall_ms = own.iter().map(|r| r.wall_ms).sum();
        rows.insert(s.id, row);
    }
    for entry in input.catalog {
        if entry.status == EntryStatus::Implemented && !rows.contains_key(&entry.id) {
            rows.insert(entry.id.clone(), blank_row(&entry.id, input));
        }
    }
    rows.into_values().collect()
}

/// A row with no runs (outcome `not-run`), filled from the catalog where it has `id`.
fn blank_row(id: &str, input: &ReportInput<'_>) -> ScenarioReport {
    let entry = input.catalog.iter().find(|e| e.id == id);
    let source = id_prefix(id).to_string();
    let known = input.known.get(id);
    let subsystem = match entry {
        Some(e) => e.subsystem.clone(),
        None if known.is_none() => "unknown".to_string(),
        None if source == "sim" => "simulator".to_string(),
        None => "uncataloged".to_string(),
    };
    ScenarioReport {
        id: id.to_string(),
        title: entry
            .map(|e| e.title.clone())
            .or_else(|| known.map(|k| k.title.clone())),
        source,
        document: entry.map(|e| e.source.clone()),
        document_title: entry.and_then(|e| input.documents.get(&e.source).cloned()),
        subsystem,
        risk: entry.map(|e| e.risk),
        catalog_status: entry.map(|e| e.status),
        outcome: Outcome::NotRun,
        inert: false,
        unknown: false,
        runs: 0,
        passed: 0,
        failed: 0,
        runs_faults_fired: 0,
        faults_expected: Vec::new(),
        faults: BTreeMap::new(),
        first_failure: None,
        wall_ms: 0,
    }
}

fn fault_totals(records: &[RunRecord]) -> Vec<FaultTotal> {
    // kind → (fired, runs, scenarios seen)
    let mut totals: BTreeMap<&str, (u64, u64, std::collections::BTreeSet<&str>)> = BTreeMap::new();
    for r in records {
        for (kind, n) in r.faults.iter().filter(|(_, n)| **n > 0) {
            let t = totals.entry(kind).or_default();
            t.0 += n;
            t.1 += 1;
            t.2.insert(&r.id);
        }
    }
    totals
        .into_iter()
        .map(|(kind, (fired, runs, scenarios))| FaultTotal {
            kind: kind.to_string(),
            fired,
            runs,
            scenarios: scenarios.len() as u64,
        })
        .collect()
}

fn open_entries(catalog: &[CatalogEntry], status: EntryStatus) -> Vec<OpenEntry> {
    catalog
        .iter()
        .filter(|e| e.status == status)
        .map(|e| OpenEntry {
            id: e.id.clone(),
            title: e.title.clone(),
            subsystem: e.subsystem.clone(),
            risk: e.risk,
            reason: e.reason.clone(),
        })
        .collect()
}
