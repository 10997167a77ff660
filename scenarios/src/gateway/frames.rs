//! What a client may send: malformed JSON (core.EC-029), unknown types (EC-030), binary
//! frames (EC-031), a frame at exactly the size limit (EC-027), a second query while
//! one runs (EC-032, EC-020), interrupts with nothing running (EC-034).

use crate::ensure;
use crate::kit::channel::*;
use crate::scenario::{Outcome, Scenario};
use engine::protocol::{ErrorCode, ServerEvent};
use engine::sessions::QueryMode;
use sim::World;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &EXACT_LIMIT,
        &MALFORMED_JSON,
        &UNKNOWN_TYPE,
        &BINARY_FRAME,
        &SECOND_QUERY_REJECTED,
        &SECOND_QUERY_QUEUED,
        &IDLE_INTERRUPT,
    ]
}

scenario!(
    EXACT_LIMIT,
    "core.EC-027",
    "Inbound message exactly at the length limit",
    "A query frame of exactly the configured maximum number of characters (multi-byte characters included) is accepted and answered; one character more is refused with message_too_large and the session carries on.",
    ["client.frame_at_limit"],
    cores: ["engine/src/protocol.rs", "engine/src/gateway/inbound.rs"],
    120,
    exact_limit
);
async fn exact_limit(world: World) -> Outcome {
    let limit = 2_000 + (world.rng("scenario").below(1_000) as usize);
    let (st, mut c, _) = one_client(&world, |_, g| g.message_chars_max = limit).await?;
    let frame_of = |n: usize| format!(r#"{{"type":"query","text":"{}"}}"#, "é".repeat(n));
    let overhead = frame_of(0).chars().count();
    let exact = frame_of(limit - overhead);
    ensure!(
        exact.chars().count() == limit,
        "test frame has {} chars, not {limit}",
        exact.chars().count()
    );
    c.send_text(&exact).await?;
    c.until("the result of the frame at the limit", secs(30), is_result)
        .await?;
    c.send_text(&frame_of(limit - overhead + 1)).await?;
    c.until(
        "message_too_large",
        secs(10),
        is_error(ErrorCode::MessageTooLarge),
    )
    .await?;
    c.query("still alive").await?;
    c.until("a later result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    MALFORMED_JSON,
    "core.EC-029",
    "Client sends malformed JSON",
    "Malformed JSON gets an error with code invalid_json on the stream; the connection and session stay usable.",
    ["client.malformed_json"],
    cores: ["engine/src/protocol.rs", "engine/src/gateway/inbound.rs"],
    120,
    malformed_json
);
async fn malformed_json(world: World) -> Outcome {
    let (st, mut c, _) = one_client(&world, |_, _| {}).await?;
    for bad in [
        "{\"type\":\"query\",",
        "not json",
        "{\"type\":\"query\" \"text\":1}",
    ] {
        c.send_text(bad).await?;
        c.until("invalid_json", secs(10), is_error(ErrorCode::InvalidJson))
            .await?;
    }
    c.query("after garbage").await?;
    c.until("a result after garbage", secs(30), is_result)
        .await?;
    ensure!(!c.closed, "the connection was closed by malformed input");
    st.check_global()
}

scenario!(
    UNKNOWN_TYPE,
    "core.EC-030",
    "Client sends an unknown message type",
    "An unknown message type is not acted on: the client gets a non-fatal unknown_message_type error (logged as a warning on the server) and the session continues.",
    ["client.unknown_type"],
    cores: [
        "engine/src/protocol.rs",
        "engine/src/gateway/inbound.rs",
        "engine/src/gateway/connection.rs",
    ],
    120,
    unknown_type
);
async fn unknown_type(world: World) -> Outcome {
    let (st, mut c, _) = one_client(&world, |_, _| {}).await?;
    c.send_text(r#"{"type":"telemetry_v9","payload":{"a":1}}"#)
        .await?;
    c.until(
        "unknown_message_type",
        secs(10),
        is_error(ErrorCode::UnknownMessageType),
    )
    .await?;
    c.query("next").await?;
    c.until("a result", secs(30), is_result).await?;
    ensure!(
        st.gateway
            .stats
            .frames_refused
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1,
        "one frame refused expected"
    );
    st.check_global()
}

scenario!(
    BINARY_FRAME,
    "core.EC-031",
    "Client sends a binary frame",
    "A binary frame is refused with binary_not_supported telling the client to send text; the connection stays open and text frames keep working.",
    ["client.binary_frame"],
    cores: ["engine/src/gateway/inbound.rs"],
    120,
    binary_frame
);
async fn binary_frame(world: World) -> Outcome {
    let (st, mut c, _) = one_client(&world, |_, _| {}).await?;
    c.send_binary(&[0xde, 0xad, 0xbe, 0xef]).await?;
    let m = c
        .until(
            "binary_not_supported",
            secs(10),
            is_error(ErrorCode::BinaryNotSupported),
        )
        .await?;
    ensure!(
        matches!(&m.event, ServerEvent::Error { message, .. } if message.contains("text")),
        "the error should say text frames are expected: {m:?}"
    );
    c.query("text works").await?;
    c.until("a result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    SECOND_QUERY_REJECTED,
    "core.EC-032",
    "Second user message while a query runs",
    "With rejection configured, a second query while one runs gets query_in_progress and does not disturb the running query, whose answer arrives complete.",
    ["client.concurrent_query"],
    cores: ["engine/src/sessions/core/queries.rs"],
    120,
    second_query_rejected
);
async fn second_query_rejected(world: World) -> Outcome {
    let (st, mut c, _) = one_client(&world, |s, _| {
        s.queries = QueryMode::Reject;
        s.answer_pace = Some(ms(200));
    })
    .await?;
    c.query(&words(10, "a")).await?;
    c.until("processing", secs(10), is_status("processing"))
        .await?;
    c.query("intruder").await?;
    c.until(
        "query_in_progress",
        secs(10),
        is_error(ErrorCode::QueryInProgress),
    )
    .await?;
    c.until("the first result", secs(30), is_result).await?;
    let (deltas, result) = answer_of(&c, 1);
    ensure!(
        deltas.len() == 10 && result.as_deref() == Some(words(10, "a").as_str()),
        "first answer disturbed: {deltas:?} {result:?}"
    );
    ensure!(answer_of(&c, 2).1.is_none(), "the rejected query ran");
    st.check_global()
}

scenario!(
    SECOND_QUERY_QUEUED,
    "core.EC-020",
    "New message before the previous query finished",
    "With queueing configured, a message sent during a query is queued (the client is told its position) and runs only after the first query's final result: answers never interleave.",
    ["client.concurrent_query"],
    cores: ["engine/src/sessions/core/queries.rs"],
    120,
    second_query_queued
);
async fn second_query_queued(world: World) -> Outcome {
    let (st, mut c, _) = one_client(&world, |s, _| {
        s.queries = QueryMode::Queue;
        s.answer_pace = Some(ms(100));
    })
    .await?;
    c.query(&words(8, "a")).await?;
    c.until("processing", secs(10), is_status("processing"))
        .await?;
    c.query(&words(3, "b")).await?;
    c.until("queued", secs(10), |m| {
        matches!(m.event, ServerEvent::Queued { position: 1, .. })
    })
    .await?;
    c.until("first result", secs(30), is_result).await?;
    c.until("second result", secs(30), is_result).await?;
    let d = c.delivery.lock().expect("delivery");
    let mut finished_first = false;
    for m in &d.messages {
        match &m.event {
            ServerEvent::Result { query: 1, .. } => finished_first = true,
            ServerEvent::Delta { query: 2, .. } => {
                ensure!(finished_first, "query 2 streamed before query 1 finished")
            }
            _ => {}
        }
    }
    drop(d);
    st.check_global()
}

scenario!(
    IDLE_INTERRUPT,
    "core.EC-034",
    "Interrupt with no active query",
    "An interrupt with nothing running is ignored without an error; repeated interrupts during a query stop it once; the session keeps working.",
    ["client.idle_interrupt"],
    cores: ["engine/src/sessions/core/queries.rs"],
    120,
    idle_interrupt
);
async fn idle_interrupt(world: World) -> Outcome {
    let (st, mut c, _) = one_client(&world, |s, _| s.answer_pace = Some(ms(200))).await?;
    c.send_text(r#"{"type":"interrupt"}"#).await?;
    c.send_text(r#"{"type":"interrupt"}"#).await?;
    c.query(&words(20, "w")).await?;
    c.until("processing", secs(10), is_status("processing"))
        .await?;
    for _ in 0..3 {
        c.send_text(r#"{"type":"interrupt"}"#).await?;
    }
    c.until("interrupted", secs(10), |m| {
        matches!(m.event, ServerEvent::Interrupted { .. })
    })
    .await?;
    c.query("again").await?;
    c.until("a result", secs(30), is_result).await?;
    let d = c.delivery.lock().expect("delivery");
    let errors = d
        .messages
        .iter()
        .filter(|m| matches!(m.event, ServerEvent::Error { .. }))
        .count();
    let interrupted = d
        .messages
        .iter()
        .filter(|m| matches!(m.event, ServerEvent::Interrupted { .. }))
        .count();
    ensure!(errors == 0, "interrupts produced {errors} errors");
    ensure!(
        interrupted == 1,
        "{interrupted} interruptions for one query"
    );
    drop(d);
    st.check_global()
}
