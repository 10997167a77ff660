//! The model API's 429 window shared across instances (`sim.upstream.shared-rate-window`,
//! a self-check outside the catalog, beside core.EC-100's window shared by one
//! instance's sessions): two engine instances of one account use the state service on
//! host `state-0` (the lock service their session locks use), and a 429 either reads
//! holds every instance back.
//!
//! Chosen where the catalog leaves it open: the instance that reads the 429 publishes
//! the window before its session is told; another instance asks before each call it
//! is not already holding back, and is held back for what is left of it. When the
//! service cannot answer (here a partition that holds its traffic), an instance waits
//! at most the share's answer bound, then follows its own 429s alone: one call per
//! instance may meet the limit, never one per session.

use super::kit::*;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::fail::OrFail;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::{ChannelStage, ENGINE_HOST, with_upstream};
use crate::stage::client::SimClient;
use engine::protocol::{ErrorCode, ServerEvent};
use engine::sessions::lock::{LockLimits, LockServer, SessionLockConfig};
use engine::upstream::{SHARE_ANSWER_BOUND, SHARE_RETRY_AFTER, UpstreamClient};
use engine::{Engine, LockChoice};
use sim::faults::{Fault, PartitionMode};
use sim::upstream::UpstreamMode;
use sim::{FaultPlan, World};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&SHARED_WINDOW]
}

/// The host of the state service the instances share.
const STATE_HOST: &str = "state-0";
const STATE_PORT: u16 = 7300;
/// A refusal without a call reaches the client within this (round trips, the worker's
/// turn), beyond the share's answer bound when the service is silent.
const TOLD_SLACK: Duration = Duration::from_millis(500);

scenario!(
    SHARED_WINDOW,
    "sim.upstream.shared-rate-window",
    "Instances of one account share the model API's 429 window through their state service",
    "Instances b and c use the lock service on state-0. A session of b meets a 429 (Retry-After 20 to 59 s): b publishes the window before its session is told; then c's two sessions and b's other one are told they are rate limited, without a call, c's saying the time left of b's window; until the window ends exactly one messages call reached the model API. After it every session is answered. With state-0 cut off from the instances (traffic held) and the API limiting again, c's first query is told it is rate limited within the share's 250 ms answer bound plus 500 ms (c follows its own window alone, the outage met once), and each instance sends at most one call into the new window, its other session held back. Once healed, the share is asked again and every session is answered.",
    ["upstream.rate_limited", "net.partition"],
    cores: [
        "engine/src/upstream/client/window_share.rs",
        "engine/src/upstream/client/mod.rs",
        "engine/src/sessions/lock/holds.rs",
        "engine/src/sessions/lock/client.rs",
        "engine/src/root/mod.rs",
    ],
    600,
    shared_window,
    plan: shared_window_plan
);
/// A 429 window, the API's recovery; then the state service cut off, a second window,
/// the heal and the recovery.
fn shared_window_plan(seed: u64) -> FaultPlan {
    let mut rng = crate::kit::plans::plan_rng(seed);
    let first_ms = 1_000 * (20 + rng.below(40));
    let second_ms = 1_000 * (20 + rng.below(40));
    let cut = Fault::Partition {
        a: ENGINE_HOST.into(),
        b: STATE_HOST.into(),
        mode: PartitionMode::Hold,
        one_way: false,
    };
    let heal = Fault::Heal {
        a: ENGINE_HOST.into(),
        b: STATE_HOST.into(),
    };
    let limited = |retry_after_ms| mode(UpstreamMode::RateLimited { retry_after_ms });
    crate::kit::plans::channel_upstream(seed)
        .after("limited", 0, limited(first_ms))
        .after("recovered", 0, mode(UpstreamMode::Serving))
        .after("cut", 0, cut)
        .after("limited again", 0, limited(second_ms))
        .after("healed", 0, heal)
        .after("recovered again", 0, mode(UpstreamMode::Serving))
}

