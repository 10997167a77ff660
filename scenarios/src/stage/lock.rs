//! The lock stage: groups of engine instances, each running a session loop on its own
//! session lock client against a lock service hosted by another engine (both built by
//! the composition root), with an independent count of who holds which key (the mutual
//! exclusion oracle) and the measurements of a phase (waits, throughput, the thundering
//! herd). `api.SCALE-001` runs it; later multi-instance entries build on it.

use crate::ensure;
use crate::scenario::{Failure, Outcome, converge};
use crate::stage::workers::{WORKER_PROGRAM_SIM, start_engine, workers_config};
use engine::env::{Env, NetAddr};
use engine::sessions::lock::{
    Held, LockBackoff, LockError, LockServer, LockStats, SessionLock, SessionLockConfig,
};
use engine::workers::PortRange;
use engine::{Engine, LockChoice};
use sim::{SimRng, World};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The session keys every instance draws from.
pub const KEYS: [&str; 1] = ["session-a"];
/// Work inside the lock.
pub const HOLD: Duration = Duration::from_millis(10);
/// Work outside the lock, drawn per operation.
pub const OUTSIDE_MS: (u64, u64) = (20, 40);
/// Instances start operations for this long; throughput counts what ends within it.
pub const PHASE: Duration = Duration::from_secs(3);
/// A phase's instances must all stop within this after the phase ends (an acquire
/// started at the last instant may take the whole timeout).
pub const DRAIN_BOUND: Duration = Duration::from_secs(10);
/// The lease of the lock service's grants (the timeout probe's squatter holds one).
pub const SQUAT_TTL: Duration = Duration::from_secs(60);

/// Who holds which key, counted by the instances themselves (not by the server).
#[derive(Default)]
pub struct Holders {
    pub by_key: BTreeMap<String, Vec<String>>,
    pub violations: Vec<String>,
}

impl Holders {
    fn enter(&mut self, key: &str, token: &str, at: Duration) {
        let holders = self.by_key.entry(key.to_string()).or_default();
        if !holders.is_empty() && self.violations.len() < 5 {
            self.violations.push(format!(
                "at {} ms {token} was granted {key} while {holders:?} held it",
                at.as_millis()
            ));
        }
        holders.push(token.to_string());
    }

    fn leave(&mut self, key: &str, token: &str) {
        if let Some(holders) = self.by_key.get_mut(key) {
            holders.retain(|t| t != token);
        }
    }

    fn held(&self) -> usize {
        self.by_key.values().map(Vec::len).sum()
    }
}

/// One acquire as an instance saw it.
#[derive(Clone, Debug)]
pub struct Op {
    /// From the call to the grant (or the give-up).
    pub wait: Duration,
    pub granted: bool,
    pub busy: u32,
    /// When the operation ended (released, or gave up), since the phase started.
    pub ended: Duration,
}

/// What one instance did in a phase, or the first thing that went wrong.
pub type InstanceResult = Result<Vec<Op>, Failure>;

/// One phase's measurements.
#[derive(Clone, Debug)]
pub struct Row {
    pub mode: &'static str,
    pub instances: usize,
    pub ops: usize,
    pub completed_in_phase: usize,
    pub throughput: f64,
    pub efficiency: f64,
    pub wait_mean: Duration,
    pub wait_p95: Duration,
    pub wait_p99: Duration,
    pub wait_max: Duration,
    pub contended: usize,
    pub timeouts: usize,
    pub herd: u32,
    pub crowding: f64,
    pub retries: u64,
}

pub fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// An engine on `env` in the workers-stage profile (no store, no pre-warm, the gateway
/// on any free port) with the session lock `lock`.
pub async fn engine_on(env: Env, lock: LockChoice) -> Result<Engine, Failure> {
    let mut config = workers_config(WORKER_PROGRAM_SIM, PortRange::DEFAULT);
    config.lock = lock;
    start_engine(env, config).await
}

/// The lock host of one phase: an engine on a host of its own (`lock-<port>`: a new
/// deployment, with nothing of an earlier phase's leases to wait out) hosting the lock
/// service on `port`, granting leases up to the squatter's.
pub async fn lock_host(world: &World, port: u16) -> Result<Engine, Failure> {
    let env = world.add_host(&format!("lock-{port}")).env();
    let config = SessionLockConfig {
        ttl: SQUAT_TTL,
        ..SessionLockConfig::standard()
    };
    engine_on(env, LockChoice::Serve { port, config }).await
}

