//! Helpers the workers scenarios share: the declaration macro, starting and looking up
//! workers, requests, signals, the memory arithmetic, and the standard oracles (ready
//! within a bound, nothing leaked). Scenario files `use crate::kit::workers::*`.

pub use super::fail::{OrFail, unexpected};
pub use super::files::*;
pub use super::status::{Probe, StatusLog, ZombieWatch};
pub use super::time::{TICK, between, eventually, ms, on_time, secs, within};
pub use crate::ensure;
pub use crate::scenario::{Failure, Outcome, Scenario};
pub use crate::stage::workers::{Stage, WATCHDOG_INTERVAL};
pub use engine::workers::{Worker, WorkerError, WorkerStats, WorkerStatus};
pub use std::time::Duration;
pub use tokio::time::Instant;

use crate::stage::workers::{start_engine, workers_config};
use engine::env::{Env, NetListener, ProcSpec, Signal, Task};
use engine::workers::program::protocol::{SnapshotState, decode_reply};
use engine::workers::program::{Line, LineReader, Reply, Request};
use engine::workers::{PortRange, WorkerConfig, WorkerManager};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Declares a workers scenario: its static, id and title; what it proves; the fault
/// kinds it exercises and its virtual-time budget in seconds; `cores` (the engine files
/// it proves, `Scenario::cores`); its plan when not the workers swarm
/// ([`crate::kit::plans::workers`]); and its logic: `body: f` for an async fn over a
/// [`Stage`] on a simulated host (`body: f, real` runs it on this machine too, for
/// `chaos run ID --real`), or `world: f` for an async fn over the world that builds its
/// own stage.
macro_rules! workers_scenario {
    (
        $static:ident, $id:literal, $title:literal,
        proves: $proves:literal,
        faults: [$($fault:literal),* $(,)?], secs: $secs:expr,
        cores: [$($core:literal),+ $(,)?],
        $(plan: $plan:expr,)?
        body: $logic:ident $(, $real:ident)? $(,)?
    ) => {
        $crate::kit::workers::workers_scenario!(
            @make $static, $id, $title, $proves, [$($fault),*], [$($core),+], $secs,
            [$($plan)?], {
                fn body(world: sim::World) -> $crate::scenario::BodyFuture {
                    Box::pin(async move {
                        $logic($crate::stage::workers::Stage::sim(&world).await?).await
                    })
                }
                body
            },
            $crate::kit::workers::workers_scenario!(@real $logic $($real)?)
        );
    };
    (
        $static:ident, $id:literal, $title:literal,
        proves: $proves:literal,
        faults: [$($fault:literal),* $(,)?], secs: $secs:expr,
        cores: [$($core:literal),+ $(,)?],
        $(plan: $plan:expr,)?
        world: $logic:ident $(,)?
    ) => {
        $crate::kit::workers::workers_scenario!(
            @make $static, $id, $title, $proves, [$($fault),*], [$($core),+], $secs,
            [$($plan)?], {
                fn body(world: sim::World) -> $crate::scenario::BodyFuture {
                    Box::pin($logic(world))
                }
                body
            },
            None
        );
    };
    (
        @make $static:ident, $id:literal, $title:literal, $proves:literal,
        [$($fault:literal),*], [$($core:literal),+], $secs:expr, [$($plan:expr)?],
        $body:expr, $real:expr
    ) => {
        pub static $static: $crate::scenario::Scenario = $crate::scenario::Scenario {
            id: $id,
            title: $title,
            proves: $proves,
            faults_expected: &[$($fault),*],
            cores: &[$($core),+],
            sim_time_max: std::time::Duration::from_secs($secs),
            body: $body,
            real: $real,
            plan: Some($crate::scenario::Plan::World(
                $crate::kit::workers::workers_scenario!(@plan $($plan)?),
            )),
            declared_at: $crate::declared_here!(),
        };
    };
    (@real $logic:ident real) => {{
        fn real(stage: $crate::stage::workers::Stage) -> $crate::scenario::BodyFuture {
            Box::pin($logic(stage))
        }
        Some(real)
    }};
    (@real $logic:ident) => {
        None
    };
    (@plan) => {
        $crate::kit::plans::workers
    };
    (@plan $plan:expr) => {
        $plan
    };
}
pub(crate) use workers_scenario;