/// The Retry-After the plan's action at `event` sets, if it has one.
fn window_at(world: &World, event: &str) -> Option<Duration> {
    world.mark(event).iter().find_map(|f| match f {
        Fault::UpstreamMode {
            set: UpstreamMode::RateLimited { retry_after_ms },
            ..
        } => Some(Duration::from_millis(*retry_after_ms)),
        _ => None,
    })
}

/// An instance of the stage's account using the state service at `state`.
async fn instance(
    st: &ChannelStage,
    name: &str,
    port: u16,
    state: &LockServer,
) -> Result<(Engine, Arc<UpstreamClient>), Failure> {
    let service = state.addr().clone();
    let engine = st
        .instance_configured(name, port, |c| {
            with_upstream(&mut c.sessions);
            c.sessions.pool.size_target = 2;
            c.lock = LockChoice::Use {
                service,
                config: SessionLockConfig::standard(),
            };
        })
        .await
        .or_fail(&format!("start instance {name}"))?;
    let sessions = engine.sessions().clone();
    st.eventually(&format!("instance {name} ready"), secs(60), || {
        sessions.is_ready()
    })
    .await?;
    let client =
        engine.sessions().upstream().cloned().ok_or_else(|| {
            Failure::correctness(format!("instance {name} has no model API client"))
        })?;
    Ok((engine, client))
}

/// Sends `text` and waits for how it ends.
async fn ask(c: &mut SimClient, text: &str) -> Result<ServerEvent, Failure> {
    c.query(text).await?;
    outcome(c, secs(60)).await
}

