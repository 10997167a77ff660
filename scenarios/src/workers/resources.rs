//! Resources running out: core.EC-115 (file descriptors), EC-120 (zombies), EC-127 (a
//! stop that outlasts the grace period), pattern.7.3 (ports taken), 7.5 (memory
//! growing). Disks filling up are in `disk`.

use crate::kit::plans::{met, on_host, plan_rng, quiet, workers};
use crate::kit::workers::*;
use crate::stage::workers::{start_engine, workers_config};
use engine::workers::PortRange;
use engine::workers::breaker::RestartPolicy;
use engine::workers::memory::MemoryPolicy;
use sim::faults::SignalName;
use sim::{FaultPlan, SimRng};

/// What asking a responsive worker for a checkpoint may add before a memory stop: a few
/// milliseconds, plus the swarm's latency spikes (up to 40 ms each way of the request,
/// and as much on the slow disk the sample reads). Still far below one sample interval
/// (at least 500 ms), the lateness of a restart that missed its sample.
const CHECKPOINT_SLACK: Duration = Duration::from_millis(170);

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &FD_EXHAUSTED,
        &ZOMBIES,
        &SLOW_CLEANUP,
        &PORT_TAKEN,
        &MEMORY_GROWTH,
    ]
}

workers_scenario!(
    FD_EXHAUSTED, "core.EC-115", "Worker runs out of file descriptors",
    proves: "Descriptors run out three ways. Spawns fail with EMFILE a seeded number of times: each \
             start must fail with FdExhausted, a message naming the OS error and the ulimit fix, \
             status Failed, no process, no retry behind the caller's back. The running worker's \
             own opens then fail with EMFILE: each cache write must fail with FdExhausted while \
             the worker stays up, healthy, with nothing half-written. Finally the worker is killed \
             while spawns still fail with EMFILE: the automatic restart must count each failed \
             spawn against the breaker and back off, doubling. Each time, once descriptors free up \
             the next attempt must succeed.",
    faults: ["proc.spawn_fail", "disk.emfile"], secs: 300,
    cores: ["engine/src/workers/error.rs", "engine/src/workers/lifecycle.rs",
            "engine/src/workers/breaker.rs", "engine/src/workers/program/cache.rs"],
    plan: fd_exhausted_plan,
    body: fd_exhausted
);
/// EMFILE, the errno of a process out of file descriptors.
const EMFILE: i32 = 24;
/// A seeded number of spawns fail with EMFILE from the `spawn-fails` mark; between
/// `descriptors-out` and `descriptors-back` the worker's own opens fail so; at `crash`,
/// a seeded number more spawns fail, and the worker is killed. No swarm: the oracle times the
/// recovery to the sum of the backoffs (30 ms of slack); late messages, slow disk
/// operations and slow restarts all move it.
fn fd_exhausted_plan(seed: u64) -> FaultPlan {
    let mut rng = plan_rng(seed);
    let k = 1 + rng.below(3) as u32;
    let m = 1 + rng.below(2) as u32;
    quiet(seed)
        .after("spawn-fails", 0, on_host::spawn_fails(EMFILE, k))
        .after("descriptors-out", 0, on_host::open_files_spare(Some(0)))
        .after("descriptors-back", 0, on_host::open_files_spare(None))
        .after("crash", 0, on_host::spawn_fails(EMFILE, m))
        .after("crash", 0, on_host::signal(Some("fd"), SignalName::Sigkill))
}
async fn fd_exhausted(mut stage: Stage) -> Outcome {
    // 1. Spawns fail with EMFILE.
    let k = u64::from(met::spawn_fails(&stage.mark("spawn-fails")).1);
    stage.register("fd", stage.config("fd")).await?;
    let worker = stage.worker("fd").await?;
    for i in 1..=k {
        let result = worker.start().await;
        ensure!(emfile(&result), "start {i}: {result:?}");
        let status = worker.status();
        ensure!(
            matches!(&status, WorkerStatus::Failed { reason } if reason.contains("Too many open files")),
            "status after start {i}: {status}"
        );
        let stats = worker.stats();
        ensure!(
            stats.spawn_failures == i && stats.spawns == 0,
            "start {i}: {stats:?}"
        );
        ensure_clean(&stage, "after a failed spawn")?;
    }
    tokio::time::sleep(secs(10)).await;
    let stats = worker.stats();
    ensure!(
        stats.spawn_failures == k && stats.spawns == 0,
        "something retried the start behind the caller's back: {stats:?}"
    );
    let pid = start_ready(&worker).await?;

    // 2. The worker's own opens fail with EMFILE.
    let usage = worker.disk_usage();
    let out = !stage.mark("descriptors-out").is_empty();
    let mut usage_out = usage;
    for j in 0..1 + stage.rng.below(3) {
        let bytes = 1 + stage.rng.below(200_000);
        let result = write_cache(&worker, 10 + j, &format!("f{j}"), bytes).await;
        if out {
            ensure!(emfile(&result), "cache write {j}: {result:?}");
        } else {
            result.or_fail("cache write with descriptors to spare")?;
            usage_out += bytes;
        }
    }
    ensure!(ready_pid(&worker)? == pid, "did not survive EMFILE");
    ensure_healthy(&worker, "descriptors exhausted").await?;
    let now = worker.disk_usage();
    ensure!(now == usage_out, "failed writes: usage {now}, was {usage}");
    let usage = usage_out;
    stage.mark("descriptors-back");
    let bytes = 1 + stage.rng.below(200_000);
    let written = write_cache(&worker, 20, "after", bytes).await;
    written.or_fail("cache write once descriptors are free")?;
    let now = worker.disk_usage();
    ensure!(now == usage + bytes, "usage {now} after {bytes} more bytes");

    // 3. A crash while spawns fail with EMFILE: the automatic restart backs off.
    let log = StatusLog::follow(&stage.env, &worker);
    let mark = log.mark();
    let killed_at = Instant::now();
    let met = stage.mark("crash");
    let m = u64::from(met::spawn_fails(&met).1);
    if met::signal_to(&met, "fd").is_none() {
        // Not killed (a shrunk plan): the worker keeps its process.
        let now = ready_pid(&worker)?;
        ensure!(now == pid, "no kill, yet pid {pid} became {now}");
        ping(&worker, 1).await?;
        return stop_clean(&stage, &worker).await;
    }
    let (_, ready_at, _) = log.next_ready(mark, secs(30), "recovery").await?;
    let failures = log.restarting(mark);
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
    let first = RestartPolicy::default_policy().backoff_first;
    let nominal: Duration = (0..=m as u32).map(|i| first * 2u32.pow(i)).sum();
    let took = spawned_at(ready_at, &stats) - killed_at;
    let what = format!("recovery after the crash (backoffs {nominal:?})");
    on_time(&what, took, nominal * 8 / 10, nominal, ms(10))?;
    ping(&worker, 1).await?;
    stop_clean(&stage, &worker).await
}

