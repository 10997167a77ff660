//! The VOPR's faults as data: a swarm (which kinds are on at all, and how often) plus
//! episodes at random times inside the safety phase, each with the action that ends it.
//! The seed turns whole families on or off, so some runs drown in one kind of fault
//! and others see none of it (swarm testing).

use super::config::{ENGINE_HOST, SAFETY_MS, UPSTREAM_HOST, VoprConfig};
use super::ops;
use sim::SimRng;
use sim::faults::{Fault, FaultPlan, PartitionMode, SignalName, SwarmKind, SwarmPlan};

/// Swarm kinds the VOPR may turn on. Bit flips are left out: a store whose synced
/// pages rot is refused at start with a clear error (its own scenarios prove that), and
/// a run whose engine can no longer start proves nothing more.
pub const SWARM_KINDS: [SwarmKind; 7] = [
    SwarmKind::NetReset,
    SwarmKind::DiskEio,
    SwarmKind::ProcSpawnFail,
    SwarmKind::ProcCrash,
    SwarmKind::ProcHang,
    SwarmKind::ProcGarble,
    SwarmKind::ProcTruncate,
];

/// The disk's room during a full-disk episode, and otherwise.
pub const DISK_FULL_BYTES: u64 = 16 * 1024;
pub const DISK_NORMAL_BYTES: u64 = 1 << 40;

/// The plan of run `seed`: faults, swarm and workload.
pub fn seeded_plan(seed: u64) -> FaultPlan {
    let config = VoprConfig::draw(seed);
    let mut rng = SimRng::new(seed, "vopr/faults");
    let mut plan = FaultPlan {
        actions: Vec::new(),
        swarm: SwarmPlan::draw(seed, &SWARM_KINDS),
        workload: ops::generate(seed, &config),
    };
    let engine = || ENGINE_HOST.to_string();
    let client = |rng: &mut SimRng| format!("client-{}", rng.below(config.users.len() as u64));
    let window = |rng: &mut SimRng, len_max: u64| {
        let at = 5_000 + rng.below(SAFETY_MS - 60_000);
        (at, at + 1 + rng.below(len_max))
    };
    // Engine crashes and restarts on the same data directory, in most runs.
    if rng.below(10) < 7 {
        for _ in 0..1 + rng.below(3) {
            let (at, until) = window(&mut rng, 30_000);
            plan = crash_engine(plan, at, until);
        }
    }
    // Clients cut off, both ways or one way, traffic held or dropped.
    if rng.below(2) == 0 {
        for _ in 0..1 + rng.below(3) {
            let (at, until) = window(&mut rng, 60_000);
            let c = client(&mut rng);
            let mode = if rng.below(2) == 0 {
                PartitionMode::Hold
            } else {
                PartitionMode::Drop
            };
            let one_way = rng.below(3) == 0;
            plan = cut_off(plan, c, at, until, mode, one_way);
        }
    }
    // The model API cut off from the engine.
    if config.upstream && rng.below(3) == 0 {
        let (at, until) = window(&mut rng, 60_000);
        let upstream = UPSTREAM_HOST.to_string();
        plan = cut_off(plan, upstream, at, until, PartitionMode::Drop, false);
    }
    if rng.below(3) == 0 {
        let (at, _) = window(&mut rng, 1);
        let c = client(&mut rng);
        plan = plan.at(at, Fault::ResetConnections { a: engine(), b: c });
    }
    // A paused engine (a long GC pause, a stopped VM).
    if rng.below(3) == 0 {
        let (at, until) = window(&mut rng, 20_000);
        plan = pause_engine(plan, at, until);
    }
    // The engine's wall clock jumps (token expiry is judged by it) or drifts.
    if rng.below(3) == 0 {
        let (at, _) = window(&mut rng, 1);
        let magnitude = 1_000 + rng.below(600_000) as i64;
        let delta_ms = if rng.below(2) == 0 {
            magnitude
        } else {
            -magnitude
        };
        plan = plan.at(
            at,
            Fault::ClockJump {
                host: engine(),
                delta_ms,
            },
        );
    }
    if rng.below(4) == 0 {
        let (at, _) = window(&mut rng, 1);
        let ppm = rng.below(2_000) as i64 - 1_000;
        plan = plan.at(
            at,
            Fault::ClockDrift {
                host: engine(),
                ppm,
            },
        );
    }
    // A full disk for a while.
    if rng.below(4) == 0 {
        let (at, until) = window(&mut rng, 60_000);
        plan = fill_disk(plan, at, until);
    }
    // Workers refused at spawn, killed by the OOM killer, or crashing.
    if rng.below(3) == 0 {
        let (at, _) = window(&mut rng, 1);
        plan = plan.at(
            at,
            Fault::SpawnFail {
                host: engine(),
                errno: 11,
                count: 1 + rng.below(4) as u32,
            },
        );
    }
    if rng.below(3) == 0 {
        for _ in 0..1 + rng.below(3) {
            let (at, _) = window(&mut rng, 1);
            let signal = if rng.below(2) == 0 {
                SignalName::Sigkill
            } else {
                SignalName::Sigsegv
            };
            plan = plan.at(
                at,
                Fault::SignalChildren {
                    host: engine(),
                    signal,
                    with_arg: None,
                },
            );
        }
    }
    plan
}

