//! The warm pool: staggered pre-warming (core.EC-117), init timeouts of pre-warms
//! (core.EC-126), exhaustion with queueing, cold starts and pre-emption
//! (enable.1.3.1), and stale workers replaced on a rolling basis (enable.1.3.2).
//!
//! Every oracle reads what the processes did (pids on the simulated host, snapshot files
//! on its disk, statuses the supervisor published) beside what the pool reports, and
//! checks virtual times to the millisecond where the pool's contract fixes them.

use crate::kit::plans::{met, on_host, plan_rng, quiet, swarm, workers};
use crate::kit::pool::*;
use crate::kit::workers::*;
use crate::stage::workers::HOST;
use engine::workers::pool::{AttemptOutcome, Backoff};
use engine::workers::{Claim, ClaimPath, Priority, WarmPool};
use sim::faults::{Fault, SwarmKind};
use sim::{FaultPlan, World};
use std::collections::BTreeMap;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &STAGGERED_PREWARM,
        &PREWARM_INIT_TIMEOUT,
        &POOL_EXHAUSTED,
        &STALE_WARM_WORKER,
    ]
}

workers_scenario!(
    STAGGERED_PREWARM, "core.EC-117", "Many workers spawned at once while the pool warms up",
    proves: "A pool of 3 to 6 workers warms up on a host where every process starts slowly \
             (a seeded 0.1 to 8 s) and the first 0 to 5 spawns fail with EAGAIN. Sampled every \
             10 ms, never more than one pool worker may be starting; new processes must appear \
             at least 5 s apart; each pre-warm must start exactly 5 s after the previous one \
             ended (after failures: the doubling backoff, never below 5 s); the failed spawns \
             must be retried with fresh workers until the pool holds exactly its target of \
             ready workers and processes, and then nothing more may be started.",
    faults: ["proc.slow_start", "proc.spawn_fail"], secs: 1200,
    cores: ["engine/src/workers/pool/decisions.rs", "engine/src/workers/pool/shell.rs"],
    plan: staggered_prewarm_plan,
    world: staggered_prewarm
);
/// From the engine's start on (the pool warms at once): every process starts after 0.1 s
/// to a seeded 0.1 to 8 s, and the first 0 to 5 spawns fail with EAGAIN.
fn staggered_prewarm_plan(seed: u64) -> FaultPlan {
    let mut rng = plan_rng(seed);
    let delay_max = ms(100 + rng.below(7_900));
    let failures = rng.below(6) as u32;
    let plan = workers(seed).after("boot", 0, on_host::slow_starts(ms(100), delay_max));
    if failures > 0 {
        plan.after("boot", 0, on_host::spawn_fails(11, failures))
    } else {
        plan
    }
}
async fn staggered_prewarm(world: World) -> Outcome {
    let (stage, (size, boot, backoff)) = Stage::sim_with(&world, |_, rng, config| {
        let size = 3 + rng.below(4) as usize;
        config.sessions.pool = pool_config(size);
        // On the host before its engine starts: the faults are there from the first spawn.
        let boot = world.mark("boot");
        (size, boot, config.sessions.pool.prewarm_backoff.clone())
    })
    .await?;
    let failures = met::spawn_fails(&boot).1;
    let pool = stage.engine.pool().clone();

    // Watch the process table and the supervisor's statuses while it warms up.
    let mut watch = Starts::default();
    let bound = Some((secs(30 + size as u64 * 15 + 60), "the warm-up"));
    let cold = |p: &WarmPool| p.stats().prewarm_ready < size as u64;
    watch.sample_while(&stage, &pool, bound, cold).await?;
    let warmed_at = pool.now();
    // What the pool calls ready, the supervisor must too.
    for member in pool.members() {
        let status = stage.status(&member.name).await;
        ensure!(
            matches!(status, Some(WorkerStatus::Ready { .. })),
            "the pool counts {} as warmed at {warmed_at:?}, but its status is {status:?}",
            member.name
        );
    }
    // Warm: watch on for a minute; nothing more may start.
    let quiet_until = warmed_at + secs(60);
    let quiet = |p: &WarmPool| p.now() < quiet_until;
    watch.sample_while(&stage, &pool, None, quiet).await?;
    let (starting_max, first_seen) = (watch.starting_max, watch.first_seen);
    ensure!(starting_max <= 1, "{starting_max} starting at once");
    let appearances: Vec<Duration> = first_seen.values().copied().collect();
    for pair in appearances.windows(2) {
        ensure!(
            pair[1] >= pair[0] + STAGGER - ms(10),
            "worker processes appeared at {:?} and {:?}: pre-warming was not staggered",
            pair[0],
            pair[1]
        );
    }

    let stats = pool.stats();
    let attempts = &stats.prewarm_attempts;
    ensure!(
        attempts.len() == size + failures as usize
            && stats.prewarm_failed == u64::from(failures)
            && stats.prewarm_ready == size as u64,
        "{} attempts ({} failed, {} ready) for a pool of {size} with {failures} refused spawns",
        attempts.len(),
        stats.prewarm_failed,
        stats.prewarm_ready
    );
    for (i, attempt) in attempts.iter().enumerate() {
        let failed = i < failures as usize;
        let ok = match &attempt.outcome {
            AttemptOutcome::Failed { reason } => failed && reason.contains("could not be spawned"),
            AttemptOutcome::Ready => !failed,
            AttemptOutcome::InProgress => false,
        };
        ensure!(ok, "attempt {i}: {attempt:?}");
    }
    let first = attempts[0].started_at;
    ensure!(first <= INSTANT_SLACK, "first pre-warm at {first:?}");
    check_rhythm(attempts, &backoff)?;

    // Nothing more started, every process belongs to a ready member.
    let stats = pool.stats();
    ensure!(
        stats.prewarm_started == (size + failures as usize) as u64 && stats.cold_starts == 0,
        "after warming, the pool went on starting workers: {stats:?}"
    );
    ensure!(settled(&pool, size), "after warming: {:?}", pool.members());
    live_count(&stage, size, "pool workers")?;
    let seen = first_seen.len();
    ensure!(seen == size, "{seen} processes ever seen, not {size}");
    Ok(())
}

