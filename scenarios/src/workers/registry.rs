//! The registry of named workers: pattern.1.x (lifecycle basics), 3.x (concurrency),
//! 4.x (names), 5.x (queries), 6.1 (shared across tasks).
//!
//! Most of these need no fault of their own: they run while other workers start slowly
//! (`proc.slow_start`) or fail to spawn, so a registry that blocked on another worker's
//! start, or leaked a process, would show.

use crate::kit::plans::{met, on_host, plan_rng, workers};
use crate::kit::workers::*;
use engine::workers::WorkerManager;
use sim::FaultPlan;
use std::sync::Arc;

const SLOW_MIN: Duration = Duration::from_millis(100);
const SLOW_MAX: Duration = Duration::from_millis(2_500);
/// Longer than any slow start plus the connect schedule.
const BOUND: Duration = Duration::from_secs(10);

/// The workers swarm, and every spawn from the body's first one on starts slowly
/// (0.1 to 2.5 s): a registry that blocked on another worker's start would show.
fn slow_plan(seed: u64) -> FaultPlan {
    workers(seed).after("spawn", 0, on_host::slow_starts(SLOW_MIN, SLOW_MAX))
}

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &BINARY_MISSING,
        &HEALTH_NEVER_STARTED,
        &STOP_NEVER_STARTED,
        &REPEATED_STARTS,
        &CONCURRENT_REGISTRATION,
        &PARALLEL_HEALTH_CHECKS,
        &CONCURRENT_STARTS,
        &EMPTY_NAME,
        &DUPLICATE_NAME,
        &LONG_NAME,
        &SPECIAL_NAMES,
        &UNKNOWN_NAME,
        &REPEATED_LIST,
        &METADATA,
        &SHARED_MANAGER,
    ]
}

workers_scenario!(
    BINARY_MISSING, "pattern.1.1", "Worker binary missing or not executable",
    proves: "Spawning the worker fails the way execve fails for a missing or non-executable \
             binary (ENOENT or EACCES, by seed). The start must return that error, the \
             worker's status must become Failed carrying the OS error, no process may be left, \
             and no retry loop may run behind the caller's back.",
    faults: ["proc.spawn_fail"], secs: 120,
    cores: ["engine/src/workers/lifecycle.rs", "engine/src/workers/supervise.rs",
            "engine/src/workers/error.rs"],
    // The spawn fails the way execve fails for a missing (ENOENT) or non-executable
    // (EACCES) binary, by seed.
    plan: |seed| {
        let errno = [2, 13][plan_rng(seed).below(2) as usize];
        workers(seed).after("spawn", 0, on_host::spawn_fails(errno, 1))
    },
    body: binary_missing, real
);
async fn binary_missing(stage: Stage) -> Outcome {
    let mut config = stage.config("w");
    let words = if stage.is_real() {
        config.program = "/nonexistent/chaos-worker".to_string();
        Some(os_words(2))
    } else {
        let met = stage.mark("spawn");
        match met::spawn_fails(&met) {
            (Some(errno), n) if n > 0 => Some(os_words(errno)),
            _ => None,
        }
    };
    stage.register("w", config).await?;
    let result = stage.manager.start("w").await;
    let worker = stage.worker("w").await?;
    let Some(words) = words else {
        // No spawn failure planned (a shrunk or given plan): the start succeeds, once.
        result.or_fail("start with no spawn failure planned")?;
        let stats = worker.stats();
        ensure!(
            stats.spawn_failures == 0 && stats.spawns == 1,
            "one good start made {} spawn failures and {} spawns",
            stats.spawn_failures,
            stats.spawns
        );
        live_count(&stage, 1, "after the start")?;
        stage.manager.stop_all().await;
        return Ok(());
    };
    let Err(WorkerError::SpawnFailed { reason, .. }) = &result else {
        return Err(Failure::correctness(format!(
            "start with a {words} binary returned {result:?}, not a spawn failure"
        )));
    };
    ensure!(reason.contains(&words), "{reason:?} lacks {words:?}");
    let status = worker.status();
    ensure!(
        matches!(&status, WorkerStatus::Failed { reason } if reason.contains(&words)),
        "status after the failed spawn is {status}, not Failed with the OS error"
    );
    // Nothing retries behind the caller's back (virtual time is free; real time is not).
    tokio::time::sleep(secs(if stage.is_real() { 1 } else { 30 })).await;
    let stats = worker.stats();
    ensure!(
        stats.spawn_failures == 1 && stats.spawns == 0,
        "one failed start made {} spawn failures and {} spawns",
        stats.spawn_failures,
        stats.spawns
    );
    live_count(&stage, 0, "after the failed start")?;
    let status = worker.status();
    ensure!(failed(&status), "status drifted to {status}");
    Ok(())
}

