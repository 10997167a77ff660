//! The engine VOPR: one whole-engine randomized simulation (after TigerBeetle's VOPR).
//! A run is its seed: the world's configuration, a workload of users doing what users
//! do over simulated minutes, and a swarm of faults, including engine crashes and
//! restarts on the same data directory, all drawn from it and declared as a plan (so
//! `chaos shrink` reduces faults and workload steps alike, and `chaos repro` replays).
//! Global oracles watch from beside the system (`observer.rs`, the delivery records,
//! the monitor in `cluster.rs`); a safety phase under faults is followed by a liveness
//! phase with everything healed, in which every tab still in use must be answered.
//!
//! Rule (ARCHITECTURE.md): as each subsystem lands, it adds its operations (`ops.rs`)
//! and its invariants (`observer.rs`) here.

mod cluster;
mod config;
mod locks;
mod model_api;
mod observer;
mod ops;
mod plan;
mod user;

use crate::scenario::{BodyFuture, Failure, Scenario, converge};
use cluster::Cluster;
use config::{ENGINE_HOST, LIVENESS_BOUND, SAFETY_MS, UPSTREAM_HOST, VoprConfig};
use observer::Observer;
use ops::Op;
use sim::World;
use sim::faults::{Fault, FaultPlan, SwarmKind, SwarmPlan};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use user::{Crowd, User};

pub use plan::{SWARM_KINDS, fuzz_episode, seeded_plan, workload_only};

pub fn all() -> Vec<&'static Scenario> {
    vec![&ENGINE]
}

pub static ENGINE: Scenario = Scenario {
    id: "vopr.engine",
    declared_at: crate::declared_here!(),
    title: "The whole engine under random users, random faults, crashes and restarts",
    proves: "Two to six users (some with tokens that expire, some snooping on others' sessions) \
             create, query, burst, interrupt, extend, fork, drop, reconnect with and without \
             last_seq, abandon tabs, read slowly, send malformed and oversized frames and hold \
             lock keys for 12 simulated minutes against one engine built by the composition \
             root, while the seed's swarm crashes and restarts its host on the same data \
             directory, cuts clients and the model API off, resets connections, pauses the \
             host, jumps its clock, fills its disk, fails and kills workers and makes the \
             model API refuse. Throughout: each \
             stream is delivered in order, gap-free and exactly once across reconnects; no \
             answer of one user reaches another; a session id is never issued twice, across \
             restarts too; no query sent under a token past its expiry and skew is answered; \
             no query of a frame over the size limit reaches the model API; live sessions and \
             workers stay within their limits; a session connected when the engine crashed \
             comes back under its id; no model API call lands inside a Retry-After window the \
             engine had read; no lock key is held by two holders at once, across the lock \
             service's crashes too. Then, everything healed, every tab still in use gets back \
             to its session and is answered within 8 minutes.",
    faults_expected: &[
        "host.crash",
        "host.pause",
        "net.partition_hold",
        "net.reset",
        "clock.jump",
        "disk.enospc",
        "disk.eio",
        "proc.spawn_fail",
        "proc.kill",
        "proc.crash_segv",
        "proc.hang",
        "proc.garble",
        "proc.truncate",
        "upstream.rate_limited",
        "upstream.failing",
        "upstream.slow",
    ],
    cores: &[
        "engine/src/root/mod.rs",
        "engine/src/sessions/service.rs",
        "engine/src/sessions/core/stream.rs",
        "engine/src/gateway/inbound.rs",
        "engine/src/store/sessions.rs",
        "engine/src/sessions/lock/server.rs",
        "engine/src/upstream/client/mod.rs",
    ],
    sim_time_max: Duration::from_secs(SAFETY_MS / 1000 + 1_200),
    body: vopr,
    real: None,
    plan: Some(crate::scenario::Plan::Body(seeded_plan)),
};

