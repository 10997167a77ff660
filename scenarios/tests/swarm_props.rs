//! Swarm property test over whole worlds: proptest draws a fault plan (episodes from a
//! world's vocabulary, a swarm rung per fault kind) and a workload (the seed) for each
//! plan-driven world, runs it deterministically, and requires its global oracles to hold.
//! On failure proptest shrinks the plan (fewer episodes, swarm kinds off, earlier and
//! shorter faults) and the message of the minimal case ends with the `chaos repro` and
//! `chaos shrink` lines for its saved plan (under `target/chaos-failures/`).
//!
//! `PROPTEST_CASES=N` runs more worlds than the default.

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use scenarios::fuzzing::simulation::{
    ENGINE_WORLDS, EPISODES_MAX, EpisodeInput, SimulationInput, run_case, worlds,
};

/// Worlds per run of the suite unless `PROPTEST_CASES` says otherwise.
const CASES_DEFAULT: u32 = 64;

#[allow(
    clippy::disallowed_methods,
    reason = "the test's own case count, read once before any world runs"
)]
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CASES_DEFAULT)
}

fn episode() -> impl Strategy<Value = EpisodeInput> {
    (any::<u8>(), any::<u16>(), any::<u16>()).prop_map(|(kind, at_ms, len_ms)| EpisodeInput {
        kind,
        at_ms,
        len_ms,
    })
}

fn world_input(world: u16) -> impl Strategy<Value = SimulationInput> {
    (
        0u64..1_000_000,
        proptest::collection::vec(episode(), 0..=EPISODES_MAX),
        proptest::array::uniform6(0u8..5),
    )
        .prop_map(move |(seed, episodes, swarm)| SimulationInput {
            world,
            seed,
            episodes,
            swarm,
        })
}

fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// Runs the input's world; its oracles must hold, and the world must be `id`.
fn world_holds(input: SimulationInput, id: &str) -> Result<(), TestCaseError> {
    let case = input.case();
    prop_assert_eq!(case.scenario.id, id);
    if let Err(report) = run_case(&case) {
        prop_assert!(false, "{}", report);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Two supervised workers under any plan: answers match their requests, recovery
    /// after the heal, no process left behind.
    #[test]
    fn workers_world_holds_its_oracles_under_any_plan(input in world_input(0)) {
        world_holds(input, "sim.workers.any-fault-plan")?;
    }

    /// Records over a faulty network: each applied exactly once, in order.
    #[test]
    fn network_world_holds_its_oracles_under_any_plan(input in world_input(1)) {
        world_holds(input, "sim.net.many-faults-exactly-once")?;
    }

    /// Any catalog scenario, its seed's own fixed plan, under any swarm of the timing
    /// kinds (late messages, slow disk operations, slow process starts): a correct
    /// engine only gets slower, so every oracle must still hold.
    #[test]
    fn catalog_scenarios_hold_their_oracles_under_any_timing_swarm(
        input in (0..worlds().len() - ENGINE_WORLDS)
            .prop_flat_map(|i| world_input((ENGINE_WORLDS + i) as u16))
    ) {
        let case = input.case();
        prop_assert!(!case.scenario.id.starts_with("sim."), "{}", case.scenario.id);
        if let Err(report) = run_case(&case) {
            prop_assert!(false, "{}", report);
        }
    }

    /// The whole engine (the VOPR): the seed's users under any plan of engine crashes,
    /// cut-off clients, pauses, clock jumps, full disks, killed workers and swarm.
    #[test]
    fn engine_world_holds_its_oracles_under_any_plan(input in world_input(2)) {
        world_holds(input, "vopr.engine")?;
    }
}