workers_scenario!(
    HEALTH_NEVER_STARTED, "pattern.1.2", "Health check on a worker that has not started",
    proves: "While another worker starts slowly, a health check of a registered worker that was \
             never started must answer at once (no virtual time passes: no RPC, no timer) with \
             the Uninitialized status, without probing and without spawning anything for it.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/worker.rs", "engine/src/workers/lifecycle.rs"],
    plan: slow_plan,
    body: health_never_started, real
);
async fn health_never_started(stage: Stage) -> Outcome {
    stage.mark("spawn");
    stage.register_default("busy").await?;
    stage.register_default("idle").await?;
    let mut busy = Some(stage.start_in_background("start-busy", "busy"));
    for round in 0..2 {
        let before = Instant::now();
        let health = stage.manager.health("idle").await.or_fail("health")?;
        let took = Instant::now() - before;
        let at_once = took.is_zero() || stage.is_real();
        ensure!(at_once, "the health check took {took:?}: it did I/O");
        ensure!(
            health.status == WorkerStatus::Uninitialized && !health.probed && !health.healthy,
            "round {round}: health of a never-started worker is {health:?}"
        );
        if let Some(busy) = busy.take() {
            busy.await.or_fail("start task")?.or_fail("start busy")?;
        }
    }
    let idle = stage.worker("idle").await?;
    ensure!(idle.stats().spawns == 0, "a health check spawned it");
    let busy = stage.manager.health("busy").await.or_fail("health")?;
    ensure!(busy.healthy && busy.probed, "the started one: {busy:?}");
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    STOP_NEVER_STARTED, "pattern.1.3", "Stop on a worker that never started",
    proves: "While another worker starts slowly, stopping a registered worker that never started \
             must succeed at once and change nothing: its status stays Uninitialized, no signal \
             or process is involved, and stopping it again is just as harmless.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/lifecycle.rs", "engine/src/workers/worker.rs"],
    plan: slow_plan,
    body: stop_never_started, real
);
async fn stop_never_started(stage: Stage) -> Outcome {
    stage.mark("spawn");
    stage.register_default("busy").await?;
    stage.register_default("idle").await?;
    let busy = stage.start_in_background("start-busy", "busy");
    for round in 0..2 {
        let before = Instant::now();
        stage.manager.stop("idle").await.or_fail("stop")?;
        let took = Instant::now() - before;
        let at_once = took.is_zero() || stage.is_real();
        ensure!(at_once, "stopping it took {took:?} of virtual time");
        let status = stage.status("idle").await;
        ensure!(
            status == Some(WorkerStatus::Uninitialized),
            "round {round}: stop changed a never-started worker to {status:?}"
        );
    }
    busy.await.or_fail("start task")?.or_fail("start busy")?;
    let live = live_pids(&stage);
    ensure!(live.len() <= 1, "more than the busy worker runs: {live:?}");
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    REPEATED_STARTS, "pattern.1.4", "start() called repeatedly on one worker",
    proves: "The first k spawns of a worker fail with EAGAIN (k from the seed). Each start must be \
             handled on its own: each of the first k returns the spawn error and leaves status \
             Failed with it, the next succeeds, and further starts of the running worker spawn \
             nothing: exactly one process runs at the end.",
    faults: ["proc.spawn_fail"], secs: 120,
    cores: ["engine/src/workers/worker.rs", "engine/src/workers/lifecycle.rs",
            "engine/src/workers/supervise.rs"],
    plan: |seed| {
        let k = 1 + plan_rng(seed).below(3) as u32;
        workers(seed).after("spawn", 0, on_host::spawn_fails(11, k))
    },
    body: repeated_starts
);
async fn repeated_starts(stage: Stage) -> Outcome {
    let met = stage.mark("spawn");
    let (errno, k) = met::spawn_fails(&met);
    let words = os_words(errno.unwrap_or(11));
    stage.register_default("w").await?;
    let worker = stage.worker("w").await?;
    for i in 1..=k {
        let result = worker.start().await;
        ensure!(
            matches!(&result, Err(WorkerError::SpawnFailed { reason, .. }) if reason.contains(&words)),
            "start {i} of {k} failing spawns returned {result:?}"
        );
        let status = worker.status();
        ensure!(failed(&status), "after start {i}: {status}");
        let n = worker.stats().spawn_failures;
        ensure!(n == u64::from(i), "{n} spawn failures after {i} starts");
    }
    worker.start().await.or_fail("start after the failures")?;
    for _ in 0..3 {
        worker.start().await.or_fail("start of a running worker")?;
    }
    let spawns = worker.stats().spawns;
    ensure!(spawns == 1, "{spawns} spawns for one running worker");
    live_count(&stage, 1, "one running worker")?;
    worker.stop().await.or_fail("stop")
}

