//! The model API failing a query: 5xx storms (core.EC-104), silence (EC-105), a stream
//! that breaks off (EC-106) and an empty answer (EC-112). The faults are the simulated
//! model API's (`SimUpstream` on `upstream-0`), switched by the plan when the body marks
//! that a first answer came through; each scenario judges the no-fault run too.

use super::kit::*;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::model::*;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::{ChannelStage, with_upstream};
use crate::stage::client::SimClient;
use engine::protocol::{ErrorCode, ServerEvent};
use engine::upstream::MESSAGES_PATH;
use sim::upstream::UpstreamMode;
use sim::{FaultPlan, World};
use std::time::Duration;
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&SERVER_ERRORS, &TIMES_OUT, &DROPS_MID_STREAM, &EMPTY_ANSWER]
}

scenario!(
    SERVER_ERRORS,
    "core.EC-104",
    "Upstream returns HTTP 500",
    "A 5xx storm from the model API: each query's call is tried 4 times (3 retries) before the user gets upstream_unavailable, the retries spread by full-jitter backoff (each wait at most its nominal 0.5, 1 or 2 s, and not the un-jittered schedule); the breaker opens after 3 failed calls and the next query is refused at once without a call; once the API recovers, the breaker's trial closes it, the user is told, and the same session answers.",
    ["upstream.failing"],
    cores: [
        "engine/src/upstream/retry.rs",
        "engine/src/upstream/client/streamed.rs",
        "engine/src/upstream/breaker.rs",
        "engine/src/sessions/upstream.rs",
    ],
    600,
    server_errors,
    plan: server_errors_plan
);
/// 503 for every call from the first answer on; served again when the body marks it.
fn server_errors_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed)
        .after("answered", 0, mode(UpstreamMode::Failing))
        .after("recovered", 0, mode(UpstreamMode::Serving))
}
async fn server_errors(world: World) -> Outcome {
    let Some((st, mut ana)) =
        faulted_after_first_answer(&world, "before the storm", "no storm at all").await?
    else {
        return Ok(());
    };
    let up = upstream_of(&st)?;
    let client = engine_client(&st)?;
    let policy = client.config().retry.clone();
    let nominal = |i: usize| policy.delay_first * policy.factor.pow(i as u32);
    let mut early = 0; // retries sooner than the un-jittered schedule allows
    let mut failed = 0u32;
    let mut query = 1u64;
    let answered_before = client.stats().answered;
    while !client.is_open() {
        // A call answered meanwhile (a pre-warm check sent before the storm, answered
        // late) closes the count again: 3 more failures are needed.
        let answered_since = client.stats().answered - answered_before;
        ensure!(
            failed < 3 * (1 + answered_since as u32),
            "{failed} failed queries and the breaker is still closed"
        );
        query += 1;
        let text = format!("during the storm {failed}");
        ana.query(&text).await?;
        let told = ana
            .until(
                "the unavailable error",
                secs(90),
                is_error(ErrorCode::UpstreamUnavailable),
            )
            .await?;
        let told_at = Instant::now();
        let calls = calls_for(&up, &text);
        // The breaker opening (on this call's failures plus earlier ones, pre-warm
        // checks included) stops the retries short, or refuses the query outright.
        ensure!(
            calls.len() == 4 || client.is_open(),
            "query {query}'s call was tried {} times, not 1 + 3 retries: {calls:?}",
            calls.len()
        );
        for (i, gap) in calls.windows(2).map(|w| w[1] - w[0]).enumerate() {
            ensure!(
                gap <= nominal(i) + secs(2),
                "retry {} waited {gap:?}, past its nominal {:?}",
                i + 1,
                nominal(i)
            );
            early += usize::from(gap + Duration::from_millis(50) < nominal(i));
        }
        ensure!(
            calls.last().is_none_or(|last| told_at >= *last),
            "the user was told before the last retry: {told:?}"
        );
        failed += 1;
    }
    ensure!(
        early > 0,
        "every retry waited its full nominal delay over {failed} queries: no jitter"
    );
    ensure!(
        client.stats().breaker_opened == 1,
        "the breaker opened {} times",
        client.stats().breaker_opened
    );
    let asked = Instant::now();
    ana.query("while the breaker is open").await?;
    ana.until(
        "the fast refusal",
        secs(5),
        is_error(ErrorCode::UpstreamUnavailable),
    )
    .await?;
    // (A pre-warm check sent just before the breaker opened may still arrive: only
    // this query's calls count.)
    let calls = calls_for(&up, "while the breaker is open");
    ensure!(
        asked.elapsed() < secs(1) && calls.is_empty(),
        "an open breaker still called the API ({} calls) or waited {:?}",
        calls.len(),
        asked.elapsed()
    );
    world.mark("recovered");
    ana.until(
        "the API-is-back notice",
        secs(120),
        is_status("upstream_available"),
    )
    .await?;
    answered(&mut ana, query + 2, "after the storm").await?;
    st.check_global()
}

