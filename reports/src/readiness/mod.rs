//! The release readiness report as data (schema `chaos-readiness/1`): built once from
//! merged sweep files and the catalog, then rendered as Markdown, HTML, JSON and JUnit
//! XML (`crate::render`). Every rendering shows the same facts because they all read
//! this one structure; the JSON rendering *is* this structure, so each field here is
//! documented in `reports/SCHEMA.md`, and a change of meaning bumps the schema version.

mod build;
mod coverage;
mod verdict;

pub use build::{ReportInput, build};
pub use verdict::RULES;

use crate::catalog::{EntryStatus, Risk};
use crate::record::FailureClass;
use crate::sweep_file::DeterminismFinding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `schema` value of the JSON rendering.
pub const READINESS_SCHEMA: &str = "chaos-readiness/1";

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub schema: String,
    /// When the report was made (UTC, RFC 3339). Wall clock: for people, never compared.
    pub generated_at: String,
    pub verdict: Verdict,
    /// The rules the verdict follows, in words, as the report states them.
    pub rules: Vec<String>,
    pub inputs: Inputs,
    pub totals: Totals,
    pub coverage: Coverage,
    /// Every scenario with runs in the input, and every `implemented` catalog entry
    /// without any (outcome `not-run`), in id order.
    pub scenarios: Vec<ScenarioReport>,
    /// Every failing run, in (id, seed) order.
    pub failures: Vec<FailedRun>,
    pub determinism: Determinism,
    /// Faults that fired, per kind, in kind order.
    pub faults: Vec<FaultTotal>,
    /// Catalog entries still `planned`, in catalog order.
    pub planned: Vec<OpenEntry>,
    /// Catalog entries `not-applicable`, with the reason, in catalog order.
    pub not_applicable: Vec<OpenEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when nothing blocks.
    pub ready: bool,
    /// Why it is not ready, most fundamental first (partial input, failures, inert
    /// scenarios, determinism, planned high-risk entries).
    pub blocking: Vec<Blocker>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub kind: BlockerKind,
    /// The scenario or catalog entry concerned, if one is.
    pub id: Option<String>,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockerKind {
    /// A shard of a sweep is missing from the input.
    PartialMerge,
    /// A scenario has a failing run.
    Failing,
    /// A scenario none of whose own faults fired in any of its runs.
    Inert,
    /// A scenario and seed gave two different traces.
    Nondeterministic,
    /// A high-risk catalog entry has no scenario yet.
    HighRiskPlanned,
}

impl BlockerKind {
    pub const ALL: [BlockerKind; 5] = [
        BlockerKind::PartialMerge,
        BlockerKind::Failing,
        BlockerKind::Inert,
        BlockerKind::Nondeterministic,
        BlockerKind::HighRiskPlanned,
    ];

