//! Catalog scenarios' fault plans: a fixed part that defines the edge case (its own
//! actions, timed or triggered by an event the body marks) and a swarm part drawn from
//! the seed, from the kinds relevant to the subsystem.
//!
//! Each kind of a subsystem's swarm is on in about half the seeds (at least one kind on),
//! at a rate from the ladder's upper rungs (1/100 to 1/5: `SwarmPlan::draw_short`), so
//! some runs meet a storm of one kind and others none of it. The
//! timing kinds (late messages, slow disk operations, slow process starts) must leave
//! every outcome-judging oracle true: a correct engine only gets slower under them. A
//! scenario that needs quiet to judge says so in its plan (a narrower swarm, with the
//! reason beside it) or in its body (`World::quiet("why")` before the judging phase).

use sim::FaultPlan;
use sim::faults::{Fault, SwarmKind, SwarmPlan};

/// The channel stage (gateway and sessions on one engine host, clients on their own):
/// its traffic crosses the network, its replay log and store touch the disk, its warm
/// pool starts workers.
pub const CHANNEL_SWARM: &[SwarmKind] = &[
    SwarmKind::NetDelay,
    SwarmKind::DiskSlow,
    SwarmKind::ProcSlowStart,
];

/// The channel stage hosting the model API (`with_upstream`): its answers come late too.
/// (A kind that cannot fire in a scenario would make a swarm that draws only it quiet.)
pub const CHANNEL_UPSTREAM_SWARM: &[SwarmKind] = &[
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
        swarm: SwarmPlan::draw_short(seed, kinds),
        ..FaultPlan::default()
    }
}

/// The channel stage's swarm, for a scenario whose edge case is its workload (frames,
/// tabs, tokens the clients send) or its configuration.
pub fn channel(seed: u64) -> FaultPlan {
    swarm(seed, CHANNEL_SWARM)
}