workers_scenario!(
    ZOMBIES, "core.EC-120", "Terminated workers are left as zombies",
    proves: "The supervisor gives up on workers three ways: one misses its (seeded) init timeout \
             while starting slowly, one is replaced by a seeded number of new registrations under \
             its name, one hangs and is killed by hang detection. Sampling the process table every \
             10 ms, no worker pid may stay a zombie longer than the watchdog interval (5 s); the \
             reaper must count one reap per child it adopted and hold none at the end, and no \
             zombie or stray process may remain.",
    faults: ["proc.slow_start", "proc.hang"], secs: 300,
    cores: ["engine/src/workers/reaper.rs", "engine/src/workers/lifecycle/deadlines.rs",
            "engine/src/workers/manager.rs"],
    plan: zombies_plan,
    body: zombies
);
/// The late worker's init timeout, the body's first draw.
fn zombie_init_timeout(rng: &mut SimRng) -> Duration {
    ms(1_000 + 500 * rng.below(5))
}
/// Starts are slower than the init timeout from `late` to `late-done`; the hung worker
/// hangs at `hang`.
fn zombies_plan(seed: u64) -> FaultPlan {
    let init_timeout = zombie_init_timeout(&mut SimRng::new(seed, "scenario"));
    let (min, max) = (init_timeout + secs(1), init_timeout + secs(5));
    workers(seed)
        .after("late", 0, on_host::slow_starts(min, max))
        .after(
            "late-done",
            0,
            on_host::slow_starts(Duration::ZERO, Duration::ZERO),
        )
        .after("hang", 0, on_host::hang(Some("hung")))
}
async fn zombies(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let step = ms(10);
    let zombie_watch = ZombieWatch::start(&stage.env, &host, step);
    let mut adopted = 0u64;

    // A worker that misses its init timeout.
    let init_timeout = zombie_init_timeout(&mut stage.rng);
    let slow = met::slow_starts(&stage.mark("late"));
    let mut config = stage.config("late");
    config.init_timeout = init_timeout;
    stage.register("late", config).await?;
    let result = stage.manager.start("late").await;
    let timed_out =
        matches!(&result, Err(WorkerError::InitTimeout { after, .. }) if *after == init_timeout);
    // Slower than the timeout: it must time out; not slow (a shrunk plan): it must start.
    let (must, may) = slow.map_or((false, false), |(min, max)| {
        (min > init_timeout, max > init_timeout)
    });
    ensure!(
        timed_out || (!must && result.is_ok()),
        "a start slower than the init timeout gave {result:?}"
    );
    ensure!(!timed_out || may, "a start with no slow start timed out");
    // The late worker runs on when it started.
    let late_running = usize::from(!timed_out);
    adopted += u64::from(timed_out);
    // The slow starts end at `late-done`. Should they go on (a plan without their end),
    // later starts would outlast the connect schedule: only the late worker is judged.
    let ended = met::slow_starts(&stage.mark("late-done"));
    let still_slow = ended.or(slow).is_some_and(|(_, max)| max >= secs(3));
    let others = if still_slow {
        0
    } else {
        tokio::time::sleep(ms(stage.rng.below(5_000))).await;

        // A worker replaced by new registrations under its name.
        let replacements = 1 + stage.rng.below(3);
        for r in 0..=replacements {
            let mut config = stage.config("dup");
            config.config_version = r + 1;
            drop(stage.start_worker("dup", config).await?);
            tokio::time::sleep(ms(stage.rng.below(3_000))).await;
            if r < replacements {
                adopted += 1;
            }
        }

        // A worker that hangs and is killed by hang detection.
        let hung = stage.start_worker("hung", stage.config("hung")).await?;
        let log = StatusLog::follow(&stage.env, &hung);
        let pid = ready_pid(&hung)?;
        tokio::time::sleep(ms(stage.rng.below(2_000))).await;
        let hangs = met::hangs(&stage.mark("hang"), "hung");
        if hangs {
            log.next(
                1,
                secs(30),
                "the restart of the hung worker",
                |s| matches!(s, WorkerStatus::Ready { pid: new, .. } if *new != pid),
            )
            .await?;
        }
        let stats = hung.stats();
        let detected = u64::from(hangs);
        ensure!(
            stats.hangs_detected == detected,
            "{} hangs detected, {detected} planned: {stats:?}",
            stats.hangs_detected
        );
        drop(log);
        drop(hung);
        2
    };

    // One more sweep, then judge.
    tokio::time::sleep(WATCHDOG_INTERVAL + secs(1)).await;
    let bound = WATCHDOG_INTERVAL + step + TICK;
    for (pid, (first, last)) in zombie_watch.seen() {
        let what = format!("pid {pid} a zombie (watchdog interval {WATCHDOG_INTERVAL:?})");
        between(&what, last - first, Duration::ZERO, bound)?;
    }
    let reaper = stage.manager.reaper();
    let (reaped, pending) = (reaper.reaped(), reaper.pending());
    ensure!(
        reaped == adopted && pending == 0,
        "the reaper reaped {reaped} children and holds {pending}; {adopted} were given up on"
    );
    let zombies = zombie_pids(&stage);
    ensure!(zombies.is_empty(), "zombies left: {zombies:?}");
    live_count(&stage, others + late_running, "the dup and hung workers")?;
    stage.stop_all().await?;
    ensure_clean(&stage, "at the end")
}

