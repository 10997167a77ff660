//! Running scenarios: one run, or a sweep of scenarios × seeds across cores.

use crate::record::{RunRecord, Verdict, repro_command};
use crate::scenario::{FailureClass, Plan, Scenario};
use sim::trace::TraceSummary;
use sim::{FaultPlan, RunAbort, WorldOptions, run_world};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A run's record plus its trace (kept out of the record: it can be large).
pub struct RunResult {
    pub record: RunRecord,
    pub trace: TraceSummary,
}

/// Runs `scenario` once with `seed`.
pub fn run_scenario(scenario: &'static Scenario, seed: u64) -> RunResult {
    run_scenario_with_plan(scenario, seed, None)
}

/// Runs `scenario` once with `seed` and, when `plan` is given, that fault plan instead
/// of the one the scenario draws from the seed (`Scenario::plan`; a scenario without a
/// declared plan ignores it). Same seed and plan, same run.
pub fn run_scenario_with_plan(
    scenario: &'static Scenario,
    seed: u64,
    plan: Option<FaultPlan>,
) -> RunResult {
    let mut options = WorldOptions::new(seed);
    options.sim_time_max = scenario.sim_time_max;
    let plan_digest = plan_digest(scenario, seed, plan.as_ref());
    let world_plan = match scenario.plan {
        Some(Plan::World(draw)) => Some(plan.unwrap_or_else(|| draw(seed))),
        _ => {
            options.fault_plan = plan;
            None
        }
    };
    #[allow(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "wall time of a run is reported to people, never compared or hashed"
    )]
    let wall_start = std::time::Instant::now();
    let body = scenario.body;
    let report = run_world(options, move |world| async move {
        if let Some(plan) = world_plan {
            world.start_plan(plan);
        }
        let outcome = body(world.clone()).await;
        // A plan naming a host this world lacks tested something else than it says.
        match world.plan_misfit() {
            Some(misfit) => Err(crate::scenario::Failure::correctness(misfit)),
            None => outcome,
        }
    });
    let wall_ms = wall_start.elapsed().as_millis() as u64;
    let (verdict, failure_class, message) = match report.value {
        Ok(Ok(())) => (Verdict::Pass, None, None),
        Ok(Err(failure)) => (Verdict::Fail, Some(failure.class), Some(failure.message)),
        Err(RunAbort::Panic(message)) => (Verdict::Fail, Some(FailureClass::Crash), Some(message)),
        Err(RunAbort::WallTimeExceeded { budget_ms }) => (
            Verdict::Fail,
            Some(FailureClass::Liveness),
            Some(format!(
                "the run spun for {} s of real time without finishing: something loops \
                 without letting virtual time advance",
                budget_ms / 1000
            )),
        ),
        Err(RunAbort::SimTimeExceeded { budget_ns }) => (
            Verdict::Fail,
            Some(FailureClass::Liveness),
            Some(format!(
                "the run did not finish within its budget of {} s of virtual time",
                budget_ns / 1_000_000_000
            )),
        ),
    };
    let (faults_expected, faults_expected_fired) = expected_faults(scenario, &report.faults);
    RunResult {
        record: RunRecord {
            id: scenario.id.to_string(),
            seed,
            verdict,
            failure_class,
            message,
            trace_hash: report.trace.hash.clone(),
            sim_time_ns: report.sim_time_ns,
            events: report.trace.events,
            faults: report.faults,
            swarm_faults: report.swarm_faults,
            faults_expected,
            faults_expected_fired,
            wall_ms,
            repro: repro_command(scenario.id, seed),
            plan_digest,
            provenance: None,
        },
        trace: report.trace,
    }
}

/// The digest of the plan the run plays: the given one, else the one the seed draws;
/// `None` for a scenario that declares no plan (and ignores a given one).
fn plan_digest(scenario: &Scenario, seed: u64, given: Option<&FaultPlan>) -> Option<String> {
    let own = scenario.plan?;
    let drawn;
    let plan = match given {
        Some(plan) => plan,
        None => {
            drawn = own.draw(seed);
            &drawn
        }
    };
    // A plan is plain data; should encoding ever fail, the record says nothing.
    serde_json::to_string(plan)
        .ok()
        .map(|json| reports::provenance::digest(&json))
}

/// The scenario's own fault kinds, and whether any of them fired in `faults`.
pub fn expected_faults(
    scenario: &Scenario,
    faults: &std::collections::BTreeMap<String, u64>,
) -> (Vec<String>, bool) {
    let expected: Vec<String> = scenario
        .faults_expected
        .iter()
        .map(|s| s.to_string())
        .collect();
    let fired = expected
        .iter()
        .any(|kind| faults.get(kind).copied().unwrap_or(0) > 0);
    (expected, fired)
}

/// One unit of a sweep.
#[derive(Clone, Copy)]
pub struct Job {
    pub scenario: &'static Scenario,
    pub seed: u64,
}

/// Runs `jobs` on `workers` threads (each run starts its own world thread). Records come
/// back in job order whatever the completion order, so a sweep's output is
/// deterministic apart from wall times. `on_done` is called after each run.
pub fn sweep(
    jobs: &[Job],
    workers: usize,
    on_done: &(dyn Fn(&RunRecord) + Sync),
) -> Vec<RunRecord> {
    let workers = workers.clamp(1, 64);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunRecord>>> = Mutex::new(vec![None; jobs.len()]);
    let results = Arc::new(results);
    #[allow(
        clippy::disallowed_methods,
        reason = "a sweep spreads independent worlds over cores; each world is still one thread"
    )]
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else {
                        return;
                    };
                    let result = run_scenario(job.scenario, job.seed);
                    on_done(&result.record);
                    results.lock().expect("sweep results poisoned")[i] = Some(result.record);
                }
            });
        }
    });
    let results = std::mem::take(&mut *results.lock().expect("sweep results poisoned"));
    results
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect()
}