workers_scenario!(
    PREWARM_INIT_TIMEOUT, "core.EC-126", "Worker initialisation takes longer than 60 s",
    proves: "The first pre-warmed worker of a pool never gets ready: by seed its process \
             either starts after 61 to 600 s or hangs during its (1 to 30 s) start. The \
             supervisor must leave it alone for the whole 60 s init timeout, kill it at 60 s \
             (to the millisecond), and the watchdog must reap it within its sweep interval; the \
             pool must log the failure and start a fresh worker exactly 5 s later, then warm the \
             rest of the pool (1 to 3 workers). The killed process must never come back: at the \
             end exactly one process per member is alive and none is a zombie.",
    faults: ["proc.slow_start", "proc.hang"], secs: 1200,
    cores: ["engine/src/workers/pool/decisions.rs", "engine/src/workers/lifecycle/deadlines.rs",
            "engine/src/workers/reaper.rs"],
    // No slow disk: the oracle judges the init timeout to 5 ms, and the attempt's end is
    // stamped after the pool's disk clean-up of the killed worker.
    plan: prewarm_init_timeout_plan,
    world: prewarm_init_timeout
);
/// The first pre-warm never gets ready: by seed its process starts after 61 to 600 s, or
/// after 1 to 30 s and hangs at its spawn (the only child then, so the hang targets
/// every child). Later spawns start in 0.1 to 2 s: only the first one is pathological.
fn prewarm_init_timeout_plan(seed: u64) -> FaultPlan {
    let mut rng = plan_rng(seed);
    let hang = rng.below(2) == 0;
    let first_delay = if hang {
        ms(1_000 + rng.below(29_000))
    } else {
        ms(61_000 + rng.below(539_000))
    };
    let plan = swarm(seed, &[SwarmKind::NetDelay, SwarmKind::ProcSlowStart])
        .after("boot", 0, on_host::slow_starts(first_delay, first_delay))
        .after("first-spawn", 0, on_host::slow_starts(ms(100), ms(2_000)));
    if hang {
        plan.after("first-spawn", 0, on_host::hang(None))
    } else {
        plan
    }
}
async fn prewarm_init_timeout(world: World) -> Outcome {
    let (stage, (size, boot, init_timeout)) = Stage::sim_with(&world, |_, rng, config| {
        let size = 1 + rng.below(3) as usize;
        config.sessions.pool = pool_config(size);
        let init_timeout = config.sessions.pool.template.init_timeout;
        // On the host before its engine starts: the first spawn is slow.
        (size, world.mark("boot"), init_timeout)
    })
    .await?;
    ensure!(init_timeout == secs(60), "init timeout {init_timeout:?}");
    let (first_min, first_max) = met::slow_starts(&boot).unwrap_or_default();
    let pool = stage.engine.pool().clone();
    eventually("the first pre-warm's spawn", secs(1), ms(1), || {
        !live_pids(&stage).is_empty()
    })
    .await?;
    let first = live_pids(&stage)[0];
    let spawned = stage.mark("first-spawn");
    let hang = met::any(&spawned, |f| matches!(f, Fault::HangChildren { .. }));
    // Later spawns start as the plan says from here on, else as the first one did.
    let later_max = met::slow_starts(&spawned)
        .or(met::slow_starts(&boot))
        .map_or(Duration::ZERO, |(_, max)| max);
    // The warm-up bound: 10 s a worker when later spawns take up to 2 s, plus their
    // extra delay if the plan made them slower.
    let warm_bound =
        secs(size as u64 * 10 + 20) + later_max.saturating_sub(ms(2_000)) * size as u32;
    // The hang keeps the first process from ever beginning when it lands during its
    // start delay (the plan's case); one that lands after the program began is caught
    // by the missing heartbeats instead, and the pool recovers.
    let hung_unstarted = hang && pool.now() < first_min;
    if hang && !hung_unstarted {
        let what = "the pool recovering from a worker hung after it began";
        let bound = warm_bound + WATCHDOG_INTERVAL + secs(10);
        eventually(what, bound, ms(10), || {
            settled(&pool, size) && live_pids(&stage).len() == size
        })
        .await?;
        return no_zombies(&stage, "at the end");
    }
    if !hung_unstarted && first_min <= init_timeout {
        // Nothing pathological planned (a shrunk or given plan): the pool warms with
        // no failure, on the pre-warm rhythm.
        warmed(&pool, size as u64, first_max + warm_bound).await?;
        let stats = pool.stats();
        ensure!(
            stats.prewarm_failed == 0
                && stats.prewarm_ready == size as u64
                && stats.prewarm_attempts.len() == size,
            "no init timeout, {size} workers: {stats:?}"
        );
        check_rhythm(&stats.prewarm_attempts, &Backoff::prewarm())?;
        live_count(&stage, size, "pool workers")?;
        return no_zombies(&stage, "at the end");
    }

    // Not killed early.
    tokio::time::sleep(init_timeout - ms(20)).await;
    ensure!(
        live_pids(&stage).contains(&first),
        "pid {first} was gone before its init timeout (at {:?})",
        pool.now()
    );
    eventually("the init timeout", ms(100), ms(1), || {
        pool.stats().prewarm_attempts[0].ended_at.is_some()
    })
    .await?;
    let attempt = pool.stats().prewarm_attempts[0].clone();
    let took = attempt.ended_at.expect("ended") - attempt.started_at;
    let what = "the slow pre-warm's failure after its start (the init timeout)";
    between(what, took, init_timeout, init_timeout + INSTANT_SLACK)?;
    ensure!(
        matches!(&attempt.outcome, AttemptOutcome::Failed { reason } if reason.contains("not ready within 60000 ms")),
        "the slow pre-warm ended {:?}, not with the init timeout",
        attempt.outcome
    );
    let live = live_pids(&stage);
    ensure!(!live.contains(&first), "pid {first} outlived the timeout");
    let what = "the watchdog reaping the killed worker";
    eventually(what, WATCHDOG_INTERVAL + ms(100), ms(10), || {
        !zombie_pids(&stage).contains(&first) && stage.manager.reaper().reaped() >= 1
    })
    .await?;
    let failed = &attempt.name;

    if later_max > init_timeout {
        // Every later spawn is as slow (the plan made none faster): all this run can
        // show is the retry, with a fresh worker, a stagger after the failure.
        let what = "the retry after the init timeout";
        eventually(what, STAGGER + ms(100), ms(1), || {
            pool.stats().prewarm_attempts.len() >= 2
        })
        .await?;
        let attempts = pool.stats().prewarm_attempts;
        check_rhythm(&attempts[..2], &Backoff::prewarm())?;
        ensure!(
            attempts[1].name != *failed,
            "the retry reused the failed worker {failed:?} instead of a fresh one",
        );
        return Ok(());
    }

    warmed(&pool, size as u64, warm_bound).await?;
    let stats = pool.stats();
    ensure!(
        stats.prewarm_failed == 1
            && stats.prewarm_ready == size as u64
            && stats.prewarm_attempts.len() == size + 1,
        "one init timeout, {size} workers: {stats:?}"
    );
    check_rhythm(&stats.prewarm_attempts, &Backoff::prewarm())?;
    ensure!(
        stats.prewarm_attempts[1].name != *failed,
        "the retry reused the failed worker {failed:?} instead of a fresh one",
    );
    let registered = stage.manager.get(failed).await;
    ensure!(registered.is_none(), "{failed:?} is still registered");

    // Past the moment the slow process would have begun: it stays dead.
    let now = pool.now();
    if first_max + secs(1) > now {
        tokio::time::sleep(first_max + secs(1) - now).await;
    }
    let live = live_pids(&stage);
    let members = pool.members();
    ensure!(
        live.len() == size && !live.contains(&first),
        "processes alive at the end: {live:?} for {size} members"
    );
    no_zombies(&stage, "at the end")?;
    let fresh = members.iter().all(|m| m.freshness.is_fresh());
    ensure!(members.len() == size && fresh, "at the end: {members:?}");
    Ok(())
}

