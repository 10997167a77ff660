//! The model API's rate limits met by many sessions at once: a 429 to all of them
//! (core.EC-100) and an account's request budget running out (EC-107). One instance's
//! sessions share one client: one breaker, one rate-limit window and one pace.

use super::kit::*;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::{ChannelStage, with_upstream};
use crate::stage::client::SimClient;
use engine::protocol::{ErrorCode, ServerEvent};
use sim::upstream::UpstreamMode;
use sim::{FaultPlan, World};
use std::time::Duration;
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&MANY_LIMITED, &ACCOUNT_LIMIT]
}

/// Opens `n` sessions of different users, each on its own client host.
async fn sessions(st: &mut ChannelStage, n: usize) -> Result<Vec<SimClient>, Failure> {
    let mut clients = Vec::new();
    for i in 0..n {
        let token = st.token(&format!("user{i}"), "member", secs(3600));
        let d = st.new_delivery();
        clients.push(st.open(i, &format!("token={token}"), &d).await?);
    }
    Ok(clients)
}

const SESSIONS: usize = 6;

/// Client `i` sends query after query until `until`: the next once the last is
/// answered, or 5 s after it was refused as rate limited. Returns how many were
/// answered.
async fn keep_busy(i: usize, c: &mut SimClient, until: Instant) -> Result<u32, Failure> {
    let mut answered = 0u32;
    let mut query = 0u64;
    while Instant::now() < until {
        query += 1;
        c.query(&format!("busy {i} {query}")).await?;
        match outcome(c, secs(120)).await? {
            ServerEvent::Result { .. } => answered += 1,
            ServerEvent::Error {
                code: ErrorCode::UpstreamRateLimited,
                ..
            } => tokio::time::sleep(secs(5)).await,
            other => {
                return Err(Failure::correctness(format!(
                    "session {i} query {query}: {other:?}"
                )));
            }
        }
    }
    Ok(answered)
}

scenario!(
    MANY_LIMITED,
    "core.EC-100",
    "Many sessions receive 429 at the same time",
    "Six sessions query at once while the model API answers 429 (Retry-After 20 to 59 s): each is told it is rate limited and keeps its session; the 429s are not retried, and from the moment the first reaches the engine no session's call goes out until the window ends (one window shared by every session: their queries sent again meanwhile are refused without a call); after the window and the API's recovery, every session's query is answered.",
    ["upstream.rate_limited"],
    cores: [
        "engine/src/upstream/client/mod.rs",
        "engine/src/upstream/client/streamed.rs",
        "engine/src/sessions/upstream.rs",
    ],
    600,
    many_limited,
    plan: many_limited_plan
);
/// 429 for every call once the sessions are open, until the body marks the recovery.
fn many_limited_plan(seed: u64) -> FaultPlan {
    let retry_after_ms = 1_000 * (20 + crate::kit::plans::plan_rng(seed).below(40));
    crate::kit::plans::channel_upstream(seed)
        .after(
            "limited",
            0,
            mode(UpstreamMode::RateLimited { retry_after_ms }),
        )
        .after("recovered", 0, mode(UpstreamMode::Serving))
}
async fn many_limited(world: World) -> Outcome {
    let mut st = ChannelStage::start(&world, |s, _| {
        with_upstream(s);
        s.pool.size_target = SESSIONS;
    })
    .await?;
    st.ready(secs(60)).await?;
    let up = upstream_of(&st)?;
    let client = engine_client(&st)?;
    let mut clients = sessions(&mut st, SESSIONS).await?;
    let limited = world.mark("limited");
    let retry_after = limited.iter().find_map(|f| match f {
        sim::faults::Fault::UpstreamMode {
            set: UpstreamMode::RateLimited { retry_after_ms },
            ..
        } => Some(Duration::from_millis(*retry_after_ms)),
        _ => None,
    });
    let calls_before = message_calls(&up).len();
    for (i, c) in clients.iter_mut().enumerate() {
        c.query(&format!("all at once {i}")).await?;
    }
    let Some(retry_after) = retry_after else {
        for c in &mut clients {
            let (_, result) = wait_answer(c, 1).await?;
            ensure!(result.starts_with("all at once"), "{result:?}");
        }
        return st.check_global();
    };
    for c in &mut clients {
        let told = outcome(c, secs(60)).await?;
        ensure!(
            matches!(&told, ServerEvent::Error { code: ErrorCode::UpstreamRateLimited, message } if message.contains("retry in") && message.contains("session is kept")),
            "a session was not told to retry later with its session kept: {told:?}"
        );
    }
    let calls = message_calls(&up)[calls_before..].to_vec();
    let first_429 = calls
        .iter()
        .find(|(_, status)| *status == 429)
        .map(|(at, _)| *at)
        .ok_or_else(|| Failure::correctness("no call met the 429"))?;
    ensure!(
        calls.len() <= SESSIONS,
        "{} calls for {SESSIONS} queries: a 429 was retried",
        calls.len()
    );
    // The second wave, inside the window: refused here, not sent.
    let held_before = client.stats().held_back;
    for (i, c) in clients.iter_mut().enumerate() {
        c.query(&format!("again inside the window {i}")).await?;
        let told = outcome(c, secs(30)).await?;
        ensure!(
            matches!(
                &told,
                ServerEvent::Error {
                    code: ErrorCode::UpstreamRateLimited,
                    ..
                }
            ),
            "a query inside the window was not refused as rate limited: {told:?}"
        );
    }
    ensure!(
        client.stats().held_back >= held_before + SESSIONS as u64,
        "the window did not hold the second wave back: {:?}",
        client.stats()
    );
    let inside: Vec<_> = message_calls(&up)
        .into_iter()
        .filter(|(at, _)| *at > first_429 + secs(1) && *at + secs(1) < first_429 + retry_after)
        .collect();
    ensure!(
        inside.is_empty(),
        "{} calls went out inside the shared {retry_after:?} window: {inside:?}",
        inside.len()
    );
    tokio::time::sleep_until(first_429 + retry_after + secs(1)).await;
    world.mark("recovered");
    for (i, c) in clients.iter_mut().enumerate() {
        let text = format!("after the window {i}");
        c.query(&text).await?;
        let (_, result) = wait_answer(c, 3).await?;
        ensure!(result == expected_answer(&text), "{result:?}");
    }
    ensure!(!client.is_open(), "rate limiting opened the breaker");
    st.check_global()
}

