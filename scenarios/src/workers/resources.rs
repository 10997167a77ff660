//! Resources running out: core.EC-115 (file descriptors), EC-120 (zombies), EC-127 (a
//! stop that outlasts the grace period), pattern.7.3 (ports taken), 7.5 (memory
//! growing). Disks filling up are in `disk`.

use super::crash::{
    MIB, Probe, START_BOUND, StatusLog, TICK, ensure_clean, percent_of, ping, ready_pid,
    spawned_at, start_ready, start_worker, time_to_reach,
};
use crate::ensure;
use crate::kit::workers::{live_pids, unexpected};
use crate::scenario::{BodyFuture, Failure, Outcome, Scenario};
use crate::stage::workers::{Stage, WATCHDOG_INTERVAL, start_engine, workers_config};
use engine::env::Signal;
use engine::workers::breaker::RestartPolicy;
use engine::workers::memory::MemoryPolicy;
use engine::workers::program::{Reply, Request};
use engine::workers::{PortRange, Worker, WorkerError, WorkerStatus};
use sim::World;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What asking a responsive worker for a checkpoint may add before a memory stop.
const CHECKPOINT_SLACK: Duration = Duration::from_millis(50);

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &FD_EXHAUSTED,
        &ZOMBIES,
        &SLOW_CLEANUP,
        &PORT_TAKEN,
        &MEMORY_GROWTH,
    ]
}

/// Writes a cache file through the worker.
pub(super) async fn write_cache(
    worker: &Worker,
    id: u64,
    name: &str,
    bytes: u64,
) -> Result<(), WorkerError> {
    let replies = worker
        .request(Request::WriteCache {
            id,
            name: name.to_string(),
            bytes,
        })
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

// ---------------------------------------------------------------------------------------
// core.EC-115

pub static FD_EXHAUSTED: Scenario = Scenario {
    id: "core.EC-115",
    title: "Worker runs out of file descriptors",
    proves: "Descriptors run out three ways. Spawns fail with EMFILE a seeded number of times: each \
             start must fail with FdExhausted, a message naming the OS error and the ulimit fix, \
             status Failed, no process, no retry behind the caller's back. The running worker's \
             own opens then fail with EMFILE: each cache write must fail with FdExhausted while \
             the worker stays up, healthy, with nothing half-written. Finally the worker is killed \
             while spawns still fail with EMFILE: the automatic restart must count each failed \
             spawn against the breaker and back off, doubling. Each time, once descriptors free up \
             the next attempt must succeed.",
    faults_expected: &["proc.spawn_fail", "disk.emfile"],
    cores: &[
        "engine/src/workers/error.rs",
        "engine/src/workers/lifecycle.rs",
        "engine/src/workers/breaker.rs",
        "engine/src/workers/program/cache.rs",
    ],
    sim_time_max: Duration::from_secs(300),
    body: fd_exhausted_sim,
    real: None,
    // Quiet: the oracle times the recovery to the sum of the backoffs (30 ms of slack);
    // late messages, slow disk operations and slow restarts all move it.
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::quiet)),
};

fn fd_exhausted_sim(world: World) -> BodyFuture {
    Box::pin(async move { fd_exhausted(Stage::sim(&world).await?).await })
}

fn says_emfile(e: &WorkerError) -> bool {
    let text = e.to_string();
    matches!(e, WorkerError::FdExhausted { .. })
        && text.contains("Too many open files")
        && text.contains("ulimit")
}