pub fn service(engine: &Engine) -> Result<&LockServer, Failure> {
    engine
        .lock_service()
        .ok_or_else(|| Failure::correctness("the lock host's engine hosts no lock service"))
}

/// The engine's own session lock client.
pub fn client(engine: &Engine) -> Result<Arc<SessionLock>, Failure> {
    engine
        .session_lock()
        .cloned()
        .ok_or_else(|| Failure::correctness("an engine started with a lock has no lock client"))
}

/// An engine instance on a new host `name`, using the lock service at `service`.
pub async fn instance_engine(
    world: &World,
    name: &str,
    service: &NetAddr,
    config: SessionLockConfig,
) -> Result<Engine, Failure> {
    let env = world.add_host(name).env();
    let service = service.clone();
    engine_on(env, LockChoice::Use { service, config }).await
}

pub struct Instance {
    pub env: Env,
    pub lock: Arc<SessionLock>,
    pub rng: SimRng,
    pub holders: Arc<Mutex<Holders>>,
    pub phase_start: Instant,
}

impl Instance {
    async fn run(mut self) -> InstanceResult {
        let phase_end = self.phase_start + PHASE;
        let mut ops = Vec::new();
        while Instant::now() < phase_end {
            let key = KEYS[self.rng.below(KEYS.len() as u64) as usize];
            let asked = Instant::now();
            match self.lock.acquire(key).await {
                Ok(held) => {
                    let wait = asked.elapsed();
                    self.critical_section(held, wait, &mut ops).await?;
                }
                Err(LockError::Timeout { busy, .. }) => {
                    let wait = asked.elapsed();
                    ops.push(Op {
                        wait,
                        granted: false,
                        busy,
                        ended: Instant::now() - self.phase_start,
                    });
                }
                Err(e) => {
                    return Err(Failure::correctness(format!(
                        "{}: acquire of {key} failed: {e}",
                        self.env.host()
                    )));
                }
            }
            let outside = self.rng.between(OUTSIDE_MS.0, OUTSIDE_MS.1);
            tokio::time::sleep(Duration::from_millis(outside)).await;
        }
        Ok(ops)
    }

    async fn critical_section(&self, held: Held, wait: Duration, ops: &mut Vec<Op>) -> Outcome {
        let since = |at: Instant| at - self.phase_start;
        let (key, token, busy) = (held.key.clone(), held.token.clone(), held.busy);
        self.holders
            .lock()
            .expect("holders poisoned")
            .enter(&key, &token, since(Instant::now()));
        tokio::time::sleep(HOLD).await;
        self.holders
            .lock()
            .expect("holders poisoned")
            .leave(&key, &token);
        let ttl = self.lock.config().ttl;
        self.lock.release(held).await.map_err(|e| match e {
            // A 10 ms hold cannot outlive a 30 s lease: the service gave the key away.
            LockError::NotOwner { .. } => Failure::correctness(format!(
                "mutual exclusion broken: {} held {key} for {} ms of its {} s lease, yet at \
                 release the service no longer had {token} as its holder ({e})",
                self.env.host(),
                HOLD.as_millis(),
                ttl.as_secs()
            )),
            e => Failure::correctness(format!("{}: release of {key} failed: {e}", self.env.host())),
        })?;
        ops.push(Op {
            wait,
            granted: true,
            busy,
            ended: since(Instant::now()),
        });
        Ok(())
    }
}

