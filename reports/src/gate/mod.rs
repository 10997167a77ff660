//! The regression gate's judgement (`chaos gate`): a fixed sweep's records compared with
//! a committed baseline of expected statuses, plus the determinism re-runs.
//!
//! Pure: the CLI runs the sweep and reads and writes the baseline file. The gate fails
//! when a scenario that passed now fails, when a scenario the baseline or the catalog
//! expects is gone, when a scenario is inert (none of its own faults fired in any run),
//! when a new scenario fails, and when a same-seed re-run gives a different trace.

use crate::provenance::Provenance;
use crate::record::RunRecord;
use crate::summary::summarize;
use crate::sweep_file::DeterminismFinding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The `schema` value of baseline files.
pub const BASELINE_SCHEMA: &str = "chaos-gate-baseline/1";

/// What the gate expects of one scenario over the fixed sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// Every run passes.
    Pass,
    /// A known failure: some run fails (still reported, not a regression).
    Fail,
}

/// The committed baseline: the fixed sweep (so a red gate reproduces from its log
/// alone) and each scenario's expected status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub schema: String,
    pub seed_start: u64,
    /// Seeds per scenario.
    pub seeds: u64,
    /// Runs re-run with the same seed to check determinism.
    pub determinism_sample: u64,
    pub scenarios: BTreeMap<String, Expected>,
    /// Why each expected failure was accepted (`chaos gate --accept --accept-failure ID
    /// --reason TEXT`); later gates print it beside the known failure. Absent in
    /// baselines written before reviews.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reasons: BTreeMap<String, String>,
    /// The build that recorded the baseline. Absent in older baselines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

impl Baseline {
    /// Reads a baseline; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Baseline, String> {
        let baseline: Baseline =
            serde_json::from_str(text).map_err(|e| format!("not a gate baseline: {e}"))?;
        if baseline.schema != BASELINE_SCHEMA {
            return Err(format!(
                "schema {:?}, expected {BASELINE_SCHEMA:?}",
                baseline.schema
            ));
        }
        if baseline.seeds == 0 {
            return Err("seeds must be at least 1".to_string());
        }
        if baseline
            .seed_start
            .checked_add(baseline.seeds - 1)
            .is_none()
        {
            return Err("seed_start + seeds overflows a 64-bit seed".to_string());
        }
        Ok(baseline)
    }

    /// The baseline that accepts `records` as they are.
    pub fn accept(
        records: &[RunRecord],
        seed_start: u64,
        seeds: u64,
        determinism_sample: u64,
    ) -> Baseline {
        let scenarios = summarize(records)
            .into_iter()
            .map(|s| {
                let expected = if s.failed == 0 {
                    Expected::Pass
                } else {
                    Expected::Fail
                };
                (s.id, expected)
            })
            .collect();
        Baseline {
            schema: BASELINE_SCHEMA.to_string(),
            seed_start,
            seeds,
            determinism_sample,
            scenarios,
            reasons: BTreeMap::new(),
            provenance: None,
        }
    }

    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// Why the gate is red.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FindingKind {
    /// Passed in the baseline, fails now.
    Regression,
    /// Not in the baseline, and fails.
    NewFailure,
    /// In the baseline or implemented in the catalog, but no scenario ran.
    Disappeared,
    /// None of its own faults fired in any run: it tested nothing.
    Inert,
    /// A same-seed re-run gave a different trace.
    Nondeterministic,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Regression => "regression",
            FindingKind::NewFailure => "new scenario fails",
            FindingKind::Disappeared => "disappeared",
            FindingKind::Inert => "inert",
            FindingKind::Nondeterministic => "nondeterministic",
        }
    }
}

