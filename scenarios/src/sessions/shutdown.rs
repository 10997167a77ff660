//! The engine's own shutdown, as `engine serve` runs it on SIGTERM: `Engine::drain`
//! then `Engine::stop` (a self-check of the composition root, outside the catalog; the
//! deploy entries build on it).

use crate::ensure;
use crate::kit::channel::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::ENGINE_HOST;
use engine::protocol::{ServerEvent, ServerMessage};
use sim::World;
use sim::net::PartitionMode;

pub fn all() -> Vec<&'static Scenario> {
    vec![&DRAIN_THEN_STOP]
}

/// How long the drain may wait for live sessions to end (`engine serve` uses 15 s).
const DRAIN_DEADLINE_SECS: u64 = 15;

fn is_ended(m: &ServerMessage) -> bool {
    matches!(&m.event, ServerEvent::SessionEnded { reason } if reason.contains("shutting down"))
}

scenario!(
    DRAIN_THEN_STOP,
    "sim.engine.drain-then-stop",
    "The engine drains and stops with a client cut off mid-answer",
    "Two clients stream answers; one is cut off by a partition that holds its traffic. Engine::drain (what engine serve runs on SIGTERM) must end both sessions within its 15 s deadline, the held client blocking nothing: the reachable client is told session_ending then session_ended; every unclaimed warm worker is destroyed and counted. Engine::stop then leaves no worker process on the host and the gateway accepts no more connections. Once the partition heals, the cut-off client's stream ends with session_ended too, gap-free.",
    ["net.partition_hold"],
    cores: [
        "engine/src/root/mod.rs",
        "engine/src/sessions/service.rs",
        "engine/src/workers/pool/shell.rs"
    ],
    180,
    drain_then_stop
);
async fn drain_then_stop(world: World) -> Outcome {
    let (mut st, mut cut, token) = one_client(&world, |s, _| s.answer_pace = Some(ms(200))).await?;
    let d = st.new_delivery();
    let mut reachable = st.open(1, &format!("token={token}"), &d).await?;
    cut.query(&words(30, "a")).await?;
    reachable.query(&words(30, "b")).await?;
    deltas(&mut cut, 2).await?;
    deltas(&mut reachable, 2).await?;
    let cut_host = "client-0";
    world
        .net()
        .partition(ENGINE_HOST, cut_host, PartitionMode::Hold, false);
    // The cut-off client reads on: its stream is due but held, nothing may arrive.
    if let Ok(m) = cut.until("anything", ms(500), |_| true).await {
        return Err(Failure::correctness(format!(
            "a client cut off by a partition received {m:?}"
        )));
    }
    let warm = st.sessions.pool_depth();
    let began = st.sessions.now();
    let report = st.engine.drain(secs(DRAIN_DEADLINE_SECS)).await;
    let took = st.sessions.now() - began;
    ensure!(
        report.sessions_ended == 2 && report.sessions_left == 0,
        "the drain ended {} of 2 sessions, {} left",
        report.sessions_ended,
        report.sessions_left
    );
    ensure!(
        report.warm_destroyed == warm,
        "{} warm workers destroyed, the pool held {warm}",
        report.warm_destroyed
    );
    ensure!(
        took <= secs(DRAIN_DEADLINE_SECS),
        "the drain took {} ms, past its deadline",
        took.as_millis()
    );
    reachable
        .until("session_ending", secs(10), |m| {
            matches!(m.event, ServerEvent::SessionEnding { .. })
        })
        .await?;
    reachable.until("session_ended", secs(10), is_ended).await?;
    st.engine.stop().await;
    st.eventually("no worker process left on the host", secs(60), || {
        st.host.procs().live_pids().is_empty()
    })
    .await?;
    let dn = st.new_delivery();
    if st.connect(2, &format!("token={token}"), &dn).await.is_ok() {
        return Err(Failure::correctness(
            "the stopped engine accepted a connection",
        ));
    }
    world.net().heal(ENGINE_HOST, cut_host);
    world.net().heal(cut_host, ENGINE_HOST);
    cut.until("session_ended after the heal", secs(30), is_ended)
        .await?;
    st.check_global()
}
