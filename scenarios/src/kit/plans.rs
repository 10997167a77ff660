//! Catalog scenarios' fault plans: a fixed part that defines the edge case (its own
//! actions, timed or triggered by an event the body marks) and a swarm part drawn from
//! the seed, from the kinds relevant to the subsystem.
//!
//! Each kind of a subsystem's swarm is on in about half the seeds, at a rate from the
//! ladder (1/1000 to 1/5), so some runs meet a storm of one kind and others none. The
//! timing kinds (late messages, slow disk operations, slow process starts) must leave
//! every outcome-judging oracle true: a correct engine only gets slower under them. A
//! scenario that needs quiet to judge says so in its plan (a narrower swarm, with the
//! reason beside it) or in its body (`World::quiet("why")` before the judging phase).

use sim::FaultPlan;
use sim::faults::{Fault, SwarmKind, SwarmPlan};

/// The channel stage (gateway and sessions on one engine host, clients on their own):
/// its traffic crosses the network, its replay log and store touch the disk, its warm
/// pool starts workers, and (when the stage hosts one) its model API answers late.
pub const CHANNEL_SWARM: &[SwarmKind] = &[
    SwarmKind::NetDelay,
    SwarmKind::DiskSlow,
    SwarmKind::ProcSlowStart,
    SwarmKind::UpstreamSlow,
];

/// The workers stage: the worker manager starting, watching and talking to processes.
pub const WORKERS_SWARM: &[SwarmKind] = &[
    SwarmKind::NetDelay,
    SwarmKind::DiskSlow,
    SwarmKind::ProcSlowStart,
];

/// A plan with no fixed part and a swarm over `kinds`, drawn from `seed`.
pub fn swarm(seed: u64, kinds: &[SwarmKind]) -> FaultPlan {
    FaultPlan {
        swarm: SwarmPlan::draw(seed, kinds),
        ..FaultPlan::default()
    }
}

/// The channel stage's swarm, for a scenario whose edge case is its workload (frames,
/// tabs, tokens the clients send) or its configuration.
pub fn channel(seed: u64) -> FaultPlan {
    swarm(seed, CHANNEL_SWARM)
}

/// The workers stage's swarm, for a scenario whose edge case is its workload.
pub fn workers(seed: u64) -> FaultPlan {
    swarm(seed, WORKERS_SWARM)
}

/// The channel stage's first client and its engine host, as plans name them.
const CLIENT_0: &str = "client-0";
const ENGINE_0: &str = crate::stage::channel::ENGINE_HOST;

/// Resets client 0's connections to the engine when the body marks `event`.
pub fn reset_client_at(plan: FaultPlan, event: &str) -> FaultPlan {
    plan.after(
        event,
        0,
        Fault::ResetConnections {
            a: CLIENT_0.into(),
            b: ENGINE_0.into(),
        },
    )
}

/// Cuts client 0 off the engine (both ways, `mode`) when the body marks `cut`, and
/// heals the cut when it marks `heal`.
pub fn cut_client_between(
    plan: FaultPlan,
    cut: &str,
    heal: &str,
    mode: sim::net::PartitionMode,
) -> FaultPlan {
    plan.after(
        cut,
        0,
        Fault::Partition {
            a: CLIENT_0.into(),
            b: ENGINE_0.into(),
            mode,
            one_way: false,
        },
    )
    .after(
        heal,
        0,
        Fault::Heal {
            a: CLIENT_0.into(),
            b: ENGINE_0.into(),
        },
    )
}

/// No swarm and no fixed faults from the plan: for a scenario whose oracle times the
/// engine to the millisecond and whose edge case its body injects; its declaration
/// says why beside it. Shrink and replay still apply (to an empty plan).
pub fn quiet(_seed: u64) -> FaultPlan {
    FaultPlan::default()
}

/// Resets client 0's connections to the engine at each of the events `{prefix}-1` to
/// `{prefix}-{count}` (a scenario that cuts a random number of times marks as many).
pub fn reset_client_at_each(plan: FaultPlan, prefix: &str, count: u32) -> FaultPlan {
    (1..=count).fold(plan, |plan, i| {
        reset_client_at(plan, &format!("{prefix}-{i}"))
    })
}