pub const MIB: u64 = 1 << 20;
/// Slack on a real run (real scheduling, real process exits).
pub const REAL_SLACK: Duration = Duration::from_secs(2);
/// Longer than any start in these scenarios (slow starts plus the connect schedule).
pub const START_BOUND: Duration = Duration::from_secs(30);

/// The slack for timings on this stage.
pub fn slack(stage: &Stage) -> Duration {
    if stage.is_real() { REAL_SLACK } else { TICK }
}

impl Stage {
    /// The registered worker `name`.
    pub async fn worker(&self, name: &str) -> Result<Arc<Worker>, Failure> {
        self.manager.worker(name).await.or_fail("lookup")
    }

    /// Registers `name` with `config`.
    pub async fn register(&self, name: &str, config: WorkerConfig) -> Outcome {
        let registered = self.manager.register(name, config).await;
        registered.or_fail(&format!("register {name:?}"))
    }

    /// Registers `name` with `config`, starts it and returns its handle once ready
    /// (within [`START_BOUND`]).
    pub async fn start_worker(
        &self,
        name: &str,
        config: WorkerConfig,
    ) -> Result<Arc<Worker>, Failure> {
        self.register(name, config).await?;
        let worker = self.worker(name).await?;
        ready_within(&worker, START_BOUND).await?;
        Ok(worker)
    }

    /// Registers `name` with its default configuration ([`Stage::config`]).
    pub async fn register_default(&self, name: &str) -> Outcome {
        self.register(name, self.config(name)).await
    }

    /// Starts the registered worker `name`: [`ready_within`] `bound`.
    pub async fn start_within(&self, name: &str, bound: Duration) -> Result<u32, Failure> {
        ready_within(&*self.worker(name).await?, bound).await
    }

    /// Spawns `task`, which starts the registered worker `name`.
    pub fn start_in_background(
        &self,
        task: &'static str,
        name: &str,
    ) -> Task<Result<(), WorkerError>> {
        let (manager, name) = (self.manager.clone(), name.to_string());
        self.env
            .spawn(task, async move { manager.start(&name).await })
    }

    /// Stops every worker of the stage's manager.
    pub async fn stop_all(&self) -> Outcome {
        self.manager.stop_all().await;
        Ok(())
    }

    /// Registers `name` with its default configuration and starts it within `bound`.
    pub async fn start_named(&self, name: &str, bound: Duration) -> Result<u32, Failure> {
        self.register_default(name).await?;
        self.start_within(name, bound).await
    }

    /// The pid the manager reports for `name` (0 if none).
    pub async fn pid(&self, name: &str) -> u32 {
        self.manager
            .get(name)
            .await
            .and_then(|i| i.pid)
            .unwrap_or(0)
    }

    /// The status the manager reports for `name`.
    pub async fn status(&self, name: &str) -> Option<WorkerStatus> {
        self.manager.get(name).await.map(|i| i.status)
    }
}

/// Registers, starts (within `bound`), checks and stops one worker under `name`: get
/// finds it, it is healthy, and it ends Stopped.
pub async fn full_cycle(stage: &Stage, name: &str, bound: Duration) -> Outcome {
    let shown = name.escape_debug().to_string();
    stage.register_default(name).await?;
    stage.start_within(name, bound).await?;
    let info = stage.manager.get(name).await;
    let found = info.as_ref().map(|i| i.name.as_str()) == Some(name);
    ensure!(found, "get({shown:?}) returned {info:?}");
    let health = stage.manager.health(name).await.or_fail("health")?;
    ensure!(health.healthy, "{shown:?} is not healthy: {health:?}");
    stage.manager.stop(name).await.or_fail("stop")?;
    let status = stage.status(name).await;
    ensure!(
        status == Some(WorkerStatus::Stopped),
        "after stop: {status:?}"
    );
    Ok(())
}

