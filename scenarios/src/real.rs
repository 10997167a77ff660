//! Runs a scenario's reality check: the same logic against this machine, with the real
//! worker binary as a child process, real loopback TCP, a real temporary directory and
//! real time (`chaos run ID --real`). Nothing here is deterministic; the verdict must
//! match the simulated one.

use crate::record::{RunRecord, Verdict};
use crate::scenario::{FailureClass, Scenario};
use crate::workers::Stage;
use engine::env::real::{RealEnvOptions, real_env};
use sim::FaultCounters;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Real time one reality check may take.
pub const REAL_TIME_MAX: Duration = Duration::from_secs(120);

/// Where `chaos` expects the worker binary: next to itself (cargo puts both in
/// `target/<profile>/`).
pub fn default_worker_program() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("worker"))
}

/// Runs `scenario`'s real body with `seed` and the worker binary at `program`.
pub fn run_real(
    scenario: &'static Scenario,
    seed: u64,
    program: &Path,
) -> Result<RunRecord, String> {
    let Some(body) = scenario.real else {
        return Err(format!(
            "{} has no reality check: it needs faults only the simulator can inject",
            scenario.id
        ));
    };
    if !program.is_file() {
        return Err(format!(
            "the worker binary is not at {}; build it with `cargo build --release -p engine --bin worker` or pass --worker-bin",
            program.display()
        ));
    }
    let dir = scratch_dir(scenario.id, seed)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    #[allow(
        clippy::disallowed_methods,
        clippy::disallowed_types,
        reason = "a reality check runs in real time; its wall time is reported, never hashed"
    )]
    let wall_start = std::time::Instant::now();
    let program = program.to_string_lossy().into_owned();
    // What the engine meets on this machine (a spawn the OS refuses, a worker killed
    // from outside) counts as it does in a simulated world: its `engine::met` events,
    // emitted on this thread, go to the run's counters. Scenario code counts nothing.
    let counters = FaultCounters::default();
    let route = sim::trace::route_to(None, counters.clone());
    let outcome = runtime.block_on(async {
        let env = real_env(RealEnvOptions::loopback(&dir));
        let stage = match Stage::real(env, program, seed, counters.clone()).await {
            Ok(stage) => stage,
            Err(failure) => return Ok(Err(failure)),
        };
        tokio::time::timeout(REAL_TIME_MAX, body(stage)).await
    });
    drop(runtime);
    drop(route);
    let faults = counters.snapshot();
    let wall_ms = wall_start.elapsed().as_millis() as u64;
    remove_scratch(&dir);
    let (verdict, failure_class, message) = match outcome {
        Ok(Ok(())) => (Verdict::Pass, None, None),
        Ok(Err(f)) => (Verdict::Fail, Some(f.class), Some(f.message)),
        Err(_) => (
            Verdict::Fail,
            Some(FailureClass::Liveness),
            Some(format!(
                "did not finish within {} s of real time",
                REAL_TIME_MAX.as_secs()
            )),
        ),
    };
    let (faults_expected, faults_expected_fired) =
        crate::runner::expected_faults(scenario, &faults);
    Ok(RunRecord {
        id: scenario.id.to_string(),
        seed,
        verdict,
        failure_class,
        message,
        trace_hash: "real".to_string(),
        sim_time_ns: 0,
        events: 0,
        faults,
        swarm_faults: Default::default(),
        faults_expected,
        faults_expected_fired,
        wall_ms,
        repro: format!(
            "cargo build --release -p engine --bin worker && cargo run --release -p scenarios --bin chaos -- run {} --seed {seed} --real",
            scenario.id
        ),
        plan_digest: None,
        provenance: None,
    })
}

#[allow(
    clippy::disallowed_methods,
    reason = "the reality check's scratch directory is real by definition"
)]
fn scratch_dir(id: &str, seed: u64) -> Result<PathBuf, String> {
    let safe: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = std::env::temp_dir().join(format!("chaos-real-{safe}-{seed}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

fn remove_scratch(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("warning: could not remove {}: {e}", dir.display());
    }
}