/// Runs N instances against a fresh lock host; returns their operations and the
/// service's counts.
pub async fn phase(
    world: &World,
    port: u16,
    mode: &'static str,
    backoff: &LockBackoff,
    instances: usize,
) -> Result<(Vec<Op>, LockStats), Failure> {
    let lock_engine = lock_host(world, port).await?;
    let server = service(&lock_engine)?;
    let holders = Arc::new(Mutex::new(Holders::default()));
    let config = SessionLockConfig {
        backoff: backoff.clone(),
        ..SessionLockConfig::standard()
    };
    let mut engines = Vec::new();
    for i in 0..instances {
        let name = format!("{mode}-n{instances}-e{i}");
        let engine = instance_engine(world, &name, server.addr(), config.clone()).await?;
        engines.push((name, engine));
    }
    // Every instance is up before any loop starts: they all start at one instant.
    let phase_start = Instant::now();
    let mut tasks = Vec::new();
    for (name, engine) in &engines {
        let env = engine.env().clone();
        let instance = Instance {
            lock: client(engine)?,
            rng: world.rng(&format!("workload/{name}")),
            holders: holders.clone(),
            phase_start,
            env: env.clone(),
        };
        tasks.push((name.clone(), env.spawn("session-loop", instance.run())));
    }
    let mut ops = Vec::new();
    // An instance's own failure (say, a release refused because someone else took the
    // key) is reported after the mutual-exclusion oracle, which names the cause.
    let mut instance_failure = None;
    for (name, task) in tasks {
        let done = converge(&format!("instance {name}"), PHASE + DRAIN_BOUND, task).await?;
        match done {
            Ok(Ok(done)) => ops.extend(done),
            Ok(Err(failure)) => {
                instance_failure.get_or_insert(failure);
            }
            Err(e) => {
                instance_failure
                    .get_or_insert(Failure::correctness(format!("instance {name}: {e}")));
            }
        }
    }
    // A scope, not a `drop`: clippy sees the guard end before the stops below.
    {
        let holders = holders.lock().expect("holders poisoned");
        if let Some(first) = holders.violations.first() {
            return Err(Failure::correctness(format!(
                "mutual exclusion broken ({mode}, {instances} instances): {first} \
                 ({} violations shown of the first 5)",
                holders.violations.len()
            )));
        }
        if let Some(failure) = instance_failure {
            return Err(failure);
        }
        ensure!(
            holders.held() == 0,
            "{} locks still counted as held after every instance stopped",
            holders.held()
        );
    }
    let stats = server.stats();
    lock_engine.stop().await;
    for (_, engine) in engines {
        engine.stop().await;
    }
    Ok((ops, stats))
}

pub fn row(
    mode: &'static str,
    instances: usize,
    ops: &[Op],
    stats: &LockStats,
    single: Option<f64>,
) -> Row {
    let mut waits: Vec<Duration> = ops.iter().map(|o| o.wait).collect();
    waits.sort_unstable();
    let completed_in_phase = ops.iter().filter(|o| o.granted && o.ended <= PHASE).count();
    let throughput = completed_in_phase as f64 / PHASE.as_secs_f64();
    let single = single.unwrap_or(throughput);
    Row {
        mode,
        instances,
        ops: ops.len(),
        completed_in_phase,
        throughput,
        efficiency: if single > 0.0 {
            throughput / (instances as f64 * single)
        } else {
            0.0
        },
        wait_mean: if waits.is_empty() {
            Duration::ZERO
        } else {
            waits.iter().sum::<Duration>() / waits.len() as u32
        },
        wait_p95: percentile(&waits, 95),
        wait_p99: percentile(&waits, 99),
        wait_max: waits.last().copied().unwrap_or_default(),
        contended: ops.iter().filter(|o| o.busy > 0).count(),
        timeouts: ops.iter().filter(|o| !o.granted).count(),
        herd: stats.retry_burst_max,
        crowding: stats.retry_crowding(),
        retries: stats.retries,
    }
}

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "mode    N   ops  ops/s   eff   wait mean    p95      p99      max   contended timeouts retries peak/ms crowding\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<6} {:>3} {:>5} {:>6.1} {:>5.2} {:>8.1}ms {:>6.0}ms {:>6.0}ms {:>6.0}ms {:>7.0}% {:>8} {:>7} {:>7} {:>8.2}",
            r.mode,
            r.instances,
            r.ops,
            r.throughput,
            r.efficiency,
            ms_f(r.wait_mean),
            ms_f(r.wait_p95),
            ms_f(r.wait_p99),
            ms_f(r.wait_max),
            if r.ops == 0 {
                0.0
            } else {
                100.0 * r.contended as f64 / r.ops as f64
            },
            r.timeouts,
            r.retries,
            r.herd,
            r.crowding
        );
    }
    out
}