workers_scenario!(
    POOL_EXHAUSTED, "enable.1.3.1", "Every warm sandbox is already claimed",
    proves: "A warm pool of 2 to 4 workers is fully claimed by Low claims; then 4 to 6 Normal \
             claims arrive at once while new processes take a seeded 35 to 50 s to start. The \
             first 3 queued claims must wait; the others must cold-start at once with an SLA \
             warning. Low claims released at seeded times must go to the queued claims in \
             order, at the instant of the release; queued claims nobody serves must give up \
             after exactly 30 s and cold-start with an SLA warning. A High claim arriving \
             meanwhile must pre-empt the newest Low claim, after its worker checkpointed that \
             session: the snapshot on disk must hold the Low claim's state, the Low claim must \
             be told, and the High claim must get that very worker at once. Counts of warnings, \
             cold starts, timeouts and pre-emptions must match exactly.",
    faults: ["proc.slow_start"], secs: 1200,
    cores: ["engine/src/workers/pool/decisions/claims.rs", "engine/src/workers/pool/shell.rs"],
    plan: pool_exhausted_plan,
    world: pool_exhausted
);
/// Once the pool is warm, every new process takes a seeded 35 to 50 s to start (longer
/// than the 30 s a claim waits). No swarm: the oracle times the queue's wait and the
/// cold start to the millisecond and the pre-emption to 100 ms; late messages, slow
/// starts and slow disk operations (the pre-emption's checkpoint) all move them.
fn pool_exhausted_plan(seed: u64) -> FaultPlan {
    let start_delay = ms(35_000 + plan_rng(seed).below(15_000));
    quiet(seed).after("warm", 0, on_host::slow_starts(start_delay, start_delay))
}
enum Step {
    Release,
    High,
}