scenario!(
    TIMES_OUT,
    "core.EC-105",
    "Upstream request times out",
    "The model API stops answering: each attempt of a query's call is cut at the request timeout (30 s) and the call as a whole, retries included, at the 60 s the answer may take to begin; the query fails with upstream_unavailable, each timeout is logged (the engine's upstream.timed_out), the session is kept and the query, sent again once the API answers, is answered.",
    ["upstream.timeout"],
    cores: [
        "engine/src/upstream/client/streamed.rs",
        "engine/src/upstream/retry.rs",
        "engine/src/sessions/upstream.rs",
    ],
    600,
    times_out,
    plan: times_out_plan
);
/// Every call hangs (the swarm's timeout rate at 1) from the first answer on, until the
/// body marks the recovery.
fn times_out_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed)
        .after("answered", 0, hang(true))
        .after("recovered", 0, hang(false))
}
async fn times_out(world: World) -> Outcome {
    let Some((st, mut ana)) =
        faulted_after_first_answer(&world, "before the silence", "no silence").await?
    else {
        return Ok(());
    };
    let client = engine_client(&st)?;
    let config = client.config().clone();
    let before = client.stats();
    let asked = Instant::now();
    ana.query("into the silence").await?;
    let told = ana
        .until(
            "the unavailable error",
            secs(120),
            is_error(ErrorCode::UpstreamUnavailable),
        )
        .await?;
    let waited = asked.elapsed();
    ensure!(
        waited <= config.first_byte_timeout + secs(2),
        "the query waited {waited:?}, past the {:?} its answer may take to begin",
        config.first_byte_timeout
    );
    ensure!(
        waited >= config.request_timeout,
        "the query failed after {waited:?}, before one request timeout ({:?})",
        config.request_timeout
    );
    ensure!(
        matches!(&told.event, ServerEvent::Error { message, .. } if message.contains("session is kept")),
        "the user was not told the query may be sent again: {told:?}"
    );
    let timeouts = client.stats().timeouts - before.timeouts;
    let logged = st.faults.count("upstream.timed_out");
    ensure!(
        timeouts >= 1 && logged >= timeouts,
        "{timeouts} attempts timed out but {logged} were logged"
    );
    ensure!(
        st.sessions.get(&ana.session_id).is_some(),
        "the timeout ended the session"
    );
    world.mark("recovered");
    // The breaker may have opened on the silence: the query is sent again once it lets
    // calls through.
    let mut query = 2;
    loop {
        query += 1;
        ana.query("after the silence").await?;
        let end = ana
            .until("an answer or a refusal", secs(120), |m| {
                matches!(
                    m.event,
                    ServerEvent::Result { .. } | ServerEvent::Error { .. }
                )
            })
            .await?;
        if matches!(end.event, ServerEvent::Result { .. }) {
            break;
        }
        ensure!(
            query < 8,
            "the query was never answered after the recovery: {end:?}"
        );
        tokio::time::sleep(secs(30)).await;
    }
    answer_is_model(&ana, query, "after the silence")?;
    st.check_global()
}

