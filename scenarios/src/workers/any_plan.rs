//! Workers under any fault plan: the supervisor's global oracles, with every fault in a
//! declared plan. This is the world the swarm property test and the coverage-guided
//! fuzzer drive (`scenarios::fuzzing`): they replace the seed's plan by one of their
//! own, so the plan, not the scenario, decides which faults hit the supervisor and when.
//!
//! Faults are *episodes* inside a fault window: a signal to every worker process, failed
//! spawns, a paused host (with its resume), a clock jump, a shrunken disk (with its
//! restore), and swarm process and disk faults. An episode's heal is part of it, so a
//! generated or shrunk plan can never leave the host paused for good.

use crate::ensure;
use crate::kit::workers::{START_BOUND, live_pids, unexpected, zombie_pids};
use crate::scenario::{BodyFuture, Failure, Outcome, Scenario, converge};
use crate::stage::workers::{Stage, WATCHDOG_INTERVAL};
use engine::workers::breaker::RestartPolicy;
use engine::workers::program::{Reply, Request};
use engine::workers::{Worker, WorkerError, WorkerStatus};
use sim::faults::{Fault, FaultPlan, SignalName, SwarmKind, SwarmPlan};
use sim::{SimRng, World};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The simulated engine host's name (see [`Stage::sim`]).
pub const HOST: &str = "engine-0";
/// Every fault of a plan starts and heals inside this window.
pub const FAULT_WINDOW_MS: u64 = 20_000;
/// The disk's room while a disk episode lasts: too small for the cache writes.
pub const DISK_SHRUNK_BYTES: u64 = 64 * 1024;
/// The disk's room otherwise (the simulated disk's default).
const DISK_NORMAL_BYTES: u64 = 1 << 40;
/// Swarm kinds this world turns on.
pub const SWARM_KINDS: [SwarmKind; 6] = [
    SwarmKind::ProcCrash,
    SwarmKind::ProcHang,
    SwarmKind::ProcGarble,
    SwarmKind::ProcTruncate,
    SwarmKind::ProcSpawnFail,
    SwarmKind::DiskEio,
];
const WORKERS: [&str; 2] = ["alpha", "beta"];
/// A request unresolved for this long is a liveness failure: a hung worker is killed by
/// its heartbeat timeout (5 s) well before, and its requests fail.
const REQUEST_BOUND: Duration = Duration::from_secs(30);
const EAGAIN: i32 = 11;
/// Shorter than the default (60 s), so a start stuck on a hung or garbled process ends
/// well inside the bounds below.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// After the heal, each worker is ready and answers within this bound.
const RECOVERY_BOUND: Duration = Duration::from_secs(90);

pub static ANY_FAULT_PLAN: Scenario = Scenario {
    id: "sim.workers.any-fault-plan",
    declared_at: crate::declared_here!(),
    title: "Two supervised workers under any fault plan: answers match, recovery after heal, nothing leaked",
    proves: "Two workers serve a stream of pings, runs and cache reads and writes while the \
             plan's episodes hit their host inside a 20 s window (signals to every worker \
             process, failed spawns, a paused host, clock jumps, a disk too small to write, \
             swarm crashes, hangs, garbled or cut output, spawn failures and disk EIO). \
             Every request must end within 30 s, in replies that belong to it or in a typed \
             error; a stopped or broken worker is started again by its user. Once everything \
             is healed, both workers must be ready and answer within 90 s, and after they are \
             stopped no process or zombie may be left on the host.",
    faults_expected: &[
        "proc.kill",
        "proc.crash_segv",
        "proc.spawn_fail",
        "proc.hang",
        "proc.garble",
        "proc.truncate",
        "host.pause",
        "clock.jump",
        "disk.eio",
        "disk.enospc",
    ],
    cores: &[
        "engine/src/workers/lifecycle.rs",
        "engine/src/workers/supervise.rs",
        "engine/src/workers/worker.rs",
        "engine/src/workers/reaper.rs",
    ],
    sim_time_max: Duration::from_secs(600),
    body: any_fault_plan,
    real: None,
    plan: Some(crate::scenario::Plan::Body(seeded_plan)),
};

