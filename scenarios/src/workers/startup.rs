//! Getting a worker up: the endpoint connect schedule (pattern.2.1), bounded health
//! checks (pattern.2.2), slow startups and their timeout (pattern.7.4), and a stop that
//! arrives during initialisation (core.EC-118).

use crate::kit::plans::{met, on_host, plan_rng, quiet, swarm};
use crate::kit::workers::*;
use engine::workers::retry::RetryPolicy;
use sim::FaultPlan;
use sim::faults::SwarmKind;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &ENDPOINT_NOT_READY,
        &HEALTH_BOUNDED,
        &SLOW_STARTUP,
        &STOP_DURING_INIT,
    ]
}

workers_scenario!(
    ENDPOINT_NOT_READY, "pattern.2.1", "RPC server not ready right after spawn",
    proves: "The worker binds its endpoint only after a seeded start delay. The supervisor must \
             wait 0.5 s, then try to connect up to 5 times with delays doubling from 100 ms \
             (attempts 0.6, 0.8, 1.2, 2.0 and 3.6 s after spawn): exactly as many attempts as \
             the delay requires, each counted, and if the endpoint is still closed after the \
             fifth, the start fails with the last connect error and the process is reaped.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/retry.rs", "engine/src/workers/supervise.rs",
            "engine/src/workers/reaper.rs"],
    plan: endpoint_not_ready_plan,
    body: endpoint_not_ready
);
/// Attempt instants after spawn, from the documented schedule.
const ATTEMPTS_AT: [u64; 5] = [600, 800, 1_200, 2_000, 3_600];
/// The endpoint comes up after a seeded delay, from the spawn on. No swarm: the oracle
/// counts connect attempts from the start delay to the millisecond; a late message, a
/// slow disk operation or a slow start moves it.
fn endpoint_not_ready_plan(seed: u64) -> FaultPlan {
    let mut delay = 50 + plan_rng(seed).below(4_500);
    // Keep clear of an attempt instant, where network latency would decide (an attempt's
    // SYN takes up to a LAN latency to arrive). A step away from one attempt may land near
    // the next (662 ms → 812 ms, beside the 800 ms attempt), so step until clear of all.
    while ATTEMPTS_AT
        .iter()
        .any(|a| delay + 20 > *a && delay < *a + 100)
    {
        delay += 150;
    }
    quiet(seed).after("spawn", 0, on_host::slow_starts(ms(delay), ms(delay)))
}
async fn endpoint_not_ready(stage: Stage) -> Outcome {
    let attempts_at = ATTEMPTS_AT;
    let met = stage.mark("spawn");
    let delay = met::slow_starts(&met).map_or(0, |(min, _)| min.as_millis() as u64);
    let config = stage.config("w");
    ensure!(
        config.connect == RetryPolicy::endpoint_connect(),
        "the default connect policy is not the documented one"
    );
    stage.register("w", config).await?;
    let spawned = Instant::now();
    let result = stage.manager.start("w").await;
    let took = Instant::now() - spawned;
    let worker = stage.worker("w").await?;
    let attempts = worker.stats().connect_attempts;
    match attempts_at.iter().position(|a| *a > delay) {
        Some(index) => {
            let expected = index as u64 + 1;
            ensure!(result.is_ok(), "up after {delay} ms: {result:?}");
            ensure!(
                attempts == expected,
                "endpoint up after {delay} ms: {attempts} connect attempts, not {expected}"
            );
            let at = ms(attempts_at[index]);
            ensure!(
                took >= at && took < at + ms(50),
                "ready after {took:?}, due at {at:?}"
            );
        }
        None => {
            ensure!(
                matches!(&result, Err(WorkerError::ConnectFailed { attempts: 5, last, .. }) if last.contains("refused")),
                "endpoint closed for {delay} ms: start gave {result:?}, not 5 refused attempts"
            );
            ensure!(attempts == 5, "{attempts} attempts");
            let status = worker.status();
            ensure!(failed(&status), "status {status}");
            all_reaped(&stage, "the abandoned process being reaped").await?;
        }
    }
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    HEALTH_BOUNDED, "pattern.2.2", "Health check must not block indefinitely",
    proves: "A ready worker hangs at a seeded moment (it stops answering anything). Health checks \
             before the hang must be healthy; a check after it must come back unhealthy within the \
             100 ms bound instead of waiting on the dead endpoint; and the supervisor must notice \
             the missing heartbeats, kill the hung process and bring up a new one.",
    faults: ["proc.hang"], secs: 120,
    cores: ["engine/src/workers/worker.rs", "engine/src/workers/lifecycle/deadlines.rs",
            "engine/src/workers/lifecycle.rs"],
    plan: |seed| {
        let at = plan_rng(seed).below(3_000);
        crate::kit::plans::workers(seed).after("healthy", at, on_host::hang(Some("w")))
    },
    body: health_bounded
);
async fn health_bounded(stage: Stage) -> Outcome {
    stage.register_default("w").await?;
    stage.manager.start("w").await.or_fail("start")?;
    let before = stage.manager.health("w").await.or_fail("health")?;
    ensure!(before.healthy, "healthy worker reported {before:?}");
    let pid = stage.pid("w").await;
    let hangs_before = stage.faults.count("proc.hang");
    stage.mark("healthy");
    // The plan hangs the worker at a seeded moment after this mark; the body learns of
    // it from the device (nothing hung: the worker stays healthy to the end).
    let hung = eventually("the worker hanging", secs(4), ms(1), || {
        stage.faults.count("proc.hang") > hangs_before
    })
    .await;
    if hung.is_err() {
        let still = stage.manager.health("w").await.or_fail("health")?;
        ensure!(still.healthy, "a worker no fault hung became {still:?}");
        stage.manager.stop_all().await;
        return Ok(());
    }
    let asked = Instant::now();
    let after = stage.manager.health("w").await.or_fail("health")?;
    let took = Instant::now() - asked;
    ensure!(took <= ms(101), "a hung worker's health took {took:?}");
    ensure!(!after.healthy && after.probed, "hung: {after:?}");
    let worker = stage.worker("w").await?;
    let bound = worker.config().heartbeat_timeout + ms(5_000);
    let host = stage.host()?;
    eventually(
        "the hung worker being replaced",
        bound,
        ms(50),
        || matches!(worker.status(), WorkerStatus::Ready { pid: p, .. } if p != pid),
    )
    .await?;
    let hangs = worker.stats().hangs_detected;
    ensure!(hangs == 1, "hangs detected: {hangs}");
    let live = host.procs().live_pids();
    ensure!(!live.contains(&pid), "the hung process {pid} still runs");
    let healed = stage.manager.health("w").await.or_fail("health")?;
    ensure!(healed.healthy, "the replacement is not healthy: {healed:?}");
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    SLOW_STARTUP, "pattern.7.4", "Worker takes more than 5 s to start",
    proves: "The worker starts after a seeded delay of up to 9 s, under a startup timeout chosen \
             per worker (4, 6 or 8 s). A start within the timeout must succeed, record its startup \
             time as a metric, and warn exactly when it took over 2 s; a start past the timeout \
             must fail at the timeout, not later, with the process killed and reaped.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/lifecycle.rs", "engine/src/workers/lifecycle/deadlines.rs",
            "engine/src/workers/reaper.rs"],
    plan: slow_startup_plan,
    body: slow_startup
);
/// The startup timeout the body draws (the plan keeps its delay clear of it).
fn startup_timeout(rng: &mut sim::SimRng) -> Duration {
    ms([4_000, 6_000, 8_000][rng.below(3) as usize])
}
/// The worker starts after a seeded delay of up to 9 s. No swarm: the oracle compares the
/// recorded startup time with that delay to the millisecond, and times the startup
/// timeout from the start call; every timing kind moves one.
fn slow_startup_plan(seed: u64) -> FaultPlan {
    let timeout = startup_timeout(&mut sim::SimRng::new(seed, "scenario"));
    let mut delay = ms(10 + plan_rng(seed).below(9_000));
    // Clear of the timeout and of the warning threshold, where a tick decides.
    for edge in [timeout, ms(2_000)] {
        if delay.abs_diff(edge) < ms(400) {
            delay += ms(800);
        }
    }
    quiet(seed).after("spawn", 0, on_host::slow_starts(delay, delay))
}
async fn slow_startup(mut stage: Stage) -> Outcome {
    let timeout = startup_timeout(&mut stage.rng);
    let met = stage.mark("spawn");
    let delay = met::slow_starts(&met).map_or(Duration::ZERO, |(min, _)| min);
    let mut config = stage.config("slow");
    config.init_timeout = timeout;
    // Poll the endpoint for as long as the startup may take.
    config.connect = RetryPolicy {
        attempts_max: 100,
        delay_max: ms(200),
        total_max: timeout + ms(10_000),
        ..RetryPolicy::endpoint_connect()
    };
    stage.register("slow", config).await?;
    let spawned = Instant::now();
    let result = stage.manager.start("slow").await;
    let took = Instant::now() - spawned;
    let stats = stage.worker("slow").await?.stats();
    if delay < timeout {
        ensure!(result.is_ok(), "{delay:?} under {timeout:?}: {result:?}");
        let recorded = stats.last_startup_ms.unwrap_or(0);
        let start_ms = delay.as_millis() as u64;
        between(
            "the startup time recorded (ms)",
            ms(recorded),
            ms(start_ms),
            ms(start_ms + 800),
        )?;
        let warned = u64::from(delay > ms(2_000));
        let warnings = stats.slow_startups;
        ensure!(warnings == warned, "{warnings} warnings for {delay:?}");
    } else {
        ensure!(
            matches!(result, Err(WorkerError::InitTimeout { after, .. }) if after == timeout),
            "start after {delay:?} under a {timeout:?} timeout gave {result:?}"
        );
        ensure!(
            took >= timeout && took < timeout + ms(5),
            "the timeout fired after {took:?}, not {timeout:?}"
        );
        all_reaped(&stage, "the timed-out process being reaped").await?;
    }
    stage.manager.stop_all().await;
    Ok(())
}

