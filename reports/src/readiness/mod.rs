//! The release readiness report as data (schema `chaos-readiness/2`): built once from
//! merged sweep files and the catalog, then rendered as Markdown, HTML, JSON and JUnit
//! XML (`crate::render`). Every rendering shows the same facts because they all read
//! this one structure; the JSON rendering *is* this structure, so each field here is
//! documented in `reports/SCHEMA.md`, and a change of meaning bumps the schema version.

mod build;
mod coverage;
mod date;
mod policy;
mod trend;
mod verdict;

pub use build::{KnownScenario, ReportInput, build, elapsed_of};
pub use date::Date;
pub use policy::{Policy, PolicyError, Waiver};
pub use trend::{Change, FaultChange, PreviousError, PreviousReport, ScenarioChange, Trend, trend};
pub use verdict::rules;

use crate::catalog::{EntryStatus, Risk};
use crate::record::FailureClass;
use crate::sweep_file::DeterminismFinding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `schema` value of the JSON rendering.
pub const READINESS_SCHEMA: &str = "chaos-readiness/2";

/// Earlier schemas this build still reads back (as `--previous`).
pub const READINESS_SCHEMAS_READ: [&str; 2] = ["chaos-readiness/1", READINESS_SCHEMA];

/// The whole report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub schema: String,
    /// When the report was made (UTC, RFC 3339). Wall clock: for people, never compared.
    pub generated_at: String,
    pub verdict: Verdict,
    /// The rules the verdicts follow, in words, as the report states them.
    pub rules: Vec<String>,
    /// The policy the coverage verdict followed, and every waiver in it.
    pub policy: PolicyReport,
    /// The comparison with an earlier report, when one was given (`--previous`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
    /// The build that ran the judged sweeps (all inputs agree: the merge refuses two
    /// builds); `None` when the inputs predate provenance.
    #[serde(default)]
    pub build: Option<crate::provenance::Provenance>,
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

/// Two named verdicts and their conjunction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// True when both verdicts pass: nothing blocks.
    pub ready: bool,
    /// Did this build get worse: failures, inert scenarios, determinism findings, partial
    /// input, runs unknown to this build. Blocks always.
    pub regression: Judgement,
    /// Is enough of the catalog tested: planned entries of the risks the policy blocks,
    /// unless waived; expired waivers.
    pub coverage: Judgement,
    /// Why it is not ready: the regression verdict's blockers first (partial input,
    /// failures, inert scenarios, determinism, unknown ids), then the coverage verdict's
    /// (expired waivers, planned entries).
    pub blocking: Vec<Blocker>,
}

/// One verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    /// Nothing blocks it.
    pub pass: bool,
    /// Its blockers in `Verdict::blocking`.
    pub blocking: u64,
    /// Planned entries that would block but a waiver in force accepts (coverage only).
    pub waived: u64,
}

/// Which of the two verdicts a blocker belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictName {
    Regression,
    Coverage,
}

impl VerdictName {
    pub fn name(self) -> &'static str {
        match self {
            VerdictName::Regression => "regression",
            VerdictName::Coverage => "coverage",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub kind: BlockerKind,
    /// The verdict it blocks (follows from `kind`).
    pub verdict: VerdictName,
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
    /// Runs of a scenario id this build does not know (another build's, or renamed).
    Unknown,
    /// A waiver that still covers a planned entry has expired.
    ExpiredWaiver,
    /// A planned entry of a risk the policy blocks, with no waiver.
    Planned,
}

impl BlockerKind {
    pub const ALL: [BlockerKind; 7] = [
        BlockerKind::PartialMerge,
        BlockerKind::Failing,
        BlockerKind::Inert,
        BlockerKind::Nondeterministic,
        BlockerKind::Unknown,
        BlockerKind::ExpiredWaiver,
        BlockerKind::Planned,
    ];

    /// The serialized name (`partial-merge`, …).
    pub fn name(self) -> &'static str {
        match self {
            BlockerKind::PartialMerge => "partial-merge",
            BlockerKind::Failing => "failing",
            BlockerKind::Inert => "inert",
            BlockerKind::Nondeterministic => "nondeterministic",
            BlockerKind::Unknown => "unknown",
            BlockerKind::ExpiredWaiver => "expired-waiver",
            BlockerKind::Planned => "planned",
        }
    }

    /// The words a person reads.
    pub fn label(self) -> &'static str {
        match self {
            BlockerKind::PartialMerge => "partial merge",
            BlockerKind::Failing => "failing",
            BlockerKind::Inert => "inert",
            BlockerKind::Nondeterministic => "nondeterministic",
            BlockerKind::Unknown => "unknown to this build",
            BlockerKind::ExpiredWaiver => "expired waiver",
            BlockerKind::Planned => "planned, not waived",
        }
    }

    /// The verdict it blocks.
    pub fn verdict(self) -> VerdictName {
        match self {
            BlockerKind::ExpiredWaiver | BlockerKind::Planned => VerdictName::Coverage,
            _ => VerdictName::Regression,
        }
    }
}

