//! The comparison with an earlier report (`chaos report --previous`): which scenarios
//! newly fail, which were fixed, which still fail; catalog coverage gained or lost; runs
//! and faults per kind, before → after.
//!
//! The earlier report is read through [`PreviousReport`], the few fields a trend needs,
//! which every schema this build reads (`chaos-readiness/1` and `/2`) has.

use super::{Outcome, READINESS_SCHEMAS_READ, Readiness};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// An earlier report, as much of it as a trend reads.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PreviousReport {
    /// The file it was read from (not in the file).
    #[serde(skip)]
    pub name: String,
    pub schema: String,
    pub generated_at: String,
    pub verdict: PreviousVerdict,
    pub totals: PreviousTotals,
    pub coverage: PreviousCoverage,
    pub scenarios: Vec<PreviousScenario>,
    pub faults: Vec<PreviousFault>,
    pub planned: Vec<PreviousEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PreviousVerdict {
    pub ready: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PreviousTotals {
    pub runs: u64,
    pub runs_failed: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PreviousCoverage {
    pub total: PreviousCounts,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PreviousCounts {
    pub implemented: u64,
    pub planned: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PreviousScenario {
    pub id: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PreviousFault {
    pub kind: String,
    pub fired: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PreviousEntry {
    pub id: String,
}

/// Why an earlier report could not be read. Its display names the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousError {
    pub file: String,
    pub message: String,
}

impl fmt::Display for PreviousError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for PreviousError {}

#[derive(Deserialize)]
struct Probe {
    schema: Option<serde_json::Value>,
}

impl PreviousReport {
    /// Parses the text of the report file `name` (a `readiness.json`).
    pub fn parse(name: &str, text: &str) -> Result<PreviousReport, PreviousError> {
        let error = |message: String| PreviousError {
            file: name.to_string(),
            message,
        };
        let probe: Probe = serde_json::from_str(text)
            .map_err(|e| error(format!("not a readiness report (not valid JSON: {e})")))?;
        match probe.schema {
            Some(serde_json::Value::String(s)) if READINESS_SCHEMAS_READ.contains(&s.as_str()) => {}
            Some(other) => {
                return Err(error(format!(
                    "schema {other}, but this build reads {}",
                    READINESS_SCHEMAS_READ.join(" and ")
                )));
            }
            None => {
                return Err(error(
                    "no \"schema\" field: not a readiness report".to_string(),
                ));
            }
        }
        let mut report: PreviousReport = serde_json::from_str(text)
            .map_err(|e| error(format!("malformed readiness report: {e}")))?;
        report.name = name.to_string();
        Ok(report)
    }
}

/// What changed since the earlier report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trend {
    /// The earlier report: the file it was read from, when it was made, its schema.
    pub previous_file: String,
    pub previous_generated_at: String,
    pub previous_schema: String,
    pub previous_ready: bool,
    /// Failing now (failed, inert or unknown), not before (passed, not run, or absent).
    pub newly_failing: Vec<ScenarioChange>,
    /// Failing before, passed now.
    pub fixed: Vec<ScenarioChange>,
    /// Failing before and now.
    pub still_failing: Vec<ScenarioChange>,
    /// Failing before, with no run now (not run or absent): neither fixed nor failing.
    pub no_longer_run: Vec<ScenarioChange>,
    /// Catalog entries planned before and not now (implemented, or no longer planned).
    pub coverage_gained: Vec<String>,
    /// Catalog entries planned now and not before.
    pub coverage_lost: Vec<String>,
    /// Implemented catalog entries.
    pub implemented: Change,
    /// Planned catalog entries.
    pub planned: Change,
    pub runs: Change,
    pub runs_failed: Change,
    /// Faults fired, per kind that fired in either report, in kind order.
    pub faults: Vec<FaultChange>,
}

/// A scenario's outcome before and after (`absent` when a report does not list it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioChange {
    pub id: String,
    pub before: String,
    pub after: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub before: u64,
    pub after: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultChange {
    pub kind: String,
    pub before: u64,
    pub after: u64,
}

/// Outcomes that block the regression verdict.
fn failing(o: Outcome) -> bool {
    matches!(o, Outcome::Failed | Outcome::Inert | Outcome::Unknown)
}

/// Compares `now` with the earlier report.
pub fn trend(previous: &PreviousReport, now: &Readiness) -> Trend {
    let before: BTreeMap<&str, Outcome> = previous
        .scenarios
        .iter()
        .map(|s| (s.id.as_str(), s.outcome))
        .collect();
    let after: BTreeMap<&str, Outcome> = now
        .scenarios
        .iter()
        .map(|s| (s.id.as_str(), s.outcome))
        .collect();
    let ids: BTreeSet<&str> = before.keys().chain(after.keys()).copied().collect();
    let name = |o: Option<&Outcome>| o.map_or("absent", |o| o.name()).to_string();
    let mut t = Trend {
        previous_file: previous.name.clone(),
        previous_generated_at: previous.generated_at.clone(),
        previous_schema: previous.schema.clone(),
        previous_ready: previous.verdict.ready,
        newly_failing: Vec::new(),
        fixed: Vec::new(),
        still_failing: Vec::new(),
        no_longer_run: Vec::new(),
        coverage_gained: Vec::new(),
        coverage_lost: Vec::new(),
        implemented: Change {
            before: previous.coverage.total.implemented,
            after: now.coverage.total.implemented,
        },
        planned: Change {
            before: previous.coverage.total.planned,
            after: now.coverage.total.planned,
        },
        runs: Change {
            before: previous.totals.runs,
            after: now.totals.runs,
        },
        runs_failed: Change {
            before: previous.totals.runs_failed,
            after: now.totals.runs_failed,
        },
        faults: Vec::new(),
    };
    for id in ids {
        let (b, a) = (before.get(id), after.get(id));
        let change = ScenarioChange {
            id: id.to_string(),
            before: name(b),
            after: name(a),
        };
        let was = b.is_some_and(|o| failing(*o));
        let is = a.is_some_and(|o| failing(*o));
        match (was, is) {
            (false, true) => t.newly_failing.push(change),
            (true, true) => t.still_failing.push(change),
            (true, false) if a == Some(&Outcome::Passed) => t.fixed.push(change),
            (true, false) => t.no_longer_run.push(change),
            (false, false) => {}
        }
    }
    let planned_before: BTreeSet<&str> = previous.planned.iter().map(|e| e.id.as_str()).collect();
    let planned_now: BTreeSet<&str> = now.planned.iter().map(|e| e.id.as_str()).collect();
    t.coverage_gained = planned_before
        .difference(&planned_now)
        .map(|s| s.to_string())
        .collect();
    t.coverage_lost = planned_now
        .difference(&planned_before)
        .map(|s| s.to_string())
        .collect();
    let mut faults: BTreeMap<&str, Change> = BTreeMap::new();
    for f in &previous.faults {
        faults.entry(&f.kind).or_default().before = f.fired;
    }
    for f in &now.faults {
        faults.entry(&f.kind).or_default().after = f.fired;
    }
    t.faults = faults
        .into_iter()
        .map(|(kind, c)| FaultChange {
            kind: kind.to_string(),
            before: c.before,
            after: c.after,
        })
        .collect();
    t
}

impl Trend {
    /// Nothing moved: no scenario changed sides and coverage stayed.
    pub fn is_quiet(&self) -> bool {
        self.newly_failing.is_empty()
            && self.fixed.is_empty()
            && self.no_longer_run.is_empty()
            && self.coverage_gained.is_empty()
            && self.coverage_lost.is_empty()
    }
}