scenario!(
    ACCOUNT_LIMIT,
    "core.EC-107",
    "Account-level rate limit returns 429",
    "Four sessions query continuously against an account allowed 10 to 20 calls a minute: the engine reads the rate-limit headers and, once a fifth of the budget is left, spreads the calls left over the time left and waits for the reset when none are (upstream.pacing logged); over 3 minutes at most 4 calls meet a 429 (no retry storm; without the pace each window would end in one per session), every query is answered or told when to retry, and every session is kept.",
    ["upstream.account_limit"],
    cores: [
        "engine/src/upstream/pacing.rs",
        "engine/src/upstream/client/streamed.rs",
        "engine/src/upstream/http.rs",
    ],
    900,
    account_limit,
    plan: account_limit_plan
);
/// The account's budget from the moment the sessions are open.
fn account_limit_plan(seed: u64) -> FaultPlan {
    let limit = 10 + crate::kit::plans::plan_rng(seed).below(11);
    crate::kit::plans::channel_upstream(seed).after(
        "busy",
        0,
        mode(UpstreamMode::AccountLimit {
            limit,
            window_ms: 60_000,
        }),
    )
}
async fn account_limit(world: World) -> Outcome {
    const BUSY: usize = 4;
    let mut st = ChannelStage::start(&world, |s, _| {
        with_upstream(s);
        s.pool.size_target = BUSY;
    })
    .await?;
    st.ready(secs(60)).await?;
    let up = upstream_of(&st)?;
    let client = engine_client(&st)?;
    let mut clients = sessions(&mut st, BUSY).await?;
    let limited = !world.mark("busy").is_empty();
    let calls_before = message_calls(&up).len();
    let until = Instant::now() + secs(180);
    let busy = clients
        .iter_mut()
        .enumerate()
        .map(|(i, c)| keep_busy(i, c, until));
    let mut answered = 0;
    for n in futures_util::future::join_all(busy).await {
        answered += n?;
    }
    let calls = message_calls(&up)[calls_before..].to_vec();
    let refused = calls.iter().filter(|(_, s)| *s == 429).count();
    ensure!(answered > 0, "no query was answered in 3 minutes");
    for c in &clients {
        ensure!(
            st.sessions.get(&c.session_id).is_some(),
            "a session was lost to the rate limit"
        );
    }
    if !limited {
        ensure!(refused == 0, "{refused} 429s with no limit");
        return st.check_global();
    }
    ensure!(
        refused <= BUSY,
        "{refused} calls met a 429 over {} calls: the pace did not follow the headers",
        calls.len()
    );
    ensure!(
        client.stats().paced > 0 && st.faults.count("upstream.pacing") >= 1,
        "the engine never slowed its pace near the limit: {:?}",
        client.stats()
    );
    st.check_global()
}