workers_scenario!(
    SLOW_CLEANUP, "core.EC-127", "Worker cleanup takes longer than 30 s",
    proves: "A responsive worker is stopped first: it must exit 0 on SIGTERM at once, no SIGKILL. \
             Restarted, it then hangs (a seeded moment) and is stopped before hang detection can \
             act: SIGTERM goes unanswered, and SIGKILL must follow exactly 30 s (the grace) after \
             it, the stop returning then with status Stopped, the exit classified as SIGKILL and \
             the slow shutdown counted as a forced kill; no process or zombie may remain.",
    faults: ["proc.hang"], secs: 300,
    cores: ["engine/src/workers/lifecycle.rs", "engine/src/workers/lifecycle/deadlines.rs",
            "engine/src/workers/supervise.rs"],
    // The restarted worker hangs when the body marks `hang`.
    plan: |seed| workers(seed).after("hang", 0, on_host::hang(Some("slow"))),
    body: slow_cleanup
);
async fn slow_cleanup(mut stage: Stage) -> Outcome {
    let config = stage.config("slow");
    let grace = config.grace;
    ensure!(grace == secs(30), "the default grace is {grace:?}");
    let worker = stage.start_worker("slow", config).await?;
    tokio::time::sleep(ms(stage.rng.below(5_000))).await;
    let took = stop_timed(&worker).await?;
    let stats = worker.stats();
    ensure!(
        took < secs(1) && graceful(&stats),
        "a responsive stop: {took:?}, {stats:?}"
    );
    start_ready(&worker).await?;
    tokio::time::sleep(ms(stage.rng.below(5_000))).await;
    let hangs = met::hangs(&stage.mark("hang"), "slow");
    tokio::time::sleep(ms(stage.rng.below(3_000))).await;
    let took = stopped(&worker).await?;
    if !hangs {
        // Not hung (a shrunk plan): the second stop is as graceful as the first.
        let stats = worker.stats();
        ensure!(
            took < secs(1) && graceful(&stats),
            "a responsive stop: {took:?}, {stats:?}"
        );
        return ensure_clean(&stage, "after the stop");
    }
    let what = format!("the stop of a worker that ignores SIGTERM (grace {grace:?})");
    on_time(&what, took, grace, grace, TICK)?;
    let stats = worker.stats();
    ensure!(
        stats.forced_kills == 1
            && stats.hangs_detected == 0
            && stats.crashes == 0
            && exit_mentions(&stats, "SIGKILL"),
        "after the forced stop: {stats:?}"
    );
    ensure_clean(&stage, "after the forced stop")
}