workers_scenario!(
    CONCURRENT_REGISTRATION, "pattern.3.1", "Many workers registered concurrently",
    proves: "Ten tasks register ten workers at the same instant and start them, each start slow by \
             a seeded delay. Every registration must succeed, the list must hold exactly the ten \
             names, and every worker must end up ready on its own process and port.",
    faults: ["proc.slow_start"], secs: 300,
    cores: ["engine/src/workers/manager.rs", "engine/src/workers/ports.rs"],
    plan: slow_plan,
    body: concurrent_registration, real
);
async fn concurrent_registration(stage: Stage) -> Outcome {
    stage.mark("spawn");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let manager = stage.manager.clone();
        let config = stage.config(&format!("worker-{i}"));
        tasks.push(stage.env.spawn("register", async move {
            let name = format!("worker-{i}");
            manager.register(&name, config).await?;
            manager.start(&name).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        task.await
            .or_fail("task")?
            .or_fail(&format!("worker-{i}"))?;
    }
    let list = stage.manager.list().await;
    let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("worker-{i}")).collect();
    ensure!(names == expected, "listed {names:?}");
    let mut pids: Vec<u32> = list.iter().filter_map(|i| i.pid).collect();
    let mut ports: Vec<u16> = list
        .iter()
        .filter_map(|i| i.endpoint.as_ref().map(|e| e.port))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    ports.sort_unstable();
    ports.dedup();
    ensure!(
        pids.len() == 10 && ports.len() == 10,
        "workers share processes or ports: {list:?}"
    );
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    PARALLEL_HEALTH_CHECKS, "pattern.3.2", "Parallel health checks on the same worker",
    proves: "Twenty health checks of one ready worker run at the same instant, and the worker hangs \
             at a seeded moment among them. Every check must complete (no deadlock) within the \
             100 ms bound: healthy if it was answered before the hang, unhealthy after.",
    faults: ["proc.hang"], secs: 120,
    cores: ["engine/src/workers/worker.rs", "engine/src/workers/request.rs"],
    // The worker hangs 0 to 3 ms after the checks are sent, among them.
    plan: |seed| {
        let at = plan_rng(seed).below(4);
        workers(seed).after("checks", at, on_host::hang(Some("w")))
    },
    body: parallel_health_checks, real
);
async fn parallel_health_checks(stage: Stage) -> Outcome {
    stage.register_default("w").await?;
    stage.start_within("w", BOUND).await?;
    let pid = stage.pid("w").await;
    let hangs_before = stage.faults.count("proc.hang");
    let started = Instant::now();
    let mut checks = Vec::new();
    for _ in 0..20 {
        let manager = stage.manager.clone();
        checks.push(stage.env.spawn("health", async move {
            let health = manager.health("w").await;
            (health, Instant::now())
        }));
    }
    // The plan hangs the worker at a seeded moment after this mark; the body learns of
    // it from the device once the checks are done (nothing hung: all stay healthy).
    stage.mark("checks");
    let bound = ms(100);
    let mut healthy = 0;
    for check in checks {
        let (health, done) = check.await.or_fail("health task")?;
        let health = health.or_fail("health")?;
        let took = done - started;
        ensure!(
            took <= bound + ms(5) || stage.is_real(),
            "a health check took {took:?}, over the {bound:?} bound"
        );
        healthy += usize::from(health.healthy);
    }
    let hung = stage.faults.count("proc.hang") > hangs_before;
    if !hung {
        ensure!(healthy == 20, "{healthy} of 20 checks healthy");
    }
    let after = stage.manager.health("w").await.or_fail("health")?;
    if hung {
        ensure!(!after.healthy, "hung, yet {after:?}");
        // Clean-up, not the edge case: end the hung process rather than wait out a
        // graceful stop it cannot answer.
        stage.kill(pid, engine::env::Signal::Kill);
    } else {
        ensure!(after.healthy, "nothing hung, yet {after:?}");
    }
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    CONCURRENT_STARTS, "pattern.3.3", "Several tasks start the same worker at once",
    proves: "Five tasks start one worker at the same instant while its first k spawns fail with \
             EAGAIN (k from the seed). Every start must complete: the first k with the spawn \
             error, the rest successfully, and exactly one worker process may exist at the end.",
    faults: ["proc.spawn_fail"], secs: 120,
    cores: ["engine/src/workers/worker.rs", "engine/src/workers/lifecycle.rs"],
    plan: |seed| {
        let k = 1 + plan_rng(seed).below(3) as u32;
        workers(seed)
            .after("spawn", 0, on_host::spawn_fails(11, k))
            .after("spawn", 0, on_host::slow_starts(SLOW_MIN, SLOW_MAX))
    },
    body: concurrent_starts
);
async fn concurrent_starts(stage: Stage) -> Outcome {
    let met = stage.mark("spawn");
    let k = met::spawn_fails(&met).1 as usize;
    stage.register_default("w").await?;
    let tasks: Vec<_> = (0..5)
        .map(|_| stage.start_in_background("start", "w"))
        .collect();
    let mut failed = 0;
    for task in tasks {
        match task.await.or_fail("start task")? {
            Ok(()) => {}
            Err(WorkerError::SpawnFailed { .. }) => failed += 1,
            Err(other) => return Err(unexpected("start", other)),
        }
    }
    ensure!(failed == k, "{failed} of 5 starts failed, not {k}");
    let spawns = stage.worker("w").await?.stats().spawns;
    ensure!(spawns == 1, "{spawns} processes spawned for one worker");
    live_count(&stage, 1, "one worker")?;
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    EMPTY_NAME, "pattern.4.1", "Worker registered with an empty name",
    proves: "The empty name is a valid key (documented): a worker registered under it must start \
             (slowly), be found by get, answer health checks, and stop, like any other.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/name.rs", "engine/src/workers/manager.rs"],
    plan: slow_plan,
    body: empty_name, real
);
async fn empty_name(stage: Stage) -> Outcome {
    stage.mark("spawn");
    full_cycle(&stage, "", BOUND).await
}