/// The seed's workload with no fault at all: the base the coverage-guided fuzzer adds
/// its own episodes and swarm to.
pub fn workload_only(seed: u64) -> FaultPlan {
    FaultPlan {
        workload: ops::generate(seed, &VoprConfig::draw(seed)),
        ..FaultPlan::default()
    }
}

/// One fuzzer episode on the engine's host (`kind` modulo 6): a crash and restart, a
/// client cut off (both ways, traffic held), a pause, a clock jump, a full disk, or
/// workers killed. `at_ms` spreads over the safety phase (×10), `len_ms` bounds it.
pub fn fuzz_episode(plan: FaultPlan, kind: u8, at_ms: u64, len_ms: u64) -> FaultPlan {
    let engine = || ENGINE_HOST.to_string();
    let at = 5_000 + (at_ms * 10) % (SAFETY_MS - 60_000);
    let until = |len_max: u64| at + 1 + len_ms % len_max;
    match kind % 6 {
        0 => crash_engine(plan, at, until(30_000)),
        // Every run has at least two users.
        1 => {
            let c = format!("client-{}", (kind / 6) % 2);
            cut_off(plan, c, at, until(60_000), PartitionMode::Hold, false)
        }
        2 => pause_engine(plan, at, until(20_000)),
        3 => plan.at(
            at,
            Fault::ClockJump {
                host: engine(),
                delta_ms: len_ms as i64 * 10 - 300_000,
            },
        ),
        4 => fill_disk(plan, at, until(60_000)),
        _ => plan.at(
            at,
            Fault::SignalChildren {
                host: engine(),
                signal: SignalName::Sigkill,
                with_arg: None,
            },
        ),
    }
}

/// The engine's host crashes at `at` and restarts at `until` on the same data directory.
fn crash_engine(plan: FaultPlan, at: u64, until: u64) -> FaultPlan {
    let host = ENGINE_HOST.to_string();
    plan.at(at, Fault::CrashHost { host: host.clone() })
        .at(until, Fault::RestartHost { host })
}

/// The engine's host is paused from `at` to `until`.
fn pause_engine(plan: FaultPlan, at: u64, until: u64) -> FaultPlan {
    let host = ENGINE_HOST.to_string();
    plan.at(at, Fault::PauseHost { host: host.clone() })
        .at(until, Fault::ResumeHost { host })
}

/// The engine's disk is full from `at` to `until`.
fn fill_disk(plan: FaultPlan, at: u64, until: u64) -> FaultPlan {
    let capacity = |bytes| Fault::DiskCapacity {
        host: ENGINE_HOST.to_string(),
        bytes,
    };
    plan.at(at, capacity(DISK_FULL_BYTES))
        .at(until, capacity(DISK_NORMAL_BYTES))
}

/// `other` is cut off from the engine from `at` until the heal at `until`.
fn cut_off(
    plan: FaultPlan,
    other: String,
    at: u64,
    until: u64,
    mode: PartitionMode,
    one_way: bool,
) -> FaultPlan {
    let engine = ENGINE_HOST.to_string();
    plan.at(
        at,
        Fault::Partition {
            a: engine.clone(),
            b: other.clone(),
            mode,
            one_way,
        },
    )
    .at(
        until,
        Fault::Heal {
            a: engine,
            b: other,
        },
    )
}
