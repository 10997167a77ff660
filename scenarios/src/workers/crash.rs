//! Crashes and recoveries: pattern.7.1 (crash after start, backoff, breaker), 7.2
//! (graceful stop and restart keep the data), core.EC-114 (OOM), EC-119 (SIGSEGV),
//! EC-122 (the container restarts under running workers), enable.1.1.1 (a sandbox
//! allocating past its limit).
//!
//! Timings are checked in virtual time, within [`TICK`] of their nominal value on a
//! simulated host and [`REAL_SLACK`] on a real run.

use crate::kit::plans::{met, on_host, plan_rng, swarm, workers};
use crate::kit::workers::*;
use engine::env::Signal;
use engine::workers::breaker::RestartPolicy;
use engine::workers::memory::MemoryPolicy;
use engine::workers::program::Request;
use engine::workers::{OversightRequest, WorkerConfig};
use sim::faults::{SignalName, SwarmKind};
use sim::{FaultPlan, SimRng};

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

workers_scenario!(
    CRASH_AFTER_START, "pattern.7.1", "Worker crashes after a successful start",
    proves: "A ready worker is killed from outside N times in a row (SIGSEGV first, then SIGKILL, \
             then seeded), N = the breaker's seeded failure limit, under a restart policy with a \
             seeded first backoff and no jitter. Each death must be detected from the exit status \
             at once (status Restarting, last_exit naming the signal, crash counted), and the \
             respawn must come exactly the doubling backoff after the death (first, 2x, 4x). The \
             N-th failure must open the breaker: no process is started any more, not even after \
             the backoff the next restart would have had. A manual start must close it and clear its history: the next crash is \
             restarted after the first backoff again. Nothing is left alive at the end.",
    faults: ["proc.crash_segv", "proc.kill"], secs: 600,
    cores: ["engine/src/workers/breaker.rs", "engine/src/workers/lifecycle.rs"],
    plan: crash_after_start_plan,
    body: crash_after_start, real
);
/// The breaker's failure limit, the body's first draw (the plan kills that many times).
fn crash_failures_max(rng: &mut SimRng) -> u32 {
    3 + rng.below(3) as u32
}
/// The signal of kill `i` (SIGSEGV first, then SIGKILL, then seeded).
fn crash_signal(i: u32, rng: &mut SimRng) -> Signal {
    match i {
        1 => Signal::Segv,
        2 => Signal::Kill,
        _ if rng.below(2) == 0 => Signal::Segv,
        _ => Signal::Kill,
    }
}
/// The worker is killed at each `crash-{i}` the body marks (as many as the breaker's
/// limit), and once more at `crash-after-start`, after the manual start.
fn crash_after_start_plan(seed: u64) -> FaultPlan {
    let failures_max = crash_failures_max(&mut SimRng::new(seed, "scenario"));
    let mut rng = plan_rng(seed);
    let plan = (1..=failures_max).fold(workers(seed), |plan, i| {
        let signal = SignalName::from(crash_signal(i, &mut rng));
        plan.after(
            &format!("crash-{i}"),
            0,
            on_host::signal(Some("crashy"), signal),
        )
    });
    plan.after(
        "crash-after-start",
        0,
        on_host::signal(Some("crashy"), SignalName::Sigsegv),
    )
}
async fn crash_after_start(mut stage: Stage) -> Outcome {
    let failures_max = crash_failures_max(&mut stage.rng);
    let backoff_first = ms(200 + 100 * stage.rng.below(7));
    let mut config = stage.config("crashy");
    config.restart = RestartPolicy {
        enabled: true,
        backoff_first,
        backoff_max: secs(60),
        jitter_percent: 0,
        failures_max,
        window: secs(600),
        stable_after: secs(600),
    };
    let slack = slack(&stage);
    let worker = stage.start_worker("crashy", config).await?;
    let log = StatusLog::follow(&stage.env, &worker);
    // The kills the plan made so far (all of them, unless a shrink removed some).
    let mut i = 0u32;
    for k in 1..=failures_max {
        tokio::time::sleep(ms(100 + stage.rng.below(2_000))).await;
        let pid = ready_pid(&worker)?;
        let mark = log.mark();
        let event = format!("crash-{k}");
        // A real run draws the signal the plan would have sent.
        let real = if stage.is_real() {
            crash_signal(k, &mut stage.rng)
        } else {
            Signal::Kill
        };
        let Some((signal, killed_at)) = planned_kill(&stage, &worker, pid, &event, real).await?
        else {
            // Not killed: the worker stays up on the same process.
            let now = ready_pid(&worker)?;
            ensure!(now == pid, "no kill at {event}, yet pid {pid} became {now}");
            continue;
        };
        i += 1;
        let (index, seen_at, status) = log.next_down(mark, secs(10), "the death").await?;
        let noticed = seen_at - killed_at;
        ensure!(noticed <= slack, "crash {i}: noticed {noticed:?} late");
        let stats = worker.stats();
        let words = signal_words(signal);
        ensure!(
            exit_mentions(&stats, words) && stats.crashes == u64::from(i),
            "crash {i} by {words}: {stats:?}"
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
        let (_, ready_at, ready) = log.next_ready(index, secs(30), "the restart").await?;
        ensure!(pid_of(&ready)? != pid, "the restart kept pid {pid}");
        let stats = worker.stats();
        let nominal = backoff_first * 2u32.pow(i - 1);
        let respawned = spawned_at(ready_at, &stats);
        let what = format!("crash {i}: respawn after the crash (backoff {nominal:?})");
        on_time(&what, respawned - killed_at, nominal, nominal, slack)?;
        // While the new process starts up, the status says so.
        let starting = log.find(index, |s| matches!(s, WorkerStatus::Starting { .. }));
        let (_, starting_at, _) = starting.or_fail(&format!("crash {i}: status Starting"))?;
        let what = format!("crash {i}: status Starting after the respawn");
        on_time(&what, starting_at, respawned, respawned, slack)?;
        ensure!(stats.restarts == u64::from(i), "crash {i}: {stats:?}");
    }
    // The breaker is open: nothing is restarted, however long we wait (longer than the
    // backoff the next restart would have waited). Fewer kills (a shrunk plan) leave it
    // closed, the worker up.
    let open = i == failures_max;
    let pid = if open {
        breaker_stays_open(&stage, &worker, backoff_first, failures_max).await?;
        // A manual start closes the breaker and clears its history.
        start_ready(&worker).await?
    } else {
        ready_pid(&worker)?
    };
    tokio::time::sleep(ms(100 + stage.rng.below(1_000))).await;
    let mark = log.mark();
    let event = "crash-after-start";
    let killed = planned_kill(&stage, &worker, pid, event, Signal::Segv).await?;
    let Some((_, killed_at)) = killed else {
        let now = ready_pid(&worker)?;
        ensure!(now == pid, "no kill at {event}, yet pid {pid} became {now}");
        return stop_then_clean(&stage, &worker).await;
    };
    let failures = if open { 1 } else { i + 1 };
    let (index, _, status) = log.next_down(mark, secs(10), "leaving Ready").await?;
    if failures == failures_max {
        let expected = WorkerStatus::BreakerOpen { failures };
        ensure!(
            status == expected,
            "failure {failures}: {status}, not {expected}"
        );
        return stop_clean(&stage, &worker).await;
    }
    ensure!(
        status == WorkerStatus::Restarting { failures },
        "the first crash after a manual start gave {status}: the breaker kept its history \
         (expected {failures} failures)"
    );
    let (_, ready_at, _) = log.next_ready(index, secs(30), "the restart").await?;
    let delay = spawned_at(ready_at, &worker.stats()) - killed_at;
    let nominal = backoff_first * 2u32.pow(failures - 1);
    let what = format!("after the manual start, a restart (backoff {nominal:?})");
    on_time(&what, delay, nominal, nominal, slack)?;
    stop_then_clean(&stage, &worker).await
}

/// Oracle, the breaker open after `failures_max` failures: no process is started,
/// however long we wait.
async fn breaker_stays_open(
    stage: &Stage,
    worker: &Worker,
    backoff_first: Duration,
    failures_max: u32,
) -> Outcome {
    let spawns = worker.stats().spawns;
    tokio::time::sleep(backoff_first * 2u32.pow(failures_max - 1) + secs(2)).await;
    let (now, status) = (worker.stats().spawns, worker.status());
    let open = status
        == WorkerStatus::BreakerOpen {
            failures: failures_max,
        };
    ensure!(
        now == spawns && open,
        "breaker open: {now} spawns (was {spawns}), {status}"
    );
    ensure_clean(stage, "with the breaker open")?;
    let health = worker.health().await;
    ensure!(!health.healthy && !health.probed, "breaker: {health:?}");
    Ok(())
}

const SNAPSHOT_FILE: &str = "snapshot";

workers_scenario!(
    GRACEFUL_RESTART, "pattern.7.2", "Running worker stopped and restarted gracefully",
    proves: "A worker started slowly (seeded delay) writes seeded cache files and a snapshot, then \
             is stopped. The stop must be graceful: SIGTERM, the worker says Bye and exits 0 well \
             within the grace period, no SIGKILL, not counted as a crash. Everything it \
             acknowledged must then be durable: the disk drops whatever was not synced (a power \
             cut while it is stopped). Started again (slowly), the worker must find every cache \
             file at its size, its snapshot intact, its disk usage unchanged, and serve new \
             writes on top. Nothing is left alive at the end.",
    faults: ["proc.slow_start"], secs: 300,
    cores: ["engine/src/workers/lifecycle.rs", "engine/src/workers/program/run.rs",
            "engine/src/workers/program/cache.rs", "engine/src/workers/program/snapshot.rs"],
    // Every start is slow (0.1 to 3 s) from the first. No swarm slow starts: these already
    // sit just inside the default connect schedule (3.6 s); one more on top ends the
    // start, pattern.2.1's edge case.
    plan: |seed| swarm(seed, &[SwarmKind::NetDelay, SwarmKind::DiskSlow])
        .after("start", 0, on_host::slow_starts(ms(100), ms(3_000)))
        .after("stopped", 0, on_host::power_cut()),
    body: graceful_restart
);
async fn graceful_restart(mut stage: Stage) -> Outcome {
    stage.mark("start");
    let mut config = stage.config("keeper");
    config.args = vec!["--snapshot".into(), SNAPSHOT_FILE.into()];
    let dir = config.dir.clone();
    let grace = config.grace;
    let worker = stage.start_worker("keeper", config).await?;
    let first_pid = ready_pid(&worker)?;
    let (files, state) = write_data(&mut stage, &worker, "a").await?;
    let usage = worker.disk_usage();
    let expected = data_bytes(&files, &state);
    ensure!(usage == expected, "disk usage {usage}, not {expected}");
    let took = stopped(&worker).await?;
    let stats = worker.stats();
    ensure!(
        graceful(&stats) && stats.crashes == 0,
        "not a graceful stop: {stats:?}"
    );
    ensure!(took < grace / 10, "the graceful stop took {took:?}");
    ensure_clean(&stage, "after the stop")?;
    // Power cut while stopped (the plan's): only what was synced survives.
    stage.mark("stopped");
    let pid = start_ready(&worker).await?;
    ensure!(pid != first_pid, "the restart reused pid {pid}");
    let found = cache_files(stage.env.disk(), &dir);
    ensure!(found == files, "cache files {found:?}, not {files:?}");
    let restored = snapshot_at(stage.env.disk(), &format!("{dir}/{SNAPSHOT_FILE}"))?;
    ensure!(restored == state, "snapshot {restored:?}, not {state:?}");
    ensure_usage(&worker, usage, "after the restart")?;
    let (more, state) = write_data(&mut stage, &worker, "b").await?;
    let expected = data_bytes(&files, "") + data_bytes(&more, &state);
    ensure_usage(&worker, expected, "after more writes")?;
    worker.stop().await.or_fail("stop")?;
    let stats = worker.stats();
    ensure!(
        stats.spawns == 2 && stats.crashes == 0,
        "two graceful cycles: {stats:?}"
    );
    ensure_clean(&stage, "at the end")
}

workers_scenario!(
    OOM_KILL, "core.EC-114", "Worker process memory reaches the OOM threshold",
    proves: "Two workers leak at the same seeded rate under a seeded container memory limit. The \
             unwatched one must be OOM-killed at exactly the instant its memory crosses the limit, \
             seen as a crash (SIGKILL in last_exit, crash counted), and recovered: restarted after \
             the default backoff, with fresh memory and a new pid, answering again. The other \
             runs under a memory watch whose cap is 3/4 of the container limit: it must warn once \
             above 80% of its cap and restart the worker gracefully (SIGTERM, exit 0, no crash, \
             no backoff) before the OOM killer, well before the unwatched one dies. Exactly one \
             OOM kill fires per run.",
    faults: ["proc.oom_kill", "proc.leak"], secs: 900,
    cores: ["engine/src/workers/memory.rs", "engine/src/workers/lifecycle/resources.rs",
            "engine/src/workers/lifecycle.rs"],
    plan: oom_kill_plan,
    body: oom_kill
);
/// The container's memory limit, the body's first draw.
fn oom_container(rng: &mut SimRng) -> u64 {
    (128 + 32 * rng.below(13)) * MIB
}
/// Both workers start leaking at one seeded rate when the body marks `leak`.
fn oom_kill_plan(seed: u64) -> FaultPlan {
    let cap = oom_container(&mut SimRng::new(seed, "scenario")) / 4 * 3;
    let rate = cap / (50 + plan_rng(seed).below(100));
    workers(seed)
        .after("leak", 0, on_host::leak(Some("plain"), rate))
        .after("leak", 0, on_host::leak(Some("watched"), rate))
}
async fn oom_kill(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let container = oom_container(&mut stage.rng);
    memory_limit(&host, container);
    let cap = container / 4 * 3;
    let plain = stage.start_worker("plain", stage.config("plain")).await?;
    let mut config = stage.config("watched");
    config.memory = Some(MemoryPolicy::with_limit(cap));
    let watched = stage.start_worker("watched", config).await?;
    let plain_log = StatusLog::follow(&stage.env, &plain);
    let watched_log = StatusLog::follow(&stage.env, &watched);
    tokio::time::sleep(ms(stage.rng.below(1_000))).await;
    let plain_pid = ready_pid(&plain)?;
    let watched_pid = ready_pid(&watched)?;
    let resident = |pid| host.procs().resident_bytes(pid).unwrap_or(0);
    let (plain_base, watched_base) = (resident(plain_pid), resident(watched_pid));
    let leak_at = Instant::now();
    let met = stage.mark("leak");
    let oom_at = |base, rate| leak_at + time_to_reach(base, rate, container + 1);
    // The watched worker is restarted by its supervisor first.
    let stopping_at = match met::leak_of(&met, "watched") {
        Some(rate) => {
            let bound = oom_at(watched_base, rate) - Instant::now();
            Some(
                memory_restart(
                    &host,
                    &watched,
                    &watched_log,
                    bound,
                    (leak_at, watched_base, rate),
                    cap,
                    container,
                )
                .await?,
            )
        }
        None => None,
    };
    // The unwatched one meets the OOM killer at the predicted instant.
    let plain_rate = met::leak_of(&met, "plain");
    if let Some(rate) = plain_rate {
        let died_at = oom_killed(
            &plain,
            &plain_log,
            oom_at(plain_base, rate),
            plain_pid,
            &host,
        )
        .await?;
        if let Some(stopping_at) = stopping_at {
            ensure!(stopping_at < died_at, "the watched one stopped late");
        }
    } else {
        let now = ready_pid(&plain)?;
        ensure!(
            now == plain_pid,
            "no leak, yet the unwatched pid {plain_pid} became {now}"
        );
    }
    if stopping_at.is_none() {
        let stats = watched.stats();
        let same = ready_pid(&watched)? == watched_pid;
        ensure!(
            same && stats.memory_restarts == 0,
            "no leak, yet the watched one: {stats:?}"
        );
    }
    ping(&plain, 1).await?;
    ping(&watched, 2).await?;
    let ooms = stage.faults.count("proc.oom_kill");
    let expected = u64::from(plain_rate.is_some());
    ensure!(ooms == expected, "{ooms} OOM kills, not {expected}");
    stage.manager.stop_all().await;
    ensure_clean(&stage, "at the end")
}

/// Oracle, the watched worker leaking `rate` bytes/s from `base` at `leak_at`: its memory
/// watch warns once and restarts it gracefully within `bound`, above 80% of `cap` and
/// under the container limit. Returns when it began stopping.
async fn memory_restart(
    host: &sim::Host,
    watched: &Worker,
    watched_log: &StatusLog,
    bound: Duration,
    (leak_at, base, rate): (Instant, u64, u64),
    cap: u64,
    container: u64,
) -> Result<Instant, Failure> {
    let stopping = watched_log.next_stopping(1, bound, "the memory restart");
    let (index, stopping_at, _) = stopping.await?;
    let stats = watched.stats();
    ensure!(
        stats.memory_warnings == 1 && stats.memory_restarts == 1,
        "at the memory restart: {stats:?}"
    );
    let resident =
        base + (u128::from(rate) * (stopping_at - leak_at).as_nanos() / 1_000_000_000) as u64;
    ensure!(
        resident >= percent_of(cap, 80) && resident < container,
        "the memory restart came at {resident} bytes (cap {cap}, container {container})"
    );
    let (_, _, ready) = watched_log
        .next_ready(index, START_BOUND, "the restart")
        .await?;
    let stats = watched.stats();
    ensure!(
        graceful(&stats) && stats.crashes == 0 && stats.restarts == 0,
        "the memory restart was not a graceful stop and start: {stats:?}"
    );
    fresh(host, &ready, 0, "the restarted watched worker")?;
    Ok(stopping_at)
}

/// Oracle, the unwatched worker (`plain_pid`) leaking: the OOM killer ends it at
/// `oom_at`, seen as a crash, and it recovers after the default backoff with a fresh
/// process. Returns when it died.
async fn oom_killed(
    plain: &Worker,
    plain_log: &StatusLog,
    oom_at: Instant,
    plain_pid: u32,
    host: &sim::Host,
) -> Result<Instant, Failure> {
    let bound = oom_at + secs(1) - Instant::now();
    let (index, died_at, status) = plain_log.next_down(1, bound, "the OOM kill").await?;
    between(
        "the OOM kill at the predicted instant",
        died_at,
        oom_at,
        oom_at + TICK,
    )?;
    let stats = plain.stats();
    ensure!(
        status == WorkerStatus::Restarting { failures: 1 }
            && exit_mentions(&stats, "SIGKILL")
            && stats.crashes == 1
            && stats.memory_warnings == 0,
        "after the OOM kill: {status}, {stats:?}"
    );
    let (_, ready_at, ready) = plain_log.next_ready(index, START_BOUND, "recovery").await?;
    let delay = spawned_at(ready_at, &plain.stats()) - died_at;
    let nominal = RestartPolicy::default_policy().backoff_first;
    let what = format!("restart after the OOM kill (backoff {nominal:?} minus up to 20%)");
    on_time(&what, delay, nominal * 8 / 10, nominal, TICK)?;
    fresh(host, &ready, plain_pid, "the recovered worker")?;
    Ok(died_at)
}

workers_scenario!(
    SEGFAULT, "core.EC-119", "Worker process segfaults",
    proves: "A ready worker dies of SIGSEGV a seeded number of times (on a simulated host one of \
             the deaths is an OOM kill instead, at a seeded place in the sequence). Each death must \
             raise a process error: status Restarting, last_exit naming the signal, the crash \
             counted, requests answered NotRunning and health unhealthy without a probe. Each must \
             take the same recovery path, whatever killed it: a restart after the default backoff \
             (doubling, jitter at most 20% below), a new process that answers pings.",
    faults: ["proc.crash_segv"], secs: 300,
    cores: ["engine/src/workers/lifecycle.rs", "engine/src/workers/breaker.rs",
            "engine/src/workers/worker.rs"],
    plan: segfault_plan,
    body: segfault, real
);
/// How many deaths, the body's first draw (fewer on a real run).
fn segfault_deaths(rng: &mut SimRng, real: bool) -> u64 {
    let (least, spread) = if real { (1, 3) } else { (2, 2) };
    least + rng.below(spread)
}
/// The worker dies at each `death-{i}` the body marks: of SIGSEGV, but at a seeded one of
/// them it starts leaking 32 MiB/s instead (under the 64 MiB container limit the body
/// sets), for the OOM killer.
fn segfault_plan(seed: u64) -> FaultPlan {
    let deaths = segfault_deaths(&mut SimRng::new(seed, "scenario"), false);
    let oom = 1 + plan_rng(seed).below(deaths);
    (1..=deaths).fold(workers(seed), |plan, i| {
        let fault = if i == oom {
            on_host::leak(Some("seg"), 32 * MIB)
        } else {
            on_host::signal(Some("seg"), SignalName::Sigsegv)
        };
        plan.after(&format!("death-{i}"), 0, fault)
    })
}
async fn segfault(mut stage: Stage) -> Outcome {
    let real = stage.is_real();
    let deaths = segfault_deaths(&mut stage.rng, real);
    if !real {
        memory_limit(stage.host()?, 64 * MIB);
    }
    let slack = slack(&stage);
    let worker = stage.start_worker("seg", stage.config("seg")).await?;
    let log = StatusLog::follow(&stage.env, &worker);
    ping(&worker, 1).await?;
    let backoff = RestartPolicy::default_policy().backoff_first;
    // The deaths the plan caused so far (all of them, unless a shrink removed some).
    let mut i = 0;
    for d in 1..=deaths {
        tokio::time::sleep(ms(50 + stage.rng.below(3_000))).await;
        let pid = ready_pid(&worker)?;
        let mark = log.mark();
        let event = format!("death-{d}");
        let injected_at = Instant::now();
        let (oom, signal) = if real {
            (false, Some(Signal::Segv))
        } else {
            let met = stage.mark(&event);
            let signal = met::signal_to(&met, "seg").map(|s| s.signal());
            (met::leak_of(&met, "seg").is_some(), signal)
        };
        let injected_at = match signal {
            Some(signal) if !oom => send_real(&stage, &worker, pid, signal, injected_at).await?,
            _ if oom => injected_at,
            _ => {
                // Nothing planned here: the worker stays up on the same process.
                let now = ready_pid(&worker)?;
                ensure!(
                    now == pid,
                    "no death at {event}, yet pid {pid} became {now}"
                );
                continue;
            }
        };
        i += 1;
        let (index, died_at, status) = log.next_down(mark, secs(10), "the death").await?;
        let words = match signal {
            Some(signal) if !oom => signal_words(signal),
            _ => "SIGKILL",
        };
        let noticed = died_at - injected_at;
        ensure!(oom || noticed <= slack, "death {i} seen {noticed:?} late");
        let stats = worker.stats();
        ensure!(
            status == WorkerStatus::Restarting { failures: i as u32 }
                && exit_mentions(&stats, words)
                && stats.crashes == i,
            "death {i} ({words}): {status}, {stats:?}"
        );
        // The process error reaches callers while the worker is down.
        if matches!(worker.status(), WorkerStatus::Restarting { .. }) {
            let refused = worker.request(Request::Ping { id: 10 + i }).await;
            let not_running = matches!(refused, Err(WorkerError::NotRunning { .. }));
            ensure!(not_running, "a request while restarting gave {refused:?}");
            let health = worker.health().await;
            ensure!(!health.healthy && !health.probed, "restarting: {health:?}");
        }
        let (_, ready_at, ready) = log.next_ready(index, START_BOUND, "the recovery").await?;
        let stats = worker.stats();
        let nominal = backoff * 2u32.pow(i as u32 - 1);
        let delay = spawned_at(ready_at, &stats) - died_at;
        let what = format!("death {i} ({words}): respawn (backoff {nominal:?} minus up to 20%)");
        on_time(&what, delay, nominal * 8 / 10, nominal, slack)?;
        ensure!(pid_of(&ready)? != pid, "pid {pid} reported ready again");
        ensure!(stats.restarts == i, "death {i}: {stats:?}");
        ping(&worker, 100 + i).await?;
    }
    stop_clean(&stage, &worker).await
}

workers_scenario!(
    CONTAINER_RESTART, "core.EC-122", "Container restarts while workers are running",
    proves: "The engine host boots a supervisor that starts a seeded number of workers; they write \
             cache files and snapshots (acknowledged), and at a seeded moment (sometimes during \
             one more, unacknowledged write) the host crashes. No worker process may survive, not \
             even as a zombie. After a seeded downtime the host restarts and boots a new \
             supervisor: it must start every worker afresh (new pids), nothing from the dead \
             incarnation may come back, every acknowledged cache file and snapshot must be on \
             disk intact for the new workers, and they must serve requests.",
    faults: ["host.crash"], secs: 300,
    cores: ["engine/src/workers/manager.rs", "engine/src/workers/program/cache.rs",
            "engine/src/workers/program/snapshot.rs"],
    // The host crashes when the body marks `crash` and restarts when it marks `restart`
    // (after its seeded downtime).
    plan: |seed| workers(seed)
        .after("crash", 0, on_host::crash())
        .after("restart", 0, on_host::restart()),
    body: container_restart
);
async fn container_restart(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    disk_latency(&host, Duration::from_micros(100), ms(1));
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
    let slot = boot_supervisors(&host, &stage.program, configs);
    let first = booted(&slot, 1, &names).await?;
    // Acknowledged data.
    let mut acked = Vec::new();
    for name in &names {
        let worker = first.worker(name).await.or_fail("lookup")?;
        let (files, state) = write_data(&mut stage, &worker, name).await?;
        acked.push((worker.config().dir.clone(), files, state));
    }
    // Sometimes one more write is in flight when the host dies.
    let in_flight = stage.rng.below(2) == 0;
    let writer = if in_flight {
        let worker = first.worker(&names[0]).await.or_fail("lookup")?;
        Some(stage.env.spawn("in-flight-write", async move {
            let _ = write_cache(&worker, 999, "in-flight", 8 * MIB).await;
        }))
    } else {
        None
    };
    tokio::time::sleep(ms(stage.rng.below(200))).await;
    let before = live_pids(&stage);
    live_count(&stage, names.len(), "before the crash")?;
    let second = if met::crashes_host(&stage.mark("crash")) {
        ensure_clean(&stage, "right after the host crash")?;
        tokio::time::sleep(secs(1 + stage.rng.below(20))).await;
        ensure_clean(&stage, "while the host is down")?;
        if !met::restarts_host(&stage.mark("restart")) {
            // The host stays down (a plan without the restart): nothing more runs.
            return Ok(());
        }
        let second = booted(&slot, 2, &names).await?;
        let boots = managers(&slot).len();
        ensure!(boots == 2, "{boots} supervisors booted for one restart");
        let after = live_pids(&stage);
        let newest_old = before.iter().max().copied().unwrap_or(0);
        ensure!(
            after.len() == names.len() && after.iter().all(|p| *p > newest_old),
            "after the restart processes {after:?} run (before the crash: {before:?})"
        );
        second
    } else {
        // No crash (a shrunk plan): the first supervisor keeps its workers, and the
        // write in flight completes.
        if let Some(writer) = writer {
            writer.await.or_fail("the in-flight write")?;
        }
        let boots = managers(&slot).len();
        let after = live_pids(&stage);
        ensure!(
            boots == 1 && after == before,
            "without a crash: {boots} supervisors, processes {after:?} (before: {before:?})"
        );
        first
    };
    for (name, (dir, files, state)) in names.iter().zip(&acked) {
        let found: Vec<(String, u64)> = cache_files(stage.env.disk(), dir)
            .into_iter()
            .filter(|(n, _)| n != "in-flight")
            .collect();
        ensure!(&found == files, "{name}: {found:?}, not {files:?}");
        let restored = snapshot_at(stage.env.disk(), &format!("{dir}/{SNAPSHOT_FILE}"))?;
        ensure!(&restored == state, "{name}: {restored:?}, not {state:?}");
        let worker = second.worker(name).await.or_fail("lookup")?;
        let acked_bytes = data_bytes(files, state);
        let usage = worker.disk_usage();
        let on_disk = cache_files(stage.env.disk(), dir);
        let torn = on_disk
            .iter()
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

workers_scenario!(
    SANDBOX_MEMORY, "enable.1.1.1", "Sandbox code allocates past its memory limit",
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
    faults: ["proc.leak", "proc.hang"], secs: 900,
    cores: ["engine/src/workers/memory.rs", "engine/src/workers/lifecycle/resources.rs",
            "engine/src/workers/lifecycle/deadlines.rs", "engine/src/workers/program/snapshot.rs"],
    plan: sandbox_memory_plan,
    body: sandbox_memory
);
/// The sandbox's memory limit, the body's first draw.
fn sandbox_limit(rng: &mut SimRng) -> u64 {
    (512 * MIB) << rng.below(2)
}
/// The sandbox leaks at a seeded rate from each `leak-{round}` the body marks, and hangs
/// at the `hang-{round}` of a seeded round (the body marks it once memory passes 90%).
/// No slow disk in the swarm: the oracle gives the stop one sample interval plus the
/// checkpoint bound after memory crosses 95%, and the checkpoint writes to the disk.
fn sandbox_memory_plan(seed: u64) -> FaultPlan {
    let limit = sandbox_limit(&mut SimRng::new(seed, "scenario"));
    let mut rng = plan_rng(seed);
    let hung_round = rng.below(2);
    let plan = swarm(seed, &[SwarmKind::NetDelay, SwarmKind::ProcSlowStart]);
    (0..2u64).fold(plan, |plan, round| {
        let rate = limit / (40 + rng.below(40));
        let plan = plan.after(
            &format!("leak-{round}"),
            0,
            on_host::leak(Some("sandbox"), rate),
        );
        if round == hung_round {
            plan.after(&format!("hang-{round}"), 0, on_host::hang(Some("sandbox")))
        } else {
            plan
        }
    })
}
async fn sandbox_memory(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let limit = sandbox_limit(&mut stage.rng);
    memory_limit(&host, 2 * limit);
    let interval = ms(200 + 100 * stage.rng.below(9));
    let grace = secs(5);
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
    let cp_bound = config.checkpoint_timeout;
    ensure!(cp_bound == secs(5), "checkpoint bound {cp_bound:?}");
    // A hung sandbox is stopped by the memory watch here, not by hang detection.
    config.heartbeat_timeout = secs(120);
    let worker = stage.start_worker("sandbox", config).await?;
    let log = StatusLog::follow(&stage.env, &worker);
    // The rounds whose sandbox leaked (both, unless a shrink removed a leak).
    let mut leaked = 0u64;
    for round in 0..2u64 {
        tokio::time::sleep(ms(stage.rng.below(1_000))).await;
        let pid = ready_pid(&worker)?;
        // The session so far: a snapshot, then inputs run since (what a checkpoint keeps).
        let base = format!("round {round} state {}", stage.rng.below(1_000_000));
        let (id, state) = (10, base.clone());
        ask_done(&worker, id, Request::Snapshot { id, state }).await?;
        let mut session = base;
        for i in 0..stage.rng.below(4) {
            let input = format!("question {i} of round {round}");
            let (id, pace_ms) = (11 + i, None);
            let request = Request::Run {
                id,
                input: input.clone(),
                pace_ms,
            };
            ask(&worker, request).await?;
            session = format!("{session}\n{input}");
        }
        let before = worker.stats();
        let base = host.procs().resident_bytes(pid).unwrap_or(0);
        let leak_at = Instant::now();
        let Some(rate) = met::leak_of(&stage.mark(&format!("leak-{round}")), "sandbox") else {
            // No leak this round: the sandbox stays as it was.
            let (now, stats) = (ready_pid(&worker)?, worker.stats());
            ensure!(
                now == pid && stats.memory_warnings == before.memory_warnings,
                "round {round} without a leak: pid {pid} became {now}, {stats:?}"
            );
            continue;
        };
        leaked += 1;
        let warn_cross = leak_at + time_to_reach(base, rate, percent_of(limit, 80));
        let crit_cross = leak_at + time_to_reach(base, rate, percent_of(limit, 95));
        let warned = warning_probe(&stage, worker.clone(), before.memory_warnings);
        let mark = log.mark();
        let at_90 = leak_at + time_to_reach(base, rate, percent_of(limit, 90));
        tokio::time::sleep_until(at_90).await;
        let hung = met::hangs(&stage.mark(&format!("hang-{round}")), "sandbox");
        let bound = crit_cross + interval + cp_bound + secs(1) - Instant::now();
        let (index, stopping_at, _) = log.next_stopping(mark, bound, "the critical stop").await?;
        // A hung sandbox never answers the checkpoint: the stop waits for its bound. A
        // responsive one takes a few disk operations (well under 50 ms), plus the swarm's
        // latency spikes on the request and on its reply (up to 40 ms each; deep sweep
        // seed 95136 met 45 ms of them). Still under the shortest sample interval
        // (200 ms), the lateness of a stop that missed its sample.
        let (cp_min, cp_max) = if hung {
            (cp_bound, cp_bound)
        } else {
            (Duration::ZERO, ms(50) + 2 * ms(40))
        };
        let what = format!("round {round}: the stop after memory crossed 95% (hung: {hung})");
        on_time(
            &what,
            stopping_at,
            crit_cross + cp_min,
            crit_cross + interval + cp_max,
            TICK,
        )?;
        let warned_at = warned
            .seen()
            .or_fail(&format!("round {round}: a warning"))?;
        let what = format!("round {round}: the warning after memory crossed 80%");
        on_time(
            &what,
            warned_at,
            warn_cross,
            warn_cross + interval + ms(5),
            TICK,
        )?;
        let bound = grace + START_BOUND;
        let (_, ready_at, ready) = log.next_ready(index, bound, "the replacement").await?;
        let stats = worker.stats();
        let (checkpoints, failures) = if hung { (0, 1) } else { (1, 0) };
        ensure!(
            stats.memory_warnings == before.memory_warnings + 1
                && stats.memory_restarts == before.memory_restarts + 1
                && stats.crashes == before.crashes
                && stats.restarts == before.restarts
                && stats.checkpoints == before.checkpoints + checkpoints
                && stats.checkpoint_failures == before.checkpoint_failures + failures,
            "round {round} (hung: {hung}): {stats:?}, before {before:?}"
        );
        let ended = spawned_at(ready_at, &stats) - stopping_at;
        if hung {
            ensure!(
                stats.forced_kills == before.forced_kills + 1 && exit_mentions(&stats, "SIGKILL"),
                "round {round}: the hung sandbox was not force-killed: {stats:?}"
            );
            let what = format!("round {round}: SIGKILL after SIGTERM (grace {grace:?})");
            on_time(&what, ended, grace, grace, TICK)?;
        } else {
            ensure!(
                stats.forced_kills == before.forced_kills && exit_mentions(&stats, "code 0"),
                "round {round}: the responsive sandbox did not stop gracefully: {stats:?}"
            );
            ensure!(ended < ms(100), "round {round}: the stop took {ended:?}");
            let saved = snapshot_at(stage.env.disk(), &snapshot_path)?;
            ensure!(saved == session, "round {round}: {saved:?}, not {session}");
        }
        let (current_bytes, proposed_bytes) = (limit, 2 * limit);
        let raise = OversightRequest::RaiseMemoryLimit {
            current_bytes,
            proposed_bytes,
        };
        let requests = worker.oversight_requests();
        let raises = requests.iter().filter(|r| **r == raise).count() as u64;
        ensure!(raises == leaked, "round {round}: requests {requests:?}");
        fresh(
            &host,
            &ready,
            pid,
            &format!("round {round}: the replacement"),
        )?;
    }
    let ooms = stage.faults.count("proc.oom_kill");
    ensure!(ooms == 0, "the container's OOM killer fired");
    ping(&worker, 3).await?;
    stop_clean(&stage, &worker).await
}
