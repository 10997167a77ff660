//! Per-scenario summary of a sweep: the table `chaos sweep` prints.

use crate::record::RunRecord;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// What a sweep found for one scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScenarioSummary {
    pub id: String,
    pub runs: u64,
    pub passed: u64,
    pub failed: u64,
    /// Runs in which at least one of the scenario's own faults fired.
    pub runs_with_expected_faults: u64,
    /// Faults that fired over all runs, per kind.
    pub faults: BTreeMap<String, u64>,
    /// The first failing run's repro line.
    pub first_failure: Option<String>,
}

impl ScenarioSummary {
    /// None of the scenario's own faults fired in any run: it tested nothing.
    pub fn inert(&self) -> bool {
        self.runs > 0 && self.runs_with_expected_faults == 0
    }
}

/// Groups records by scenario, in first-seen order.
pub fn summarize(records: &[RunRecord]) -> Vec<ScenarioSummary> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: BTreeMap<String, ScenarioSummary> = BTreeMap::new();
    for r in records {
        let s = by_id.entry(r.id.clone()).or_insert_with(|| {
            order.push(r.id.clone());
            ScenarioSummary {
                id: r.id.clone(),
                ..ScenarioSummary::default()
            }
        });
        s.runs += 1;
        if r.passed() {
            s.passed += 1;
        } else {
            s.failed += 1;
            if s.first_failure.is_none() {
                s.first_failure = Some(r.repro.clone());
            }
        }
        if r.faults_expected_fired {
            s.runs_with_expected_faults += 1;
        }
        for (kind, n) in &r.faults {
            *s.faults.entry(kind.clone()).or_insert(0) += n;
        }
    }
    order
        .into_iter()
        .filter_map(|id| by_id.remove(&id))
        .collect()
}

/// A plain-text table of summaries.
pub fn render_table(summaries: &[ScenarioSummary]) -> String {
    let width = summaries
        .iter()
        .map(|s| s.id.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>5}  {:>5}  {:>5}  {:>8}  faults fired",
        "scenario", "runs", "pass", "fail", "fired in"
    );
    for s in summaries {
        let faults: Vec<String> = s.faults.iter().map(|(k, n)| format!("{k}={n}")).collect();
        let status = if s.failed > 0 {
            "FAIL"
        } else if s.inert() {
            "INERT"
        } else {
            "ok"
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:>5}  {:>5}  {:>5}  {:>8}  {}  [{status}]",
            s.id,
            s.runs,
            s.passed,
            s.failed,
            format!("{}/{}", s.runs_with_expected_faults, s.runs),
            faults.join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FailureClass, Verdict};

    fn record(id: &str, seed: u64, pass: bool, fired: bool) -> RunRecord {
        RunRecord {
            id: id.to_string(),
            seed,
            verdict: if pass { Verdict::Pass } else { Verdict::Fail },
            failure_class: (!pass).then_some(FailureClass::Correctness),
            message: None,
            trace_hash: "0".repeat(16),
            sim_time_ns: 1,
            events: 1,
            faults: if fired {
                BTreeMap::from([("net.reset".to_string(), 2)])
            } else {
                BTreeMap::new()
            },
            swarm_faults: BTreeMap::new(),
            faults_expected: vec!["net.reset".to_string()],
            faults_expected_fired: fired,
            wall_ms: 0,
            repro: format!("repro {id} {seed}"),
            plan_digest: None,
            provenance: None,
        }
    }

    #[test]
    fn summaries_count_failures_and_flag_inert_scenarios() {
        let records = vec![
            record("b", 1, true, true),
            record("a", 1, true, false),
            record("b", 2, false, true),
            record("a", 2, true, false),
        ];
        let s = summarize(&records);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].id, "b", "first-seen order");
        assert_eq!((s[0].runs, s[0].passed, s[0].failed), (2, 1, 1));
        assert_eq!(s[0].first_failure.as_deref(), Some("repro b 2"));
        assert_eq!(s[0].faults["net.reset"], 4);
        assert!(!s[0].inert());
        assert!(
            s[1].inert(),
            "a scenario whose faults never fired is inert, not passed"
        );
        let table = render_table(&s);
        assert!(
            table.contains("[FAIL]") && table.contains("[INERT]"),
            "{table}"
        );
    }
}
