//! Crashes and recoveries: pattern.7.1 (crash after start, backoff, breaker), 7.2
//! (graceful stop and restart keep the data), core.EC-114 (OOM), EC-119 (SIGSEGV),
//! EC-122 (the container restarts under running workers), enable.1.1.1 (a sandbox
//! allocating past its limit).
//!
//! Timings are checked in virtual time. tokio's timers have 1 ms resolution, so a delay
//! the supervisor arms is observed within [`TICK`] of its nominal value on a simulated
//! host; on a real run the slack is [`REAL_SLACK`].
//!
//! The helpers at the top are shared with `resources.rs`.

use crate::ensure;
use crate::kit::workers::{bodies, live_pids, slow_starts, unexpected, zombie_pids};
use crate::scenario::{BodyFuture, Failure, Outcome, Scenario};
use crate::stage::workers::{Stage, start_engine, workers_config};
use engine::env::{Env, OpenMode, Signal, Task};
use engine::workers::breaker::RestartPolicy;
use engine::workers::memory::MemoryPolicy;
use engine::workers::program::{Reply, Request};
use engine::workers::{
    OversightRequest, PortRange, Worker, WorkerConfig, WorkerError, WorkerManager, WorkerStats,
    WorkerStatus,
};
use sim::World;
use sim::faults::SwarmKind;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &CRASH_AFTER_START,
        &GRACEFUL_RESTART,
        &OOM_KILL,
        &SEGFAULT,
        &CONTAINER_RESTART,
        &SANDBOX_MEMORY,
    ]
}

// ---------------------------------------------------------------------------------------
// Shared helpers.

pub(super) const MIB: u64 = 1 << 20;
/// Timer resolution slack on a simulated host.
pub(super) const TICK: Duration = Duration::from_millis(2);
/// Slack on a real run (real scheduling, real process exits).
pub(super) const REAL_SLACK: Duration = Duration::from_secs(2);
/// Longer than any start in these scenarios (slow starts plus the connect schedule).
pub(super) const START_BOUND: Duration = Duration::from_secs(30);

/// The slack for timings on this stage.
pub(super) fn slack(stage: &Stage) -> Duration {
    if stage.is_real() { REAL_SLACK } else { TICK }
}

/// Registers `name` with `config`, starts it and returns its handle once ready.
pub(super) async fn start_worker(
    stage: &Stage,
    name: &str,
    config: WorkerConfig,
) -> Result<Arc<Worker>, Failure> {
    stage
        .manager
        .register(name, config)
        .await
        .map_err(|e| unexpected(&format!("register {name:?}"), e))?;
    let worker = stage
        .manager
        .worker(name)
        .await
        .map_err(|e| unexpected("lookup", e))?;
    start_ready(&worker).await?;
    Ok(worker)
}

/// Starts a registered worker and requires it ready within [`START_BOUND`].
pub(super) async fn start_ready(worker: &Worker) -> Outcome {
    match tokio::time::timeout(START_BOUND, worker.start()).await {
        Err(_) => Err(Failure::liveness(format!(
            "start of {:?} took longer than {} s",
            worker.name(),
            START_BOUND.as_secs()
        ))),
        Ok(Err(e)) => Err(unexpected(&format!("start {:?}", worker.name()), e)),
        Ok(Ok(())) => {
            ready_pid(worker)?;
            Ok(())
        }
    }
}

/// The pid of a ready worker.
pub(super) fn ready_pid(worker: &Worker) -> Result<u32, Failure> {
    match worker.status() {
        WorkerStatus::Ready { pid, .. } => Ok(pid),
        other => Err(Failure::correctness(format!(
            "{:?} should be ready but is {other}",
            worker.name()
        ))),
    }
}

/// No process of the host is alive or a zombie.
pub(super) fn ensure_clean(stage: &Stage, when: &str) -> Outcome {
    let live = live_pids(stage);
    let zombies = zombie_pids(stage);
    ensure!(
        live.is_empty() && zombies.is_empty(),
        "{when}: processes left alive {live:?}, zombies {zombies:?}"
    );
    Ok(())
}

/// One request to a ready worker; an error is a correctness failure.
pub(super) async fn ask(worker: &Worker, request: Request) -> Result<Vec<Reply>, Failure> {
    let what = format!("{request:?} to {:?}", worker.name());
    worker
        .request(request)
        .await
        .map_err(|e| unexpected(&what, e))
}

/// A ping that must be answered by a pong.
pub(super) async fn ping(worker: &Worker, id: u64) -> Outcome {
    let replies = ask(worker, Request::Ping { id }).await?;
    ensure!(
        replies.last() == Some(&Reply::Pong { id }),
        "ping {id} to {:?} answered {replies:?}",
        worker.name()
    );
    Ok(())
}

/// When the latest process of a ready worker was spawned: `ready_at` minus its startup
/// time (the supervisor counts it from the moment it began spawning).
pub(super) fn spawned_at(ready_at: Instant, stats: &WorkerStats) -> Instant {
    ready_at - Duration::from_millis(stats.last_startup_ms.unwrap_or(0))
}