/// Oracle: a start of `worker` ends within `bound` (else a liveness failure), without an
/// error, and leaves it Ready; returns its pid.
pub async fn ready_within(worker: &Worker, bound: Duration) -> Result<u32, Failure> {
    match tokio::time::timeout(bound, worker.start()).await {
        Err(_) => Err(Failure::liveness(format!(
            "start of {:?} took longer than {} s",
            worker.name(),
            bound.as_secs()
        ))),
        Ok(started) => {
            started.or_fail(&format!("start {:?}", worker.name()))?;
            ready_pid(worker)
        }
    }
}

/// [`ready_within`] [`START_BOUND`].
pub async fn start_ready(worker: &Worker) -> Result<u32, Failure> {
    ready_within(worker, START_BOUND).await
}

/// The pid of a ready worker.
pub fn ready_pid(worker: &Worker) -> Result<u32, Failure> {
    match worker.status() {
        WorkerStatus::Ready { pid, .. } => Ok(pid),
        other => Err(Failure::correctness(format!(
            "{:?} should be ready but is {other}",
            worker.name()
        ))),
    }
}

/// The pid of a `Ready` status.
pub fn pid_of(status: &WorkerStatus) -> Result<u32, Failure> {
    match status {
        WorkerStatus::Ready { pid, .. } => Ok(*pid),
        other => Err(unexpected("status", other)),
    }
}

pub fn is_ready(s: &WorkerStatus) -> bool {
    matches!(s, WorkerStatus::Ready { .. })
}

pub fn failed(s: &WorkerStatus) -> bool {
    matches!(s, WorkerStatus::Failed { .. })
}

/// Whether `s` is Ready on another process than `old`.
pub fn replaced(s: &WorkerStatus, old: u32) -> bool {
    matches!(s, WorkerStatus::Ready { pid, .. } if *pid != old)
}

/// Whether a result is the descriptors-exhausted error, naming the OS error and the
/// ulimit fix.
pub fn emfile<T>(result: &Result<T, WorkerError>) -> bool {
    matches!(result, Err(e @ WorkerError::FdExhausted { .. })
        if e.to_string().contains("Too many open files") && e.to_string().contains("ulimit"))
}

/// Whether a result is the quota error of a full disk, naming the OS error and what to
/// do.
pub fn no_space<T>(result: &Result<T, WorkerError>) -> bool {
    matches!(result, Err(e @ WorkerError::DiskQuotaExceeded { .. })
        if e.to_string().contains("No space left on device") && e.to_string().contains("free space"))
}

/// The port of a ready worker's endpoint.
pub fn endpoint_port(worker: &Worker) -> Result<u16, Failure> {
    match worker.status() {
        WorkerStatus::Ready { port, .. } => Ok(port),
        other => Err(unexpected("status", other)),
    }
}

/// Stops the worker; returns how long the stop took.
pub async fn stop_timed(worker: &Worker) -> Result<Duration, Failure> {
    let asked = Instant::now();
    worker.stop().await.or_fail("stop")?;
    Ok(asked.elapsed())
}

/// Oracle: the supervisor reports `expected` bytes of disk usage for the worker.
pub fn ensure_usage(worker: &Worker, expected: u64, when: &str) -> Outcome {
    let usage = worker.disk_usage();
    ensure!(
        usage == expected,
        "{when}: disk usage {usage}, expected {expected}"
    );
    Ok(())
}

/// Oracle: the worker stops without error and ends Stopped; returns how long the stop
/// took.
pub async fn stopped(worker: &Worker) -> Result<Duration, Failure> {
    let took = stop_timed(worker).await?;
    let status = worker.status();
    ensure!(status == WorkerStatus::Stopped, "after stop: {status}");
    Ok(took)
}

/// Whether the worker's last stop was graceful: it exited 0 and was not killed.
pub fn graceful(stats: &WorkerStats) -> bool {
    exit_mentions(stats, "code 0") && stats.forced_kills == 0
}

/// Oracle: the worker answers a health check healthy.
pub async fn ensure_healthy(worker: &Worker, when: &str) -> Outcome {
    let health = worker.health().await;
    ensure!(
        health.healthy,
        "{when}: {:?} is not healthy: {health:?}",
        worker.name()
    );
    Ok(())
}