async fn fd_exhausted(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    // 1. Spawns fail with EMFILE.
    let k = 1 + stage.rng.below(3);
    host.procs().fail_next_spawn(24, k as u32);
    stage
        .manager
        .register("fd", stage.config("fd"))
        .await
        .map_err(|e| unexpected("register", e))?;
    let worker = stage
        .manager
        .worker("fd")
        .await
        .map_err(|e| unexpected("lookup", e))?;
    for i in 1..=k {
        let result = worker.start().await;
        ensure!(
            matches!(&result, Err(e) if says_emfile(e)),
            "start {i} with descriptors exhausted gave {result:?}"
        );
        let status = worker.status();
        ensure!(
            matches!(&status, WorkerStatus::Failed { reason } if reason.contains("Too many open files")),
            "status after start {i}: {status}"
        );
        let stats = worker.stats();
        ensure!(
            stats.spawn_failures == i && stats.spawns == 0,
            "after {i} failed starts: {} spawn failures, {} spawns",
            stats.spawn_failures,
            stats.spawns
        );
        ensure_clean(&stage, "after a failed spawn")?;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    ensure!(
        worker.stats().spawn_failures == k && worker.stats().spawns == 0,
        "something retried the start behind the caller's back"
    );
    start_ready(&worker).await?;
    let pid = ready_pid(&worker)?;

    // 2. The worker's own opens fail with EMFILE.
    let usage = worker.disk_usage();
    let saved = host.disk().options();
    let mut limited = saved.clone();
    limited.open_files_max = host.disk().open_files();
    host.disk().set_options(limited);
    let writes = 1 + stage.rng.below(3);
    for j in 0..writes {
        let bytes = 1 + stage.rng.below(200_000);
        let result = write_cache(&worker, 10 + j, &format!("f{j}"), bytes).await;
        ensure!(
            matches!(&result, Err(e) if says_emfile(e)),
            "cache write {j} with descriptors exhausted gave {result:?}"
        );
    }
    ensure!(
        ready_pid(&worker)? == pid,
        "the worker did not survive EMFILE"
    );
    let health = worker.health().await;
    ensure!(
        health.healthy,
        "health with descriptors exhausted: {health:?}"
    );
    ensure!(
        worker.disk_usage() == usage,
        "failed writes left {} bytes behind",
        worker.disk_usage() - usage
    );
    host.disk().set_options(saved);
    let bytes = 1 + stage.rng.below(200_000);
    write_cache(&worker, 20, "after", bytes)
        .await
        .map_err(|e| unexpected("cache write once descriptors are free", e))?;
    ensure!(
        worker.disk_usage() == usage + bytes,
        "usage {} after writing {bytes} bytes to {usage}",
        worker.disk_usage()
    );

    // 3. A crash while spawns fail with EMFILE: the automatic restart backs off.
    let m = 1 + stage.rng.below(2);
    let log = StatusLog::follow(&stage.env, &worker);
    host.procs().fail_next_spawn(24, m as u32);
    let mark = log.len();
    let killed_at = Instant::now();
    ensure!(stage.kill(pid, Signal::Kill), "could not kill pid {pid}");
    let (_, ready_at, _) = log
        .next(
            mark,
            Duration::from_secs(30),
            "recovery once descriptors free up",
            |s| matches!(s, WorkerStatus::Ready { .. }),
        )
        .await?;
    let failures: Vec<u32> = {
        let mut seen = Vec::new();
        let mut from = mark;
        while let Some((i, _, WorkerStatus::Restarting { failures })) =
            log.find(from, |s| matches!(s, WorkerStatus::Restarting { .. }))
        {
            seen.push(failures);
            from = i + 1;
        }
        seen
    };
    let expected: Vec<u32> = (1..=m as u32 + 1).collect();
    ensure!(
        failures == expected,
        "restarting statuses {failures:?}, expected {expected:?} (one crash, {m} failed spawns)"
    );
    let stats = worker.stats();
    ensure!(
        stats.spawn_failures == k + m && stats.crashes == 1 && stats.restarts == m + 1,
        "after the crash: {stats:?}"
    );
    // Backoffs 0.5 s, 1 s, 2 s… (jitter at most 20% below), plus the failed attempts.
    let nominal: Duration = (0..=m as u32)
        .map(|i| RestartPolicy::default_policy().backoff_first * 2u32.pow(i))
        .sum();
    let took = spawned_at(ready_at, &stats) - killed_at;
    ensure!(
        took + TICK >= nominal * 8 / 10 && took <= nominal + Duration::from_millis(10),
        "recovered {took:?} after the crash; the backoffs add up to {nominal:?}"
    );
    ping(&worker, 1).await?;
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    ensure_clean(&stage, "at the end")
}

// ---------------------------------------------------------------------------------------
// core.EC-120

pub static ZOMBIES: Scenario = Scenario {
    id: "core.EC-120",
    title: "Terminated workers are left as zombies",
    proves: "The supervisor gives up on workers three ways: one misses its (seeded) init timeout \
             while starting slowly, one is replaced by a seeded number of new registrations under \
             its name, one hangs and is killed by hang detection. Sampling the process table every \
             10 ms, no worker pid may stay a zombie longer than the watchdog interval (5 s); the \
             reaper must count one reap per child it adopted and hold none at the end, and no \
             zombie or stray process may remain.",
    faults_expected: &["proc.slow_start", "proc.hang"],
    cores: &[
        "engine/src/workers/reaper.rs",
        "engine/src/workers/lifecycle/deadlines.rs",
        "engine/src/workers/manager.rs",
    ],
    sim_time_max: Duration::from_secs(300),
    body: zombies_sim,
    real: None,
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

fn zombies_sim(world: World) -> BodyFuture {
    Box::pin(async move { zombies(Stage::sim(&world).await?).await })
}

/// Zombie pids of the host with the instant each was first and last seen.
type ZombieBook = Arc<Mutex<BTreeMap<u32, (Instant, Instant)>>>;

async fn zombies(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let step = Duration::from_millis(10);
    let book: ZombieBook = Arc::new(Mutex::new(BTreeMap::new()));
    let _monitor = {
        let book = book.clone();
        let host = host.clone();
        stage.env.spawn("zombie-monitor", async move {
            loop {
                let now = Instant::now();
                let zombies = host.procs().zombie_pids();
                {
                    let mut book = book.lock().expect("zombie book poisoned");
                    for pid in zombies {
                        book.entry(pid).or_insert((now, now)).1 = now;
                    }
                }
                tokio::time::sleep(step).await;
            }
        })
    };
    let mut adopted = 0u64;

    // A worker that misses its init timeout.
    let init_timeout = Duration::from_millis(1_000 + 500 * stage.rng.below(5));
    let quiet = host.procs().options();
    let mut slow = quiet.clone();
    slow.start_delay_min = init_timeout + Duration::from_secs(1);
    slow.start_delay_max = init_timeout + Duration::from_secs(5);
    host.procs().set_options(slow);
    let mut config = stage.config("late");
    config.init_timeout = init_timeout;
    stage
        .manager
        .register("late", config)
        .await
        .map_err(|e| unexpected("register", e))?;
    let result = stage.manager.start("late").await;
    ensure!(
        matches!(&result, Err(WorkerError::InitTimeout { after, .. }) if *after == init_timeout),
        "a start slower than the init timeout gave {result:?}"
    );
    adopted += 1;
    host.procs().set_options(quiet);
    tokio::time::sleep(Duration::from_millis(stage.rng.below(5_000))).await;

    // A worker replaced by new registrations under its name.
    let replacements = 1 + stage.rng.below(3);
    for r in 0..=replacements {
        let mut config = stage.config("dup");
        config.config_version = r + 1;
        let worker = start_worker(&stage, "dup", config).await?;
        drop(worker);
        tokio::time::sleep(Duration::from_millis(stage.rng.below(3_000))).await;
        if r < replacements {
            adopted += 1;
        }
    }

    // A worker that hangs and is killed by hang detection.
    let hung = start_worker(&stage, "hung", stage.config("hung")).await?;
    let log = StatusLog::follow(&stage.env, &hung);
    let pid = ready_pid(&hung)?;
    tokio::time::sleep(Duration::from_millis(stage.rng.below(2_000))).await;
    ensure!(host.procs().hang(pid), "could not hang pid {pid}");
    log.next(
        1,
        Duration::from_secs(30),
        "the restart of the hung worker",
        |s| matches!(s, WorkerStatus::Ready { pid: new, .. } if *new != pid),
    )
    .await?;
    ensure!(
        hung.stats().hangs_detected == 1,
        "hang not detected: {:?}",
        hung.stats()
    );
    drop(log);
    drop(hung);

    // One more sweep, then judge.
    tokio::time::sleep(WATCHDOG_INTERVAL + Duration::from_secs(1)).await;
    let bound = WATCHDOG_INTERVAL + step + TICK;
    let book = book.lock().expect("zombie book poisoned").clone();
    for (pid, (first, last)) in &book {
        ensure!(
            *last - *first <= bound,
            "pid {pid} stayed a zombie for {:?} (watchdog interval {:?})",
            *last - *first,
            WATCHDOG_INTERVAL
        );
    }
    let reaper = stage.manager.reaper();
    ensure!(
        reaper.reaped() == adopted && reaper.pending() == 0,
        "the reaper reaped {} children and holds {}; {adopted} were given up on",
        reaper.reaped(),
        reaper.pending()
    );
    ensure!(
        host.procs().zombie_pids().is_empty(),
        "zombies left: {:?}",
        host.procs().zombie_pids()
    );
    let live = live_pids(&stage);
    ensure!(
        live.len() == 2,
        "live processes {live:?}: expected the dup and hung workers only"
    );
    stage.manager.stop_all().await;
    ensure_clean(&stage, "at the end")
}

// ---------------------------------------------------------------------------------------
// core.EC-127

pub static SLOW_CLEANUP: Scenario = Scenario {
    id: "core.EC-127",
    title: "Worker cleanup takes longer than 30 s",
    proves: "A responsive worker is stopped first: it must exit 0 on SIGTERM at once, no SIGKILL. \
             Restarted, it then hangs (a seeded moment) and is stopped before hang detection can \
             act: SIGTERM goes unanswered, and SIGKILL must follow exactly 30 s (the grace) after \
             it, the stop returning then with status Stopped, the exit classified as SIGKILL and \
             the slow shutdown counted as a forced kill; no process or zombie may remain.",
    faults_expected: &["proc.hang"],
    cores: &[
        "engine/src/workers/lifecycle.rs",
        "engine/src/workers/lifecycle/deadlines.rs",
        "engine/src/workers/supervise.rs",
    ],
    sim_time_max: Duration::from_secs(300),
    body: slow_cleanup_sim,
    real: None,
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

fn slow_cleanup_sim(world: World) -> BodyFuture {
    Box::pin(async move { slow_cleanup(Stage::sim(&world).await?).await })
}

async fn slow_cleanup(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let config = stage.config("slow");
    let grace = config.grace;
    ensure!(
        grace == Duration::from_secs(30),
        "the default grace is {grace:?}"
    );
    let worker = start_worker(&stage, "slow", config).await?;
    tokio::time::sleep(Duration::from_millis(stage.rng.below(5_000))).await;
    let asked = Instant::now();
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    let took = asked.elapsed();
    let stats = worker.stats();
    ensure!(
        took < Duration::from_secs(1)
            && stats.forced_kills == 0
            && stats
                .last_exit
                .as_deref()
                .is_some_and(|e| e.contains("code 0")),
        "a responsive worker's stop took {took:?}: {stats:?}"
    );
    start_ready(&worker).await?;
    tokio::time::sleep(Duration::from_millis(stage.rng.below(5_000))).await;
    let pid = ready_pid(&worker)?;
    ensure!(host.procs().hang(pid), "could not hang pid {pid}");
    tokio::time::sleep(Duration::from_millis(stage.rng.below(3_000))).await;
    let asked = Instant::now();
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    let took = asked.elapsed();
    ensure!(
        took + TICK >= grace && took <= grace + TICK,
        "the stop of a worker that ignores SIGTERM took {took:?}; the grace is {grace:?}"
    );
    let stats = worker.stats();
    ensure!(
        worker.status() == WorkerStatus::Stopped,
        "after the forced stop: {}",
        worker.status()
    );
    ensure!(
        stats.forced_kills == 1
            && stats.hangs_detected == 0
            && stats.crashes == 0
            && stats
                .last_exit
                .as_deref()
                .is_some_and(|e| e.contains("SIGKILL")),
        "after the forced stop: {stats:?}"
    );
    ensure_clean(&stage, "after the forced stop")
}

// ---------------------------------------------------------------------------------------
// pattern.7.3

pub static PORT_TAKEN: Scenario = Scenario {
    id: "pattern.7.3",
    title: "Allocated port already taken by another process",
    proves: "Other processes hold a seeded run of ports at the start of the range, then a seeded \
             run ahead of the allocator's cursor. Each worker must be spawned on the first free \
             port after them, each taken port tried exactly once (counted at the bind). With a \
             tiny range (seeded size) entirely taken, the start must fail with PortsExhausted \
             naming the range and the number of tries, without spawning anything; once one port \
             (seeded) is released, the start must succeed on exactly that port.",
    faults_expected: &["net.addr_in_use"],
    cores: &["engine/src/workers/ports.rs", "engine/src/workers/error.rs"],
    sim_time_max: Duration::from_secs(300),
    body: port_taken_sim,
    real: None,
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

fn port_taken_sim(world: World) -> BodyFuture {
    Box::pin(async move { port_taken(Stage::sim(&world).await?).await })
}

fn endpoint_port(worker: &Worker) -> Result<u16, Failure> {
    match worker.status() {
        WorkerStatus::Ready { port, .. } => Ok(port),
        other => Err(unexpected("status", other)),
    }
}

async fn port_taken(mut stage: Stage) -> Outcome {
    let faults = stage.faults.clone();
    let conflicts = move || faults.count("net.addr_in_use");
    let first = PortRange::DEFAULT.first;
    let mut held = BTreeMap::new();
    let k = 1 + stage.rng.below(6) as u16;
    for port in first..first + k {
        let listener = stage
            .env
            .net()
            .bind(port)
            .await
            .map_err(|e| unexpected("hold a port", e))?;
        held.insert(port, listener);
    }
    let one = start_worker(&stage, "one", stage.config("one")).await?;
    ensure!(
        endpoint_port(&one)? == first + k,
        "with {first}..{} taken the worker got port {}",
        first + k,
        endpoint_port(&one)?
    );
    ensure!(
        conflicts() == u64::from(k),
        "{} conflicts for {k} taken ports",
        conflicts()
    );
    let j = 1 + stage.rng.below(4) as u16;
    let next = first + k + 1;
    for port in next..next + j {
        let listener = stage
            .env
            .net()
            .bind(port)
            .await
            .map_err(|e| unexpected("hold a port", e))?;
        held.insert(port, listener);
    }
    let two = start_worker(&stage, "two", stage.config("two")).await?;
    ensure!(
        endpoint_port(&two)? == next + j,
        "with {next}..{} taken the second worker got port {}",
        next + j,
        endpoint_port(&two)?
    );
    ensure!(
        conflicts() == u64::from(k + j),
        "{} conflicts for {} taken ports",
        conflicts(),
        k + j
    );

    // A tiny range, entirely taken.
    let m = 1 + stage.rng.below(4) as u16;
    let range = PortRange {
        first: 30_000,
        last: 30_000 + m - 1,
    };
    for port in range.first..=range.last {
        let listener = stage
            .env
            .net()
            .bind(port)
            .await
            .map_err(|e| unexpected("hold a port", e))?;
        held.insert(port, listener);
    }
    let tiny_engine =
        start_engine(stage.env.clone(), workers_config(&stage.program, range)).await?;
    let tiny = tiny_engine.workers();
    tiny.register("tiny", stage.config("tiny"))
        .await
        .map_err(|e| unexpected("register", e))?;
    let before = conflicts();
    let result = tiny.start("tiny").await;
    let exhausted = matches!(
        &result,
        Err(e @ WorkerError::PortsExhausted { first: 30_000, last, tried, .. })
            if *last == range.last
                && *tried == u32::from(m)
                && e.to_string().contains(&format!("no free port in 30000..={}", range.last))
                && e.to_string().contains("widen the port range")
    );
    ensure!(
        exhausted,
        "a start with {range:?} all taken gave {result:?}"
    );
    ensure!(
        conflicts() - before == u64::from(m),
        "{} ports tried in a range of {m}",
        conflicts() - before
    );
    let worker = tiny
        .worker("tiny")
        .await
        .map_err(|e| unexpected("lookup", e))?;
    let stats = worker.stats();
    ensure!(
        stats.spawns == 0 && matches!(worker.status(), WorkerStatus::Failed { .. }),
        "after port exhaustion: {stats:?}, status {}",
        worker.status()
    );
    ensure!(
        live_pids(&stage).len() == 2,
        "processes after port exhaustion: {:?}",
        live_pids(&stage)
    );
    let freed = range.first + stage.rng.below(u64::from(m)) as u16;
    held.remove(&freed);
    let before = conflicts();
    tiny.start("tiny")
        .await
        .map_err(|e| unexpected("start once a port is free", e))?;
    ensure!(
        endpoint_port(&worker)? == freed,
        "with only {freed} free the worker got {}",
        endpoint_port(&worker)?
    );
    ensure!(
        conflicts() - before == u64::from(freed - range.first),
        "{} conflicts before reaching port {freed}",
        conflicts() - before
    );
    ping(&worker, 1).await?;
    tiny.stop_all().await;
    stage.manager.stop_all().await;
    drop(held);
    ensure_clean(&stage, "at the end")
}

// ---------------------------------------------------------------------------------------
// pattern.7.5

pub static MEMORY_GROWTH: Scenario = Scenario {
    id: "pattern.7.5",
    title: "Worker memory grows steadily over time",
    proves: "A worker whose memory watch has the container's limit (seeded), a seeded sample \
             interval and growth horizon leaks at a seeded steady rate, twice (its replacement \
             leaks too). Each time the watch must warn once, at the first sample over 80%, and \
             restart the worker at the first sample where the measured growth would reach the \
             limit within the horizon (or 95% is crossed), gracefully, and before the OOM killer: \
             no OOM kill, no crash, a fresh process each time.",
    faults_expected: &["proc.leak"],
    cores: &[
        "engine/src/workers/memory.rs",
        "engine/src/workers/lifecycle/resources.rs",
    ],
    sim_time_max: Duration::from_secs(1_800),
    body: memory_growth_sim,
    real: None,
    plan: Some(crate::scenario::Plan::World(crate::kit::plans::workers)),
};

fn memory_growth_sim(world: World) -> BodyFuture {
    Box::pin(async move { memory_growth(Stage::sim(&world).await?).await })
}

async fn memory_growth(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let limit = (256 + 64 * stage.rng.below(13)) * MIB;
    let mut options = host.procs().options();
    options.memory_limit_bytes = limit;
    host.procs().set_options(options);
    let interval = Duration::from_millis(500 + 250 * stage.rng.below(7));
    let horizon = Duration::from_secs(3 + stage.rng.below(6));
    let mut policy = MemoryPolicy::with_limit(limit);
    policy.sample_interval = interval;
    policy.horizon = horizon;
    let mut config = stage.config("leaky");
    config.memory = Some(policy);
    let worker = start_worker(&stage, "leaky", config).await?;
    let log = StatusLog::follow(&stage.env, &worker);
    let initial = host.procs().options().resident_bytes_initial;
    for round in 1..=2u64 {
        // The leak starts with the process, before the first sample.
        let pid = ready_pid(&worker)?;
        let before = worker.stats();
        let rate = limit / (60 + stage.rng.below(140));
        let base = host.procs().resident_bytes(pid).unwrap_or(0);
        let leak_at = Instant::now();
        ensure!(
            host.procs().leak(pid, rate),
            "could not make pid {pid} leak"
        );
        let warn_cross = leak_at + time_to_reach(base, rate, percent_of(limit, 80));
        let by_growth = limit.saturating_sub(rate * horizon.as_secs());
        let restart_bytes = by_growth.min(percent_of(limit, 95));
        let restart_cross = leak_at + time_to_reach(base, rate, restart_bytes);
        let oom_at = leak_at + time_to_reach(base, rate, limit + 1);
        let warned = {
            let watched = worker.clone();
            let was = before.memory_warnings;
            Probe::start(&stage.env, Duration::from_millis(5), move || {
                watched.stats().memory_warnings > was
            })
        };
        let mark = log.len();
        let (index, stopping_at, _) = log
            .next(
                mark,
                oom_at - Instant::now(),
                "the restart before the OOM kill",
                |s| *s == WorkerStatus::Stopping,
            )
            .await?;
        // The stop follows the checkpoint request (a few milliseconds: this worker has no
        // snapshot file and refuses it at once).
        ensure!(
            stopping_at + TICK >= restart_cross
                && stopping_at <= restart_cross + interval + CHECKPOINT_SLACK + TICK,
            "round {round}: restarted {:?} after memory reached {restart_bytes} bytes (interval {interval:?}, horizon {horizon:?})",
            stopping_at.saturating_duration_since(restart_cross)
        );
        let warned_at = warned.seen().ok_or_else(|| {
            Failure::correctness(format!("round {round}: no alert before the restart"))
        })?;
        ensure!(
            warned_at + TICK >= warn_cross
                && warned_at <= warn_cross + interval + Duration::from_millis(5) + TICK,
            "round {round}: alerted {:?} after memory crossed 80% (interval {interval:?})",
            warned_at.saturating_duration_since(warn_cross)
        );
        let (_, _, ready) = log
            .next(index, START_BOUND, "the replacement", |s| {
                matches!(s, WorkerStatus::Ready { .. })
            })
            .await?;
        let stats = worker.stats();
        ensure!(
            stats.memory_warnings == before.memory_warnings + 1
                && stats.memory_restarts == before.memory_restarts + 1
                && stats.crashes == 0
                && stats.forced_kills == 0
                && stats
                    .last_exit
                    .as_deref()
                    .is_some_and(|e| e.contains("code 0")),
            "round {round}: {stats:?}"
        );
        let WorkerStatus::Ready { pid: new, .. } = ready else {
            return Err(unexpected("status", ready));
        };
        ensure!(
            new != pid && host.procs().resident_bytes(new) == Some(initial),
            "round {round}: the replacement is not a fresh process"
        );
    }
    ensure!(
        stage.faults.count("proc.oom_kill") == 0,
        "the OOM killer fired before the memory watch acted"
    );
    ping(&worker, 1).await?;
    worker.stop().await.map_err(|e| unexpected("stop", e))?;
    ensure_clean(&stage, "at the end")
}
