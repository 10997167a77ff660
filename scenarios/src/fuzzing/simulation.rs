//! Coverage-guided simulation: the fuzzer's bytes become a whole world's fault plan.
//!
//! `arbitrary` turns the bytes into a [`SimulationInput`]: which world, its seed (the
//! workload), up to [`EPISODES_MAX`] fault episodes from that world's vocabulary, and a
//! swarm rung per fault kind. libFuzzer keeps inputs that reach new engine code, so the
//! fault schedule is steered toward what no run has exercised yet. An oracle failure
//! panics with the plan, and saves it as a `chaos-shrunk/1` record that `chaos repro`
//! replays and `chaos shrink --plan` reduces. The swarm property test
//! (`scenarios/tests/swarm_props.rs`) builds the same inputs with proptest.

use crate::runner::{RunResult, run_scenario_with_plan};
use crate::scenario::Scenario;
use crate::shrink::ShrunkRecord;
use crate::substrate::many;
use crate::vopr;
use crate::workers::any_plan;
use arbitrary::{Arbitrary, Unstructured};
use sim::FaultPlan;
use sim::faults::{LADDER, SwarmKind, SwarmPlan};
use std::path::PathBuf;

/// Episodes per plan, at most (more would mostly repeat a kind).
pub const EPISODES_MAX: usize = 8;

/// One fault episode: a kind from the world's vocabulary, when, and how long.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpisodeInput {
    pub kind: u8,
    pub at_ms: u16,
    pub len_ms: u16,
}

/// A whole run: which world, its seed, its fault episodes, its swarm.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct SimulationInput {
    pub world: u16,
    pub seed: u64,
    pub episodes: Vec<EpisodeInput>,
    /// Per swarm kind of the world, in order: 0 off, 1..=4 a rung of the ladder (taken
    /// modulo 5).
    pub swarm: [u8; 6],
}

/// A world the fuzzer can drive: a scenario that declares its plan, and how episodes
/// and swarm kinds become that plan.
#[derive(Clone, Copy)]
pub struct FuzzWorld {
    pub scenario: &'static Scenario,
    pub swarm_kinds: &'static [SwarmKind],
    pub episode: fn(FaultPlan, EpisodeInput) -> FaultPlan,
    /// The plan episodes are added to (the seed's workload, for a world that has one).
    pub base: fn(u64) -> FaultPlan,
}

/// Worlds before the catalog's: the self-checks and the VOPR, whose plans have an
/// episode vocabulary.
pub const ENGINE_WORLDS: usize = 3;

/// The worlds, in the order `SimulationInput::world` picks them (modulo their count):
/// the [`ENGINE_WORLDS`] with episodes, then every catalog scenario in registry order.
/// A catalog world keeps its seed's own plan (the fixed part that defines its edge
/// case) and takes its swarm from the input, over the timing kinds every catalog
/// oracle must survive; it has no episode vocabulary, so episodes are ignored.
pub fn worlds() -> Vec<FuzzWorld> {
    let mut worlds = vec![
        FuzzWorld {
            scenario: &any_plan::ANY_FAULT_PLAN,
            swarm_kinds: &any_plan::SWARM_KINDS,
            episode: workers_episode,
            base: no_workload,
        },
        FuzzWorld {
            scenario: &many::MANY_FAULTS_EXACTLY_ONCE,
            swarm_kinds: &[SwarmKind::NetReset],
            episode: net_episode,
            base: no_workload,
        },
        // The whole engine: the seed's users, the fuzzer's faults (its seventh swarm
        // kind, garbled-truncated output, has no rung in the input and stays off).
        FuzzWorld {
            scenario: &vopr::ENGINE,
            swarm_kinds: &vopr::SWARM_KINDS,
            episode: vopr_episode,
            base: vopr::workload_only,
        },
    ];
    worlds.extend(catalog_worlds());
    worlds
}