/// One episode of the vocabulary, as the generators (seeded draw, proptest, fuzzer) pick
/// it: `kind` chooses the fault, `at_ms` and `len_ms` are clamped into the window.
#[derive(Clone, Copy, Debug)]
pub struct Episode {
    pub kind: u8,
    pub at_ms: u64,
    pub len_ms: u64,
}

/// How many episode kinds there are (`kind` is taken modulo this).
pub const EPISODE_KINDS: u8 = 7;

impl Episode {
    /// The episode's fault actions, all inside the window.
    pub fn actions(self, plan: FaultPlan) -> FaultPlan {
        let at = self.at_ms % FAULT_WINDOW_MS;
        let until = (at + 1 + self.len_ms % 5_000).min(FAULT_WINDOW_MS);
        let host = || HOST.to_string();
        let signal = |signal| Fault::SignalChildren {
            host: host(),
            signal,
            with_arg: None,
        };
        match self.kind % EPISODE_KINDS {
            0 => plan.at(at, signal(SignalName::Sigkill)),
            1 => plan.at(at, signal(SignalName::Sigsegv)),
            2 => plan.at(at, signal(SignalName::Sigterm)),
            3 => plan.at(
                at,
                Fault::SpawnFail {
                    host: host(),
                    errno: EAGAIN,
                    count: 1 + (self.len_ms % 4) as u32,
                },
            ),
            4 => plan
                .at(at, Fault::PauseHost { host: host() })
                .at(until, Fault::ResumeHost { host: host() }),
            5 => {
                let magnitude = 1 + self.len_ms % 60_000;
                let delta_ms = if self.len_ms.is_multiple_of(2) {
                    magnitude as i64
                } else {
                    -(magnitude as i64)
                };
                plan.at(
                    at,
                    Fault::ClockJump {
                        host: host(),
                        delta_ms,
                    },
                )
            }
            _ => plan
                .at(
                    at,
                    Fault::DiskCapacity {
                        host: host(),
                        bytes: DISK_SHRUNK_BYTES,
                    },
                )
                .at(
                    until,
                    Fault::DiskCapacity {
                        host: host(),
                        bytes: DISK_NORMAL_BYTES,
                    },
                ),
        }
    }
}

/// The plan a seed draws: three to six episodes and a swarm over [`SWARM_KINDS`]; the
/// first episode is always a signal, so every run has a fault that fires.
fn seeded_plan(seed: u64) -> FaultPlan {
    let mut rng = SimRng::new(seed, "plan");
    let mut plan = FaultPlan {
        actions: vec![],
        swarm: SwarmPlan::draw(seed, &SWARM_KINDS),
        workload: Vec::new(),
    };
    let episodes = 3 + rng.below(4);
    for i in 0..episodes {
        let kind = if i == 0 {
            rng.below(3) as u8
        } else {
            rng.below(u64::from(EPISODE_KINDS)) as u8
        };
        let episode = Episode {
            kind,
            at_ms: 500 + rng.below(FAULT_WINDOW_MS - 1_000),
            len_ms: rng.below(5_000),
        };
        plan = episode.actions(plan);
    }
    plan
}

/// Requests sent, and how they ended.
#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    refused: AtomicU64,
    restarts_by_user: AtomicU64,
}

