//! Shrinking a failing run of a scenario that declares its fault plan (`Scenario::plan`):
//! the "same oracle" test a candidate must pass, the driver over
//! `sim::faults::shrink`, and the saved record (`chaos-shrunk/1`) that `chaos repro`
//! replays and `tests/regressions.rs` pins.
//!
//! Scenarios that inject their faults imperatively (the worker scenarios) declare no
//! plan; shrink does not apply to them.

use crate::record::{FailureClass, RunRecord, Verdict};
use crate::runner::{RunResult, run_scenario_with_plan};
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use sim::FaultPlan;
use sim::faults::shrink::{self, Attempt, Shrunk, fault_count};

/// Schema name of a shrunk record.
pub const SHRUNK_SCHEMA: &str = "chaos-shrunk/1";

/// `message` with every run of ASCII digits replaced by `#`: what stays of an oracle's
/// message when the numbers in it (a record number, a time, a byte count) move.
pub fn normalize_digits(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut in_digits = false;
    for c in message.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Which oracle failed, the same across runs: the failure class and the message with
/// its digits normalized. Two failures are "the same oracle" when their keys are equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleKey {
    pub class: FailureClass,
    pub message: String,
}

impl OracleKey {
    /// The key of a failed run (`None` for a passing one).
    pub fn of(record: &RunRecord) -> Option<OracleKey> {
        Some(OracleKey {
            class: record.failure_class?,
            message: normalize_digits(record.message.as_deref().unwrap_or("")),
        })
    }
}

/// Figures of one shrink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShrinkStats {
    /// The plan the shrink started from (the seed's own, or the one given).
    pub original_plan: FaultPlan,
    /// The original run's failure message and trace hash.
    pub original_message: String,
    pub original_trace_hash: String,
    /// Faults (an onset and its heal, resume or restart count as one) before and after.
    pub faults_before: usize,
    pub faults_after: usize,
    pub actions_before: usize,
    pub actions_after: usize,
    pub swarm_kinds_before: usize,
    pub swarm_kinds_after: usize,
    /// Runs the shrink used (candidates tried), within `max_runs`.
    pub runs: usize,
    pub max_runs: usize,
    /// Whether the run budget ran out before no step could shrink the plan further.
    pub budget_exhausted: bool,
}

/// A saved run with a given plan (schema `chaos-shrunk/1`): `chaos shrink` writes one for
/// the minimal plan; `chaos repro FILE` replays it; a copy in `scenarios/regressions/`
/// is a regression test (it must pass once the bug it found is fixed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShrunkRecord {
    /// Always `chaos-shrunk/1`.
    pub schema: String,
    pub id: String,
    pub seed: u64,
    /// The plan the run is given instead of the seed's (`run_scenario_with_plan`).
    pub plan: FaultPlan,
    pub verdict: Verdict,
    /// The failing oracle's class and message (`None` for a passing run).
    pub failure_class: Option<FailureClass>,
    pub message: Option<String>,
    /// Trace hash of the run with `plan`: a replay must give the same.
    pub trace_hash: String,
    /// How the plan was found (absent in hand-written records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrink: Option<ShrinkStats>,
}

impl ShrunkRecord {
    /// The record of `result`, a run of `id` at `seed` given `plan`.
    pub fn of_run(result: &RunResult, plan: FaultPlan, shrink: Option<ShrinkStats>) -> Self {
        let record = &result.record;
        ShrunkRecord {
            schema: SHRUNK_SCHEMA.to_string(),
            id: record.id.clone(),
            seed: record.seed,
            plan,
            verdict: record.verdict,
            failure_class: record.failure_class,
            message: record.message.clone(),
            trace_hash: record.trace_hash.clone(),
            shrink,
        }
    }

    /// The `schema` field of `text`, if it is a JSON object with one.
    fn schema_of(text: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct Schema {
            schema: Option<String>,
        }
        serde_json::from_str::<Schema>(text).ok()?.schema
    }

    /// Whether `text` claims to be a shrunk record (of any version).
    pub fn claims(text: &str) -> bool {
        Self::schema_of(text).is_some_and(|s| s.starts_with("chaos-shrunk/"))
    }

    /// Parses a shrunk record; the error names the file and what is wrong.
    pub fn parse(name: &str, text: &str) -> Result<ShrunkRecord, String> {
        if let Some(schema) = Self::schema_of(text).filter(|s| s != SHRUNK_SCHEMA) {
            return Err(format!(
                "{name} has schema {schema:?}; this build reads {SHRUNK_SCHEMA}"
            ));
        }
        serde_json::from_str(text)
            .map_err(|e| format!("{name} is not a valid {SHRUNK_SCHEMA} record: {e}"))
    }
}

/// Checks that `plan` names only hosts that `scenario`'s own plan for `seed` names: a
/// plan shrunk from it always does, and a plan naming another host would stop the run.
pub fn check_plan_fits(scenario: &Scenario, seed: u64, plan: &FaultPlan) -> Result<(), String> {
    let Some(own) = scenario.plan else {
        return Err(format!(
            "{} declares no fault plan, so it cannot be given one",
            scenario.id
        ));
    };
    let own = own.draw(seed);
    let mut hosts: Vec<String> = own
        .actions
        .iter()
        .flat_map(|a| a.fault.hosts())
        .map(str::to_string)
        .collect();
    hosts.sort();
    hosts.dedup();
    plan.validate(&hosts)
}

/// Why a run cannot be shrunk.
pub enum Refusal {
    /// The scenario injects its faults imperatively: there is no plan to reduce.
    NoPlan,
    /// The run passed: there is nothing to shrink.
    Passes(Box<RunResult>),
    /// The minimal plan did not fail the same way when run again.
    NotReproducible(String),
}