/// Oracle, nothing leaked at the end: stops the worker, then no process is left.
pub async fn stop_clean(stage: &Stage, worker: &Worker) -> Outcome {
    worker.stop().await.or_fail("stop")?;
    ensure_clean(stage, "at the end")
}

/// Oracle: the `Ready` status `ready` is a fresh process (not `old`, with the host's
/// initial resident memory); returns its pid.
pub fn fresh(host: &sim::Host, ready: &WorkerStatus, old: u32, what: &str) -> Result<u32, Failure> {
    let pid = pid_of(ready)?;
    let initial = host.procs().options().resident_bytes_initial;
    ensure!(
        pid != old && host.procs().resident_bytes(pid) == Some(initial),
        "{what} is not a fresh process"
    );
    Ok(pid)
}

/// Watches (every 5 ms) for the worker's memory warnings to pass `was`.
pub fn warning_probe(stage: &Stage, worker: Arc<Worker>, was: u64) -> Probe {
    Probe::start(&stage.env, ms(5), move || {
        worker.stats().memory_warnings > was
    })
}

/// Sets the simulated host's container memory limit.
pub fn memory_limit(host: &sim::Host, bytes: u64) {
    let mut options = host.procs().options();
    options.memory_limit_bytes = bytes;
    host.procs().set_options(options);
}

/// Live children of the simulated host (none known on a real run).
pub fn live_pids(stage: &Stage) -> Vec<u32> {
    stage
        .host()
        .map(|h| h.procs().live_pids())
        .unwrap_or_default()
}

/// Zombies of the simulated host.
pub fn zombie_pids(stage: &Stage) -> Vec<u32> {
    stage
        .host()
        .map(|h| h.procs().zombie_pids())
        .unwrap_or_default()
}

/// Oracle: exactly `n` processes of the host are alive.
pub fn live_count(stage: &Stage, n: usize, when: &str) -> Outcome {
    let live = live_pids(stage);
    ensure!(
        live.len() == n,
        "{when}: live processes {live:?}, expected {n}"
    );
    Ok(())
}

/// Oracle, nothing leaked: no process of the host is alive or a zombie.
pub fn ensure_clean(stage: &Stage, when: &str) -> Outcome {
    let live = live_pids(stage);
    let zombies = zombie_pids(stage);
    ensure!(
        live.is_empty() && zombies.is_empty(),
        "{when}: processes left alive {live:?}, zombies {zombies:?}"
    );
    Ok(())
}

/// Oracle: no process of the host is a zombie.
pub fn no_zombies(stage: &Stage, when: &str) -> Outcome {
    let zombies = zombie_pids(stage);
    ensure!(zombies.is_empty(), "{when}: zombies {zombies:?}");
    Ok(())
}

/// Oracle, nothing leaked eventually: within one watchdog interval (plus a margin) the
/// simulated host has no process left, running or zombie.
pub async fn all_reaped(stage: &Stage, what: &str) -> Outcome {
    let host = stage.host()?;
    eventually(what, WATCHDOG_INTERVAL + ms(500), ms(100), || {
        host.procs().live_pids().is_empty() && host.procs().zombie_pids().is_empty()
    })
    .await
}

/// One request to a ready worker; an error is a correctness failure.
pub async fn ask(worker: &Worker, request: Request) -> Result<Vec<Reply>, Failure> {
    let what = format!("{request:?} to {:?}", worker.name());
    worker.request(request).await.or_fail(&what)
}

/// One request that must be answered `Done`.
pub async fn ask_done(worker: &Worker, id: u64, request: Request) -> Outcome {
    let what = format!("{request:?}");
    let replies = ask(worker, request).await?;
    ensure!(
        replies.last() == Some(&Reply::Done { id }),
        "{what} answered {replies:?}"
    );
    Ok(())
}

/// A ping that must be answered by a pong.
pub async fn ping(worker: &Worker, id: u64) -> Outcome {
    let replies = ask(worker, Request::Ping { id }).await?;
    ensure!(
        replies.last() == Some(&Reply::Pong { id }),
        "ping {id} to {:?} answered {replies:?}",
        worker.name()
    );
    Ok(())
}