/// The policy as the report states it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// The policy file read, or `built-in default`.
    pub source: String,
    /// The day waivers were judged on (`YYYY-MM-DD`, UTC).
    pub today: String,
    /// Planned entries of these risks block the coverage verdict unless waived.
    pub blocking_risks: Vec<Risk>,
    /// Every waiver of the policy, in file order.
    pub waivers: Vec<WaiverReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaiverReport {
    /// A catalog id, or a pattern with `*`.
    pub entry: String,
    pub reason: String,
    pub owner: String,
    /// The last day it holds (`YYYY-MM-DD`).
    pub expires: String,
    pub status: WaiverStatus,
    /// The planned entries of a blocking risk it matches, in catalog order.
    pub covers: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaiverStatus {
    /// In force and covering at least one entry that would block.
    Used,
    /// Past its date while still covering an entry: blocks.
    Expired,
    /// Covers no planned entry of a blocking risk (implemented since, or a typo): a hint
    /// to remove it; never blocks.
    Unused,
}

impl WaiverStatus {
    pub fn name(self) -> &'static str {
        match self {
            WaiverStatus::Used => "used",
            WaiverStatus::Expired => "expired",
            WaiverStatus::Unused => "unused",
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
    /// Scenarios with runs whose id this build does not know (and not failing).
    #[serde(default)]
    pub scenarios_unknown: u64,
    /// Sum of the runs' wall times: machine time, larger than the elapsed time when runs
    /// ran in parallel. Wall clock: for people, never compared.
    pub wall_ms: u64,
    /// Elapsed wall time of the sweep: the longest input file's (shards run side by
    /// side); `None` when no input recorded it. Wall clock: for people, never compared.
    #[serde(default)]
    pub elapsed_ms: Option<u64>,
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
    /// For a source row, the seed document's title, when known.
    #[serde(default)]
    pub document_title: Option<String>,
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
    /// The seed document's file name, for catalog entries.
    pub document: Option<String>,
    /// The seed document's title, when known.
    #[serde(default)]
    pub document_title: Option<String>,
    /// The catalog subsystem; `simulator` for self-checks, `unknown` for ids this build
    /// does not know.
    pub subsystem: String,
    /// `None` outside the catalog.
    pub risk: Option<Risk>,
    /// `None` outside the catalog.
    pub catalog_status: Option<EntryStatus>,
    pub outcome: Outcome,
    /// None of its own faults fired in any of its runs (also set when it failed).
    pub inert: bool,
    /// Its id is unknown to this build (also set when it failed).
    #[serde(default)]
    pub unknown: bool,
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
    /// Runs of an id this build does not know, none failing: never counted as passed.
    Unknown,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Inert,
        Outcome::NotRun,
        Outcome::Unknown,
    ];

    /// The serialized name (`passed`, `not-run`, …).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Inert => "inert",
            Outcome::NotRun => "not-run",
            Outcome::Unknown => "unknown",
        }
    }

    /// The words a person reads (upper case where it must stand out).
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "FAILED",
            Outcome::Inert => "INERT",
            Outcome::NotRun => "not run",
            Outcome::Unknown => "UNKNOWN to this build",
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
    /// The command that shrinks it to a minimal fault schedule, for scenarios that
    /// declare a fault plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrink: Option<String>,
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

/// `1 run`, `2 runs`, `0 entries`: a count and its noun, singular only for one.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let plural = match noun.strip_suffix('y') {
        Some(stem) if !stem.ends_with(['a', 'e', 'o', 'u']) => format!("{stem}ies"),
        _ => format!("{noun}s"),
    };
    format!("{n} {plural}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(plural(1, "run"), "1 run");
        assert_eq!(plural(0, "run"), "0 runs");
        assert_eq!(plural(2, "fault"), "2 faults");
        assert_eq!(plural(1, "planned entry"), "1 planned entry");
        assert_eq!(plural(3, "planned entry"), "3 planned entries");
        assert_eq!(plural(2, "day"), "2 days");
        assert_eq!(plural(2, "sweep file"), "2 sweep files");
    }

    #[test]
    fn enum_names_are_their_serialized_forms() {
        for k in BlockerKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.name());
        }
        for v in [VerdictName::Regression, VerdictName::Coverage] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.name());
        }
        for w in [
            WaiverStatus::Used,
            WaiverStatus::Expired,
            WaiverStatus::Unused,
        ] {
            assert_eq!(serde_json::to_value(w).unwrap(), w.name());
        }
    }
}