workers_scenario!(
    PORT_TAKEN, "pattern.7.3", "Allocated port already taken by another process",
    proves: "Other processes hold a seeded run of ports at the start of the range, then a seeded \
             run ahead of the allocator's cursor. Each worker must be spawned on the first free \
             port after them, each taken port tried exactly once (counted at the bind). With a \
             tiny range (seeded size) entirely taken, the start must fail with PortsExhausted \
             naming the range and the number of tries, without spawning anything; once one port \
             (seeded) is released, the start must succeed on exactly that port.",
    faults: ["net.addr_in_use"], secs: 300,
    cores: ["engine/src/workers/ports.rs", "engine/src/workers/error.rs"],
    body: port_taken
);
async fn port_taken(mut stage: Stage) -> Outcome {
    let faults = stage.faults.clone();
    let conflicts = move || faults.count("net.addr_in_use");
    let first = PortRange::DEFAULT.first;
    let k = 1 + stage.rng.below(6) as u16;
    let mut held = hold_ports(&stage.env, first..first + k).await?;
    let one = stage.start_worker("one", stage.config("one")).await?;
    let port = endpoint_port(&one)?;
    ensure!(port == first + k, "{k} ports taken, the worker got {port}");
    let tried = conflicts();
    ensure!(tried == u64::from(k), "{tried} conflicts, {k} taken");
    let j = 1 + stage.rng.below(4) as u16;
    let next = first + k + 1;
    held.extend(hold_ports(&stage.env, next..next + j).await?);
    let two = stage.start_worker("two", stage.config("two")).await?;
    let port = endpoint_port(&two)?;
    ensure!(port == next + j, "{next}.. taken, the second got {port}");
    let tried = conflicts();
    ensure!(
        tried == u64::from(k + j),
        "{tried} conflicts for {} taken",
        k + j
    );

    // A tiny range, entirely taken.
    let m = 1 + stage.rng.below(4) as u16;
    let range = PortRange {
        first: 30_000,
        last: 30_000 + m - 1,
    };
    held.extend(hold_ports(&stage.env, range.first..range.last + 1).await?);
    let tiny_engine =
        start_engine(stage.env.clone(), workers_config(&stage.program, range)).await?;
    let tiny = tiny_engine.workers();
    let registered = tiny.register("tiny", stage.config("tiny")).await;
    registered.or_fail("register")?;
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
    ensure!(exhausted, "{range:?} all taken: {result:?}");
    let tried = conflicts() - before;
    ensure!(tried == u64::from(m), "{tried} tried in a range of {m}");
    let worker = tiny.worker("tiny").await.or_fail("lookup")?;
    let (stats, status) = (worker.stats(), worker.status());
    let spawns = stats.spawns;
    ensure!(
        spawns == 0 && failed(&status),
        "exhausted: {stats:?}, {status}"
    );
    live_count(&stage, 2, "after port exhaustion")?;
    let freed = range.first + stage.rng.below(u64::from(m)) as u16;
    held.remove(&freed);
    let before = conflicts();
    tiny.start("tiny").await.or_fail("start once freed")?;
    let port = endpoint_port(&worker)?;
    ensure!(port == freed, "only {freed} free, the worker got {port}");
    let tried = conflicts() - before;
    let skipped = u64::from(freed - range.first);
    ensure!(tried == skipped, "{tried} conflicts before {freed}");
    ping(&worker, 1).await?;
    tiny.stop_all().await;
    stage.manager.stop_all().await;
    drop(held);
    ensure_clean(&stage, "at the end")
}

