//! Fault-plan records from outside: plans (`chaos shrink --plan`), shrunk records
//! (`chaos repro`) and sweep files (`chaos report`, `chaos gate --from`). Plans are also
//! fed to the pure shrinker, whose contract must hold for any plan.

use crate::shrink::ShrunkRecord;
use reports::merge::merge;
use reports::summary::summarize;
use reports::sweep_file::SweepFile;
use sim::FaultPlan;
use sim::faults::shrink::{fault_count, shrink};

/// Larger plans are refused before shrinking, to keep one iteration fast.
const ACTIONS_MAX: usize = 64;
const SHRINK_RUNS_MAX: usize = 200;

/// First byte picks the reader; the rest is the file's text.
pub fn fault_plan(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 3 {
        0 => plan(&text),
        1 => shrunk(&text),
        _ => sweep(&text),
    }
}

fn plan(text: &str) {
    let Ok(plan) = serde_json::from_str::<FaultPlan>(text) else {
        return;
    };
    let written = serde_json::to_string(&plan).expect("a plan serializes");
    let again: FaultPlan = serde_json::from_str(&written)
        .unwrap_or_else(|e| panic!("a plan, written back, is refused: {e}\n{written}"));
    assert_eq!(again, plan, "plan round trip");
    let lines = plan.describe();
    assert_eq!(
        lines.len(),
        plan.actions.len() + 1,
        "one line per action and the swarm"
    );
    if plan.actions.len() <= ACTIONS_MAX {
        check_shrink(&plan);
    }
}

/// The shrinker's contract on any plan: it keeps the property its predicate tests (here:
/// "holds an action of the last action's kind"), never grows the plan, and stays within
/// its run budget.
fn check_shrink(plan: &FaultPlan) {
    let Some(last) = plan.actions.last() else {
        return;
    };
    let kind = kind_of(&last.fault);
    let holds = |p: &FaultPlan| p.actions.iter().any(|a| kind_of(&a.fault) == kind);
    let mut calls = 0usize;
    let shrunk = shrink(
        plan,
        SHRINK_RUNS_MAX,
        &mut |candidate| {
            calls += 1;
            holds(candidate)
        },
        &mut |_| {},
    );
    assert!(
        holds(&shrunk.plan),
        "the shrunk plan lost the {kind} it had to keep"
    );
    assert!(
        fault_count(&shrunk.plan) <= fault_count(plan),
        "shrinking grew the plan from {} to {} faults",
        fault_count(plan),
        fault_count(&shrunk.plan)
    );
    assert!(
        shrunk.runs <= SHRINK_RUNS_MAX && calls == shrunk.runs,
        "{} runs reported, {calls} made, budget {SHRINK_RUNS_MAX}",
        shrunk.runs
    );
}

/// The serialized tag of a fault (`partition`, `pause_host`…).
fn kind_of(fault: &sim::faults::Fault) -> String {
    let value = serde_json::to_value(fault).expect("a fault serializes");
    value["kind"].as_str().unwrap_or_default().to_string()
}

fn shrunk(text: &str) {
    let Ok(record) = ShrunkRecord::parse("input", text) else {
        return;
    };
    let written = serde_json::to_string(&record).expect("a shrunk record serializes");
    match ShrunkRecord::parse("written", &written) {
        Ok(again) => assert_eq!(again, record, "shrunk record round trip"),
        Err(e) => panic!("a shrunk record, written back, is refused: {e}"),
    }
}

fn sweep(text: &str) {
    let Ok(loaded) = SweepFile::parse("input", text) else {
        return;
    };
    let records = loaded.file.records.len();
    let _ = summarize(&loaded.file.records);
    if let Ok(merged) = merge(vec![loaded]) {
        assert_eq!(
            merged.records.len(),
            records,
            "merging one file changed its records"
        );
    }
}
