//! api.SCALE-001: the distributed session lock limits horizontal scaling.
//!
//! Every party is an engine built by the composition root (`Engine::start`, the
//! workers-stage profile: no store, no pre-warm). Per phase, the lock host is a fresh
//! engine on host `lock` hosting the lock service (`LockChoice::Serve`, on the next
//! port), and a fresh group of N engine hosts (N = 1, 2, …, 10) use it
//! (`LockChoice::Use`), each running one session loop on `engine.session_lock()`, the
//! client its resume path takes a stored session's lock with: take the lock of one of
//! a few shared session keys, hold it for 10 ms of work, release it, then work 20–40 ms
//! outside the lock. All instances of a
//! phase start at the same instant (a burst after a deploy). The ten phases run once
//! with the seed document's backoff as written (no jitter) and once with its fix (±10 %).
//!
//! Measured per phase: lock wait (mean, p95, p99, max), throughput in operations per
//! virtual second, efficiency against N × the one-instance throughput, and the thundering
//! herd: how many retries reach the lock service in the same millisecond as a retry, on
//! average ("crowding", the herd metric the oracle compares) and at the peak. The table
//! goes to the trace (`chaos run api.SCALE-001 --seed 1 --trace`).
//!
//! Then the acquire timeout is probed on its own, in both modes: a key held by a squatter
//! with a long lease must make an acquire give up with `LockError::Timeout` at 5 s (plus
//! the last try's round trip), never hang and never succeed.
//!
//! The network is a same-datacenter one (0.2–1 ms per hop, so every message arrives at
//! the next 1 ms tick): clients refused at the same instant stay synchronised exactly as
//! long as their schedules are identical, which is what jitter is there to break.

use crate::ensure;
use crate::kit::fail::OrFail;
use crate::scenario::{BodyFuture, Failure, Outcome, Scenario, converge};
use crate::stage::lock::*;
use engine::sessions::lock::{LockBackoff, LockError, SessionLockConfig};
use sim::World;
use sim::faults::SwarmKind;
use std::time::Duration;
use tokio::time::Instant;

pub static SCALE: Scenario = Scenario {
    id: "api.SCALE-001",
    declared_at: crate::declared_here!(),
    title: "Distributed session lock contention caps horizontal scaling",
    proves: "Groups of 1 to 10 engine instances hammer a few shared session keys \
             through the real lock service and client (10 ms critical sections, exponential \
             backoff 10 ms..500 ms, 5 s acquire timeout), once without jitter and once with \
             +/-10 %. The lock service must never grant a key to two owners at once (an \
             independent holder count), no acquire may wait past the 5 s timeout plus one round \
             trip, an acquire of a key that stays held must end in a Timeout error at 5 s \
             (not hang, not succeed), server and clients must agree on every grant and \
             refusal, lock wait must grow with the number of instances (from at most 10 ms \
             alone to a mean of at least 100 ms at 10 instances, the slowest past the 500 ms \
             backoff cap), efficiency at 10 instances must stay well below linear (the gains \
             flatten), jitter must cut how \
             crowded retries reach the service within one millisecond (the thundering herd) \
             below 0.85 of the crowding without it, and once the load stops a lone acquire \
             must succeed at its first try.",
    faults_expected: &["lock.contention"],
    cores: &[
        "engine/src/sessions/lock/backoff.rs",
        "engine/src/sessions/lock/client.rs",
        "engine/src/sessions/lock/server.rs",
    ],
    sim_time_max: Duration::from_secs(300),
    body: scale,
    real: None,
    // No late messages: the scenario measures lock-wait latencies against absolute
    // bounds (at most 10 ms alone), which a latency spike would decide.
    plan: Some(crate::scenario::Plan::World(|seed| {
        crate::kit::plans::swarm(seed, &[SwarmKind::DiskSlow, SwarmKind::ProcSlowStart])
    })),
};