    /// The serialized name (`partial-merge`, …).
    pub fn name(self) -> &'static str {
        match self {
            BlockerKind::PartialMerge => "partial-merge",
            BlockerKind::Failing => "failing",
            BlockerKind::Inert => "inert",
            BlockerKind::Nondeterministic => "nondeterministic",
            BlockerKind::HighRiskPlanned => "high-risk-planned",
        }
    }

    /// The words a person reads.
    pub fn label(self) -> &'static str {
        match self {
            BlockerKind::PartialMerge => "partial merge",
            BlockerKind::Failing => "failing",
            BlockerKind::Inert => "inert",
            BlockerKind::Nondeterministic => "nondeterministic",
            BlockerKind::HighRiskPlanned => "high-risk planned",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub files: Vec<InputFileReport>,
    /// Some shard is missing (see `missing_shards`).
    pub partial: bool,
    pub missing_shards: Vec<MissingShardReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFileReport {
    /// The path the file was read from, as given.
    pub name: String,
    /// `i/n`.
    pub shard: String,
    /// A bare list of runs written before the sweep file schema.
    pub legacy: bool,
    pub runs: u64,
    /// The sweep it belongs to, in words.
    pub sweep: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingShardReport {
    pub sweep: String,
    /// `i/n`.
    pub shard: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub runs: u64,
    pub runs_passed: u64,
    pub runs_failed: u64,
    /// Scenarios with at least one run.
    pub scenarios_run: u64,
    pub scenarios_passed: u64,
    pub scenarios_failed: u64,
    /// Inert and not failing (a failing inert scenario counts as failed).
    pub scenarios_inert: u64,
    /// `implemented` catalog entries with no run in the input.
    pub scenarios_not_run: u64,
    /// Sum of the runs' wall times. Wall clock: for people, never compared.
    pub wall_ms: u64,
}

/// Catalog coverage: entries counted by status, in several groupings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub total: CoverageRow,
    /// By source document (id prefix), in catalog order.
    pub by_source: Vec<CoverageRow>,
    /// By risk: high, medium, low.
    pub by_risk: Vec<CoverageRow>,
    /// By subsystem, in catalog order of first appearance.
    pub by_subsystem: Vec<CoverageRow>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageRow {
    /// The group: an id prefix (`core`), a risk (`high`), a subsystem, or `all`.
    pub key: String,
    /// For a source row, the seed document's file name.
    pub document: Option<String>,
    pub implemented: u64,
    pub planned: u64,
    pub not_applicable: u64,
    pub total: u64,
}

/// What the input says about one scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub id: String,
    /// The catalog title, or the self-check's title; `None` when unknown.
    pub title: Option<String>,
    /// The id prefix (`core`, `pattern`, `sim`, …).
    pub source: String,
    /// The seed document, for catalog entries.
    pub document: Option<String>,
    /// The catalog subsystem; `simulator` for self-checks, `uncataloged` otherwise.
    pub subsystem: String,
    /// `None` outside the catalog.
    pub risk: Option<Risk>,
    /// `None` outside the catalog.
    pub catalog_status: Option<EntryStatus>,
    pub outcome: Outcome,
    /// None of its own faults fired in any of its runs (also set when it failed).
    pub inert: bool,
    pub runs: u64,
    pub passed: u64,
    pub failed: u64,
    /// Runs in which at least one of its own fault kinds fired.
    pub runs_faults_fired: u64,
    /// Its own fault kinds (from its runs).
    pub faults_expected: Vec<String>,
    /// Faults that fired over its runs, per kind.
    pub faults: BTreeMap<String, u64>,
    /// Its failing run with the lowest seed.
    pub first_failure: Option<FailedRun>,
    /// Sum of its runs' wall times. Wall clock: for people, never compared.
    pub wall_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every run passed and its own faults fired in at least one.
    Passed,
    /// At least one run failed.
    Failed,
    /// Every run passed but none of its own faults ever fired: it tested nothing.
    Inert,
    /// `implemented` in the catalog, but no run in the input.
    NotRun,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Inert,
        Outcome::NotRun,
    ];

    /// The serialized name (`passed`, `not-run`, …).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Inert => "inert",
            Outcome::NotRun => "not-run",
        }
    }

    /// The words a person reads (upper case where it must stand out).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "FAILED",
            Outcome::Inert => "INERT",
            Outcome::NotRun => "not run",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRun {
    pub id: String,
    pub seed: u64,
    pub class: Option<FailureClass>,
    pub message: Option<String>,
    /// The command that replays the run.
    pub repro: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Determinism {
    /// Whether any input recorded a determinism check. `false`: nobody looked, which is
    /// not the same as "none found".
    pub recorded: bool,
    pub findings: Vec<DeterminismFinding>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultTotal {
    /// `device.what`, for example `net.reset`.
    pub kind: String,
    /// Times it fired over all runs.
    pub fired: u64,
    /// Runs in which it fired.
    pub runs: u64,
    /// Scenarios in whose runs it fired.
    pub scenarios: u64,
}

/// A catalog entry not covered by a scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenEntry {
    pub id: String,
    pub title: String,
    pub subsystem: String,
    pub risk: Risk,
    /// Why it is not applicable; empty for planned entries.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_are_their_serialized_forms() {
        for k in BlockerKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.name());
        }
    }
}