/// Writes a cache file through the worker.
pub async fn write_cache(
    worker: &Worker,
    id: u64,
    name: &str,
    bytes: u64,
) -> Result<(), WorkerError> {
    let name = name.to_string();
    let replies = worker
        .request(Request::WriteCache { id, name, bytes })
        .await?;
    if replies.last() == Some(&Reply::Done { id }) {
        Ok(())
    } else {
        Err(WorkerError::Protocol {
            name: worker.name().to_string(),
            detail: format!("write_cache answered {replies:?}"),
        })
    }
}

/// Reads a cache file back through the worker (a use, for the LRU order).
pub async fn read_cache(worker: &Worker, id: u64, name: &str) -> Outcome {
    let name = name.to_string();
    let request = Request::ReadCache { id, name };
    let replies = worker.request(request).await.or_fail("read_cache")?;
    ensure!(
        replies.last() == Some(&Reply::Done { id }),
        "read_cache {id} answered {replies:?}"
    );
    Ok(())
}

/// Time for a disk watch sampling every `interval` to sample what just changed.
pub fn settle(interval: Duration) -> Duration {
    interval + Duration::from_millis(10)
}

/// Writes seeded cache files and a snapshot through the worker; returns the files (by
/// name) and the snapshot's state.
pub async fn write_data(
    stage: &mut Stage,
    worker: &Worker,
    tag: &str,
) -> Result<(Vec<(String, u64)>, String), Failure> {
    let mut files = Vec::new();
    let count = 1 + stage.rng.below(4);
    for j in 0..count {
        let name = format!("{tag}-{j}");
        let bytes = 1 + stage.rng.below(300_000);
        let id = 100 + j;
        let request = Request::WriteCache {
            id,
            name: name.clone(),
            bytes,
        };
        ask_done(worker, id, request).await?;
        files.push((name, bytes));
    }
    let state = format!(
        "session {tag} step {} words {}",
        stage.rng.below(1_000),
        stage.rng.below(1_000_000)
    );
    let request = Request::Snapshot {
        id: 7,
        state: state.clone(),
    };
    ask_done(worker, 7, request).await?;
    files.sort();
    Ok((files, state))
}

/// When the latest process of a ready worker was spawned: `ready_at` minus its startup
/// time (the supervisor counts it from the moment it began spawning).
pub fn spawned_at(ready_at: Instant, stats: &WorkerStats) -> Instant {
    ready_at - Duration::from_millis(stats.last_startup_ms.unwrap_or(0))
}