fn any_fault_plan(world: World) -> BodyFuture {
    Box::pin(async move {
        let stage = Stage::sim(&world).await?;
        let mut workers = Vec::new();
        for name in WORKERS {
            let mut config = stage.config(name);
            config.init_timeout = INIT_TIMEOUT;
            config.restart = RestartPolicy {
                backoff_first: Duration::from_millis(200),
                backoff_max: Duration::from_secs(5),
                window: Duration::from_secs(30),
                stable_after: Duration::from_secs(10),
                ..RestartPolicy::default_policy()
            };
            stage
                .manager
                .register(name, config)
                .await
                .map_err(|e| unexpected(&format!("register {name:?}"), e))?;
            workers.push(
                stage
                    .manager
                    .worker(name)
                    .await
                    .map_err(|e| unexpected("lookup", e))?,
            );
        }
        let plan = world.fault_plan(seeded_plan);
        let done = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let mut clients = Vec::new();
        for (i, worker) in workers.iter().enumerate() {
            let client = Client {
                worker: worker.clone(),
                rng: world.rng(&format!("client-{i}")),
                done: done.clone(),
                tally: tally.clone(),
            };
            clients.push(stage.env.spawn("client", client.run()));
        }
        plan.execute(&world).await;
        let window = Duration::from_millis(FAULT_WINDOW_MS);
        let now = Duration::from_nanos(world.now_ns());
        if now < window {
            tokio::time::sleep(window - now).await;
        }
        heal(&world);
        // A worker that hung just before the heal is found by its heartbeat timeout.
        let heartbeat_timeout = workers[0].config().heartbeat_timeout;
        tokio::time::sleep(heartbeat_timeout + Duration::from_secs(1)).await;
        done.store(true, Ordering::Relaxed);
        for client in clients {
            converge("the clients' last requests", REQUEST_BOUND * 2, client)
                .await?
                .map_err(|_| Failure::correctness("a client task died"))??;
        }
        for worker in &workers {
            recover(worker).await?;
        }
        tracing::info!(
            target: "scenarios",
            "{} requests answered, {} refused, {} restarts by the user",
            tally.answered.load(Ordering::Relaxed),
            tally.refused.load(Ordering::Relaxed),
            tally.restarts_by_user.load(Ordering::Relaxed)
        );
        stage.manager.stop_all().await;
        tokio::time::sleep(WATCHDOG_INTERVAL * 2).await;
        let live = live_pids(&stage);
        let zombies = zombie_pids(&stage);
        ensure!(
            live.is_empty() && zombies.is_empty(),
            "after stopping every worker: processes left alive {live:?}, zombies {zombies:?}"
        );
        Ok(())
    })
}

/// Ends every fault an episode or the swarm may have left on.
fn heal(world: &World) {
    SwarmPlan::quiet(world);
    if let Some(host) = world.host(HOST) {
        host.resume();
        host.disk().set_capacity(DISK_NORMAL_BYTES);
        host.procs().clear_planned_spawn_failures();
    }
}

/// After the heal: the worker is ready within [`RECOVERY_BOUND`] (its user starts it
/// again whenever it has given up: an open breaker, a failed start) and answers a ping.
async fn recover(worker: &Worker) -> Outcome {
    let deadline = tokio::time::Instant::now() + RECOVERY_BOUND;
    let mut user_starts = 0u32;
    while !matches!(worker.status(), WorkerStatus::Ready { .. }) {
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::liveness(format!(
                "{:?} is {} {} s after the heal ({user_starts} starts by its user)",
                worker.name(),
                worker.status(),
                RECOVERY_BOUND.as_secs()
            )));
        }
        if !worker.status().is_active() {
            user_starts += 1;
            let _ = converge("a start after the heal", START_BOUND, worker.start()).await?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let replies = converge(
        "a ping after the heal",
        REQUEST_BOUND,
        worker.request(Request::Ping { id: 1 }),
    )
    .await?
    .map_err(|e| unexpected(&format!("ping {:?} after the heal", worker.name()), e))?;
    ensure!(
        replies.last() == Some(&Reply::Pong { id: 1 }),
        "after the heal, a ping to {:?} was answered {replies:?}",
        worker.name()
    );
    Ok(())
}

/// One user of one worker: a request at a time, each checked against its replies.
struct Client {
    worker: Arc<Worker>,
    rng: SimRng,
    done: Arc<AtomicBool>,
    tally: Arc<Tally>,
}