workers_scenario!(
    DUPLICATE_NAME, "pattern.4.2", "Same worker name registered twice",
    proves: "A running worker's name is registered again with a new configuration. The second \
             registration must replace the first (last write wins): get shows the new \
             configuration, and the replaced worker's process must be killed and reaped (neither \
             alive nor a zombie) within one watchdog interval.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/manager.rs", "engine/src/workers/reaper.rs"],
    plan: slow_plan,
    body: duplicate_name
);
async fn duplicate_name(stage: Stage) -> Outcome {
    stage.mark("spawn");
    stage.register_default("dup").await?;
    stage.start_within("dup", BOUND).await?;
    let old_pid = stage.pid("dup").await;
    let mut config = stage.config("dup");
    config.config_version = 2;
    stage.register("dup", config).await?;
    let info = stage.manager.get("dup").await;
    ensure!(
        matches!(&info, Some(i) if i.config_version == 2 && i.status == WorkerStatus::Uninitialized),
        "after the second registration get returns {info:?}"
    );
    let procs = stage.host()?.procs();
    let what = "the replaced worker's process being killed and reaped";
    eventually(what, WATCHDOG_INTERVAL + secs(1), ms(100), || {
        !procs.live_pids().contains(&old_pid) && !procs.zombie_pids().contains(&old_pid)
    })
    .await?;
    stage.start_within("dup", BOUND).await?;
    let new_pid = stage.pid("dup").await;
    ensure!(new_pid != old_pid, "the old process was reused");
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    LONG_NAME, "pattern.4.3", "Worker name of 1000 characters",
    proves: "A 1000-character name (seeded characters) must work through the whole lifecycle: \
             register, start, get, health, stop. A name past the documented 4096-byte limit must \
             be refused with an error that says why and stays short.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/name.rs"],
    plan: slow_plan,
    body: long_name, real
);
async fn long_name(mut stage: Stage) -> Outcome {
    stage.mark("spawn");
    let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz0123456789-_.".chars().collect();
    let name: String = (0..1000)
        .map(|_| alphabet[stage.rng.below(alphabet.len() as u64) as usize])
        .collect();
    full_cycle(&stage, &name, BOUND).await?;
    let too_long = "x".repeat(engine::workers::NAME_BYTES_MAX + 1);
    let refused = stage.manager.register(&too_long, stage.config("x")).await;
    ensure!(
        matches!(&refused, Err(e @ WorkerError::InvalidName { .. }) if e.to_string().len() < 200),
        "a name over the limit gave {refused:?}"
    );
    Ok(())
}

