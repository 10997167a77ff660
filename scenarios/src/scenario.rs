//! What a scenario is (BRIEF §6): identity, world, workload, faults, oracles.
//!
//! A scenario is data plus one body function. The body builds its world (hosts, engine
//! configuration), starts its workload and fault plan, checks its oracles while it runs,
//! then heals every fault and requires convergence within a bound (the liveness phase).
//! A scenario whose faults are data declares its plan (`Scenario::plan`), so a run can
//! replace it (shrinking, replaying a shrunk plan).

use sim::World;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub use reports::FailureClass;

/// An oracle's verdict against the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub message: String,
}

impl Failure {
    pub fn correctness(message: impl Into<String>) -> Self {
        Failure {
            class: FailureClass::Correctness,
            message: message.into(),
        }
    }

    pub fn liveness(message: impl Into<String>) -> Self {
        Failure {
            class: FailureClass::Liveness,
            message: message.into(),
        }
    }
}

/// Result of a scenario body.
pub type Outcome = Result<(), Failure>;

/// The future a scenario body returns (it runs on the world's thread, so it need not be
/// `Send`).
pub type BodyFuture = Pin<Box<dyn Future<Output = Outcome>>>;

/// One scenario.
pub struct Scenario {
    /// Catalog id (`core.EC-001`), or `sim.…` for the simulator's own self-checks,
    /// which live outside the catalog.
    pub id: &'static str,
    pub title: &'static str,
    /// One paragraph: what a passing run proves.
    pub proves: &'static str,
    /// Fault kinds this scenario exists to exercise. A run in which none of them fired
    /// tested nothing; a scenario none of whose runs fired one is inert.
    pub faults_expected: &'static [&'static str],
    /// The source files whose behaviour this scenario proves: the cores that decide what
    /// its oracles judge (a shell where the behaviour lives there), as workspace-relative
    /// paths (`engine/src/sessions/core/queries.rs`; a `sim.*` self-check names
    /// `sim/src/…` files). The one hop from a scenario to the code it proves; the
    /// registry test checks that each path exists.
    pub cores: &'static [&'static str],
    /// Virtual-time budget of one run.
    pub sim_time_max: Duration,
    pub body: fn(World) -> BodyFuture,
    /// The same check against this machine (real processes, real time), for the
    /// scenarios that need no simulated-only fault: `chaos run ID --real`.
    pub real: Option<fn(crate::workers::Stage) -> BodyFuture>,
    /// The fault plan the scenario draws from a seed: its faults as data. A run can be
    /// given another plan instead (`runner::run_scenario_with_plan`): this is what
    /// `chaos shrink` reduces, `chaos repro` replays and the fuzzer writes. `None`
    /// only for self-checks that inject their faults imperatively.
    pub plan: Option<Plan>,
    /// Where the scenario is declared (`declared_here!()`): CI annotations point there.
    pub declared_at: SourceLine,
}

/// A line of the workspace's source: a workspace-relative path and a 1-based line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceLine {
    pub file: &'static str,
    pub line: u32,
}

/// The [`SourceLine`] of the outermost macro call that expands to it: inside a
/// scenario-declaring macro, the line that declares the scenario.
#[macro_export]
macro_rules! declared_here {
    () => {
        $crate::scenario::SourceLine {
            file: file!(),
            line: line!(),
        }
    };
}

/// Who applies a scenario's plan.
#[derive(Clone, Copy)]
pub enum Plan {
    /// The world, from the run's start (`World::start_plan`): the swarm on every host,
    /// timed actions at their times, triggered actions when the body marks their event
    /// (`World::mark`). Every catalog scenario's form: a fixed part that defines the
    /// edge case plus a swarm part drawn from the seed.
    World(fn(u64) -> sim::FaultPlan),
    /// The body, which takes it with `World::fault_plan` and applies it at moments of
    /// its own (the simulator's self-checks and the VOPR, whose episodes are built
    /// around restarts).
    Body(fn(u64) -> sim::FaultPlan),
}

impl Plan {
    /// The plan drawn from `seed`.
    pub fn draw(self, seed: u64) -> sim::FaultPlan {
        match self {
            Plan::World(draw) | Plan::Body(draw) => draw(seed),
        }
    }
}

/// Checks `condition`; on failure returns a correctness failure from the body.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::scenario::Failure::correctness(format!($($msg)+)));
        }
    };
}

/// Awaits `future` for at most `bound` of virtual time, or fails the liveness phase.
pub async fn converge<T>(
    what: &str,
    bound: Duration,
    future: impl Future<Output = T>,
) -> Result<T, Failure> {
    tokio::time::timeout(bound, future).await.map_err(|_| {
        Failure::liveness(format!(
            "{what} did not converge within {} ms of virtual time after faults healed",
            bound.as_millis()
        ))
    })
}