workers_scenario!(
    STOP_DURING_INIT, "core.EC-118", "Destroy called while a worker is still initialising",
    proves: "A stop arrives at a seeded moment while the worker is still starting (slowly). The \
             stop must wait for the initialisation to finish rather than race it: the start \
             completes, the stop completes after it, the worker ends Stopped, and no process is \
             left running or as a zombie.",
    faults: ["proc.slow_start"], secs: 120,
    cores: ["engine/src/workers/worker.rs", "engine/src/workers/lifecycle.rs"],
    // The worker starts slowly. Slow disk only in the swarm: the stop must land while the
    // worker is still starting; a slow start or a late message can end the start
    // (connect schedule spent) before it.
    plan: |seed| {
        let delay = ms(500 + plan_rng(seed).below(2_900));
        swarm(seed, &[SwarmKind::DiskSlow]).after("spawn", 0, on_host::slow_starts(delay, delay))
    },
    body: stop_during_init
);
async fn stop_during_init(mut stage: Stage) -> Outcome {
    let met = stage.mark("spawn");
    let delay = met::slow_starts(&met).map_or(Duration::ZERO, |(min, _)| min);
    stage.register_default("w").await?;
    let manager = stage.manager.clone();
    let start = stage.env.spawn("start", async move {
        let result = manager.start("w").await;
        (result, Instant::now())
    });
    tokio::time::sleep(ms(stage.rng.below(delay.as_millis().max(1) as u64))).await;
    let manager = stage.manager.clone();
    let stop = stage.env.spawn("stop", async move {
        let result = manager.stop("w").await;
        (result, Instant::now())
    });
    let (started, start_done) = start.await.or_fail("start task")?;
    let (stopped, stop_done) = stop.await.or_fail("stop task")?;
    ensure!(started.is_ok(), "interrupted start: {started:?}");
    ensure!(stopped.is_ok(), "the stop during init gave {stopped:?}");
    ensure!(stop_done >= start_done, "the stop ended before the start");
    let status = stage.status("w").await;
    ensure!(
        status == Some(WorkerStatus::Stopped),
        "after stop: {status:?}"
    );
    live_count(&stage, 0, "after the stop")?;
    tokio::time::sleep(WATCHDOG_INTERVAL).await;
    let zombies = zombie_pids(&stage);
    ensure!(zombies.is_empty(), "zombies left: {zombies:?}");
    Ok(())
}