/// How long a linear leak of `rate` bytes/s from `base` takes to reach `target` bytes.
pub fn time_to_reach(base: u64, rate: u64, target: u64) -> Duration {
    if target <= base {
        return Duration::ZERO;
    }
    let ns = (u128::from(target - base) * 1_000_000_000).div_ceil(u128::from(rate));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// `percent` of `bytes`, rounded up (the first byte count at or over the threshold).
pub fn percent_of(bytes: u64, percent: u64) -> u64 {
    (u128::from(bytes) * u128::from(percent)).div_ceil(100) as u64
}

/// Sends `signal` to a ready worker's process from outside; returns the instant of the
/// signal that ended it.
///
/// A real Rust binary survives its first SIGSEGV sent by `kill`: the handler std installs
/// to report stack overflows finds no faulting guard page, restores the default action
/// and returns (a real fault would re-fault and die; a sent signal is not re-raised). So
/// on a real run a SIGSEGV that did not end the process within a moment is sent again,
/// and the second one ends it with signal 11, as a real segfault would.
pub async fn send_signal(
    stage: &Stage,
    worker: &Worker,
    pid: u32,
    signal: Signal,
) -> Result<Instant, Failure> {
    let sent = Instant::now();
    ensure!(
        stage.kill(pid, signal),
        "could not send {} to pid {pid}",
        signal.name()
    );
    if !stage.is_real() || signal != Signal::Segv {
        return Ok(sent);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    if !matches!(worker.status(), WorkerStatus::Ready { pid: now, .. } if now == pid) {
        return Ok(sent);
    }
    let again = Instant::now();
    ensure!(
        stage.kill(pid, signal),
        "could not send SIGSEGV again to pid {pid}"
    );
    Ok(again)
}

/// Whether the worker's last exit mentions `words` ("code 0", "SIGKILL").
pub fn exit_mentions(stats: &WorkerStats, words: &str) -> bool {
    stats
        .last_exit
        .as_deref()
        .is_some_and(|e| e.contains(words))
}

/// How a worker's last exit names a death by `signal`.
pub fn signal_words(signal: Signal) -> &'static str {
    match signal {
        Signal::Segv => "SIGSEGV",
        Signal::Kill => "SIGKILL",
        _ => "signal",
    }
}

/// Saves `state` as `name`'s snapshot (request `id`), which must be answered `Done` alone.
pub async fn save_snapshot(stage: &Stage, name: &str, id: u64, state: &str) -> Outcome {
    let worker = stage.worker(name).await?;
    let state = state.to_string();
    let replies = worker.request(Request::Snapshot { id, state }).await;
    let replies = replies.or_fail("snapshot request")?;
    ensure!(
        replies == vec![Reply::Done { id }],
        "the snapshot request got {replies:?}"
    );
    Ok(())
}

/// Runs the worker program directly, as a parent that reads its `Ready` line would, and
/// returns what it says about its snapshot; then closes its stdin and reaps it.
pub async fn snapshot_state_at_start(
    stage: &Stage,
    dir: &str,
    snapshot: &str,
) -> Result<SnapshotState, Failure> {
    let spec = ProcSpec {
        program: stage.program.clone(),
        args: [
            "--name",
            "probe",
            "--heartbeat-ms",
            "0",
            "--snapshot",
            snapshot,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect(),
        env: Vec::new(),
        env_clear: true,
        cwd: Some(dir.to_string()),
    };
    let mut child = stage
        .env
        .procs()
        .spawn(&spec)
        .await
        .or_fail("spawning the worker directly")?;
    let stdin = child.take_stdin();
    let mut lines = LineReader::new(child.take_stdout().expect("a piped stdout"));
    let line = within("the worker's first line", secs(10), lines.next_line()).await?;
    let line = line.or_fail("reading the worker's first line")?;
    let state = match line {
        Line::Text(bytes) => match decode_reply(&bytes) {
            Ok(Reply::Ready { snapshot, .. }) => snapshot,
            other => {
                return Err(Failure::correctness(format!(
                    "the worker's first line was {other:?}, not Ready: a bad snapshot must not stop it"
                )));
            }
        },
        other => {
            return Err(Failure::correctness(format!(
                "the worker's first line was {other:?}, not Ready"
            )));
        }
    };
    drop(stdin);
    let status = within("the worker's exit on EOF", secs(10), child.wait()).await?;
    let status = status.or_fail("waiting for the worker")?;
    ensure!(
        status.code() == Some(0),
        "the worker exited with {status} on EOF"
    );
    Ok(state)
}

/// The supervisors a host booted, one per incarnation.
pub type Managers = Arc<Mutex<Vec<Arc<WorkerManager>>>>;

/// Makes the simulated host's boot (each restart) the container's entry point: an
/// engine running `program`, which registers and starts `configs` again. Returns the
/// supervisors booted, one per incarnation.
pub fn boot_supervisors(
    host: &sim::Host,
    program: &str,
    configs: Vec<(String, WorkerConfig)>,
) -> Managers {
    let slot: Managers = Arc::new(Mutex::new(Vec::new()));
    let boot_slot = slot.clone();
    let program = program.to_string();
    host.set_boot(Arc::new(move |env: Env| {
        let slot = boot_slot.clone();
        let configs = configs.clone();
        let config = workers_config(&program, PortRange::DEFAULT);
        Box::pin(async move {
            let engine = match start_engine(env, config).await {
                Ok(engine) => engine,
                Err(e) => {
                    tracing::warn!(error = %e.message, "boot: the engine did not start");
                    return;
                }
            };
            let manager = engine.workers().clone();
            slot.lock()
                .expect("managers poisoned")
                .push(manager.clone());
            for (name, config) in configs {
                if let Err(e) = manager.register(&name, config).await {
                    tracing::warn!(error = %e, "boot: register failed");
                }
                if let Err(e) = manager.start(&name).await {
                    tracing::warn!(error = %e, "boot: start failed");
                }
            }
        })
    }));
    slot
}

/// Binds `ports` on the host, as other processes holding them would; keep the
/// listeners to keep them taken.
pub async fn hold_ports(
    env: &Env,
    ports: std::ops::Range<u16>,
) -> Result<BTreeMap<u16, Box<dyn NetListener>>, Failure> {
    let mut held = BTreeMap::new();
    for port in ports {
        held.insert(port, env.net().bind(port).await.or_fail("hold a port")?);
    }
    Ok(held)
}

/// Sets the latency of every operation of the simulated host's disk to `min..=max`.
pub fn disk_latency(host: &sim::Host, min: Duration, max: Duration) {
    let mut options = host.disk().options();
    options.latency_min = min;
    options.latency_max = max;
    host.disk().set_options(options);
}

/// The supervisors booted so far.
pub fn managers(slot: &Managers) -> Vec<Arc<WorkerManager>> {
    slot.lock().expect("managers poisoned").clone()
}

/// Waits until incarnation `n` (1-based) of the supervisor has every worker ready.
pub async fn booted(
    slot: &Managers,
    n: usize,
    names: &[String],
) -> Result<Arc<WorkerManager>, Failure> {
    let deadline = Instant::now() + START_BOUND;
    loop {
        if let Some(manager) = managers(slot).get(n - 1).cloned() {
            let mut ready = 0;
            for name in names {
                if let Some(info) = manager.get(name).await
                    && matches!(info.status, WorkerStatus::Ready { .. })
                {
                    ready += 1;
                }
            }
            if ready == names.len() {
                return Ok(manager);
            }
        }
        if Instant::now() >= deadline {
            return Err(Failure::liveness(format!(
                "boot {n} did not bring up its {} workers within {} s",
                names.len(),
                START_BOUND.as_secs()
            )));
        }
        tokio::time::sleep(ms(50)).await;
    }
}

/// What the OS says for `errno` (`No such file or directory`), as a spawn error
/// carries it.
pub fn os_words(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(end) => text[..end].to_string(),
        None => text,
    }
}

/// Kills the ready `worker` (process `pid`) at `event`: on a simulated host the plan
/// sends the signal, and the body learns which from the faults the mark set going (none
/// after a shrink: then `None`); a real run has no plan, and the body sends `real`
/// itself. Returns the signal and the instant it was sent.
pub async fn planned_kill(
    stage: &Stage,
    worker: &Worker,
    pid: u32,
    event: &str,
    real: Signal,
) -> Result<Option<(Signal, Instant)>, Failure> {
    if stage.is_real() {
        return Ok(Some((real, send_signal(stage, worker, pid, real).await?)));
    }
    let at = Instant::now();
    let met = stage.mark(event);
    Ok(crate::kit::plans::met::signal_to(&met, worker.name()).map(|s| (s.signal(), at)))
}

/// On a real run (no plan), sends `signal` to the worker's process `pid` and returns the
/// instant of the signal that ended it; on a simulated host the plan sent it at `sent`.
pub async fn send_real(
    stage: &Stage,
    worker: &Worker,
    pid: u32,
    signal: Signal,
    sent: Instant,
) -> Result<Instant, Failure> {
    if stage.is_real() {
        send_signal(stage, worker, pid, signal).await
    } else {
        Ok(sent)
    }
}

/// Stops the worker (it ends Stopped) and checks nothing is left.
pub async fn stop_then_clean(stage: &Stage, worker: &Worker) -> Outcome {
    stopped(worker).await?;
    ensure_clean(stage, "after the stop")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_arithmetic() {
        assert_eq!(time_to_reach(10, 10, 20), Duration::from_secs(1));
        assert_eq!(time_to_reach(10, 3, 11), Duration::from_nanos(333_333_334));
        assert_eq!(time_to_reach(30, 3, 11), Duration::ZERO);
        assert_eq!(percent_of(100, 95), 95);
        assert_eq!(percent_of(101, 95), 96);
    }
}