workers_scenario!(
    MEMORY_GROWTH, "pattern.7.5", "Worker memory grows steadily over time",
    proves: "A worker whose memory watch has the container's limit (seeded), a seeded sample \
             interval and growth horizon leaks at a seeded steady rate, twice (its replacement \
             leaks too). Each time the watch must warn once, at the first sample over 80%, and \
             restart the worker at the first sample where the measured growth would reach the \
             limit within the horizon (or 95% is crossed), gracefully, and before the OOM killer: \
             no OOM kill, no crash, a fresh process each time.",
    faults: ["proc.leak"], secs: 1_800,
    cores: ["engine/src/workers/memory.rs", "engine/src/workers/lifecycle/resources.rs"],
    plan: memory_growth_plan,
    body: memory_growth
);
/// The container's memory limit, the body's first draw.
fn growth_limit(rng: &mut SimRng) -> u64 {
    (256 + 64 * rng.below(13)) * MIB
}
/// The worker leaks at a seeded rate from each `leak-{round}` the body marks (as soon as
/// the process of the round is ready).
fn memory_growth_plan(seed: u64) -> FaultPlan {
    let limit = growth_limit(&mut SimRng::new(seed, "scenario"));
    let mut rng = plan_rng(seed);
    (1..=2u64).fold(workers(seed), |plan, round| {
        let rate = limit / (60 + rng.below(140));
        plan.after(
            &format!("leak-{round}"),
            0,
            on_host::leak(Some("leaky"), rate),
        )
    })
}
async fn memory_growth(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    let limit = growth_limit(&mut stage.rng);
    memory_limit(&host, limit);
    let interval = ms(500 + 250 * stage.rng.below(7));
    let horizon = secs(3 + stage.rng.below(6));
    let mut policy = MemoryPolicy::with_limit(limit);
    policy.sample_interval = interval;
    policy.horizon = horizon;
    let mut config = stage.config("leaky");
    config.memory = Some(policy);
    let worker = stage.start_worker("leaky", config).await?;
    let log = StatusLog::follow(&stage.env, &worker);
    // The rounds whose worker leaked (both, unless a shrink removed a leak).
    let mut leaked = 0;
    for round in 1..=2u64 {
        // The leak starts with the process, before the first sample.
        let pid = ready_pid(&worker)?;
        let before = worker.stats();
        let base = host.procs().resident_bytes(pid).unwrap_or(0);
        let leak_at = Instant::now();
        let Some(rate) = met::leak_of(&stage.mark(&format!("leak-{round}")), "leaky") else {
            // No leak this round (a shrunk plan): nothing to restart.
            continue;
        };
        leaked += 1;
        let warn_cross = leak_at + time_to_reach(base, rate, percent_of(limit, 80));
        let by_growth = limit.saturating_sub(rate * horizon.as_secs());
        let restart_bytes = by_growth.min(percent_of(limit, 95));
        let restart_cross = leak_at + time_to_reach(base, rate, restart_bytes);
        let oom_at = leak_at + time_to_reach(base, rate, limit + 1);
        let warned = warning_probe(&stage, worker.clone(), before.memory_warnings);
        let mark = log.mark();
        let bound = oom_at - Instant::now();
        let (index, stopping_at, _) = log.next_stopping(mark, bound, "the restart").await?;
        // The stop follows the checkpoint request (a few milliseconds: this worker has no
        // snapshot file and refuses it at once).
        let what = format!(
            "round {round}: the restart after memory reached {restart_bytes} bytes \
             (interval {interval:?}, horizon {horizon:?})"
        );
        let due = restart_cross + interval + CHECKPOINT_SLACK;
        on_time(&what, stopping_at, restart_cross, due, TICK)?;
        let warned_at = warned.seen().or_fail(&format!("round {round}: an alert"))?;
        let what = format!("round {round}: the alert after memory crossed 80%");
        on_time(
            &what,
            warned_at,
            warn_cross,
            warn_cross + interval + ms(5),
            TICK,
        )?;
        let (_, _, ready) = log
            .next_ready(index, START_BOUND, "the replacement")
            .await?;
        let stats = worker.stats();
        ensure!(
            stats.memory_warnings == before.memory_warnings + 1
                && stats.memory_restarts == before.memory_restarts + 1
                && stats.crashes == 0
                && graceful(&stats),
            "round {round}: {stats:?}"
        );
        fresh(
            &host,
            &ready,
            pid,
            &format!("round {round}: the replacement"),
        )?;
    }
    let ooms = stage.faults.count("proc.oom_kill");
    ensure!(ooms == 0, "the OOM killer fired before the memory watch");
    let restarts = worker.stats().memory_restarts;
    ensure!(
        restarts == leaked,
        "{restarts} memory restarts for {leaked} leaks"
    );
    ping(&worker, 1).await?;
    stop_clean(&stage, &worker).await
}