impl Client {
    async fn run(mut self) -> Outcome {
        let mut id = 0u64;
        while !self.done.load(Ordering::Relaxed) {
            id += 1;
            if !self.worker.status().is_active() {
                // The user starts a stopped or broken worker again; a start may fail
                // while faults last, and is retried on the next turn.
                self.tally.restarts_by_user.fetch_add(1, Ordering::Relaxed);
                let _ = converge("a user's start", START_BOUND, self.worker.start()).await?;
            } else {
                let request = self.request(id);
                let result =
                    tokio::time::timeout(REQUEST_BOUND, self.worker.request(request.clone()))
                        .await
                        .map_err(|_| {
                            Failure::liveness(format!(
                                "request {id} to {:?} got neither replies nor an error within {} s",
                                self.worker.name(),
                                REQUEST_BOUND.as_secs()
                            ))
                        })?;
                self.judge(&request, result)?;
            }
            let pause = 20 + self.rng.below(200);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        Ok(())
    }

    fn request(&mut self, id: u64) -> Request {
        let name = format!("c{}", self.rng.below(4));
        match self.rng.below(4) {
            0 => Request::Ping { id },
            1 => Request::Run {
                id,
                input: format!("w{id} x{} y", self.rng.below(100)),
                pace_ms: None,
            },
            2 => Request::WriteCache {
                id,
                name,
                bytes: 1_000 + self.rng.below(16_000),
            },
            _ => Request::ReadCache { id, name },
        }
    }

    /// Replies must belong to the request and end it; errors must be typed.
    fn judge(&self, request: &Request, result: Result<Vec<Reply>, WorkerError>) -> Outcome {
        let replies = match result {
            Ok(replies) => replies,
            Err(_) => {
                self.tally.refused.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        };
        self.tally.answered.fetch_add(1, Ordering::Relaxed);
        let id = request_id(request);
        let foreign = replies
            .iter()
            .find(|r| reply_id(r).is_some_and(|r| r != id));
        ensure!(
            foreign.is_none(),
            "request {id} to {:?} got a reply of another request: {foreign:?}",
            self.worker.name()
        );
        let last = replies.last();
        let ended = match request {
            Request::Ping { .. } => matches!(last, Some(Reply::Pong { .. })),
            _ => matches!(last, Some(Reply::Done { .. } | Reply::Error { .. })),
        };
        ensure!(
            ended,
            "request {request:?} to {:?} ended with {last:?}",
            self.worker.name()
        );
        if let Request::Run { input, .. } = request
            && matches!(last, Some(Reply::Done { .. }))
        {
            let words: Vec<&str> = input.split_whitespace().collect();
            let events: Vec<&str> = replies
                .iter()
                .filter_map(|r| match r {
                    Reply::Event { data, .. } => Some(data.as_str()),
                    _ => None,
                })
                .collect();
            ensure!(events == words, "run {id} of {input:?} streamed {events:?}");
        }
        Ok(())
    }
}

fn request_id(request: &Request) -> u64 {
    match request {
        Request::Ping { id }
        | Request::Run { id, .. }
        | Request::WriteCache { id, .. }
        | Request::ReadCache { id, .. } => *id,
        other => panic!("clients do not send {other:?}"),
    }
}

fn reply_id(reply: &Reply) -> Option<u64> {
    match reply {
        Reply::Pong { id } | Reply::Event { id, .. } | Reply::Done { id } => Some(*id),
        Reply::Error { id, .. } => *id,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_plans_start_with_a_signal_and_stay_in_the_window() {
        for seed in 0..32 {
            let plan = seeded_plan(seed);
            assert!(plan.validate(&[HOST.to_string()]).is_ok());
            assert!(
                plan.actions.iter().all(|a| a.at_ms <= FAULT_WINDOW_MS),
                "{:?}",
                plan.describe()
            );
            assert!(
                matches!(plan.actions[0].fault, Fault::SignalChildren { .. }),
                "{:?}",
                plan.describe()
            );
        }
    }

    #[test]
    fn every_episode_kind_heals_inside_the_window() {
        for kind in 0..EPISODE_KINDS {
            let episode = Episode {
                kind,
                at_ms: FAULT_WINDOW_MS - 1,
                len_ms: 4_999,
            };
            let plan = episode.actions(FaultPlan::default());
            assert!(plan.actions.iter().all(|a| a.at_ms <= FAULT_WINDOW_MS));
            let pauses = plan
                .actions
                .iter()
                .filter(|a| matches!(a.fault, Fault::PauseHost { .. }))
                .count();
            let resumes = plan
                .actions
                .iter()
                .filter(|a| matches!(a.fault, Fault::ResumeHost { .. }))
                .count();
            assert_eq!(pauses, resumes, "kind {kind}");
        }
    }
}