async fn pool_exhausted(world: World) -> Outcome {
    let (mut stage, (size, extra, releases)) = Stage::sim_with(&world, |_, rng, config| {
        let size = 2 + rng.below(3) as usize;
        let extra = 1 + rng.below(3) as usize;
        let releases = rng.below((size - 1).min(3) as u64 + 1) as usize;
        config.sessions.pool = pool_config(size);
        (size, extra, releases)
    })
    .await?;
    let pool = stage.engine.pool().clone();
    let wait_max = pool.config().wait_max;
    let template_dir = pool.config().template.dir.clone();
    warmed(&pool, size as u64, secs(size as u64 * 10 + 20)).await?;
    tokio::time::sleep(STAGGER).await;
    // From now on every process takes the plan's start delay to begin.
    let met = stage.mark("warm");
    let start_delay = met::slow_starts(&met).map_or(Duration::ZERO, |(min, _)| min);

    let t0 = pool.now();
    let mut lows: Vec<Option<Claim>> = Vec::new();
    let mut states: BTreeMap<u64, String> = BTreeMap::new();
    for i in 0..size {
        let c = claim(&pool, Priority::Low, secs(1)).await?;
        ensure!(
            c.path() == ClaimPath::Warm && c.granted_at() == c.requested_at(),
            "Low claim {i} with warm workers idle was served {:?} after {:?}",
            c.path(),
            c.granted_at() - c.requested_at()
        );
        let state = format!("session low-{i} at step {}", stage.rng.below(1_000_000));
        c.set_checkpoint_state(state.clone());
        states.insert(c.id(), state);
        lows.push(Some(c));
    }
    let normals: Vec<_> = (0..3 + extra)
        .map(|_| claim_in_background(&stage, &pool, "claim-normal", Priority::Normal))
        .collect();

    // Releases and the High claim at seeded offsets within the 30 s wait.
    let high_at = ms(1_000 + stage.rng.below(27_000));
    let mut steps: Vec<(Duration, Step)> = vec![(high_at, Step::High)];
    while steps.len() < releases + 1 {
        let at = ms(1_000 + stage.rng.below(27_000));
        if steps.iter().all(|(t, _)| t.abs_diff(at) >= ms(200)) {
            steps.push((at, Step::Release));
        }
    }
    steps.sort_by_key(|(t, _)| *t);
    let mut released_at = Vec::new();
    let mut high: Option<(Claim, u64, Duration)> = None;
    for (offset, step) in steps {
        tokio::time::sleep_until(pool.origin() + t0 + offset).await;
        match step {
            Step::Release => {
                // The oldest Low claim still held and not pre-empted.
                let slot = lows
                    .iter_mut()
                    .find(|c| c.as_ref().is_some_and(|c| c.revocation().is_none()))
                    .expect("a Low claim to release");
                released_at.push(pool.now());
                pool.release(slot.take().expect("held"));
            }
            Step::High => {
                let held = lows.iter().flatten().map(Claim::id);
                let expected_victim = held.max().expect("a Low claim is held");
                let asked = pool.now();
                let c = claim(&pool, Priority::High, secs(5)).await?;
                high = Some((c, expected_victim, asked));
            }
        }
    }

    let mut normal: Vec<Claim> = Vec::new();
    for task in normals {
        let bound = wait_max + start_delay + secs(10);
        let claimed = within("a Normal claim", bound, task).await?;
        normal.push(
            claimed
                .or_fail("Normal claim task")?
                .or_fail("Normal claim")?,
        );
    }
    normal.sort_by_key(Claim::id);
    let (high, victim, asked) = high.expect("the High claim was made");
    if start_delay < wait_max + STAGGER {
        // New processes start faster than a claim waits (the plan's slow starts gone, in
        // a shrunk or given plan): no exhaustion to judge. The baseline: every claim was
        // served (above), none by a failed cold start, and the pool settles back.
        let stats = pool.stats();
        ensure!(
            stats.cold_start_failures == 0 && stats.preemptions_abandoned == 0,
            "claims served without exhaustion: {stats:?}"
        );
        drop((high, lows, normal));
        return eventually("the pool settling", secs(180), ms(100), || {
            settled(&pool, size) && live_pids(&stage).len() == size
        })
        .await;
    }

    // The first three queued, the others cold-started at once.
    for (i, c) in normal.iter().enumerate() {
        let waited = c.granted_at() - c.requested_at();
        let what = format!("Normal claim {} made with the others", c.id());
        between(&what, c.requested_at(), t0, t0 + INSTANT_SLACK)?;
        let cold = start_delay..=start_delay + READY_AFTER_START_MAX;
        if i >= 3 {
            ensure!(
                c.path() == ClaimPath::Cold { after_wait: false } && cold.contains(&waited),
                "Normal claim {} at queue position {i} got {:?} after {waited:?}: expected an \
                 immediate cold start taking {start_delay:?} plus startup",
                c.id(),
                c.path()
            );
        } else if i < releases {
            let expected = released_at[i];
            let what = format!("queued Normal claim {} granted after release {i}", c.id());
            ensure!(c.path() == ClaimPath::Waited, "{what}: {:?}", c.path());
            between(&what, c.granted_at(), expected, expected + INSTANT_SLACK)?;
        } else {
            let after = waited.saturating_sub(wait_max);
            ensure!(
                c.path() == ClaimPath::Cold { after_wait: true }
                    && waited >= wait_max
                    && cold.contains(&after),
                "queued Normal claim {} nobody served got {:?} after {waited:?}: expected a \
                 {wait_max:?} wait, then a cold start of {start_delay:?} plus startup",
                c.id(),
                c.path()
            );
        }
    }

    // The pre-emption.
    ensure!(
        high.path() == ClaimPath::Preempted { victim },
        "the High claim got {:?}; expected to pre-empt Low claim {victim}",
        high.path()
    );
    let took = high.granted_at() - asked;
    ensure!(took <= ms(100), "the pre-emption took {took:?}");
    let victim_claim = lows
        .iter()
        .flatten()
        .find(|c| c.id() == victim)
        .expect("the victim is still held by its holder");
    ensure!(
        victim_claim.name() == high.name(),
        "the High claim got {}, the pre-empted Low claim held {}",
        high.name(),
        victim_claim.name()
    );
    let revocation = victim_claim.revocation();
    ensure!(
        matches!(revocation, Some(r) if r.by_claim == high.id() && r.checkpointed),
        "the pre-empted Low claim was told {revocation:?}"
    );
    let path = format!("{template_dir}/{}/{SNAPSHOT_FILE}", high.name());
    let body = snapshot_at(stage.env.disk(), &path)?;
    ensure!(
        body == states[&victim],
        "the checkpoint holds {body:?}, not the pre-empted session's {:?}",
        states[&victim]
    );

    let stats = pool.stats();
    let timeouts = (3 - releases) as u64;
    let colds = extra as u64 + timeouts;
    ensure!(
        stats.claims_warm == size as u64
            && stats.claims_waited == releases as u64
            && stats.wait_timeouts == timeouts
            && stats.cold_starts == colds
            && stats.sla_warnings == colds
            && stats.preemptions == 1
            && stats.preemptions_abandoned == 0
            && stats.cold_start_failures == 0,
        "counts after {size} warm, {releases} releases, {extra} claims past position 3 and \
         one pre-emption: {stats:?}"
    );

    // Everything back: the pool settles at its target.
    drop(high);
    drop(lows);
    drop(normal);
    eventually(
        "the pool settling back to its size",
        secs(180),
        ms(100),
        || settled(&pool, size) && live_pids(&stage).len() == size,
    )
    .await
}