workers_scenario!(
    SPECIAL_NAMES, "pattern.4.4", "Special characters in worker names",
    proves: "Names with hyphens, underscores, dots, colons, slashes, spaces, newlines and tabs must \
             each go through the whole lifecycle as distinct workers; only NUL (which no process \
             argument can carry) is refused, with a reason.",
    faults: ["proc.slow_start"], secs: 300,
    cores: ["engine/src/workers/name.rs", "engine/src/workers/manager.rs"],
    plan: slow_plan,
    body: special_names, real
);
async fn special_names(stage: Stage) -> Outcome {
    stage.mark("spawn");
    let names = [
        "a-b",
        "a_b",
        "a.b",
        "a:b",
        "a/b",
        "a b",
        "a\nb",
        "a\tb",
        "../../etc",
    ];
    for name in names {
        full_cycle(&stage, name, BOUND).await?;
    }
    let listed = stage.manager.list().await;
    ensure!(listed.len() == names.len(), "list holds {listed:?}");
    let refused = stage.manager.register("a\0b", stage.config("x")).await;
    ensure!(
        matches!(&refused, Err(e @ WorkerError::InvalidName { .. }) if e.to_string().contains("NUL")),
        "a name with NUL gave {refused:?}"
    );
    Ok(())
}

workers_scenario!(
    UNKNOWN_NAME, "pattern.4.5", "Operations on a worker that is not registered",
    proves: "While a registered worker starts slowly, start, stop and health check on a name that \
             was never registered must each return a not-registered error naming it, get must \
             return nothing, and the registered worker must be unaffected.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/manager.rs", "engine/src/workers/error.rs"],
    plan: slow_plan,
    body: unknown_name, real
);
async fn unknown_name(stage: Stage) -> Outcome {
    stage.mark("spawn");
    stage.register_default("known").await?;
    let known = stage.start_in_background("start-known", "known");
    let not_registered = |r: &Result<(), WorkerError>| matches!(r, Err(e @ WorkerError::NotRegistered { .. }) if e.to_string().contains("ghost"));
    let start = stage.manager.start("ghost").await;
    ensure!(not_registered(&start), "start: {start:?}");
    let stop = stage.manager.stop("ghost").await;
    ensure!(not_registered(&stop), "stop of an unknown name: {stop:?}");
    let health = stage.manager.health("ghost").await.map(|_| ());
    ensure!(not_registered(&health), "health: {health:?}");
    let found = stage.manager.get("ghost").await;
    ensure!(found.is_none(), "get of an unknown name found {found:?}");
    known.await.or_fail("task")?.or_fail("start known")?;
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    REPEATED_LIST, "pattern.5.1", "Repeated reads of the worker list",
    proves: "With a seeded number of workers started (slowly) and left running, three consecutive \
             reads of the worker list must return identical results, in name order.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/manager.rs"],
    plan: slow_plan,
    body: repeated_list, real
);
async fn repeated_list(mut stage: Stage) -> Outcome {
    stage.mark("spawn");
    let n = 2 + stage.rng.below(4);
    for i in 0..n {
        let name = format!("w{}", n - i);
        stage.register_default(&name).await?;
        stage.start_within(&name, BOUND).await?;
    }
    let first = stage.manager.list().await;
    for read in 2..=3 {
        tokio::time::sleep(ms(10)).await;
        let again = stage.manager.list().await;
        ensure!(again == first, "read {read}: {again:?} vs {first:?}");
    }
    ensure!(
        first.windows(2).all(|w| w[0].name < w[1].name) && first.len() as u64 == n,
        "the list is not the {n} workers in name order: {first:?}"
    );
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    METADATA, "pattern.5.2", "Worker metadata returned accurately",
    proves: "After a slow start, get must return the registered name, the Ready status with the \
             real process id, and an endpoint at which that very worker answers: a ping sent \
             straight to the reported address gets its pong.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/manager.rs", "engine/src/workers/worker.rs"],
    plan: slow_plan,
    body: metadata, real
);
async fn metadata(stage: Stage) -> Outcome {
    use engine::workers::program::{Line, LineReader, Reply, Request, decode_reply, encode_line};
    use tokio::io::AsyncWriteExt;
    stage.mark("spawn");
    stage.register_default("meta").await?;
    stage.start_within("meta", BOUND).await?;
    let info = stage.manager.get("meta").await.or_fail("get")?;
    ensure!(
        info.name == "meta" && info.config_version == 1,
        "get returned {info:?}"
    );
    let (WorkerStatus::Ready { pid, port }, Some(endpoint)) = (&info.status, &info.endpoint) else {
        return Err(unexpected("status", format!("{info:?}")));
    };
    ensure!(
        info.pid == Some(*pid) && endpoint.port == *port,
        "inconsistent metadata {info:?}"
    );
    if let Ok(host) = stage.host() {
        let live = host.procs().live_pids();
        ensure!(live.contains(pid), "reported pid {pid} is not running");
    }
    let mut stream = stage.env.net().connect(endpoint).await.or_fail("connect")?;
    let ping = encode_line(&Request::Ping { id: 42 });
    stream.write_all(ping.as_bytes()).await.or_fail("send")?;
    let mut lines = LineReader::new(stream);
    let reply = match lines.next_line().await.or_fail("read")? {
        Line::Text(bytes) => decode_reply(&bytes).or_fail("decode")?,
        other => return Err(unexpected("reply", format!("{other:?}"))),
    };
    ensure!(reply == Reply::Pong { id: 42 }, "answered {reply:?}");
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    SHARED_MANAGER, "pattern.6.1", "Worker manager shared safely across threads",
    proves: "The manager is Send and Sync (checked at compile time below), so one instance is \
             shared by four tasks that register, start, health-check and list workers \
             interleaved, while starts are slow. Every operation must succeed and the registry \
             must end with exactly the four workers, all ready.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/manager.rs"],
    plan: slow_plan,
    body: shared_manager, real
);
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<WorkerManager>();
    shared::<Arc<WorkerManager>>();
};

async fn shared_manager(stage: Stage) -> Outcome {
    stage.mark("spawn");
    let mut tasks = Vec::new();
    for i in 0..4 {
        let manager: Arc<WorkerManager> = stage.manager.clone();
        let config = stage.config(&format!("t{i}"));
        tasks.push(stage.env.spawn("shared", async move {
            let name = format!("t{i}");
            manager.register(&name, config).await?;
            let _ = manager.list().await;
            manager.start(&name).await?;
            let health = manager.health(&name).await?;
            Ok::<bool, WorkerError>(health.healthy)
        }));
    }
    for task in tasks {
        let healthy = task.await.or_fail("task")?.or_fail("op")?;
        ensure!(healthy, "a worker started by a shared task is not healthy");
    }
    let list = stage.manager.list().await;
    ensure!(
        list.len() == 4 && list.iter().all(|i| is_ready(&i.status)),
        "registry after shared use: {list:?}"
    );
    stage.manager.stop_all().await;
    Ok(())
}