scenario!(
    DROPS_MID_STREAM,
    "core.EC-106",
    "Upstream connection drops mid-stream",
    "The model API's connection drops halfway through a streamed answer: the client got the deltas sent so far, then answer_broke_off telling it to discard them; the partial length is logged (upstream.answer_broke_off); the call is not retried (one call for the query) and the worker never carries the partial answer out (no result); the session is kept and the query sent again is answered whole.",
    ["upstream.dropped"],
    cores: [
        "engine/src/upstream/stream/mod.rs",
        "engine/src/upstream/client/streamed.rs",
        "engine/src/sessions/upstream.rs",
    ],
    600,
    drops_mid_stream,
    plan: drops_plan
);
/// Every answer drops mid-stream (the swarm's drop rate at 1) from the first answer on,
/// until the body marks the recovery.
fn drops_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed)
        .after("answered", 0, drop_answers(true))
        .after("recovered", 0, drop_answers(false))
}
async fn drops_mid_stream(world: World) -> Outcome {
    let Some((st, mut ana)) =
        faulted_after_first_answer(&world, "before the drop", "no drop").await?
    else {
        return Ok(());
    };
    let up = upstream_of(&st)?;
    // Long enough to stream in many deltas, so half of it is something.
    let text = words(40, "partial");
    let seq = ana.delivery.lock().expect("delivery poisoned").last_seq();
    ana.query(&text).await?;
    let told = ana
        .until(
            "the broke-off error",
            secs(120),
            is_error(ErrorCode::AnswerBrokeOff),
        )
        .await?;
    let got = model_deltas(&ana, 2).concat();
    ensure!(
        !got.is_empty() && text.starts_with(&got) && got.len() < text.len(),
        "the client did not get a proper prefix of the answer before the drop: {} of {} bytes",
        got.len(),
        text.len()
    );
    ensure!(
        matches!(&told.event, ServerEvent::Error { message, .. } if message.contains(&format!("after {} bytes", got.len())) && message.contains("discard")),
        "the error does not say how much to discard: {told:?}"
    );
    ensure!(
        st.faults.count("upstream.answer_broke_off") >= 1,
        "the partial answer's length was not logged"
    );
    let calls = calls_for(&up, &text);
    ensure!(
        calls.len() == 1,
        "a call whose answer had begun was tried {} times",
        calls.len()
    );
    ana.until_silent(secs(5)).await;
    ensure!(
        result_of(&ana, 2).is_none() && errors_after(&ana, seq).len() == 1,
        "the partial answer was carried out or told twice"
    );
    world.mark("recovered");
    ana.query(&text).await?;
    let (_, result) = wait_answer(&mut ana, 3).await?;
    ensure!(
        result == expected_answer(&text),
        "the query sent again was not answered whole: {result:?}"
    );
    answer_is_model(&ana, 3, &text)?;
    st.check_global()
}

scenario!(
    EMPTY_ANSWER,
    "core.EC-112",
    "Upstream returns an empty response",
    "The model API answers with an empty text: the engine treats it as an error (logged as upstream.empty_answer), the query fails with upstream_unavailable saying it may be sent again, nothing reaches the worker, the session is kept, and the query sent again once the API answers properly is answered.",
    ["upstream.empty"],
    cores: [
        "engine/src/upstream/client/streamed.rs",
        "engine/src/sessions/upstream.rs",
    ],
    600,
    empty_answer,
    plan: empty_plan
);
/// Every answer is empty (the swarm's empty rate at 1) from the first answer on, until
/// the body marks the recovery.
fn empty_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed)
        .after("answered", 0, empty_answers(true))
        .after("recovered", 0, empty_answers(false))
}
async fn empty_answer(world: World) -> Outcome {
    let Some((st, mut ana)) =
        faulted_after_first_answer(&world, "before the void", "no void").await?
    else {
        return Ok(());
    };
    ana.query("into the void").await?;
    let told = ana
        .until(
            "the unavailable error",
            secs(120),
            is_error(ErrorCode::UpstreamUnavailable),
        )
        .await?;
    ensure!(
        matches!(&told.event, ServerEvent::Error { message, .. } if message.contains("empty") && message.contains("send it again")),
        "the user was not told the answer was empty and may be sent again: {told:?}"
    );
    ensure!(
        st.faults.count("upstream.empty_answer") >= 1,
        "the empty answer was not logged"
    );
    ensure!(
        result_of(&ana, 2).is_none() && model_deltas(&ana, 2).is_empty(),
        "an empty answer reached the worker or the client"
    );
    world.mark("recovered");
    answered(&mut ana, 3, "out of the void").await?;
    st.check_global()
}

/// The one-client stage of a scenario whose plan sets its fault going once a first
/// query was answered (the body marks `answered`). `None`: the plan had no such fault
/// (shrunk away), and the run was judged without it: a second query answered, the
/// global oracle kept.
async fn faulted_after_first_answer(
    world: &World,
    before: &str,
    baseline: &str,
) -> Result<Option<(ChannelStage, SimClient)>, Failure> {
    let (st, mut ana, _) = one_client(world, |s, _| with_upstream(s)).await?;
    answered(&mut ana, 1, before).await?;
    if world.mark("answered").is_empty() {
        answered(&mut ana, 2, baseline).await?;
        st.check_global()?;
        return Ok(None);
    }
    Ok(Some((st, ana)))
}

/// Times at which the model API received messages calls whose query is `text`.
fn calls_for(up: &engine::upstream::LocalUpstream, text: &str) -> Vec<Instant> {
    let head: String = text.chars().take(64).collect();
    up.requests()
        .iter()
        .filter(|r| r.path == MESSAGES_PATH && r.input_head.as_deref() == Some(head.as_str()))
        .map(|r| r.at)
        .collect()
}