workers_scenario!(
    STALE_WARM_WORKER, "enable.1.3.2", "Warm sandbox carries stale environment or dependencies",
    proves: "A warm pool of 3 to 5 workers (seeded 5 to 20 min maximum age; every process starts \
             in 0.1 to 2 s) has its configuration version changed while one worker is claimed, \
             and the host's wall clock jumps back by up to two days. A claim right after the \
             change must not get an old worker; the old idle workers must be retired and \
             replaced one at a time, 5 s apart, never two starting at once; the claimed old \
             worker must be retired when released, never handed out again. Then, as workers \
             age: a worker claimed 1 s before its maximum age is handed out, 0.5 s after it is \
             not; every worker handed out is younger than the maximum age by the scenario's own \
             clock; each expired worker is retired exactly once and replaced, and the pool ends \
             with its target of fresh workers and exactly that many processes.",
    faults: ["proc.slow_start", "clock.jump"], secs: 3600,
    cores: ["engine/src/workers/pool/decisions.rs", "engine/src/workers/pool/decisions/claims.rs"],
    // Every process starts in 0.1 to 2 s from the engine's start on; the host's wall
    // clock jumps back by up to two days at the configuration change.
    plan: |seed| {
        let jump_ms = -(1 + plan_rng(seed).below(48 * 3_600_000) as i64);
        let jump = Fault::ClockJump {
            host: HOST.to_string(),
            delta_ms: jump_ms,
        };
        workers(seed)
            .after("boot", 0, on_host::slow_starts(ms(100), ms(2_000)))
            .after("changed", 0, jump)
    },
    world: stale_warm_worker
);
async fn stale_warm_worker(world: World) -> Outcome {
    let (stage, (size, max_age)) = Stage::sim_with(&world, |_, rng, config| {
        // At least 3, so that at least 2 idle workers go stale at once.
        let size = 3 + rng.below(3) as usize;
        let max_age = secs(300 + rng.below(900));
        // On the host before its engine starts: the slow starts hold from the first spawn.
        world.mark("boot");
        config.sessions.pool = pool_config(size);
        config.sessions.pool.max_age = max_age;
        (size, max_age)
    })
    .await?;
    let pool = stage.engine.pool().clone();
    let mut seen = Seen::default();
    let warm_bound = secs(size as u64 * 10 + 20);
    seen.until(&stage, &pool, "the warm-up", warm_bound, |p| {
        p.stats().prewarm_ready == size as u64
    })
    .await?;

    // Phase 1: a configuration change while one worker is claimed.
    let old = claim(&pool, Priority::Normal, secs(1)).await?;
    seen.check_handed_out(&pool, &old, max_age)?;
    ensure!(
        old.path() == ClaimPath::Warm,
        "first claim: {:?}",
        old.path()
    );
    let changed_at = pool.now();
    let attempts_before = pool.stats().prewarm_attempts.len();
    pool.set_config_version(2);
    stage.mark("changed");
    let olds: Vec<String> = stale_members(&pool, 2);
    ensure!(
        olds.len() == size,
        "after the change {} of {size} members are stale: {:?}",
        olds.len(),
        pool.members()
    );
    let idle_olds: Vec<String> = olds.iter().filter(|n| *n != old.name()).cloned().collect();
    seen.rolling = Some((idle_olds, 2));
    // The claim waits for a replacement; watch the refresh meanwhile.
    let pending = claim_in_background(&stage, &pool, "claim-after-change", Priority::Normal);
    let what = "the claim after the change";
    seen.until(&stage, &pool, what, secs(30), |_| pending.is_finished())
        .await?;
    let next = pending.await.or_fail("claim task")?.or_fail(what)?;
    seen.sample(&stage, &pool).await;
    seen.check_handed_out(&pool, &next, max_age)?;
    ensure!(
        next.path() == ClaimPath::Waited && !olds.iter().any(|n| n == next.name()),
        "the claim after the change got {} by {:?}; old workers were {olds:?}",
        next.name(),
        next.path()
    );
    let bound = secs(size as u64 * 10 + 20);
    seen.until(&stage, &pool, "the rolling refresh", bound, |p| {
        idle_fresh(p) == size && stale_members(p, 2) == vec![old.name().to_string()]
    })
    .await?;
    let starting_max = seen.starting_max;
    ensure!(starting_max <= 1, "{starting_max} starting at once");
    ensure!(
        seen.retired_ahead_max <= 1,
        "{} stale workers were retired before any replacement was ready: the refresh \
         was not rolling",
        seen.retired_ahead_max
    );
    seen.rolling = None;
    let stats = pool.stats();
    let refresh = &stats.prewarm_attempts[attempts_before..];
    // One new worker for the claim that queued, then the idle target.
    ensure!(
        refresh.len() == size + 1
            && refresh
                .iter()
                .all(|a| a.config_version == 2 && a.outcome == AttemptOutcome::Ready),
        "the refresh made these attempts: {refresh:?}"
    );
    check_rhythm(refresh, &Backoff::prewarm())?;
    let retired = stats.stale_retired;
    ensure!(retired == size as u64 - 1, "{retired} stale retired");
    for name in olds.iter().filter(|n| *n != old.name()) {
        let registered = stage.manager.get(name).await;
        ensure!(registered.is_none(), "stale {name} is still registered");
    }
    live_count(&stage, size + 2, "idle and 2 claimed workers")?;

    // The claimed old worker is retired on release, never handed out again.
    let old_name = old.name().to_string();
    pool.release(old);
    ensure!(
        pool.stats().stale_retired == size as u64 && pool.freshness(&old_name).is_none(),
        "the released stale worker {old_name} went back to the pool: {:?}",
        pool.members()
    );
    let what = "the stale worker's process ending";
    eventually(what, secs(35), ms(10), || {
        live_pids(&stage).len() == size + 1
    })
    .await?;
    let third = claim(&pool, Priority::Normal, secs(1)).await?;
    seen.check_handed_out(&pool, &third, max_age)?;
    ensure!(third.name() != old_name, "{old_name} was handed out again");
    drop(third);
    drop(next);
    let full = |p: &WarmPool| settled(p, size);
    seen.until(&stage, &pool, "the pool settling", secs(60), full)
        .await?;
    ensure!(changed_at < pool.now(), "time went back with the clock");

    // Phase 2: age. The oldest worker at the edge of its maximum age.
    let retired_before = pool.stats().stale_retired;
    let attempts_before = pool.stats().prewarm_attempts.len();
    let generation: Vec<(String, Duration)> = pool
        .members()
        .into_iter()
        .map(|m| (m.name, m.ready_at.expect("idle members are ready")))
        .collect();
    let (oldest, oldest_ready) = generation
        .iter()
        .min_by_key(|(name, ready)| (*ready, name.clone()))
        .cloned()
        .expect("members");
    let expires = oldest_ready + max_age;
    let before = expires - secs(1);
    let what = "the moment before expiry";
    seen.until(&stage, &pool, what, before + secs(1), |p| p.now() >= before)
        .await?;
    let edge = claim(&pool, Priority::Normal, secs(1)).await?;
    seen.check_handed_out(&pool, &edge, max_age)?;
    let got = edge.name();
    ensure!(got == oldest, "1 s before expiry: {got}, not {oldest}");
    drop(edge);
    let after = expires + ms(500);
    let what = "the moment after expiry";
    seen.until(&stage, &pool, what, secs(2), |p| p.now() >= after)
        .await?;
    let past = claim(&pool, Priority::Normal, secs(30)).await?;
    seen.check_handed_out(&pool, &past, max_age)?;
    ensure!(past.name() != oldest, "{oldest} handed out expired");
    drop(past);

    let last_expiry = generation
        .iter()
        .map(|(_, ready)| *ready + max_age)
        .max()
        .expect("members");
    let names: Vec<String> = generation.iter().map(|(n, _)| n.clone()).collect();
    let bound = last_expiry.saturating_sub(pool.now()) + secs(size as u64 * 10 + 30);
    seen.until(&stage, &pool, "the aged workers' replacement", bound, |p| {
        let members = p.members();
        members.len() == size
            && idle_fresh(p) == size
            && !members.iter().any(|m| names.contains(&m.name))
    })
    .await?;
    let stats = pool.stats();
    let replacements = &stats.prewarm_attempts[attempts_before..];
    let retired = stats.stale_retired - retired_before;
    ensure!(retired == size as u64, "{retired} of {size} aged retired");
    // Each aged worker is replaced when it expires, or, if the previous replacement
    // is still starting or just done, a stagger after that one got ready.
    let mut expiries: Vec<Duration> = generation.iter().map(|(_, r)| *r + max_age).collect();
    expiries.sort();
    ensure!(
        replacements.len() == size
            && replacements
                .iter()
                .all(|a| a.outcome == AttemptOutcome::Ready),
        "{size} workers aged; replacements: {replacements:?}"
    );
    let mut previous_end = stats.prewarm_attempts[attempts_before - 1].ended_at;
    for (attempt, expiry) in replacements.iter().zip(expiries) {
        let expected = previous_end.map_or(expiry, |end| expiry.max(end + STAGGER));
        let what = format!("{} started (due at {expected:?})", attempt.name);
        let started = attempt.started_at;
        between(&what, started, expected, expected + INSTANT_SLACK)?;
        previous_end = attempt.ended_at;
    }
    let starting_max = seen.starting_max;
    ensure!(starting_max <= 1, "{starting_max} starting at once");
    live_count(&stage, size, "pool workers")
}
