//! Connections that break and come back: drops mid-answer (core.EC-035, EC-036,
//! EC-048), an idle socket closed by a proxy (EC-040), a network switch (EC-041), a
//! tab closed for good (EC-009), a client that never returns (EC-044), and reconnects
//! the server must refuse (EC-037, EC-038).

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::fail::{OrFail, unexpected};
use crate::kit::plans;
use crate::scenario::{Failure, Outcome, Scenario};
use engine::protocol::{ErrorCode, ServerEvent};
use engine::sessions::replay::ReplayLimits;
use sim::World;
use sim::net::PartitionMode;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &DROP_DURING_TOOL,
        &MISSED_MESSAGES,
        &SEQ_AHEAD,
        &SESSION_GONE,
        &PROXY_IDLE_CLOSE,
        &NETWORK_SWITCH,
        &NEVER_RETURNS,
        &MULTI_PART_RESUME,
        &TAB_CLOSED,
    ]
}

scenario!(
    MISSED_MESSAGES,
    "core.EC-036",
    "Reconnect after missing some sequenced messages",
    "A connection reset mid-answer; the server keeps producing into the session's log; the reconnect with last_seq replays exactly the missed messages in order, once; an ack then trims the log.",
    ["net.reset"],
    cores: ["engine/src/sessions/core/stream.rs", "engine/src/sessions/replay.rs"],
    120,
    missed_messages,
    plan: plans::reset_mid_answer
);
async fn missed_messages(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |s, _| s.answer_pace = Some(ms(100))).await?;
    let n = 20 + st.rng.below(20) as usize;
    let cut_after = 2 + st.rng.below(8) as usize;
    let answer = words(n, "w");
    c.query(&answer).await?;
    deltas(&mut c, cut_after).await?;
    let (d, id, s) = reset_and_leave(&world, &st, c).await?;
    let at_detach = s.last_seq();
    tokio::time::sleep(ms(500)).await;
    ensure!(
        s.last_seq() > at_detach,
        "the answer stopped while the client was away"
    );
    let missed = s.last_seq() - d.lock().expect("delivery").last_seq();
    let mut c = st
        .reconnect(0, &token, &id, &d)
        .await
        .or_fail("reconnect")?;
    c.until("the result", secs(30), is_result).await?;
    c.until("idle", secs(10), is_status("idle")).await?;
    answer_is(&c, 1, &answer)?;
    let replayed = s.stats().replayed;
    ensure!(
        replayed >= missed,
        "{replayed} messages replayed, {missed} were missed"
    );
    let last = d.lock().expect("delivery").last_seq();
    c.ack(last).await?;
    st.eventually("the ack trims the log", secs(10), || s.log_usage().1 == 0)
        .await?;
    st.check_global()
}

scenario!(
    DROP_DURING_TOOL,
    "core.EC-035",
    "Socket drops while a tool is executing",
    "The network between client and server drops during a tool call; the tool finishes while nobody is connected and its output waits in the session's log (5 minute age bound); the reconnect with last_seq gets the rest of the output and the result, once.",
    ["net.partition", "net.reset"],
    cores: [
        "engine/src/sessions/core/stream.rs",
        "engine/src/sessions/replay.rs",
        "engine/src/gateway/connection.rs",
    ],
    180,
    drop_during_tool,
    plan: drop_during_tool_plan
);
/// The client cut off (connections dropped) while the tool runs, healed when it is back.
fn drop_during_tool_plan(seed: u64) -> sim::FaultPlan {
    plans::cut_client_between(
        plans::channel(seed),
        "tool-running",
        "back",
        PartitionMode::Drop,
    )
}
async fn drop_during_tool(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |s, _| s.answer_pace = Some(ms(200))).await?;
    ensure!(
        st.sessions.config().replay.age == secs(300),
        "the replay log's age bound is not the documented 5 minutes"
    );
    let answer = format!("tool:read {}", words(15, "t"));
    c.query(&answer).await?;
    deltas(&mut c, 1 + st.rng.below(5) as usize).await?;
    world.mark("tool-running");
    let (d, id) = (c.delivery.clone(), c.session_id.clone());
    c.drop_abruptly();
    let s = st.session(&id)?;
    st.eventually("the tool finishes with nobody connected", secs(30), || {
        s.state() == engine::sessions::SessionState::Idle && s.stats().queries == 1
    })
    .await?;
    ensure!(
        !s.is_attached(),
        "a connection was attached during the drop"
    );
    tokio::time::sleep(secs(5 + st.rng.below(20))).await;
    world.mark("back");
    let mut c = st
        .reconnect(0, &token, &id, &d)
        .await
        .or_fail("reconnect")?;
    c.until("the result", secs(30), is_result).await?;
    answer_is(&c, 1, &answer)?;
    st.check_global()
}