/// The swarm of a channel stage that hosts the model API.
pub fn channel_upstream(seed: u64) -> FaultPlan {
    swarm(seed, CHANNEL_UPSTREAM_SWARM)
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

/// The random stream a plan draws its fixed part's parameters from (a delay, a
/// count, an errno): the seed's, apart from the body's own stream.
pub fn plan_rng(seed: u64) -> sim::SimRng {
    sim::SimRng::new(seed, "plan")
}

/// Process and disk faults on the workers stage's host, as plan steps. `worker`
/// names the worker whose process a fault targets (a plan cannot know pids: it picks
/// the children started with `--name worker`); `None` targets every child.
pub mod on_host {
    use crate::stage::workers::HOST;
    use sim::faults::{Fault, SignalName};
    use std::time::Duration;

    fn target(worker: Option<&str>) -> Option<String> {
        worker.map(str::to_string)
    }

    /// Every later spawn starts after a delay uniform in `[min, max]`.
    pub fn slow_starts(min: Duration, max: Duration) -> Fault {
        Fault::SlowStarts {
            host: HOST.into(),
            min_ms: min.as_millis() as u64,
            max_ms: max.as_millis() as u64,
        }
    }

    /// The next `count` spawns fail with `errno`.
    pub fn spawn_fails(errno: i32, count: u32) -> Fault {
        Fault::SpawnFail {
            host: HOST.into(),
            errno,
            count,
        }
    }

    pub fn hang(worker: Option<&str>) -> Fault {
        Fault::HangChildren {
            host: HOST.into(),
            with_arg: target(worker),
        }
    }

    pub fn signal(worker: Option<&str>, signal: SignalName) -> Fault {
        Fault::SignalChildren {
            host: HOST.into(),
            signal,
            with_arg: target(worker),
        }
    }

    pub fn leak(worker: Option<&str>, bytes_per_s: u64) -> Fault {
        Fault::LeakChildren {
            host: HOST.into(),
            bytes_per_s,
            with_arg: target(worker),
        }
    }

    pub fn crash() -> Fault {
        Fault::CrashHost { host: HOST.into() }
    }

    pub fn restart() -> Fault {
        Fault::RestartHost { host: HOST.into() }
    }

    /// The disk keeps `bytes` of room above what it holds when this applies.
    pub fn disk_room(bytes: u64) -> Fault {
        Fault::DiskRoom {
            host: HOST.into(),
            bytes,
        }
    }

    /// The disk loses power; the host stays up.
    pub fn power_cut() -> Fault {
        Fault::DiskPowerCut { host: HOST.into() }
    }

    /// `Some(n)`: `n` more open files than are open now; `None`: no limit.
    pub fn open_files_spare(spare: Option<u32>) -> Fault {
        Fault::OpenFilesSpare {
            host: HOST.into(),
            spare,
        }
    }

    /// Every read flips a bit with probability `rate` (zero ends it).
    pub fn rot(rate: sim::Ratio) -> Fault {
        Fault::DiskRot {
            host: HOST.into(),
            rate,
        }
    }
}

/// What the faults a mark set going hold, for the body's oracles (it judges the
/// engine against the faults it met: after a shrink, none).
pub mod met {
    use sim::faults::Fault;
    use std::time::Duration;

    /// The start delay range of the slow starts among `faults`, if any.
    pub fn slow_starts(faults: &[Fault]) -> Option<(Duration, Duration)> {
        faults.iter().rev().find_map(|f| match f {
            Fault::SlowStarts { min_ms, max_ms, .. } => Some((
                Duration::from_millis(*min_ms),
                Duration::from_millis(*max_ms),
            )),
            _ => None,
        })
    }

    /// The errno and the number of the planned spawn failures among `faults` (the
    /// errno of the first; 0 failures when there are none).
    pub fn spawn_fails(faults: &[Fault]) -> (Option<i32>, u32) {
        let mut errno = None;
        let mut count = 0;
        for f in faults {
            if let Fault::SpawnFail {
                errno: e, count: c, ..
            } = f
            {
                errno.get_or_insert(*e);
                count += c;
            }
        }
        (errno, count)
    }

    /// Whether a process fault aimed at `with_arg` reaches `worker`'s process (aimed
    /// at it by name, or at every child).
    fn reaches(with_arg: &Option<String>, worker: &str) -> bool {
        with_arg.as_deref().is_none_or(|w| w == worker)
    }

    /// The signal among `faults` sent to `worker`'s process, if any.
    pub fn signal_to(faults: &[Fault], worker: &str) -> Option<sim::faults::SignalName> {
        faults.iter().find_map(|f| match f {
            Fault::SignalChildren {
                signal, with_arg, ..
            } if reaches(with_arg, worker) => Some(*signal),
            _ => None,
        })
    }

    /// The leak rate among `faults` that reaches `worker`'s process, if any.
    pub fn leak_of(faults: &[Fault], worker: &str) -> Option<u64> {
        faults.iter().find_map(|f| match f {
            Fault::LeakChildren {
                bytes_per_s,
                with_arg,
                ..
            } if reaches(with_arg, worker) => Some(*bytes_per_s),
            _ => None,
        })
    }

    /// Whether `faults` hang `worker`'s process.
    pub fn hangs(faults: &[Fault], worker: &str) -> bool {
        any(
            faults,
            |f| matches!(f, Fault::HangChildren { with_arg, .. } if reaches(with_arg, worker)),
        )
    }

    /// The room the disk keeps among `faults` (`DiskRoom`), if any.
    pub fn disk_room(faults: &[Fault]) -> Option<u64> {
        faults.iter().rev().find_map(|f| match f {
            Fault::DiskRoom { bytes, .. } => Some(*bytes),
            _ => None,
        })
    }

    /// Whether `faults` crash a host.
    pub fn crashes_host(faults: &[Fault]) -> bool {
        any(faults, |f| matches!(f, Fault::CrashHost { .. }))
    }

    /// Whether `faults` restart a host.
    pub fn restarts_host(faults: &[Fault]) -> bool {
        any(faults, |f| matches!(f, Fault::RestartHost { .. }))
    }

    /// Whether `faults` hold one that matches `is`.
    pub fn any(faults: &[Fault], is: impl Fn(&Fault) -> bool) -> bool {
        faults.iter().any(is)
    }
}

/// The plan of a scenario whose client's connection is reset mid-answer (a proxy
/// closing it, a network gone): the channel swarm plus that reset.
pub fn reset_mid_answer(seed: u64) -> sim::FaultPlan {
    reset_client_at(channel(seed), "mid-answer")
}
