//! Reality checks: every scenario that has one runs against this machine with the real
//! worker binary, and must reach the same verdict as in simulation (pass).

use scenarios::real::run_real;
use scenarios::record::Verdict;
use scenarios::registry;
use std::path::PathBuf;

/// `target/<profile>/worker`: the test binary lives in `target/<profile>/deps/`.
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary sits in target/<profile>/deps");
    let worker = profile_dir.join("worker");
    assert!(
        worker.is_file(),
        "the worker binary is missing at {}: run `cargo build -p engine --bin worker` first (ci/test.sh does)",
        worker.display()
    );
    worker
}

#[test]
fn reality_checks_pass_on_this_machine() {
    let worker = worker_binary();
    let checks: Vec<_> = registry::all()
        .into_iter()
        .filter(|s| s.real.is_some())
        .collect();
    assert!(
        checks.len() >= 10,
        "only {} scenarios have a reality check",
        checks.len()
    );
    // Their faults happen for real on this machine, and the real environment counts
    // them (a spawn the OS refuses, a worker killed from outside), not the scenario.
    let counted_for_real = ["pattern.1.1", "pattern.7.1", "core.EC-119"];
    let mut failures = Vec::new();
    for scenario in checks {
        let record = run_real(scenario, 1, &worker).expect("reality check runs");
        if record.verdict != Verdict::Pass {
            failures.push(format!("{}: {:?}", scenario.id, record.message));
        }
        if counted_for_real.contains(&scenario.id) && !record.faults_expected_fired {
            failures.push(format!(
                "{}: none of {:?} counted (faults: {:?})",
                scenario.id, record.faults_expected, record.faults
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "reality checks failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn scenarios_without_a_reality_check_say_so() {
    let worker = worker_binary();
    let sim_only = registry::find("pattern.1.4").expect("pattern.1.4 exists");
    let error = run_real(sim_only, 1, &worker).unwrap_err();
    assert!(error.contains("no reality check"), "{error}");
}
