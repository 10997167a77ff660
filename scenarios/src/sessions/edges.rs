//! Edges of a session's resources: a fork whose worker cannot start (core.EC-013), a
//! session's files outgrowing their quota (EC-023), the sequence space running out
//! (EC-045).

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::files::dir_bytes;
use crate::kit::plans::on_host;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::ENGINE_HOST;
use engine::protocol::ServerEvent;
use engine::workers::disk::DiskPolicy;
use sim::{Fault, FaultPlan, World};

pub fn all() -> Vec<&'static Scenario> {
    vec![&FORK_FAILS, &DISK_QUOTA, &SEQ_EXHAUSTED]
}

scenario!(
    FORK_FAILS,
    "core.EC-013",
    "Fork fails partway through",
    "A fork is created but its worker cannot start (every spawn fails, no warm worker left): the fork's client is told the fork failed and its socket closes, the failure is logged, and the source session carries on unchanged, answering as before.",
    ["proc.spawn_fail"],
    cores: ["engine/src/sessions/service.rs", "engine/src/sessions/driver.rs"],
    180,
    fork_fails,
    plan: fork_fails_plan
);
/// The channel swarm; every spawn fails from the moment the fork is asked for.
fn fork_fails_plan(seed: u64) -> FaultPlan {
    let outage = Fault::SpawnOutage {
        host: ENGINE_HOST.into(),
    };
    crate::kit::plans::channel(seed).after("fork", 0, outage)
}
async fn fork_fails(world: World) -> Outcome {
    let (mut st, mut parent, token) = one_client(&world, |_, _| {}).await?;
    parent.query("before the fork").await?;
    parent.until("a result", secs(30), is_result).await?;
    let pid = parent.session_id.clone();
    let before = st.session(&pid)?.transcript();
    let outage = !world.mark("fork").is_empty();
    st.sessions.invalidate_pool(2).await;
    let d = st.new_delivery();
    let mut fork = st.open(1, &format!("token={token}&fork={pid}"), &d).await?;
    if !outage {
        // No fault: the fork gets a worker and answers; its source is unchanged.
        fork.query("on the fork").await?;
        fork.until("the fork's result", secs(60), is_result).await?;
        ensure!(
            st.session(&pid)?.transcript() == before,
            "the fork changed its source"
        );
        return st.check_global();
    }
    let ended = fork
        .until("the fork's end", secs(120), |m| {
            matches!(m.event, ServerEvent::SessionEnded { .. })
        })
        .await?;
    ensure!(
        matches!(&ended.event, ServerEvent::SessionEnded { reason } if reason.contains("no worker")),
        "the fork's client was not told why: {ended:?}"
    );
    ensure!(
        fork.closes_within(secs(5)).await,
        "the failed fork's socket stayed open"
    );
    let s = st.session(&pid)?;
    ensure!(
        s.transcript() == before,
        "the failed fork changed its source"
    );
    parent.query("after the failed fork").await?;
    parent
        .until("the source's result", secs(30), is_result)
        .await?;
    ensure!(
        s.stats().replaced == 0 && s.is_attached(),
        "the source's connection was disturbed"
    );
    st.check_global()
}

scenario!(
    DISK_QUOTA,
    "core.EC-023",
    "Session files outgrow their disk quota",
    "A session whose tools keep leaving snapshots behind (twice its quota in all, on a host disk that could not hold them all) never runs out of space: old snapshots are evicted to keep its directory under its cap, every tool call succeeds, and the worker never crashes.",
    ["disk.session_growth"],
    cores: ["engine/src/workers/program/cache.rs", "engine/src/workers/program/cache_index.rs"],
    300,
    disk_quota,
    plan: disk_quota_plan
);
/// The channel swarm; once the stage is up, its host's disk has room for only 1.5 times
/// the session's quota (less than the snapshots it will leave).
fn disk_quota_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel(seed).after("stage-up", 0, on_host::disk_room(3 * QUOTA / 2))
}
const QUOTA: u64 = 1 << 20;
async fn disk_quota(world: World) -> Outcome {
    let quota = QUOTA;
    let cap: u64 = 512 << 10;
    let (mut st, mut c, _) = one_client(&world, |s, _| {
        let mut policy = DiskPolicy::with_quota(quota);
        policy.cache_cap_bytes = Some(cap);
        s.pool.template.disk = Some(policy);
    })
    .await?;
    world.mark("stage-up");
    let snapshots = 20;
    let size = 2 * quota / snapshots;
    for n in 0..snapshots {
        let jitter = st.rng.below(1_000);
        c.query(&format!("cache:snap{n}:{}", size - jitter)).await?;
        let m = c
            .until("the snapshot's result", secs(30), is_result)
            .await?;
        ensure!(
            matches!(&m.event, ServerEvent::Result { text, .. } if text.starts_with("cached:")),
            "snapshot {n} was refused: {m:?}"
        );
    }
    let s = st.session(&c.session_id)?;
    let worker = s
        .worker()
        .ok_or_else(|| Failure::correctness("no worker"))?;
    let dir = format!("sessions/{worker}");
    let held = dir_bytes(&st.env, &dir);
    ensure!(
        held <= cap + size,
        "the session's directory holds {held} bytes, cap {cap}"
    );
    ensure!(
        s.stats().restarts == 0 && st.faults.count("proc.crash_signal") == 0,
        "the worker restarted or crashed"
    );
    st.check_global()
}

scenario!(
    SEQ_EXHAUSTED,
    "core.EC-045",
    "Message sequence counter runs out",
    "Numbers are 64-bit and never wrap: a session started a few dozen numbers before the end of the space streams up to the very last number, then ends, telling its client why in an unnumbered final message and closing; no number is ever repeated.",
    ["sessions.seq_exhausted"],
    cores: [
        "engine/src/sessions/core/stream.rs",
        "engine/src/sessions/replay.rs",
        "engine/src/gateway/connection.rs",
    ],
    120,
    seq_exhausted
);
async fn seq_exhausted(world: World) -> Outcome {
    let room = 20 + world.rng("room").below(20);
    let (st, mut c, _) = one_client(&world, |s, _| {
        s.first_seq_after = u64::MAX - room;
    })
    .await?;
    c.query(&words(2 * room as usize, "z")).await?;
    let ended = c
        .until("the unnumbered end", secs(60), |m| {
            matches!(m.event, ServerEvent::SessionEnded { .. })
        })
        .await?;
    ensure!(
        ended.seq.is_none()
            && matches!(&ended.event, ServerEvent::SessionEnded { reason } if reason.contains("exhausted")),
        "the end was not told as expected: {ended:?}"
    );
    ensure!(c.closes_within(secs(5)).await, "the socket stayed open");
    let last = c.delivery.lock().expect("delivery").last_seq();
    ensure!(
        last == u64::MAX,
        "the stream stopped at {last}, not at the last number"
    );
    let id = c.session_id.clone();
    st.eventually("the session is gone", secs(10), || {
        st.sessions.get(&id).is_none()
    })
    .await?;
    st.check_global()
}