scenario!(
    PROXY_IDLE_CLOSE,
    "core.EC-040",
    "Reverse proxy closes an idle socket",
    "A slow answer leaves the socket silent longer than the proxy's idle timeout, and the proxy closes it; the server notices, keeps the answer in the session's log, and the client's reconnect gets what it missed, once.",
    ["net.reset"],
    cores: ["engine/src/sessions/core/stream.rs", "engine/src/gateway/connection.rs"],
    180,
    proxy_idle_close,
    plan: plans::reset_mid_answer
);
async fn proxy_idle_close(world: World) -> Outcome {
    // A model that pauses 3 s between parts; a proxy that cuts sockets silent for 2 s.
    let (mut st, mut c, token) = one_client(&world, |s, _| s.answer_pace = Some(secs(3))).await?;
    let proxy_idle = secs(2);
    let answer = words(8, "slow");
    c.query(&answer).await?;
    c.until("the first part", secs(10), is_delta).await?;
    c.until_silent(proxy_idle).await;
    ensure!(!c.closed, "the server closed the socket itself");
    let (d, id, s) = reset_and_leave(&world, &st, c).await?;
    let before = s.last_seq();
    tokio::time::sleep(secs(4 + st.rng.below(6))).await;
    ensure!(
        s.last_seq() > before,
        "nothing was buffered while the client was away"
    );
    let mut c = st
        .reconnect(0, &token, &id, &d)
        .await
        .or_fail("reconnect")?;
    c.until("the result", secs(60), is_result).await?;
    answer_is(&c, 1, &answer)?;
    st.check_global()
}

scenario!(
    NETWORK_SWITCH,
    "core.EC-041",
    "Client network switches from Wi-Fi to cellular",
    "The client's first network goes silent without a reset (packets held); the client notices the silence and reconnects from its second network with last_seq; the new connection replaces the half-open one and sequence sync fills the gap of several seconds, each message once.",
    ["net.partition"],
    cores: ["engine/src/sessions/core/stream.rs", "engine/src/gateway/connection.rs"],
    180,
    network_switch,
    plan: network_switch_plan
);
/// The Wi-Fi silent (traffic held, no reset) mid-answer, healed after the switch.
fn network_switch_plan(seed: u64) -> sim::FaultPlan {
    plans::cut_client_between(
        plans::channel(seed),
        "wifi-gone",
        "switched",
        PartitionMode::Hold,
    )
}
async fn network_switch(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |s, _| s.answer_pace = Some(ms(150))).await?;
    let answer = words(60, "m");
    c.query(&answer).await?;
    deltas(&mut c, 3 + st.rng.below(10) as usize).await?;
    if world.mark("wifi-gone").is_empty() {
        // The Wi-Fi stays (a shrunk or given plan): the answer arrives on it, in full.
        c.until("the result", secs(60), is_result).await?;
        answer_is(&c, 1, &answer)?;
        return st.check_global();
    }
    // The client's own liveness check: parts come every 150 ms, so 2 s of silence means
    // the network is gone.
    let silence = secs(2);
    c.until_silent(silence).await;
    let extra = st.rng.below(3_000);
    tokio::time::sleep(ms(extra)).await;
    let (d, id) = (c.delivery.clone(), c.session_id.clone());
    let s = st.session(&id)?;
    let gap = s.last_seq() - d.lock().expect("delivery").last_seq();
    ensure!(
        gap >= 10,
        "only {gap} messages in the gap: the switch did not cost several seconds"
    );
    let mut cellular = st
        .reconnect(1, &token, &id, &d)
        .await
        .or_fail("reconnect")?;
    cellular.until("the result", secs(60), is_result).await?;
    answer_is(&cellular, 1, &answer)?;
    ensure!(
        s.stats().replaced == 1,
        "the half-open Wi-Fi connection was not replaced: {:?}",
        s.stats()
    );
    world.mark("switched");
    drop(c);
    st.check_global()
}