/// How long a linear leak of `rate` bytes/s from `base` takes to reach `target` bytes.
pub(super) fn time_to_reach(base: u64, rate: u64, target: u64) -> Duration {
    if target <= base {
        return Duration::ZERO;
    }
    let ns = (u128::from(target - base) * 1_000_000_000).div_ceil(u128::from(rate));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// `percent` of `bytes`, rounded up (the first byte count at or over the threshold).
pub(super) fn percent_of(bytes: u64, percent: u64) -> u64 {
    (u128::from(bytes) * u128::from(percent)).div_ceil(100) as u64
}

/// Every status a worker published, with the virtual instant it was published at (a
/// task on the worker's host follows the status channel).
pub(super) struct StatusLog {
    worker: String,
    entries: Arc<Mutex<Vec<(Instant, WorkerStatus)>>>,
    grew: watch::Receiver<usize>,
    task: Task<()>,
}

impl StatusLog {
    pub(super) fn follow(env: &Env, worker: &Worker) -> StatusLog {
        let mut status = worker.subscribe();
        let first = status.borrow_and_update().clone();
        let entries = Arc::new(Mutex::new(vec![(Instant::now(), first)]));
        let (grew_tx, grew) = watch::channel(1);
        let log = entries.clone();
        let task = env.spawn("status-log", async move {
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().clone();
                let len = {
                    let mut log = log.lock().expect("status log poisoned");
                    log.push((Instant::now(), now));
                    log.len()
                };
                grew_tx.send_replace(len);
            }
        });
        StatusLog {
            worker: worker.name().to_string(),
            entries,
            grew,
            task,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.lock().expect("status log poisoned").len()
    }

    /// The first status logged so far at index `from` or later that satisfies `wanted`.
    pub(super) fn find(
        &self,
        from: usize,
        wanted: impl Fn(&WorkerStatus) -> bool,
    ) -> Option<(usize, Instant, WorkerStatus)> {
        let log = self.entries.lock().expect("status log poisoned");
        log.iter()
            .enumerate()
            .skip(from)
            .find(|(_, (_, s))| wanted(s))
            .map(|(i, (at, status))| (i, *at, status.clone()))
    }

    /// The first status logged at index `from` or later that satisfies `wanted`, with its
    /// index and instant; waits for it at most `bound`.
    pub(super) async fn next(
        &self,
        from: usize,
        bound: Duration,
        what: &str,
        wanted: impl Fn(&WorkerStatus) -> bool,
    ) -> Result<(usize, Instant, WorkerStatus), Failure> {
        let deadline = Instant::now() + bound;
        let mut grew = self.grew.clone();
        loop {
            grew.borrow_and_update();
            if let Some(found) = self.find(from, &wanted) {
                return Ok(found);
            }
            let changed = tokio::time::timeout_at(deadline, grew.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                let seen: Vec<String> = self
                    .entries
                    .lock()
                    .expect("status log poisoned")
                    .iter()
                    .skip(from)
                    .map(|(_, s)| s.to_string())
                    .collect();
                return Err(Failure::liveness(format!(
                    "{:?}: {what} did not happen within {} ms (statuses since: {seen:?})",
                    self.worker,
                    bound.as_millis()
                )));
            }
        }
    }
}

impl Drop for StatusLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first instant at which `check` held, sampled every `step` by a task.
pub(super) struct Probe {
    seen: Arc<Mutex<Option<Instant>>>,
    task: Task<()>,
}

impl Probe {
    pub(super) fn start(
        env: &Env,
        step: Duration,
        check: impl Fn() -> bool + Send + 'static,
    ) -> Probe {
        let seen = Arc::new(Mutex::new(None));
        let slot = seen.clone();
        let task = env.spawn("probe", async move {
            loop {
                if check() {
                    *slot.lock().expect("probe poisoned") = Some(Instant::now());
                    return;
                }
                tokio::time::sleep(step).await;
            }
        });
        Probe { seen, task }
    }

    pub(super) fn seen(&self) -> Option<Instant> {
        *self.seen.lock().expect("probe poisoned")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `signal` to a ready worker's process from outside; returns the instant of the
/// signal that ended it.
///
/// A real Rust binary survives its first SIGSEGV sent by `kill`: the handler std installs
/// to report stack overflows finds no faulting guard page, restores the default action
/// and returns (a real fault would re-fault and die; a sent signal is not re-raised). So
/// on a real run a SIGSEGV that did not end the process within a moment is sent again,
/// and the second one ends it with signal 11, as a real segfault would.
pub(super) async fn send_signal(
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

fn exit_mentions(stats: &WorkerStats, words: &str) -> bool {
    stats
        .last_exit
        .as_deref()
        .is_some_and(|e| e.contains(words))
}

fn signal_words(signal: Signal) -> &'static str {
    match signal {
        Signal::Segv => "SIGSEGV",
        Signal::Kill => "SIGKILL",
        _ => "signal",
    }
}

// ---------------------------------------------------------------------------------------
// pattern.7.1

pub static CRASH_AFTER_START: Scenario = Scenario {
    id: "pattern.7.1",
    title: "Worker crashes after a successful start",
    proves: "A ready worker is killed from outside N times in a row (SIGSEGV first, then SIGKILL, \
             then seeded), N = the breaker's seeded failure limit, under a restart policy with a \
             seeded first backoff and no jitter. Each death must be detected from the exit status \
             at once (status Restarting, last_exit naming the signal, crash counted), and the \
             respawn must come exactly the doubling backoff after the death (first, 2x, 4x). The \
             N-th failure must open the breaker: no process is started any more, not even after \
             the backoff the next restart would have had. A manual start must close it and clear its history: the next crash is \
             restarted after the first backoff again. Nothing is left alive at the end.",
    faults_expected: &["proc.crash_segv", "proc.kill"],
    cores: &[
        "engine/src/workers/breaker.rs",
        "engine/src/workers/lifecycle.rs",
    ],
    sim_time_max: Duration::from_secs(600),
    body: crash_after_start_sim,
    real: Some(crash_after_start_real),
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

bodies!(
    crash_after_start,
    crash_after_start_sim,
    crash_after_start_real
);

async fn crash_after_start(mut stage: Stage) -> Outcome {
    let failures_max = 3 + stage.rng.below(3) as u32;
    let backoff_first = Duration::from_millis(200 + 100 * stage.rng.below(7));
    let mut config = stage.config("crashy");
    config.restart = RestartPolicy {
        enabled: true,
        backoff_first,
        backoff_max: Duration::from_secs(60),
        jitter_percent: 0,
        failures_max,
        window: Duration::from_secs(600),
        stable_after: Duration::from_secs(600),
    };
    let slack = slack(&stage);
    let worker = start_worker(&stage, "crashy", config).await?;
    let log = StatusLog::follow(&stage.env, &worker);
    for i in 1..=failures_max {
        let uptime = Duration::from_millis(100 + stage.rng.below(2_000));
        tokio::time::sleep(uptime).await;
        let pid = ready_pid(&worker)?;
        let signal = match i {
            1 => Signal::Segv,
            2 => Signal::Kill,
            _ if stage.rng.below(2) == 0 => Signal::Segv,
            _ => Signal::Kill,
        };
        let mark = log.len();
        let killed_at = send_signal(&stage, &worker, pid, signal).await?;
        let (index, seen_at, status) = log
            .next(
                mark,
                Duration::from_secs(10),
                "leaving Ready after the kill",
                |s| !matches!(s, WorkerStatus::Ready { .. }),
            )
            .await?;
        ensure!(
            seen_at - killed_at <= slack,
            "crash {i}: the death was noticed {:?} after the kill",
            seen_at - killed_at
        );
        let stats = worker.stats();
        ensure!(
            exit_mentions(&stats, signal_words(signal)),
            "crash {i} by {}: last_exit is {:?}",
            signal.name(),
            stats.last_exit
        );
        ensure!(
            stats.crashes == u64::from(i),
            "after crash {i} the worker counts {} crashes",
            stats.crashes
        );
        if i == failures_max {
            ensure!(
                status == WorkerStatus::BreakerOpen { failures: i },
                "failure {i} of {failures_max} gave status {status}, not an open breaker"
            );
            break;
        }
        ensure!(
            status == WorkerStatus::Restarting { failures: i },
            "crash {i}: status {status}, not restarting after {i} failures"
        );
        let (_, ready_at, ready) = log
            .next(index, Duration::from_secs(30), "the restart", |s| {
                matches!(s, WorkerStatus::Ready { .. })
            })
            .await?;
        ensure!(
            !matches!(ready, WorkerStatus::Ready { pid: new, .. } if new == pid),
            "the restarted worker still has pid {pid}"
        );
        let stats = worker.stats();
        let nominal = backoff_first * 2u32.pow(i - 1);
        let respawned = spawned_at(ready_at, &stats);
        let delay = respawned - killed_at;
        ensure!(
            delay + TICK >= nominal && delay <= nominal + slack,
            "crash {i}: respawned {delay:?} after the crash; the backoff is {nominal:?}"
        );
        // While the new process starts up, the status says so.
        let Some((_, starting_at, _)) =
            log.find(index, |s| matches!(s, WorkerStatus::Starting { .. }))
        else {
            return Err(Failure::correctness(format!(
                "crash {i}: the status never said Starting while the new process started \
                 (ready {:?} after the respawn)",
                ready_at - respawned
            )));
        };
        ensure!(
            starting_at <= respawned + slack && starting_at + TICK >= respawned,
            "crash {i}: status Starting published {:?} after the respawn (ready {:?} after it)",
            starting_at.saturating_duration_since(respawned),
            ready_at - respawned
        );
        ensure!(
            stats.restarts == u64::from(i),
            "{} restarts after {i} crashes",
            stats.restarts
        );
    }
    // The breaker is open: nothing is restarted, however long we wait.
    let spawns = worker.stats().spawns;
    // (Longer than the backoff the next restart would have waited.)
    tokio::time::sleep(backoff_first * 2u32.pow(failures_max - 1) + Duration::from_secs(2)).await;
    ensure!(
        worker.stats().spawns == spawns,
        "a process was started with the breaker open"
    );
    ensure!(
        worker.status()
            == WorkerStatus::BreakerOpen {
                failures: failures_max
            },
        "the open breaker drifted to {}",
        worker.status()
    );
    ensure_clean(&stage, "with the breaker open")?;
    let health = worker.health().await;
    ensure!(
        !health.healthy && !health.probed,
        "health with the breaker open: {health:?}"
    );
    // A manual start closes the breaker and clears its history.
    start_ready(&worker).await?;
    let pid = ready_pid(&worker)?;
    tokio::time::sleep(Duration::from_millis(100 + stage.rng.below(1_000))).await;
    let mark = log.len();
    let killed_at = send_signal(&stage, &worker, pid, Signal::Segv).await?;
    let (index, _, status) = log
        .next(mark, Duration::from_secs(10), "leaving Ready", |s| {
            !matches!(s, WorkerStatus::Ready { .. })
        })
        .await?;
    ensure!(
        status == WorkerStatus::Restarting { failures: 1 },
        "the first crash after a manual start gave {status}: the breaker kept its history"
    );
    let (_, ready_at, _) = log
        .next(index, Duration::from_secs(30), "the restart", |s| {
            matches!(s, WorkerStatus::Ready { .. })
        })
        .await?;
    let delay = spawned_at(ready_at, &worker.stats()) - killed_at;
    ensure!(
        delay + TICK >= backoff_first && delay <= backoff_first + slack,
        "after the manual start a crash was restarted after {delay:?}, not {backoff_first:?}"
    );
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    ensure!(
        worker.status() == WorkerStatus::Stopped,
        "after stop: {}",
        worker.status()
    );
    ensure_clean(&stage, "after the stop")
}

// ---------------------------------------------------------------------------------------
// pattern.7.2

const SNAPSHOT_FILE: &str = "snapshot";

/// Reads a file of the host's disk whole.
fn read_whole(env: &Env, path: &str) -> Result<Vec<u8>, Failure> {
    let file = env
        .disk()
        .open(path, OpenMode::Read)
        .map_err(|e| unexpected(&format!("open {path}"), e))?;
    let len = file
        .len()
        .map_err(|e| unexpected(&format!("len {path}"), e))?;
    let mut bytes = vec![0; len as usize];
    let mut filled = 0;
    while filled < bytes.len() {
        let n = file
            .read_at(&mut bytes[filled..], filled as u64)
            .map_err(|e| unexpected(&format!("read {path}"), e))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// The state in the snapshot file of a worker's directory.
fn snapshot_state(env: &Env, dir: &str) -> Result<String, Failure> {
    let bytes = read_whole(env, &format!("{dir}/{SNAPSHOT_FILE}"))?;
    engine::workers::program::snapshot::decode(&bytes)
        .map_err(|e| Failure::correctness(format!("the snapshot in {dir} is damaged: {e}")))
}

/// Cache files of a worker's directory and their sizes, by name.
fn cache_files(env: &Env, dir: &str) -> Vec<(String, u64)> {
    let cache = format!("{dir}/cache");
    let Ok(names) = env.disk().list(&cache) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter_map(|n| {
            let meta = env.disk().metadata(&format!("{cache}/{n}")).ok()?;
            (!meta.is_dir).then_some((n, meta.len))
        })
        .collect()
}

/// Bytes the cache `files` and a snapshot of `state` take on disk (no snapshot for "").
fn data_bytes(files: &[(String, u64)], state: &str) -> u64 {
    let snapshot = if state.is_empty() {
        0
    } else {
        engine::workers::program::snapshot::encode(state).len() as u64
    };
    files.iter().map(|f| f.1).sum::<u64>() + snapshot
}

/// Writes seeded cache files and a snapshot through the worker; returns the files.
async fn write_data(
    stage: &mut Stage,
    worker: &Worker,
    tag: &str,
) -> Result<(Vec<(String, u64)>, String), Failure> {
    let mut files = Vec::new();
    let count = 1 + stage.rng.below(4);
    for j in 0..count {
        let name = format!("{tag}-{j}");
        let bytes = 1 + stage.rng.below(300_000);
        let replies = ask(
            worker,
            Request::WriteCache {
                id: 100 + j,
                name: name.clone(),
                bytes,
            },
        )
        .await?;
        ensure!(
            replies.last() == Some(&Reply::Done { id: 100 + j }),
            "writing {name}: {replies:?}"
        );
        files.push((name, bytes));
    }
    let state = format!(
        "session {tag} step {} words {}",
        stage.rng.below(1_000),
        stage.rng.below(1_000_000)
    );
    let replies = ask(
        worker,
        Request::Snapshot {
            id: 7,
            state: state.clone(),
        },
    )
    .await?;
    ensure!(
        replies.last() == Some(&Reply::Done { id: 7 }),
        "snapshot: {replies:?}"
    );
    files.sort();
    Ok((files, state))
}

pub static GRACEFUL_RESTART: Scenario = Scenario {
    id: "pattern.7.2",
    title: "Running worker stopped and restarted gracefully",
    proves: "A worker started slowly (seeded delay) writes seeded cache files and a snapshot, then \
             is stopped. The stop must be graceful: SIGTERM, the worker says Bye and exits 0 well \
             within the grace period, no SIGKILL, not counted as a crash. Everything it \
             acknowledged must then be durable: the disk drops whatever was not synced (a power \
             cut while it is stopped). Started again (slowly), the worker must find every cache \
             file at its size, its snapshot intact, its disk usage unchanged, and serve new \
             writes on top. Nothing is left alive at the end.",
    faults_expected: &["proc.slow_start"],
    cores: &[
        "engine/src/workers/lifecycle.rs",
        "engine/src/workers/program/run.rs",
        "engine/src/workers/program/cache.rs",
        "engine/src/workers/program/snapshot.rs",
    ],
    sim_time_max: Duration::from_secs(300),
    body: graceful_restart_sim,
    real: None,
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

fn graceful_restart_sim(world: World) -> BodyFuture {
    Box::pin(async move { graceful_restart(Stage::sim(&world).await?).await })
}

async fn graceful_restart(mut stage: Stage) -> Outcome {
    slow_starts(
        &stage,
        Duration::from_millis(100),
        Duration::from_millis(3_000),
    );
    let mut config = stage.config("keeper");
    config.args = vec!["--snapshot".into(), SNAPSHOT_FILE.into()];
    let dir = config.dir.clone();
    let grace = config.grace;
    let worker = start_worker(&stage, "keeper", config).await?;
    let first_pid = ready_pid(&worker)?;
    let (files, state) = write_data(&mut stage, &worker, "a").await?;
    let usage = worker.disk_usage();
    let expected = data_bytes(&files, &state);
    ensure!(
        usage == expected,
        "disk usage {usage}, but {expected} bytes of cache and snapshot were written"
    );
    let asked = Instant::now();
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    let took = asked.elapsed();
    let stats = worker.stats();
    ensure!(
        worker.status() == WorkerStatus::Stopped,
        "after stop: {}",
        worker.status()
    );
    ensure!(
        exit_mentions(&stats, "code 0") && stats.forced_kills == 0 && stats.crashes == 0,
        "the stop was not graceful: last_exit {:?}, {} forced kills, {} crashes",
        stats.last_exit,
        stats.forced_kills,
        stats.crashes
    );
    ensure!(
        took < grace / 10,
        "the graceful stop took {took:?} (grace {grace:?})"
    );
    ensure_clean(&stage, "after the stop")?;
    // Power cut while stopped: only what was synced survives.
    stage.host()?.disk().crash();
    start_ready(&worker).await?;
    let pid = ready_pid(&worker)?;
    ensure!(pid != first_pid, "the restart reused pid {pid}");
    let found = cache_files(&stage.env, &dir);
    ensure!(
        found == files,
        "cache files after the restart: {found:?}, written before the stop: {files:?}"
    );
    let restored = snapshot_state(&stage.env, &dir)?;
    ensure!(
        restored == state,
        "snapshot after the restart holds {restored:?}, not {state:?}"
    );
    ensure!(
        worker.disk_usage() == usage,
        "disk usage {} after the restart, {usage} before the stop",
        worker.disk_usage()
    );
    let (more, state) = write_data(&mut stage, &worker, "b").await?;
    let now = worker.disk_usage();
    let expected = data_bytes(&files, "") + data_bytes(&more, &state);
    ensure!(
        now == expected,
        "usage {now} after more writes; expected {expected}"
    );
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    ensure!(
        worker.stats().spawns == 2 && worker.stats().crashes == 0,
        "stats after two graceful cycles: {:?}",
        worker.stats()
    );
    ensure_clean(&stage, "at the end")
}

// ---------------------------------------------------------------------------------------
// core.EC-114

pub static OOM_KILL: Scenario = Scenario {
    id: "core.EC-114",
    title: "Worker process memory reaches the OOM threshold",
    proves: "Two workers leak at the same seeded rate under a seeded container memory limit. The \
             unwatched one must be OOM-killed at exactly the instant its memory crosses the limit, \
             seen as a crash (SIGKILL in last_exit, crash counted), and recovered: restarted after \
             the default backoff, with fresh memory and a new pid, answering again. The other \
             runs under a memory watch whose cap is 3/4 of the container limit: it must warn once \
             above 80% of its cap and restart the worker gracefully (SIGTERM, exit 0, no crash, \
             no backoff) before the OOM killer, well before the unwatched one dies. Exactly one \
             OOM kill fires per run.",
    faults_expected: &["proc.oom_kill", "proc.leak"],
    cores: &[
        "engine/src/workers/memory.rs",
        "engine/src/workers/lifecycle/resources.rs",
        "engine/src/workers/lifecycle.rs",
    ],
    sim_time_max: Duration::from_secs(900),
    body: oom_kill_sim,
    real: None,
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

fn oom_kill_sim(world: World) -> BodyFuture {
    Box::pin(async move { oom_kill(Stage::sim(&world).await?).await })
}

async fn oom_kill(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let container = (128 + 32 * stage.rng.below(13)) * MIB;
    let mut options = host.procs().options();
    options.memory_limit_bytes = container;
    host.procs().set_options(options);
    let cap = container / 4 * 3;
    let rate = cap / (50 + stage.rng.below(100));
    let plain = start_worker(&stage, "plain", stage.config("plain")).await?;
    let mut config = stage.config("watched");
    config.memory = Some(MemoryPolicy::with_limit(cap));
    let watched = start_worker(&stage, "watched", config).await?;
    let plain_log = StatusLog::follow(&stage.env, &plain);
    let watched_log = StatusLog::follow(&stage.env, &watched);
    tokio::time::sleep(Duration::from_millis(stage.rng.below(1_000))).await;
    let plain_pid = ready_pid(&plain)?;
    let watched_pid = ready_pid(&watched)?;
    let initial = host.procs().options().resident_bytes_initial;
    let base = host.procs().resident_bytes(plain_pid).unwrap_or(0);
    let leak_at = Instant::now();
    ensure!(
        host.procs().leak(plain_pid, rate) && host.procs().leak(watched_pid, rate),
        "could not make the workers leak"
    );
    let oom_at = leak_at + time_to_reach(base, rate, container + 1);

    // The watched worker is restarted by its supervisor first.
    let (index, stopping_at, _) = watched_log
        .next(1, oom_at - Instant::now(), "the memory restart", |s| {
            *s == WorkerStatus::Stopping
        })
        .await?;
    let stats = watched.stats();
    ensure!(
        stats.memory_warnings == 1 && stats.memory_restarts == 1,
        "at the memory restart: {} warnings, {} restarts",
        stats.memory_warnings,
        stats.memory_restarts
    );
    let resident =
        base + (u128::from(rate) * (stopping_at - leak_at).as_nanos() / 1_000_000_000) as u64;
    ensure!(
        resident >= percent_of(cap, 80) && resident < container,
        "the memory restart came at {resident} bytes (cap {cap}, container {container})"
    );
    let (_, _, ready) = watched_log
        .next(
            index,
            START_BOUND,
            "the restart after the memory restart",
            |s| matches!(s, WorkerStatus::Ready { .. }),
        )
        .await?;
    let stats = watched.stats();
    ensure!(
        exit_mentions(&stats, "code 0")
            && stats.crashes == 0
            && stats.restarts == 0
            && stats.forced_kills == 0,
        "the memory restart was not a graceful stop and start: {stats:?}"
    );
    let WorkerStatus::Ready {
        pid: new_watched, ..
    } = ready
    else {
        return Err(unexpected("watched", ready));
    };
    ensure!(
        host.procs().resident_bytes(new_watched) == Some(initial),
        "the restarted watched worker does not start with fresh memory"
    );

    // The unwatched one meets the OOM killer at the predicted instant.
    let (index, died_at, status) = plain_log
        .next(
            1,
            oom_at + Duration::from_secs(1) - Instant::now(),
            "the OOM kill",
            |s| !matches!(s, WorkerStatus::Ready { .. }),
        )
        .await?;
    ensure!(
        died_at >= oom_at && died_at <= oom_at + TICK,
        "the OOM kill was seen {:?} after the predicted instant",
        died_at.saturating_duration_since(oom_at)
    );
    ensure!(
        status == WorkerStatus::Restarting { failures: 1 },
        "after the OOM kill: {status}"
    );
    let stats = plain.stats();
    ensure!(
        exit_mentions(&stats, "SIGKILL") && stats.crashes == 1 && stats.memory_warnings == 0,
        "after the OOM kill: {stats:?}"
    );
    ensure!(
        stopping_at < died_at,
        "the watched worker was restarted after the unwatched one died"
    );
    let (_, ready_at, ready) = plain_log
        .next(index, START_BOUND, "recovery after the OOM kill", |s| {
            matches!(s, WorkerStatus::Ready { .. })
        })
        .await?;
    let stats = plain.stats();
    let delay = spawned_at(ready_at, &stats) - died_at;
    let nominal = RestartPolicy::default_policy().backoff_first;
    ensure!(
        delay + TICK >= nominal * 8 / 10 && delay <= nominal + TICK,
        "restarted {delay:?} after the OOM kill; the backoff is {nominal:?} minus up to 20%"
    );
    let WorkerStatus::Ready { pid: new_plain, .. } = ready else {
        return Err(unexpected("plain", ready));
    };
    ensure!(
        new_plain != plain_pid && host.procs().resident_bytes(new_plain) == Some(initial),
        "the recovered worker is not a fresh process"
    );
    ping(&plain, 1).await?;
    ping(&watched, 2).await?;
    ensure!(
        stage.faults.count("proc.oom_kill") == 1,
        "{} OOM kills: the watched worker met the OOM killer too",
        stage.faults.count("proc.oom_kill")
    );
    stage.manager.stop_all().await;
    ensure_clean(&stage, "at the end")
}

// ---------------------------------------------------------------------------------------
// core.EC-119

pub static SEGFAULT: Scenario = Scenario {
    id: "core.EC-119",
    title: "Worker process segfaults",
    proves: "A ready worker dies of SIGSEGV a seeded number of times (on a simulated host one of \
             the deaths is an OOM kill instead, at a seeded place in the sequence). Each death must \
             raise a process error: status Restarting, last_exit naming the signal, the crash \
             counted, requests answered NotRunning and health unhealthy without a probe. Each must \
             take the same recovery path, whatever killed it: a restart after the default backoff \
             (doubling, jitter at most 20% below), a new process that answers pings.",
    faults_expected: &["proc.crash_segv"],
    cores: &[
        "engine/src/workers/lifecycle.rs",
        "engine/src/workers/breaker.rs",
        "engine/src/workers/worker.rs",
    ],
    sim_time_max: Duration::from_secs(300),
    body: segfault_sim,
    real: Some(segfault_real),
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

bodies!(segfault, segfault_sim, segfault_real);

async fn segfault(mut stage: Stage) -> Outcome {
    let deaths = if stage.is_real() {
        1 + stage.rng.below(3)
    } else {
        2 + stage.rng.below(2)
    };
    let oom_index = if stage.is_real() {
        None
    } else {
        let host = stage.host()?;
        let mut options = host.procs().options();
        options.memory_limit_bytes = 64 * MIB;
        host.procs().set_options(options);
        Some(1 + stage.rng.below(deaths))
    };
    let slack = slack(&stage);
    let worker = start_worker(&stage, "seg", stage.config("seg")).await?;
    let log = StatusLog::follow(&stage.env, &worker);
    ping(&worker, 1).await?;
    let backoff = RestartPolicy::default_policy().backoff_first;
    for i in 1..=deaths {
        tokio::time::sleep(Duration::from_millis(50 + stage.rng.below(3_000))).await;
        let pid = ready_pid(&worker)?;
        let mark = log.len();
        let oom = oom_index == Some(i);
        let injected_at = if oom {
            ensure!(
                stage.host()?.procs().leak(pid, 32 * MIB),
                "could not make pid {pid} leak"
            );
            Instant::now()
        } else {
            send_signal(&stage, &worker, pid, Signal::Segv).await?
        };
        let (index, died_at, status) = log
            .next(mark, Duration::from_secs(10), "the death", |s| {
                !matches!(s, WorkerStatus::Ready { .. })
            })
            .await?;
        let words = if oom { "SIGKILL" } else { "SIGSEGV" };
        ensure!(
            oom || died_at - injected_at <= slack,
            "death {i} noticed {:?} after the signal",
            died_at - injected_at
        );
        ensure!(
            status == WorkerStatus::Restarting { failures: i as u32 },
            "death {i} ({words}): status {status}"
        );
        let stats = worker.stats();
        ensure!(
            exit_mentions(&stats, words) && stats.crashes == i,
            "death {i} ({words}): last_exit {:?}, {} crashes",
            stats.last_exit,
            stats.crashes
        );
        // The process error reaches callers while the worker is down.
        if matches!(worker.status(), WorkerStatus::Restarting { .. }) {
            let refused = worker.request(Request::Ping { id: 10 + i }).await;
            ensure!(
                matches!(refused, Err(WorkerError::NotRunning { .. })),
                "a request while restarting gave {refused:?}"
            );
            let health = worker.health().await;
            ensure!(
                !health.healthy && !health.probed,
                "health while restarting: {health:?}"
            );
        }
        let (_, ready_at, ready) = log
            .next(index, START_BOUND, "the recovery", |s| {
                matches!(s, WorkerStatus::Ready { .. })
            })
            .await?;
        let stats = worker.stats();
        let nominal = backoff * 2u32.pow(i as u32 - 1);
        let delay = spawned_at(ready_at, &stats) - died_at;
        ensure!(
            delay + TICK >= nominal * 8 / 10 && delay <= nominal + slack,
            "death {i} ({words}): respawned after {delay:?}; backoff {nominal:?} minus up to 20%"
        );
        ensure!(
            !matches!(ready, WorkerStatus::Ready { pid: new, .. } if new == pid),
            "pid {pid} reported ready again"
        );
        ensure!(
            stats.restarts == i,
            "{} restarts after {i} deaths",
            stats.restarts
        );
        ping(&worker, 100 + i).await?;
    }
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    ensure_clean(&stage, "at the end")
}

// ---------------------------------------------------------------------------------------
// core.EC-122

pub static CONTAINER_RESTART: Scenario = Scenario {
    id: "core.EC-122",
    title: "Container restarts while workers are running",
    proves: "The engine host boots a supervisor that starts a seeded number of workers; they write \
             cache files and snapshots (acknowledged), and at a seeded moment (sometimes during \
             one more, unacknowledged write) the host crashes. No worker process may survive, not \
             even as a zombie. After a seeded downtime the host restarts and boots a new \
             supervisor: it must start every worker afresh (new pids), nothing from the dead \
             incarnation may come back, every acknowledged cache file and snapshot must be on \
             disk intact for the new workers, and they must serve requests.",
    faults_expected: &["host.crash"],
    cores: &[
        "engine/src/workers/manager.rs",
        "engine/src/workers/program/cache.rs",
        "engine/src/workers/program/snapshot.rs",
    ],
    sim_time_max: Duration::from_secs(300),
    body: container_restart_sim,
    real: None,
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

fn container_restart_sim(world: World) -> BodyFuture {
    Box::pin(async move { container_restart(Stage::sim(&world).await?).await })
}

type Managers = Arc<Mutex<Vec<Arc<WorkerManager>>>>;

fn managers(slot: &Managers) -> Vec<Arc<WorkerManager>> {
    slot.lock().expect("managers poisoned").clone()
}

/// Waits until incarnation `n` (1-based) of the supervisor has every worker ready.
async fn booted(
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn container_restart(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let mut disk = host.disk().options();
    disk.latency_min = Duration::from_micros(100);
    disk.latency_max = Duration::from_millis(1);
    host.disk().set_options(disk);
    let names: Vec<String> = (0..1 + stage.rng.below(3))
        .map(|i| format!("session-{i}"))
        .collect();
    let configs: Vec<(String, WorkerConfig)> = names
        .iter()
        .map(|name| {
            let mut config = stage.config(name);
            config.args = vec!["--snapshot".into(), SNAPSHOT_FILE.into()];
            (name.clone(), config)
        })
        .collect();
    let slot: Managers = Arc::new(Mutex::new(Vec::new()));
    let boot_slot = slot.clone();
    let program = stage.program.clone();
    host.set_boot(Arc::new(move |env: Env| {
        let slot = boot_slot.clone();
        let configs = configs.clone();
        let config = workers_config(&program, PortRange::DEFAULT);
        Box::pin(async move {
            // The container's entry point: an engine, which then starts its sessions'
            // workers again.
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
    let first = booted(&slot, 1, &names).await?;
    // Acknowledged data.
    let mut acked = Vec::new();
    for name in &names {
        let worker = first
            .worker(name)
            .await
            .map_err(|e| unexpected("lookup", e))?;
        let (files, state) = write_data(&mut stage, &worker, name).await?;
        acked.push((worker.config().dir.clone(), files, state));
    }
    // Sometimes one more write is in flight when the host dies.
    let in_flight = stage.rng.below(2) == 0;
    let _writer = if in_flight {
        let worker = first
            .worker(&names[0])
            .await
            .map_err(|e| unexpected("lookup", e))?;
        Some(stage.env.spawn("in-flight-write", async move {
            let _ = worker
                .request(Request::WriteCache {
                    id: 999,
                    name: "in-flight".into(),
                    bytes: 8 * MIB,
                })
                .await;
        }))
    } else {
        None
    };
    tokio::time::sleep(Duration::from_millis(stage.rng.below(200))).await;
    let before = live_pids(&stage);
    ensure!(
        before.len() == names.len(),
        "before the crash {} processes run for {} workers",
        before.len(),
        names.len()
    );
    host.crash();
    ensure_clean(&stage, "right after the host crash")?;
    tokio::time::sleep(Duration::from_secs(1 + stage.rng.below(20))).await;
    ensure_clean(&stage, "while the host is down")?;
    host.restart();
    let second = booted(&slot, 2, &names).await?;
    ensure!(
        managers(&slot).len() == 2,
        "{} supervisors booted for one restart",
        managers(&slot).len()
    );
    let after = live_pids(&stage);
    let newest_old = before.iter().max().copied().unwrap_or(0);
    ensure!(
        after.len() == names.len() && after.iter().all(|p| *p > newest_old),
        "after the restart processes {after:?} run (before the crash: {before:?})"
    );
    for (name, (dir, files, state)) in names.iter().zip(&acked) {
        let found: Vec<(String, u64)> = cache_files(&stage.env, dir)
            .into_iter()
            .filter(|(n, _)| n != "in-flight")
            .collect();
        ensure!(
            &found == files,
            "{name}: acknowledged cache files {files:?}, after the restart {found:?}"
        );
        let restored = snapshot_state(&stage.env, dir)?;
        ensure!(
            &restored == state,
            "{name}: snapshot {restored:?} after the restart, {state:?} acknowledged"
        );
        let worker = second
            .worker(name)
            .await
            .map_err(|e| unexpected("lookup", e))?;
        let acked_bytes = data_bytes(files, state);
        let usage = worker.disk_usage();
        let torn = cache_files(&stage.env, dir)
            .into_iter()
            .find(|(n, _)| n == "in-flight")
            .map_or(0, |f| f.1);
        ensure!(
            torn <= 8 * MIB && usage == acked_bytes + torn,
            "{name}: disk usage {usage} after the restart, {acked_bytes} bytes acknowledged \
             (+{torn} of the unacknowledged write)"
        );
        ping(&worker, 5).await?;
    }
    second.stop_all().await;
    ensure_clean(&stage, "at the end")
}

// ---------------------------------------------------------------------------------------
// enable.1.1.1

pub static SANDBOX_MEMORY: Scenario = Scenario {
    id: "enable.1.1.1",
    title: "Sandbox code allocates past its memory limit",
    proves: "A sandbox (worker) under a memory watch with a seeded limit (512 MiB or 1 GiB, warn \
             80%, critical 95%, seeded sample interval) allocates steadily, twice, in a seeded \
             order: once staying responsive, once hung in its allocation loop. Each time the \
             warning must be raised once, at the first sample over 80%; at the first sample over \
             95% a checkpoint of the session must be asked for and an oversight request to \
             double the limit filed. The responsive sandbox checkpoints at once (its snapshot \
             then holds its session: the last snapshot plus every input run since, restored by \
             the replacement) and exits 0 on SIGTERM; the hung one never answers, so the stop \
             begins when the 5 s checkpoint bound runs out, and SIGKILL must follow exactly 5 s \
             (the grace) after the SIGTERM, counted as a forced kill. All long before the \
             container's OOM killer; each time a fresh sandbox replaces it.",
    faults_expected: &["proc.leak", "proc.hang"],
    cores: &[
        "engine/src/workers/memory.rs",
        "engine/src/workers/lifecycle/resources.rs",
        "engine/src/workers/lifecycle/deadlines.rs",
        "engine/src/workers/program/snapshot.rs",
    ],
    sim_time_max: Duration::from_secs(900),
    body: sandbox_memory_sim,
    real: None,
    // No slow disk: the oracle gives the stop one sample interval plus the checkpoint
    // bound after memory crosses 95%, and the checkpoint writes to the disk.
    plan: Some(crate::scenario::Plan::World(|seed| {
        crate::kit::plans::swarm(seed, &[SwarmKind::NetDelay, SwarmKind::ProcSlowStart])
    })),
};

fn sandbox_memory_sim(world: World) -> BodyFuture {
    Box::pin(async move { sandbox_memory(Stage::sim(&world).await?).await })
}

async fn sandbox_memory(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let limit = (512 * MIB) << stage.rng.below(2);
    let mut options = host.procs().options();
    options.memory_limit_bytes = 2 * limit;
    host.procs().set_options(options);
    let interval = Duration::from_millis(200 + 100 * stage.rng.below(9));
    let grace = Duration::from_secs(5);
    let mut config = stage.config("sandbox");
    config.memory = Some(MemoryPolicy {
        sample_interval: interval,
        limit_bytes: limit,
        warn_percent: 80,
        critical_percent: 95,
        // Thresholds only: no early restart on the growth rate.
        horizon: Duration::ZERO,
        samples_kept: 5,
        owner_restarts: false,
    });
    config.grace = grace;
    config.args = vec!["--snapshot=session.snap".to_string()];
    let snapshot_path = format!("{}/session.snap", config.dir);
    let checkpoint_bound = config.checkpoint_timeout;
    ensure!(
        checkpoint_bound == Duration::from_secs(5),
        "the default checkpoint bound is {checkpoint_bound:?}"
    );
    // A hung sandbox is stopped by the memory watch here, not by hang detection.
    config.heartbeat_timeout = Duration::from_secs(120);
    let worker = start_worker(&stage, "sandbox", config).await?;
    let log = StatusLog::follow(&stage.env, &worker);
    let initial = host.procs().options().resident_bytes_initial;
    let hung_first = stage.rng.below(2) == 0;
    for round in 0..2u64 {
        let hung = hung_first == (round == 0);
        tokio::time::sleep(Duration::from_millis(stage.rng.below(1_000))).await;
        let pid = ready_pid(&worker)?;
        // The session so far: a snapshot, then inputs run since (what a checkpoint keeps).
        let base = format!("round {round} state {}", stage.rng.below(1_000_000));
        let replies = ask(
            &worker,
            Request::Snapshot {
                id: 10,
                state: base.clone(),
            },
        )
        .await?;
        ensure!(
            replies.last() == Some(&Reply::Done { id: 10 }),
            "round {round}: snapshot: {replies:?}"
        );
        let mut session = base;
        for i in 0..stage.rng.below(4) {
            let input = format!("question {i} of round {round}");
            ask(
                &worker,
                Request::Run {
                    id: 11 + i,
                    input: input.clone(),
                    pace_ms: None,
                },
            )
            .await?;
            session = format!("{session}\n{input}");
        }
        let before = worker.stats();
        let rate = limit / (40 + stage.rng.below(40));
        let base = host.procs().resident_bytes(pid).unwrap_or(0);
        let leak_at = Instant::now();
        ensure!(
            host.procs().leak(pid, rate),
            "could not make pid {pid} leak"
        );
        let warn_cross = leak_at + time_to_reach(base, rate, percent_of(limit, 80));
        let crit_cross = leak_at + time_to_reach(base, rate, percent_of(limit, 95));
        let warned = {
            let worker = stage
                .manager
                .worker("sandbox")
                .await
                .map_err(|e| unexpected("lookup", e))?;
            let was = before.memory_warnings;
            Probe::start(&stage.env, Duration::from_millis(5), move || {
                worker.stats().memory_warnings > was
            })
        };
        let mark = log.len();
        if hung {
            tokio::time::sleep_until(leak_at + time_to_reach(base, rate, percent_of(limit, 90)))
                .await;
            ensure!(host.procs().hang(pid), "could not hang pid {pid}");
        }
        let (index, stopping_at, _) = log
            .next(
                mark,
                crit_cross + interval + checkpoint_bound + Duration::from_secs(1) - Instant::now(),
                "the critical stop",
                |s| *s == WorkerStatus::Stopping,
            )
            .await?;
        // A hung sandbox never answers the checkpoint: the stop waits for its bound. A
        // responsive one takes a few disk operations (well under 50 ms).
        let (checkpoint_min, checkpoint_max) = if hung {
            (checkpoint_bound, checkpoint_bound)
        } else {
            (Duration::ZERO, Duration::from_millis(50))
        };
        ensure!(
            stopping_at + TICK >= crit_cross + checkpoint_min
                && stopping_at <= crit_cross + interval + checkpoint_max + TICK,
            "round {round}: the stop began {:?} after memory crossed 95% (sample interval \
             {interval:?}, hung: {hung})",
            stopping_at.saturating_duration_since(crit_cross)
        );
        let warned_at = warned.seen().ok_or_else(|| {
            Failure::correctness(format!("round {round}: no warning before the stop"))
        })?;
        ensure!(
            warned_at + TICK >= warn_cross
                && warned_at <= warn_cross + interval + Duration::from_millis(5) + TICK,
            "round {round}: warned {:?} after memory crossed 80% (sample interval {interval:?})",
            warned_at.saturating_duration_since(warn_cross)
        );
        let (_, ready_at, ready) = log
            .next(index, grace + START_BOUND, "the replacement sandbox", |s| {
                matches!(s, WorkerStatus::Ready { .. })
            })
            .await?;
        let stats = worker.stats();
        ensure!(
            stats.memory_warnings == before.memory_warnings + 1
                && stats.memory_restarts == before.memory_restarts + 1,
            "round {round}: {} warnings and {} restarts, before {} and {}",
            stats.memory_warnings,
            stats.memory_restarts,
            before.memory_warnings,
            before.memory_restarts
        );
        let ended = spawned_at(ready_at, &stats) - stopping_at;
        if hung {
            ensure!(
                stats.forced_kills == before.forced_kills + 1 && exit_mentions(&stats, "SIGKILL"),
                "round {round}: the hung sandbox was not force-killed: {stats:?}"
            );
            ensure!(
                ended + TICK >= grace && ended <= grace + TICK,
                "round {round}: SIGKILL came {ended:?} after SIGTERM, the grace is {grace:?}"
            );
        } else {
            ensure!(
                stats.forced_kills == before.forced_kills && exit_mentions(&stats, "code 0"),
                "round {round}: the responsive sandbox did not stop gracefully: {stats:?}"
            );
            ensure!(
                ended < Duration::from_millis(100),
                "round {round}: the responsive sandbox took {ended:?} to stop"
            );
        }
        ensure!(
            stats.crashes == before.crashes && stats.restarts == before.restarts,
            "round {round}: the memory stop counted as a crash: {stats:?}"
        );
        let (checkpoints, failures) = if hung { (0, 1) } else { (1, 0) };
        ensure!(
            stats.checkpoints == before.checkpoints + checkpoints
                && stats.checkpoint_failures == before.checkpoint_failures + failures,
            "round {round} (hung: {hung}): {} checkpoints and {} failed, before {} and {}",
            stats.checkpoints,
            stats.checkpoint_failures,
            before.checkpoints,
            before.checkpoint_failures
        );
        if !hung {
            let saved = read_snapshot(&stage.env, &snapshot_path)?;
            ensure!(
                saved == session,
                "round {round}: the checkpoint holds {saved:?}, the session was {session:?}"
            );
        }
        let raises: Vec<_> = worker
            .oversight_requests()
            .into_iter()
            .filter(|r| {
                *r == OversightRequest::RaiseMemoryLimit {
                    current_bytes: limit,
                    proposed_bytes: 2 * limit,
                }
            })
            .collect();
        ensure!(
            raises.len() as u64 == round + 1,
            "round {round}: oversight requests {:?}",
            worker.oversight_requests()
        );
        let WorkerStatus::Ready { pid: new, .. } = ready else {
            return Err(unexpected("status", ready));
        };
        ensure!(
            new != pid && host.procs().resident_bytes(new) == Some(initial),
            "round {round}: the replacement is not a fresh sandbox"
        );
    }
    ensure!(
        stage.faults.count("proc.oom_kill") == 0,
        "the container's OOM killer fired"
    );
    ping(&worker, 3).await?;
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    ensure_clean(&stage, "at the end")
}

/// The body of the snapshot file at `path`.
fn read_snapshot(env: &Env, path: &str) -> Result<String, Failure> {
    let file = env
        .disk()
        .open(path, OpenMode::Read)
        .map_err(|e| unexpected("open the snapshot", e))?;
    let len = file.len().map_err(|e| unexpected("snapshot length", e))?;
    let mut bytes = vec![0; len as usize];
    let n = file
        .read_at(&mut bytes, 0)
        .map_err(|e| unexpected("read the snapshot", e))?;
    bytes.truncate(n);
    engine::workers::program::snapshot::decode(&bytes)
        .map_err(|e| unexpected("decode the snapshot", e))
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