fn vopr(world: World) -> BodyFuture {
    Box::pin(async move {
        let config = VoprConfig::draw(world.seed());
        let cluster = Cluster::start(&world, config.clone()).await?;
        // Tapped before any traffic: the first call may already be limited.
        let rate_limits = model_api::RateLimitsRead::default();
        if cluster.config.upstream {
            rate_limits.tap(&world, UPSTREAM_HOST, ENGINE_HOST);
        }
        // Control tasks (the plan, the workload's clock, the monitor) run on a host of
        // their own that no fault touches. Every host exists before the plan is taken:
        // a given plan (a shrink's, a replay's) is checked against them.
        let control = world.add_host("control").env();
        let plan = world.fault_plan(seeded_plan);
        let durability = !plan.swarm.rates.contains_key(&SwarmKind::DiskEio)
            && !plan
                .actions
                .iter()
                .any(|a| matches!(a.fault, Fault::DiskCapacity { .. }));
        converge("the first engine start", Duration::from_secs(60), async {
            while cluster.engine().is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await?;
        let observer = Arc::new(Observer::default());
        let crowd = Arc::new(Crowd {
            cluster: cluster.clone(),
            observer: observer.clone(),
            deliveries: Mutex::new(Vec::new()),
            durability,
        });
        let monitor = control.spawn(
            "vopr-monitor",
            cluster.clone().monitor(observer.clone(), control.clone()),
        );
        let faults = {
            let (plan, world) = (plan.clone(), world.clone());
            control.spawn("vopr-faults", async move { plan.execute(&world).await })
        };
        let client_envs: Vec<_> = cluster.clients.iter().map(|h| h.env()).collect();
        let lockers = locks::Lockers::new(&client_envs);
        let mut inboxes = Vec::new();
        let mut users = Vec::new();
        for (i, host) in cluster.clients.iter().enumerate() {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let user = User::new(i, &crowd);
            let bound = LIVENESS_BOUND;
            users.push(
                host.env()
                    .spawn("vopr-user", user::run(user, crowd.clone(), rx, bound)),
            );
            inboxes.push(tx);
        }
        // The workload: each step at its time, to its user (the operator's steps here).
        let mut steps = plan.workload.clone();
        steps.sort_by_key(|s| s.at_ms);
        for step in &steps {
            let op = Op::decode(&step.op).map_err(Failure::correctness)?;
            let at = Duration::from_millis(step.at_ms);
            let now = Duration::from_nanos(world.now_ns());
            if at > now {
                tokio::time::sleep(at - now).await;
            }
            match (op.user(), &op) {
                (Some(u), Op::Lock { key, hold_ms, .. }) => {
                    if let Some(env) = client_envs.get(u) {
                        lockers.hold(env, u, *key, Duration::from_millis(*hold_ms));
                    }
                }
                (Some(u), _) => {
                    if let Some(inbox) = inboxes.get(u) {
                        let _ = inbox.send(op);
                    }
                }
                (None, Op::Upstream { mode }) => operate_upstream(&world, &cluster, *mode),
                (None, _) => {}
            }
        }
        let end = Duration::from_millis(SAFETY_MS);
        let now = Duration::from_nanos(world.now_ns());
        if end > now {
            tokio::time::sleep(end - now).await;
        }
        faults.abort();
        heal(&world, &cluster);
        converge(
            "the engine after the heal",
            Duration::from_secs(60),
            async {
                while cluster.engine().is_none() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        )
        .await?;
        drop(inboxes);
        let mut failure = None;
        let mut done = Vec::new();
        for task in users {
            match converge("a user's liveness phase", LIVENESS_BOUND * 2, task).await? {
                Ok((user, Ok(()))) => done.push(user),
                Ok((user, Err(f))) => {
                    done.push(user);
                    failure.get_or_insert(f);
                }
                Err(gone) => {
                    failure
                        .get_or_insert(Failure::correctness(format!("a user task died: {gone}")));
                }
            }
        }
        monitor.abort();
        drop(done);
        // The run's virtual time zero, for the plan's instants.
        let origin = Instant::now() - Duration::from_nanos(world.now_ns());
        let paused = paused_windows(&plan, origin);
        model_api::check_rate_limits(&cluster, &rate_limits, &paused, &observer);
        model_api::check_model_inputs(&cluster, &observer);
        lockers.check(&observer, origin);
        report(&cluster, &observer);
        if let Some(first) = observer.violations().first() {
            return Err(Failure::correctness(first.clone()));
        }
        user::check_deliveries(&crowd)?;
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    })
}

/// The model API's operator switches its mode (its refusals are counted as faults by
/// the server itself).
fn operate_upstream(world: &World, cluster: &Cluster, mode: u8) {
    use sim::upstream::UpstreamMode;
    if cluster.upstream.is_none() {
        return;
    }
    let Some(up) = world.upstream(UPSTREAM_HOST) else {
        return;
    };
    up.set_mode(match mode {
        1 => UpstreamMode::RateLimited {
            retry_after_ms: 5_000,
        },
        2 => UpstreamMode::Failing,
        // Slow but inside the client's request timeout, and slower than it.
        3 => UpstreamMode::Slow { delay_ms: 4_000 },
        4 => UpstreamMode::Slow { delay_ms: 45_000 },
        5 => UpstreamMode::Dropping,
        6 => UpstreamMode::Emptying,
        7 => UpstreamMode::Trickle { event_ms: 1_500 },
        8 => UpstreamMode::Burst,
        9 => UpstreamMode::ModelOverloaded {
            model: "local-echo-1".to_string(),
        },
        10 => UpstreamMode::AccountLimit {
            limit: 30,
            window_ms: 60_000,
        },
        11 => UpstreamMode::Garbling,
        _ => UpstreamMode::Serving,
    });
}

/// Ends every fault: partitions, pauses, a crashed host, a full disk, planned spawn
/// failures, clock drift, the swarm, the model API's refusals.
fn heal(world: &World, cluster: &Cluster) {
    world.net().heal_all();
    SwarmPlan::quiet(world);
    let host = &cluster.engine_host;
    host.resume();
    host.restart();
    host.disk().set_capacity(plan::DISK_NORMAL_BYTES);
    host.procs().clear_planned_spawn_failures();
    operate_upstream(world, cluster, 0);
    tracing::info!(target: "scenarios", "VOPR: everything healed");
}

/// When the plan paused the engine's host (until its resume, or the heal); `origin`
/// is the run's virtual time zero.
fn paused_windows(plan: &FaultPlan, origin: Instant) -> Vec<(Instant, Instant)> {
    let mut windows = Vec::new();
    let mut since = None;
    let mut actions: Vec<_> = plan.actions.iter().collect();
    actions.sort_by_key(|a| a.at_ms);
    for action in actions {
        let at = origin + Duration::from_millis(action.at_ms);
        match &action.fault {
            Fault::PauseHost { host } if host == ENGINE_HOST => since = since.or(Some(at)),
            Fault::ResumeHost { host } if host == ENGINE_HOST => {
                if let Some(from) = since.take() {
                    windows.push((from, at));
                }
            }
            _ => {}
        }
    }
    if let Some(from) = since {
        windows.push((from, Instant::now()));
    }
    windows
}

/// The run's story, in its trace.
fn report(cluster: &Cluster, observer: &Observer) {
    let counts: Vec<String> = observer
        .counts()
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    tracing::info!(
        target: "scenarios",
        boots = cluster.boots(),
        failed_starts = cluster.failed_starts().len(),
        host = ENGINE_HOST,
        "VOPR: {}",
        counts.join(", ")
    );
}