/// One reason the gate is red.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub id: String,
    pub seed: Option<u64>,
    pub message: String,
    /// The one command that reproduces it.
    pub repro: Option<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.id)?;
        if let Some(seed) = self.seed {
            write!(f, " seed {seed}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The gate's judgement: red findings, and notes that do not fail it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GateOutcome {
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

impl GateOutcome {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Failing runs reported per scenario (the first ones, in seed order).
const FAILURES_PER_SCENARIO: usize = 5;

/// Judges `records` of the fixed sweep against `baseline`. `implemented` are the ids the
/// catalog marks implemented; `determinism` the re-runs that disagreed.
pub fn judge(
    baseline: &Baseline,
    records: &[RunRecord],
    implemented: &[String],
    determinism: &[DeterminismFinding],
) -> GateOutcome {
    let mut out = GateOutcome::default();
    let summaries = summarize(records);
    let ran: BTreeMap<&str, _> = summaries.iter().map(|s| (s.id.as_str(), s)).collect();
    for s in &summaries {
        let expected = baseline.scenarios.get(&s.id).copied();
        if s.failed > 0 {
            match expected {
                Some(Expected::Fail) => out.notes.push(format!(
                    "{}: known failure (fails {} of {}){}",
                    s.id,
                    s.failed,
                    crate::readiness::plural(s.runs, "run"),
                    baseline
                        .reasons
                        .get(&s.id)
                        .map_or(String::new(), |why| format!(", accepted because: {why}"))
                )),
                Some(Expected::Pass) | None => {
                    let kind = if expected.is_some() {
                        FindingKind::Regression
                    } else {
                        FindingKind::NewFailure
                    };
                    let failing = records.iter().filter(|r| r.id == s.id && !r.passed());
                    for r in failing.take(FAILURES_PER_SCENARIO) {
                        out.findings.push(Finding {
                            kind,
                            id: s.id.clone(),
                            seed: Some(r.seed),
                            message: format!(
                                "{} failure: {}",
                                r.failure_class.map_or("unclassified", |c| c.name()),
                                r.message.as_deref().unwrap_or("no message")
                            ),
                            repro: Some(r.repro.clone()),
                        });
                    }
                    if s.failed as usize > FAILURES_PER_SCENARIO {
                        out.notes.push(format!(
                            "{}: {} more failing runs not listed",
                            s.id,
                            s.failed as usize - FAILURES_PER_SCENARIO
                        ));
                    }
                }
            }
        } else if expected == Some(Expected::Fail) {
            out.notes.push(format!(
                "{}: fixed (the baseline expects a failure); `chaos gate --accept` records it",
                s.id
            ));
        } else if expected.is_none() {
            out.notes.push(format!(
                "{}: new scenario, passing; `chaos gate --accept` adds it to the baseline",
                s.id
            ));
        }
        if s.inert() {
            out.findings.push(Finding {
                kind: FindingKind::Inert,
                id: s.id.clone(),
                seed: None,
                message: format!(
                    "none of its own faults fired in its {}: it tested nothing",
                    crate::readiness::plural(s.runs, "run")
                ),
                repro: records
                    .iter()
                    .find(|r| r.id == s.id)
                    .map(|r| r.repro.clone()),
            });
        }
    }
    let expected_ids = baseline
        .scenarios
        .keys()
        .map(String::as_str)
        .chain(implemented.iter().map(String::as_str));
    let mut gone: Vec<&str> = expected_ids.filter(|id| !ran.contains_key(id)).collect();
    gone.sort_unstable();
    gone.dedup();
    for id in gone {
        let why = if baseline.scenarios.contains_key(id) {
            "the baseline expects it"
        } else {
            "the catalog marks it implemented"
        };
        out.findings.push(Finding {
            kind: FindingKind::Disappeared,
            id: id.to_string(),
            seed: None,
            message: format!("no scenario ran, but {why}"),
            repro: None,
        });
    }
    for d in determinism {
        out.findings.push(Finding {
            kind: FindingKind::Nondeterministic,
            id: d.id.clone(),
            seed: Some(d.seed),
            message: format!(
                "two runs gave trace hashes {} and {}; first difference: {}",
                d.first_hash,
                d.second_hash,
                d.first_difference
                    .as_deref()
                    .unwrap_or("not found in the kept trace lines")
            ),
            repro: records
                .iter()
                .find(|r| r.id == d.id && r.seed == d.seed)
                .map(|r| r.repro.clone()),
        });
    }
    out.findings
        .sort_by(|a, b| (a.kind, &a.id, a.seed).cmp(&(b.kind, &b.id, b.seed)));
    out
}

/// Indices of `sample` jobs spread evenly over `jobs` jobs (all of them if fewer).
pub fn sample_indices(jobs: usize, sample: usize) -> Vec<usize> {
    if sample >= jobs {
        return (0..jobs).collect();
    }
    (0..sample).map(|k| k * jobs / sample).collect()
}

pub mod review;

#[cfg(test)]
mod tests;