scenario!(
    SEQ_AHEAD,
    "core.EC-037",
    "Reconnect claims a sequence number ahead of the server",
    "A reconnect whose last_seq is beyond anything the server sent is refused with invalid_sequence asking for a refresh, and the session is reset (a later reconnect gets session_not_found); a new session works.",
    ["client.seq_ahead"],
    cores: [
        "engine/src/sessions/core/stream.rs",
        "engine/src/sessions/replay.rs",
        "engine/src/gateway/connection.rs",
    ],
    120,
    seq_ahead
);
async fn seq_ahead(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |_, _| {}).await?;
    c.query("hello there").await?;
    c.until("the result", secs(30), is_result).await?;
    let id = c.session_id.clone();
    c.drop_abruptly();
    let server_last = st.session(&id)?.last_seq();
    let claimed = server_last + 1 + st.rng.below(1_000);
    let tamper = st.new_delivery();
    let query = format!("token={token}&session={id}&last_seq={claimed}");
    let refused = match st.connect(0, &query, &tamper).await {
        Ok(_) => return Err(Failure::correctness("a last_seq ahead was accepted")),
        Err(e) => e,
    };
    ensure!(
        refusal_code(&refused) == Some(ErrorCode::InvalidSequence),
        "expected invalid_sequence, got {refused}"
    );
    ensure!(
        refusal_text(&refused).contains("refresh"),
        "the refusal does not ask for a refresh: {refused}"
    );
    st.eventually("the session is reset", secs(10), || {
        st.sessions.get(&id).is_none()
    })
    .await?;
    let d = st.new_delivery();
    let query = format!("token={token}&session={id}&last_seq={server_last}");
    match st.connect(0, &query, &d).await {
        Err(e) if refusal_code(&e) == Some(ErrorCode::SessionNotFound) => {}
        Err(e) => return Err(unexpected("after the reset", e)),
        Ok(_) => return Err(Failure::correctness("the reset session still attaches")),
    }
    let mut fresh = st.open(0, &format!("token={token}"), &d).await?;
    fresh.query("again").await?;
    fresh.until("a result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    SESSION_GONE,
    "core.EC-038",
    "Reconnect to a session destroyed while disconnected",
    "The session ends by its idle timeout while the client is away; the reconnect gets session_not_found naming why, for as long as the tombstone lasts, then a plain does-not-exist; a new session is offered and works.",
    ["client.reconnect_after_end"],
    cores: [
        "engine/src/sessions/service.rs",
        "engine/src/gateway/server.rs",
        "engine/src/sessions/limits.rs",
    ],
    240,
    session_gone
);
async fn session_gone(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |s, _| {
        s.limits.first_message_timeout = secs(10);
        s.limits.idle_timeout = secs(20);
        s.tombstone_ttl = secs(60);
    })
    .await?;
    c.query("before leaving").await?;
    c.until("the result", secs(30), is_result).await?;
    let (d, id) = (c.delivery.clone(), c.session_id.clone());
    c.drop_abruptly();
    st.eventually("the idle timeout ends the session", secs(40), || {
        st.sessions.get(&id).is_none()
    })
    .await?;
    tokio::time::sleep(secs(st.rng.below(30))).await;
    match st.reconnect(0, &token, &id, &d).await {
        Err(e) if refusal_code(&e) == Some(ErrorCode::SessionNotFound) => ensure!(
            refusal_text(&e).contains("ended") && refusal_text(&e).contains("new session"),
            "the refusal does not say why or what to do: {e}"
        ),
        Err(e) => return Err(unexpected("reconnect", e)),
        Ok(_) => return Err(Failure::correctness("a destroyed session attached")),
    }
    tokio::time::sleep(secs(61)).await;
    match st.reconnect(0, &token, &id, &d).await {
        Err(e) if refusal_code(&e) == Some(ErrorCode::SessionNotFound) => ensure!(
            refusal_text(&e).contains("does not exist"),
            "after the tombstone's time the answer should be plain: {e}"
        ),
        Err(e) => return Err(unexpected("late reconnect", e)),
        Ok(_) => return Err(Failure::correctness("a destroyed session attached")),
    }
    let d2 = st.new_delivery();
    let mut fresh = st.open(0, &format!("token={token}"), &d2).await?;
    ensure!(fresh.session_id != id, "the new session reused the old id");
    fresh.query("new start").await?;
    fresh.until("a result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    NEVER_RETURNS,
    "core.EC-044",
    "Replay buffer of a client that never reconnects",
    "A client leaves mid-answer and never returns: its session's log stays within its count and byte bounds while the answer completes, and empties by itself once the age bound passes; a very late reconnect is told which messages are gone (replay_gap) instead of getting a silent hole.",
    ["client.never_returns"],
    cores: [
        "engine/src/sessions/replay.rs",
        "engine/src/sessions/core/mod.rs",
        "engine/src/sessions/core/stream.rs",
    ],
    240,
    never_returns
);
async fn never_returns(world: World) -> Outcome {
    let limits = ReplayLimits {
        count: 40,
        bytes: 3_000,
        age: secs(30),
    };
    let (mut st, mut c, token) = one_client(&world, |s, _| {
        s.replay = limits;
        s.outbound_max = 20;
        s.answer_pace = Some(ms(20));
    })
    .await?;
    let answer = words(150, "x");
    c.query(&answer).await?;
    deltas(&mut c, 2).await?;
    let (d, id) = (c.delivery.clone(), c.session_id.clone());
    c.drop_abruptly();
    let s = st.session(&id)?;
    st.eventually("the answer completes unwatched", secs(30), || {
        s.stats().queries == 1 && s.state() == engine::sessions::SessionState::Idle
    })
    .await?;
    let (bytes, entries) = s.log_usage();
    ensure!(
        entries <= limits.count && bytes <= limits.bytes && entries > 0,
        "log holds {entries} messages, {bytes} bytes"
    );
    st.eventually("the log ages out by itself", secs(40), || {
        s.log_usage() == (0, 0)
    })
    .await?;
    let mut late = st
        .reconnect(0, &token, &id, &d)
        .await
        .or_fail("reconnect")?;
    let gap = late
        .until("replay_gap", secs(10), is_error(ErrorCode::ReplayGap))
        .await?;
    ensure!(
        matches!(&gap.event, ServerEvent::Error { message, .. } if message.contains("HTTP")),
        "the gap notice does not say where results are: {gap:?}"
    );
    late.query("back").await?;
    late.until("a result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    MULTI_PART_RESUME,
    "core.EC-048",
    "Reconnect in the middle of a multi-part result",
    "An answer streamed in many parts is cut several times at random parts; each reconnect resumes after the last part the client has (the sequence number is the resume offset), so the reassembled answer has every part exactly once.",
    ["net.reset"],
    cores: ["engine/src/sessions/core/stream.rs", "engine/src/sessions/replay.rs"],
    180,
    multi_part_resume,
    plan: multi_part_plan
);
/// Up to 4 cuts (client 0's connection reset) at the parts the body marks.
fn multi_part_plan(seed: u64) -> sim::FaultPlan {
    plans::reset_client_at_each(plans::channel(seed), "cut", 4)
}
async fn multi_part_resume(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |s, _| s.answer_pace = Some(ms(100))).await?;
    let answer = words(50, "part");
    c.query(&answer).await?;
    let (d, id) = (c.delivery.clone(), c.session_id.clone());
    let cuts = 2 + st.rng.below(3);
    for cut in 1..=cuts {
        deltas(&mut c, 1 + st.rng.below(6) as usize).await?;
        world.mark(&format!("cut-{cut}"));
        c.drop_abruptly();
        tokio::time::sleep(ms(st.rng.below(800))).await;
        c = st
            .reconnect(0, &token, &id, &d)
            .await
            .or_fail("reconnect")?;
    }
    c.until("the result", secs(60), is_result).await?;
    answer_is(&c, 1, &answer)?;
    let s = st.session(&id)?;
    ensure!(
        s.stats().connections == cuts + 1,
        "{} connections for {cuts} cuts",
        s.stats().connections
    );
    st.check_global()
}