/// Everything a shrink produced.
pub struct ShrinkRun {
    pub original: RunResult,
    pub original_plan: FaultPlan,
    pub target: OracleKey,
    pub shrunk: Shrunk,
    /// The run with the minimal plan (run once more after the shrink).
    pub minimal: RunResult,
    pub record: ShrunkRecord,
}

/// Shrinks the failing run of `scenario` at `seed` with `given` (else its own plan):
/// candidates count as failing only with the same oracle (`OracleKey`).
pub fn shrink_run(
    scenario: &'static Scenario,
    seed: u64,
    given: Option<FaultPlan>,
    max_runs: usize,
    progress: &mut dyn FnMut(&Attempt<'_>),
) -> Result<ShrinkRun, Refusal> {
    let Some(own) = scenario.plan else {
        return Err(Refusal::NoPlan);
    };
    let original_plan = given.clone().unwrap_or_else(|| own.draw(seed));
    let original = run_scenario_with_plan(scenario, seed, given);
    let Some(target) = OracleKey::of(&original.record) else {
        return Err(Refusal::Passes(Box::new(original)));
    };
    let mut still_fails = |candidate: &FaultPlan| {
        let run = run_scenario_with_plan(scenario, seed, Some(candidate.clone()));
        OracleKey::of(&run.record).as_ref() == Some(&target)
    };
    let shrunk = shrink::shrink(&original_plan, max_runs, &mut still_fails, progress);
    let minimal = run_scenario_with_plan(scenario, seed, Some(shrunk.plan.clone()));
    if OracleKey::of(&minimal.record).as_ref() != Some(&target) {
        return Err(Refusal::NotReproducible(format!(
            "the minimal plan failed during the shrink but gave {:?}: {:?} when run again",
            minimal.record.failure_class, minimal.record.message
        )));
    }
    let stats = ShrinkStats {
        original_plan: original_plan.clone(),
        original_message: original.record.message.clone().unwrap_or_default(),
        original_trace_hash: original.record.trace_hash.clone(),
        faults_before: fault_count(&original_plan),
        faults_after: fault_count(&shrunk.plan),
        actions_before: original_plan.actions.len(),
        actions_after: shrunk.plan.actions.len(),
        swarm_kinds_before: original_plan.swarm.rates.len(),
        swarm_kinds_after: shrunk.plan.swarm.rates.len(),
        runs: shrunk.runs,
        max_runs,
        budget_exhausted: shrunk.budget_exhausted,
    };
    let record = ShrunkRecord::of_run(&minimal, shrunk.plan.clone(), Some(stats));
    Ok(ShrinkRun {
        original,
        original_plan,
        target,
        shrunk,
        minimal,
        record,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_normalized_run_by_run() {
        assert_eq!(
            normalize_digits("record 135 applied twice (1000 of 1000)"),
            "record # applied twice (# of #)"
        );
        assert_eq!(normalize_digits("no digits"), "no digits");
        assert_eq!(normalize_digits("12a3"), "#a#");
        assert_eq!(normalize_digits(""), "");
    }

    fn failed(class: FailureClass, message: &str) -> RunRecord {
        RunRecord {
            id: "x".into(),
            seed: 1,
            verdict: Verdict::Fail,
            failure_class: Some(class),
            message: Some(message.into()),
            trace_hash: String::new(),
            sim_time_ns: 0,
            events: 0,
            faults: Default::default(),
            swarm_faults: Default::default(),
            faults_expected: vec![],
            faults_expected_fired: false,
            wall_ms: 0,
            repro: String::new(),
            plan_digest: None,
            provenance: None,
        }
    }

    #[test]
    fn the_same_oracle_means_same_class_and_message_up_to_numbers() {
        let a = OracleKey::of(&failed(
            FailureClass::Correctness,
            "record 25 applied twice",
        ));
        let b = OracleKey::of(&failed(
            FailureClass::Correctness,
            "record 411 applied twice",
        ));
        let c = OracleKey::of(&failed(
            FailureClass::Correctness,
            "record 25 never applied",
        ));
        let d = OracleKey::of(&failed(FailureClass::Liveness, "record 25 applied twice"));
        assert!(a.is_some());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        let mut passed = failed(FailureClass::Crash, "");
        passed.verdict = Verdict::Pass;
        passed.failure_class = None;
        assert_eq!(OracleKey::of(&passed), None);
    }

    #[test]
    fn shrunk_records_round_trip_and_other_versions_are_named() {
        let record = ShrunkRecord {
            schema: SHRUNK_SCHEMA.into(),
            id: "sim.x".into(),
            seed: 3,
            plan: FaultPlan::default().at(5, sim::faults::Fault::HealAll),
            verdict: Verdict::Fail,
            failure_class: Some(FailureClass::Correctness),
            message: Some("boom".into()),
            trace_hash: "0123456789abcdef".into(),
            shrink: None,
        };
        let text = serde_json::to_string(&record).unwrap();
        assert!(ShrunkRecord::claims(&text));
        assert_eq!(ShrunkRecord::parse("f", &text).unwrap(), record);
        let v2 = text.replace(SHRUNK_SCHEMA, "chaos-shrunk/2");
        assert!(ShrunkRecord::claims(&v2));
        let err = ShrunkRecord::parse("f.json", &v2).unwrap_err();
        assert!(
            err.contains("f.json") && err.contains("chaos-shrunk/2"),
            "{err}"
        );
        assert!(!ShrunkRecord::claims(r#"{"id":"x"}"#));
        assert!(!ShrunkRecord::claims("not json"));
        let broken = ShrunkRecord::parse("g.json", r#"{"schema":"chaos-shrunk/1"}"#);
        assert!(broken.unwrap_err().contains("g.json"));
    }
}
