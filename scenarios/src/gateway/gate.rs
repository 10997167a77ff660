//! The upgraded WebSocket's task belongs to its host (`sim.gateway.crash-stops-socket-task`,
//! a self-check outside the catalog): the gateway spawns it through the environment, so
//! the host gate holds it like every other engine task. A paused engine host does not
//! poll it, and a crashed one drops it at the crash instant, where it stood, instead of
//! letting it run on until its reset connection ends it.

use crate::ensure;
use crate::kit::channel::*;
use crate::scenario::{Failure, Outcome, Scenario};
use engine::gateway::GatewayStats;
use engine::protocol::ErrorCode;
use sim::World;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&CRASH_STOPS_SOCKET_TASK]
}

/// Socket tasks alive, and socket tasks dropped before their end.
fn sockets(stats: &GatewayStats) -> (u64, u64) {
    (
        stats.sockets_live.load(Ordering::Relaxed),
        stats.sockets_aborted.load(Ordering::Relaxed),
    )
}

scenario!(
    CRASH_STOPS_SOCKET_TASK,
    "sim.gateway.crash-stops-socket-task",
    "The WebSocket task stops with its host: paused, then crashed mid-stream",
    "A client receives a streamed answer. The engine host is paused for 0.5 to 2 s: a frame the client sends meanwhile is answered only after the resume, and nothing else arrives during the pause (the socket task is not polled). The stream then goes on; the host crashes mid-stream: at the crash instant, before virtual time moves, the socket task is gone and was dropped unfinished (the crash aborted it; it did not run on to end on its reset connection), no engine code ran for the crashed host (its session was not detached), and the client's connection is reset.",
    ["host.pause", "host.crash"],
    cores: ["engine/src/gateway/upgrade.rs", "sim/src/world/host.rs"],
    120,
    crash_stops_socket_task
);
async fn crash_stops_socket_task(world: World) -> Outcome {
    let (mut st, mut c, _) = one_client(&world, |s, _| s.answer_pace = Some(ms(20))).await?;
    let gw = st.gateway.clone();
    let (live, aborted) = sockets(&gw.stats);
    ensure!(
        live == 1 && aborted == 0,
        "one connected client: {live} socket tasks live, {aborted} aborted"
    );
    // 400 parts at 20 ms: an answer streams for about 8 s, past both faults.
    c.query(&words(400, "w")).await?;
    deltas(&mut c, 2 + st.rng.below(10) as usize).await?;

    let pause = ms(500 + st.rng.below(1_500));
    st.host.pause();
    let paused_at = Instant::now();
    // What the engine wrote before the pause is still on the wire (one LAN crossing,
    // at most 5 ms): let it arrive, then the engine must be silent.
    c.until_silent(ms(50)).await;
    ensure!(!c.closed, "the connection closed when the engine paused");
    // A binary frame needs an answer (binary_not_supported) from the socket task alone.
    c.send_binary(b"are you there?").await?;
    let rest = pause.saturating_sub(paused_at.elapsed());
    if let Some(m) = c.next(rest).await {
        return Err(Failure::correctness(format!(
            "the socket task of a paused host ran: the client got {} {} ms into a {} ms pause",
            m.encode(),
            paused_at.elapsed().as_millis(),
            pause.as_millis()
        )));
    }
    ensure!(!c.closed, "the connection closed during the pause");
    let (live, _) = sockets(&gw.stats);
    ensure!(live == 1, "{live} socket tasks live during the pause");
    st.host.resume();
    c.until(
        "the answer to the binary frame after the resume",
        secs(5),
        is_error(ErrorCode::BinaryNotSupported),
    )
    .await?;
    deltas(&mut c, 2).await?;

    let (live, aborted) = sockets(&gw.stats);
    ensure!(
        live == 1 && aborted == 0,
        "before the crash: {live} socket tasks live, {aborted} aborted"
    );
    let session = st.session(&c.session_id)?;
    let detaches = session.stats().detaches;
    let crash_at = Instant::now();
    st.host.crash();
    // The crash aborts the host's tasks; tokio drops an aborted task's future when its
    // scheduler next reaches it. Yielding lets it do so without letting virtual time
    // move (time advances only when nothing is runnable).
    for _ in 0..16 {
        if sockets(&gw.stats).0 == 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    ensure!(
        Instant::now() == crash_at,
        "virtual time moved while checking the crash instant"
    );
    let (live, aborted) = sockets(&gw.stats);
    ensure!(
        live == 0,
        "{live} socket tasks still alive at the instant their host crashed"
    );
    ensure!(
        aborted == 1,
        "the socket task was not dropped by its host's crash: it ran on to its own end \
         ({aborted} aborted)"
    );
    // Nothing of the crashed engine ran after the crash: a socket task ending on its
    // reset connection would have detached it from its session first.
    let after = session.stats().detaches;
    ensure!(
        after == detaches,
        "engine code ran for the crashed host: its session was detached after the crash \
         ({detaches} detaches before, {after} after)"
    );
    ensure!(
        c.next(secs(5)).await.is_none() && c.closed,
        "the client's connection outlived the engine host"
    );
    st.check_global()
}