/// One world per catalog scenario that the world applies a plan to. Its swarm kinds
/// are the ones its own plan draws (a scenario that narrows its swarm, with a reason,
/// keeps it narrow here): each kind is on in half the seeds, so 64 seeds miss an
/// allowed kind with probability 2^-64.
fn catalog_worlds() -> Vec<FuzzWorld> {
    static WORLDS: std::sync::OnceLock<Vec<FuzzWorld>> = std::sync::OnceLock::new();
    WORLDS
        .get_or_init(|| {
            crate::registry::all()
                .into_iter()
                .filter(|s| !crate::registry::is_substrate(s.id))
                .filter_map(|scenario| match scenario.plan {
                    Some(crate::scenario::Plan::World(base)) => Some(FuzzWorld {
                        scenario,
                        swarm_kinds: Box::leak(swarm_kinds_of(base).into_boxed_slice()),
                        episode: no_episode,
                        base,
                    }),
                    _ => None,
                })
                .collect()
        })
        .clone()
}

/// The swarm kinds `plan` draws over the first 64 seeds, in `SwarmKind` order.
fn swarm_kinds_of(plan: fn(u64) -> FaultPlan) -> Vec<SwarmKind> {
    let mut kinds: Vec<SwarmKind> = (0..64)
        .flat_map(|seed| plan(seed).swarm.rates.into_keys())
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

fn no_episode(plan: FaultPlan, _e: EpisodeInput) -> FaultPlan {
    plan
}

fn no_workload(_seed: u64) -> FaultPlan {
    FaultPlan::default()
}

fn vopr_episode(plan: FaultPlan, e: EpisodeInput) -> FaultPlan {
    vopr::fuzz_episode(plan, e.kind, u64::from(e.at_ms), u64::from(e.len_ms))
}

fn workers_episode(plan: FaultPlan, e: EpisodeInput) -> FaultPlan {
    any_plan::Episode {
        kind: e.kind,
        at_ms: u64::from(e.at_ms),
        len_ms: u64::from(e.len_ms),
    }
    .actions(plan)
}

/// Inside the transfer's first 18 s, lasting up to 2 s.
fn net_episode(plan: FaultPlan, e: EpisodeInput) -> FaultPlan {
    let at = 100 + u64::from(e.at_ms) % 18_000;
    let until = at + 1 + u64::from(e.len_ms) % 2_000;
    let reversed = e.kind >= 128;
    many::episode_actions(plan, e.kind, at, until, reversed)
}

/// A run to make: the scenario, its seed and the plan that replaces the seed's own.
pub struct Case {
    pub scenario: &'static Scenario,
    pub seed: u64,
    pub plan: FaultPlan,
}

impl SimulationInput {
    /// The bytes' run, or `None` when they are too short to make one.
    pub fn from_bytes(data: &[u8]) -> Option<SimulationInput> {
        SimulationInput::arbitrary_take_rest(Unstructured::new(data)).ok()
    }

    pub fn case(&self) -> Case {
        let worlds = worlds();
        let world = &worlds[usize::from(self.world) % worlds.len()];
        let mut plan = (world.base)(self.seed);
        for episode in self.episodes.iter().take(EPISODES_MAX) {
            plan = (world.episode)(plan, *episode);
        }
        let mut swarm = SwarmPlan::default();
        for (kind, rung) in world.swarm_kinds.iter().zip(self.swarm) {
            if let Some(rate) = (rung % 5).checked_sub(1).map(|r| LADDER[usize::from(r)]) {
                swarm.rates.insert(*kind, rate);
            }
        }
        plan.swarm = swarm;
        Case {
            scenario: world.scenario,
            seed: self.seed,
            plan,
        }
    }
}

/// Runs the case; `Err` holds a report of the failure (plan, message, repro commands).
pub fn run_case(case: &Case) -> Result<RunResult, String> {
    let result = run_scenario_with_plan(case.scenario, case.seed, Some(case.plan.clone()));
    if result.record.passed() {
        return Ok(result);
    }
    Err(failure_report(case, &result))
}

/// The fuzz target: any oracle failure is a crash whose input is the plan.
pub fn simulation(data: &[u8]) {
    let Some(input) = SimulationInput::from_bytes(data) else {
        return;
    };
    if let Err(report) = run_case(&input.case()) {
        panic!("{report}");
    }
}

/// Where failing plans are saved: `$CHAOS_FAILURES_DIR`, else `target/chaos-failures`
/// of this workspace (found from this crate's source, so any working directory will do).
pub fn failures_dir() -> PathBuf {
    #[allow(
        clippy::disallowed_methods,
        reason = "a harness setting read once per failure, never by the simulated world"
    )]
    let dir = std::env::var_os("CHAOS_FAILURES_DIR");
    dir.map(PathBuf::from).unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/chaos-failures")
    })
}