/// `told` is a rate-limit refusal; its "retry in N s".
fn retry_in(told: &ServerEvent, who: &str) -> Result<u64, Failure> {
    let ServerEvent::Error {
        code: ErrorCode::UpstreamRateLimited,
        message,
    } = told
    else {
        return Err(Failure::correctness(format!(
            "{who} was not told the model API is rate limiting: {told:?}"
        )));
    };
    message
        .split("retry in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Failure::correctness(format!("{who}'s refusal names no time: {message}")))
}

/// Every client's next query is answered by the model.
async fn all_answered(clients: &mut [SimClient], round: &str, query: u64) -> Outcome {
    for (i, c) in clients.iter_mut().enumerate() {
        let text = format!("{round} {i}");
        c.query(&text).await?;
        let (_, result) = wait_answer(c, query).await?;
        ensure!(
            result == expected_answer(&text),
            "session {i} ({round}): {result:?}"
        );
    }
    Ok(())
}

async fn shared_window(world: World) -> Outcome {
    let mut st = ChannelStage::start(&world, |s, _| {
        with_upstream(s);
        s.pool.size_target = 1;
    })
    .await?;
    st.ready(secs(60)).await?;
    let up = upstream_of(&st)?;
    let state_env = world.add_host(STATE_HOST).env();
    let state = LockServer::start(&state_env, STATE_PORT, LockLimits::default())
        .await
        .or_fail("start the state service")?;
    let (b, b_api) = instance(&st, "b", 8081, &state).await?;
    let (c, c_api) = instance(&st, "c", 8082, &state).await?;
    // Clients 0 and 1 on b, 2 and 3 on c.
    let mut clients = Vec::new();
    for (i, at) in [b.addr(), b.addr(), c.addr(), c.addr()]
        .into_iter()
        .enumerate()
    {
        let token = st.token(&format!("user{i}"), "member", secs(3600));
        let d = st.new_delivery();
        clients.push(st.open_at(i, at, &format!("token={token}"), &d).await?);
    }

    // b meets the 429.
    let calls_before = message_calls(&up).len();
    let first = window_at(&world, "limited");
    let told = ask(&mut clients[0], "first to meet the limit").await?;
    let Some(first) = first else {
        // The plan without its 429 (a shrink): every query is answered.
        ensure!(
            matches!(told, ServerEvent::Result { .. }),
            "no 429 was planned, yet: {told:?}"
        );
        for (i, c) in clients.iter_mut().enumerate().skip(1) {
            answered(c, 1, &format!("unlimited {i}")).await?;
        }
        return st.check_global();
    };
    let read_at = Instant::now();
    retry_in(&told, "b's session that met the 429")?;
    ensure!(
        state.hold_stats().holds >= 1 && b_api.stats().shared_window.published >= 1,
        "b read a 429 but did not publish its window: service {:?}, b {:?}",
        state.hold_stats(),
        b_api.stats().shared_window
    );
    // c's sessions and b's other one: held back without a call.
    let c_sent = c_api.stats().requests;
    for (i, who) in [(2, "c's first session"), (3, "c's second session")] {
        let told = ask(&mut clients[i], &format!("inside b's window {i}")).await?;
        let left = retry_in(&told, who)?;
        ensure!(
            left <= first.as_secs()
                && left + 5 >= first.saturating_sub(read_at.elapsed()).as_secs(),
            "{who} was told to retry in {left} s, inside a {} s window read {} ms ago",
            first.as_secs(),
            read_at.elapsed().as_millis()
        );
    }
    let told = ask(&mut clients[1], "inside b's own window").await?;
    retry_in(&told, "b's second session")?;
    ensure!(
        c_api.stats().requests == c_sent && c_api.stats().shared_window.held >= 1,
        "c called the model API inside b's 429 window: {:?}",
        c_api.stats()
    );
    ensure!(
        message_calls(&up).len() == calls_before + 1,
        "{} messages calls reached the model API in the shared window, not b's one",
        message_calls(&up).len() - calls_before
    );
    tokio::time::sleep_until(read_at + first + secs(1)).await;
    world.mark("recovered");
    all_answered(&mut clients, "after the window", 2).await?;

    // The state service cut off, and a second window.
    world.mark("cut");
    let second = window_at(&world, "limited again");
    let calls_before = message_calls(&up).len();
    let c_sent = c_api.stats().requests;
    let asked = Instant::now();
    let told = ask(&mut clients[2], "with the service cut off").await?;
    let waited = asked.elapsed();
    let Some(second) = second else {
        ensure!(
            matches!(told, ServerEvent::Result { .. }),
            "no second 429 was planned, yet: {told:?}"
        );
        return st.check_global();
    };
    retry_in(&told, "c's session with the service cut off")?;
    ensure!(
        waited <= SHARE_ANSWER_BOUND + TOLD_SLACK,
        "with the state service silent, c's session was told after {} ms (bound {} ms + {} ms)",
        waited.as_millis(),
        SHARE_ANSWER_BOUND.as_millis(),
        TOLD_SLACK.as_millis()
    );
    ensure!(
        c_api.stats().shared_window.unreachable >= 1,
        "c never found the state service silent: {:?}",
        c_api.stats().shared_window
    );
    let read_at = Instant::now();
    let told = ask(&mut clients[3], "held back by c alone").await?;
    retry_in(&told, "c's other session in its own window")?;
    ensure!(
        c_api.stats().requests == c_sent + 1,
        "c's own window did not hold its other session back: {:?}",
        c_api.stats()
    );
    for i in [0, 1] {
        let told = ask(&mut clients[i], &format!("b with the service cut off {i}")).await?;
        retry_in(&told, "b's session with the service cut off")?;
    }
    let sent = message_calls(&up).len() - calls_before;
    ensure!(
        sent <= 2,
        "{sent} calls met the second window with the service cut off: more than one per instance"
    );
    world.mark("healed");
    // Past the window, and past the instances' fallback after the service's silence.
    tokio::time::sleep_until(read_at + second + SHARE_RETRY_AFTER + secs(1)).await;
    world.mark("recovered again");
    let checks = state.hold_stats().checks;
    all_answered(&mut clients, "healed", 4).await?;
    ensure!(
        state.hold_stats().checks > checks,
        "once healed, the instances never asked the state service again: {:?}",
        state.hold_stats()
    );
    b.stop().await;
    c.stop().await;
    st.check_global()
}
