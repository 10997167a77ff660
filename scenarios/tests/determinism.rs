//! The determinism check (BRIEF §3 rule 5): every scenario run twice with one seed gives
//! the same trace hash and the same record; scenarios that draw randomness give
//! different hashes for different seeds.

use scenarios::registry;
use scenarios::runner::run_scenario;

fn comparable(mut r: scenarios::RunRecord) -> scenarios::RunRecord {
    r.wall_ms = 0;
    r
}

#[test]
fn same_seed_same_trace_hash_for_every_scenario() {
    for scenario in registry::all() {
        for seed in [1, 2, 0xDEAD_BEEF] {
            let first = comparable(run_scenario(scenario, seed).record);
            let second = run_scenario(scenario, seed);
            assert_eq!(
                first,
                comparable(second.record.clone()),
                "{} seed {seed} is not deterministic",
                scenario.id
            );
            assert!(
                first.passed(),
                "{} seed {seed} failed: {:?}",
                scenario.id,
                first.message
            );
            assert!(second.trace.events > 0, "{} recorded no trace", scenario.id);
        }
    }
}

#[test]
fn different_seeds_give_different_runs() {
    for scenario in registry::all() {
        let hashes: std::collections::BTreeSet<String> = (1..=4)
            .map(|seed| {
                let r = run_scenario(scenario, seed).record;
                format!("{}/{}", r.trace_hash, r.sim_time_ns)
            })
            .collect();
        assert!(
            hashes.len() > 1,
            "{}: four seeds gave one identical run; does it draw from its seed?",
            scenario.id
        );
    }
}

/// Worlds running side by side on several threads must not leak into each other (the
/// process-wide trace subscriber and panic hook are shared): a parallel sweep gives the
/// very records that serial runs give.
#[test]
fn parallel_sweep_matches_serial_runs() {
    use scenarios::runner::{Job, sweep};
    let jobs: Vec<Job> = registry::all()
        .into_iter()
        .flat_map(|scenario| (10..14).map(move |seed| Job { scenario, seed }))
        .collect();
    let parallel: Vec<_> = sweep(&jobs, 4, &|_| {})
        .into_iter()
        .map(comparable)
        .collect();
    let serial: Vec<_> = jobs
        .iter()
        .map(|j| comparable(run_scenario(j.scenario, j.seed).record))
        .collect();
    assert_eq!(parallel, serial);
}