/// The failure, its plan, and the commands that replay and shrink it. The plan is saved
/// as a `chaos-shrunk/1` record named by its trace hash (best effort: a report without
/// the file still names the seed and shows the plan).
fn failure_report(case: &Case, result: &RunResult) -> String {
    let record = &result.record;
    let mut lines = vec![format!(
        "{} seed {} failed ({}): {}",
        record.id,
        record.seed,
        record
            .failure_class
            .map(|c| format!("{c:?}").to_lowercase())
            .unwrap_or_default(),
        record.message.as_deref().unwrap_or("")
    )];
    lines.push("plan:".to_string());
    lines.extend(case.plan.describe().into_iter().map(|l| format!("  {l}")));
    let saved = ShrunkRecord::of_run(result, case.plan.clone(), None);
    let path = failures_dir().join(format!("{}-{}.json", record.id, record.trace_hash));
    match save(&path, &saved) {
        Ok(()) => {
            let file = path.display();
            lines.push(format!(
                "repro: cargo run --release -p scenarios --bin chaos -- repro {file}"
            ));
            lines.push(format!(
                "shrink: cargo run --release -p scenarios --bin chaos -- shrink {} --seed {} --plan {file}",
                record.id, record.seed
            ));
        }
        Err(e) => lines.push(format!(
            "(the plan could not be saved to {}: {e})",
            path.display()
        )),
    }
    lines.join("\n")
}

#[allow(
    clippy::disallowed_methods,
    reason = "the harness saves a failing plan for people; the world never reads it"
)]
fn save(path: &std::path::Path, record: &ShrunkRecord) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_are_capped_and_swarm_rungs_map_onto_the_ladder() {
        let input = SimulationInput {
            world: 0,
            seed: 3,
            episodes: vec![
                EpisodeInput {
                    kind: 0,
                    at_ms: 100,
                    len_ms: 10
                };
                20
            ],
            swarm: [0, 1, 2, 3, 4, 5],
        };
        let case = input.case();
        assert_eq!(case.scenario.id, "sim.workers.any-fault-plan");
        assert_eq!(case.plan.actions.len(), EPISODES_MAX);
        // Kinds in SWARM_KINDS order: crash off, hang, garble, truncate, spawn failure
        // on the four rungs, disk EIO off again (5 wraps to 0).
        let rates: Vec<_> = any_plan::SWARM_KINDS
            .iter()
            .map(|k| case.plan.swarm.rate(*k))
            .collect();
        let off = sim::Ratio::ZERO;
        assert_eq!(
            rates,
            vec![off, LADDER[0], LADDER[1], LADDER[2], LADDER[3], off]
        );
        let net = SimulationInput { world: 1, ..input }.case();
        assert_eq!(net.scenario.id, "sim.net.many-faults-exactly-once");
    }

    #[test]
    fn short_inputs_make_no_run_and_any_input_makes_a_fitting_plan() {
        assert!(SimulationInput::from_bytes(&[]).is_some_and(|i| i.episodes.is_empty()));
        for n in 0..64u8 {
            let bytes: Vec<u8> = (0..64)
                .map(|i| n.wrapping_mul(31).wrapping_add(i))
                .collect();
            let input = SimulationInput::from_bytes(&bytes).expect("64 bytes make an input");
            let case = input.case();
            crate::shrink::check_plan_fits(case.scenario, case.seed, &case.plan)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