/// Instances per phase, in order.
const GROUPS: [usize; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const PORT_BASE: u16 = 7_100;
/// No acquire may end later than the acquire timeout plus this (the last try starts at
/// the timeout; its round trip on this network is at most a few milliseconds).
const TIMEOUT_SLACK: Duration = Duration::from_millis(50);
/// The key the timeout probe's squatter holds, and the squatter's lease.
const SQUATTED: &str = "session-squatted";
/// Mean and p95 wait at 10 instances must exceed this multiple of the wait at 1 (200
/// seeds: at least 63x for the mean, 39x for the p95).
const WAIT_GROWTH_MIN: f64 = 10.0;
/// The catalog's "about 10 ms toward 500 ms": an uncontended acquire (1 instance) waits
/// at most `WAIT_ALONE_MAX` on average; at 10 instances the mean wait is at least
/// `WAIT_AT_10_MEAN_MIN` and the slowest acquire waits past the 500 ms backoff cap (200
/// seeds: 2.0 ms alone; at 10, mean 126.7..209.8 ms, slowest 1624..5002 ms).
const WAIT_ALONE_MAX: Duration = Duration::from_millis(10);
const WAIT_AT_10_MEAN_MIN: Duration = Duration::from_millis(100);
/// Mean wait must rise strictly along these group sizes (200 seeds: each step at least
/// 1.65x).
const WAIT_TREND: [usize; 4] = [1, 2, 5, 10];
/// Efficiency at 10 instances must stay below this (linear scaling is 1; 200 seeds:
/// 0.22..0.27).
const EFFICIENCY_AT_10_MAX: f64 = 0.4;
/// Throughput at 10 instances must stay below this multiple of the throughput at 5 (200
/// seeds: at most 1.22x).
const FLATTEN_MAX: f64 = 1.5;
/// Retry crowding at 10 instances with jitter must stay below this multiple of the
/// crowding without it (200 seeds: 1.90..4.69 without, 1.16..1.37 with; ratio at most
/// 0.70).
const CROWDING_RATIO_MAX: f64 = 0.85;

/// The two backoffs compared: the seed's code (no jitter) and its fix.
fn modes() -> [(&'static str, LockBackoff); 2] {
    let standard = LockBackoff::standard();
    [
        ("fixed", standard.clone().with_jitter(None)),
        ("jitter", standard.with_jitter(Some(0.1))),
    ]
}

/// A squatter takes `SQUATTED` with a long lease and keeps it; another instance's acquire
/// must give up with `LockError::Timeout` at the acquire timeout (plus one round trip),
/// having been refused at every try, and the squatter must still hold the key.
async fn timeout_probe(
    world: &World,
    port: u16,
    mode: &'static str,
    backoff: &LockBackoff,
) -> Outcome {
    let lock_engine = lock_host(world, port).await?;
    let server = service(&lock_engine)?;
    let config = SessionLockConfig {
        backoff: backoff.clone(),
        ..SessionLockConfig::standard()
    };
    let name = format!("{mode}-squatter");
    let squatting = SessionLockConfig {
        ttl: SQUAT_TTL,
        ..config.clone()
    };
    let squatter_engine = instance_engine(world, &name, server.addr(), squatting).await?;
    let squatter = client(&squatter_engine)?;
    let squat = converge("the squatter's acquire", Duration::from_secs(1), async {
        squatter.acquire(SQUATTED).await
    })
    .await?
    .or_fail(&format!("{mode}: the squatter's acquire"))?;
    let name = format!("{mode}-prober");
    let prober_engine = instance_engine(world, &name, server.addr(), config).await?;
    let prober = client(&prober_engine)?;
    let limit = backoff.acquire_timeout + TIMEOUT_SLACK;
    let asked = Instant::now();
    // Twice the bound: an acquire that hangs fails here as a liveness failure.
    let result = converge(
        &format!("{mode}: an acquire of a held key"),
        2 * limit,
        prober.acquire(SQUATTED),
    )
    .await?;
    let elapsed = asked.elapsed();
    match result {
        Err(LockError::Timeout {
            waited,
            attempts,
            busy,
            ..
        }) => {
            tracing::info!(
                target: "scenarios",
                "{mode}: acquire of a held key timed out after {:.1} ms ({attempts} tries, {busy} BUSY)",
                ms_f(elapsed)
            );
            ensure!(
                waited >= backoff.acquire_timeout && elapsed <= limit,
                "{mode}: an acquire of a held key gave up after {} ms (reported {} ms); the \
                 acquire timeout is {} ms (+{} ms for the last round trip)",
                elapsed.as_millis(),
                waited.as_millis(),
                backoff.acquire_timeout.as_millis(),
                TIMEOUT_SLACK.as_millis()
            );
            ensure!(
                attempts >= 2 && busy == attempts,
                "{mode}: an acquire of a held key made {attempts} tries, {busy} refused: \
                 it should retry, and every try should be refused"
            );
        }
        Ok(held) => {
            return Err(Failure::correctness(format!(
                "mutual exclusion broken ({mode}): {} was granted {SQUATTED} after {} ms \
                 while {} held it with a {} s lease",
                held.token,
                held.waited.as_millis(),
                squat.token,
                SQUAT_TTL.as_secs()
            )));
        }
        Err(e) => {
            return Err(Failure::correctness(format!(
                "{mode}: an acquire of a held key should time out, but: {e}"
            )));
        }
    }
    ensure!(
        server.holder(SQUATTED).as_deref() == Some(squat.token.as_str()),
        "{mode}: after the timed-out acquire, {SQUATTED} is held by {:?}, not the squatter {}",
        server.holder(SQUATTED),
        squat.token
    );
    squatter
        .release(squat)
        .await
        .or_fail(&format!("{mode}: the squatter's release"))?;
    lock_engine.stop().await;
    squatter_engine.stop().await;
    prober_engine.stop().await;
    Ok(())
}

fn scale(world: World) -> BodyFuture {
    Box::pin(async move {
        // A same-datacenter network: every hop arrives at the next 1 ms tick.
        let mut net = world.net().options();
        net.latency_min = Duration::from_micros(200);
        net.latency_max = Duration::from_millis(1);
        world.net().set_options(net);
        let mut rows: Vec<Row> = Vec::new();
        let mut port = PORT_BASE;
        for (mode, backoff) in modes() {
            let bound = backoff.acquire_timeout + TIMEOUT_SLACK;
            let mut single = None;
            for instances in GROUPS {
                let (ops, stats) = phase(&world, port, mode, &backoff, instances).await?;
                port += 1;
                // Server and clients agree on every grant and every refusal.
                let granted = ops.iter().filter(|o| o.granted).count() as u64;
                let busy: u64 = ops.iter().map(|o| u64::from(o.busy)).sum();
                ensure!(
                    stats.grants == granted && stats.busy == busy && stats.releases == granted,
                    "{mode}, {instances} instances: the server counted {} grants, {} BUSY and \
                     {} releases; the instances saw {granted} grants (each released) and {busy} BUSY",
                    stats.grants,
                    stats.busy,
                    stats.releases
                );
                ensure!(
                    stats.errors == 0 && stats.not_owner == 0 && stats.expired == 0,
                    "{mode}, {instances} instances: server saw {} bad lines, {} releases by \
                     non-owners, {} expired leases",
                    stats.errors,
                    stats.not_owner,
                    stats.expired
                );
                if let Some(op) = ops.iter().find(|o| o.wait > bound) {
                    return Err(Failure::correctness(format!(
                        "{mode}, {instances} instances: an acquire waited {} ms, past the \
                         {} ms acquire timeout plus {} ms for the last try's round trip",
                        op.wait.as_millis(),
                        backoff.acquire_timeout.as_millis(),
                        TIMEOUT_SLACK.as_millis()
                    )));
                }
                let r = row(mode, instances, &ops, &stats, single);
                single.get_or_insert(r.throughput);
                tracing::info!(
                    target: "scenarios",
                    "{mode} N={instances}: {} ops, {:.1} ops/s, efficiency {:.2}, wait mean {:.1} ms \
                     p99 {:.0} ms, {} timeouts, retries: peak {} per ms, crowding {:.2}",
                    r.ops,
                    r.throughput,
                    r.efficiency,
                    ms_f(r.wait_mean),
                    ms_f(r.wait_p99),
                    r.timeouts,
                    r.herd,
                    r.crowding
                );
                ensure!(
                    r.completed_in_phase > 0,
                    "{mode}, {instances} instances: no operation completed in {} s",
                    PHASE.as_secs()
                );
                rows.push(r);
            }
        }
        let text = table(&rows);
        for line in text.lines() {
            tracing::info!(target: "scenarios", "{line}");
        }

        let of = |mode: &str, n: usize| {
            rows.iter()
                .find(|r| r.mode == mode && r.instances == n)
                .expect("every group ran")
        };
        for (mode, backoff) in modes() {
            let (one, five, ten) = (of(mode, 1), of(mode, 5), of(mode, 10));
            let backoff_cap = backoff.cap;
            let growth = [
                ("mean", one.wait_mean, ten.wait_mean),
                ("p95", one.wait_p95, ten.wait_p95),
            ];
            for (what, alone, at_ten) in growth {
                // f64 comparison: bound first (`ensure!` negates its condition).
                let grew = ms_f(at_ten) > WAIT_GROWTH_MIN * ms_f(alone);
                ensure!(
                    grew,
                    "{mode}: {what} lock wait grew from {:.1} ms at 1 instance to only {:.1} ms \
                     at 10 (expected more than {WAIT_GROWTH_MIN}x)\n{text}",
                    ms_f(alone),
                    ms_f(at_ten)
                );
            }
            ensure!(
                one.wait_mean <= WAIT_ALONE_MAX
                    && ten.wait_mean >= WAIT_AT_10_MEAN_MIN
                    && ten.wait_max > backoff_cap,
                "{mode}: lock wait went from a mean of {:.1} ms alone (expected at most {} ms) \
                 to a mean of {:.1} ms and a slowest {:.0} ms at 10 instances (expected at least \
                 {} ms, and past the {} ms backoff cap)\n{text}",
                ms_f(one.wait_mean),
                WAIT_ALONE_MAX.as_millis(),
                ms_f(ten.wait_mean),
                ms_f(ten.wait_max),
                WAIT_AT_10_MEAN_MIN.as_millis(),
                backoff_cap.as_millis()
            );
            for pair in WAIT_TREND.windows(2) {
                let (fewer, more) = (of(mode, pair[0]), of(mode, pair[1]));
                ensure!(
                    more.wait_mean > fewer.wait_mean,
                    "{mode}: mean lock wait did not grow from {} instances ({:.1} ms) to {} \
                     ({:.1} ms)\n{text}",
                    fewer.instances,
                    ms_f(fewer.wait_mean),
                    more.instances,
                    ms_f(more.wait_mean)
                );
            }
            let capped = ten.efficiency < EFFICIENCY_AT_10_MAX;
            ensure!(
                capped,
                "{mode}: 10 instances ran at {:.2} of linear scaling; the lock should cap it \
                 below {EFFICIENCY_AT_10_MAX}\n{text}",
                ten.efficiency
            );
            let flat = ten.throughput < FLATTEN_MAX * five.throughput;
            ensure!(
                flat,
                "{mode}: going from 5 to 10 instances took throughput from {:.1} to {:.1} ops/s; \
                 the lock should flatten it (less than {FLATTEN_MAX}x)\n{text}",
                five.throughput,
                ten.throughput
            );
        }
        let (fixed, jitter) = (of("fixed", 10), of("jitter", 10));
        let herd_broken = jitter.crowding < CROWDING_RATIO_MAX * fixed.crowding;
        ensure!(
            herd_broken,
            "jitter did not break up the herd at 10 instances: retries arrive {:.2} to a \
             millisecond with jitter, {:.2} without (expected below {CROWDING_RATIO_MAX}x; \
             peak {} vs {} in one millisecond)\n{text}",
            jitter.crowding,
            fixed.crowding,
            jitter.herd,
            fixed.herd
        );

        // The acquire timeout, on its own: a key that stays held ends in a Timeout error.
        for (mode, backoff) in modes() {
            timeout_probe(&world, port, mode, &backoff).await?;
            port += 1;
        }

        // Liveness: with the load gone, a lone acquire gets the lock at its first try.
        let lock_engine = lock_host(&world, port).await?;
        let server = service(&lock_engine)?;
        let config = SessionLockConfig::standard();
        let alone = instance_engine(&world, "after-load", server.addr(), config).await?;
        let lock = client(&alone)?;
        let held = converge(
            "a lone acquire",
            Duration::from_secs(1),
            lock.acquire(KEYS[0]),
        )
        .await?
        .map_err(|e| Failure::liveness(format!("a lone acquire after the load: {e}")))?;
        ensure!(
            held.attempts == 1 && held.busy == 0,
            "a lone acquire took {} tries ({} BUSY)",
            held.attempts,
            held.busy
        );
        lock.release(held).await.or_fail("a lone release")?;
        lock_engine.stop().await;
        alone.stop().await;
        Ok(())
    })
}