scenario!(
    TAB_CLOSED,
    "core.EC-009",
    "Browser tab closed while a query runs",
    "The query keeps running with nobody connected and its output is kept for a reconnect; a client back within the timeout sees it all; when nobody comes back within 60 s the query is interrupted, then and not before.",
    ["client.tab_closed"],
    cores: ["engine/src/sessions/core/mod.rs", "engine/src/sessions/core/stream.rs"],
    300,
    tab_closed
);
async fn tab_closed(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |s, _| s.answer_pace = Some(secs(1))).await?;
    let timeout = st.sessions.config().detached_query_timeout;
    ensure!(
        timeout == secs(60),
        "the detached-query timeout is not 60 s"
    );
    // First close: back after a while, within the timeout.
    let answer = words(40, "q");
    c.query(&answer).await?;
    deltas(&mut c, 2).await?;
    let (d, id) = (c.delivery.clone(), c.session_id.clone());
    c.drop_abruptly();
    tokio::time::sleep(secs(10 + st.rng.below(40))).await;
    let s = st.session(&id)?;
    ensure!(s.stats().interrupts == 0, "interrupted before the timeout");
    let mut c = st
        .reconnect(0, &token, &id, &d)
        .await
        .or_fail("reconnect")?;
    c.until("the result", secs(60), is_result).await?;
    answer_is(&c, 1, &answer)?;
    // Second close: nobody comes back.
    c.query(&words(200, "long")).await?;
    deltas(&mut c, 2).await?;
    c.drop_abruptly();
    st.eventually("the server notices", secs(10), || !s.is_attached())
        .await?;
    let left_at = st.sessions.now();
    st.eventually("the orphaned query is interrupted", secs(90), || {
        s.stats().interrupts == 1
    })
    .await?;
    let after = st.sessions.now() - left_at;
    ensure!(
        after >= timeout && after <= timeout + secs(2),
        "interrupted {} ms after the client left, timeout {} ms",
        after.as_millis(),
        timeout.as_millis()
    );
    ensure!(
        s.stats().queries == 2,
        "the query did not keep running meanwhile"
    );
    st.check_global()
}
