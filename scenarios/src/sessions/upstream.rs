//! The model API behind the sessions: rate limited while sessions are being created
//! and the pool refills (core.EC-014), unreachable under a live session (EC-015). The
//! upstream is the local model server on host `upstream-0`; its refusals and the
//! network's partition are the faults.

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::{ChannelStage, ENGINE_HOST, UPSTREAM_HOST, with_upstream};
use engine::protocol::{ErrorCode, ServerEvent};
use engine::upstream::MODELS_PATH;
use sim::faults::Fault;
use sim::net::PartitionMode;
use sim::upstream::UpstreamMode;
use sim::{FaultPlan, SimRng, World};
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&RATE_LIMITED_CREATE, &UNREACHABLE_MID_SESSION]
}

scenario!(
    RATE_LIMITED_CREATE,
    "core.EC-014",
    "Upstream returns 429 while a session is being created",
    "A session is created while the model API answers 429: the refill's new worker is checked against the API, refused, disposed and never bound to a session; pre-warming then pauses for the full 5 minutes even after the API recovers (no start and no check in the window, and the pool, once its last warm worker is taken, stays empty); a user whose query meets the limit is told to retry and keeps the session; after the pause the pool refills, checked again, and queries are answered.",
    ["upstream.rate_limited"],
    cores: [
        "engine/src/upstream/client/mod.rs",
        "engine/src/sessions/upstream.rs",
        "engine/src/workers/pool/decisions.rs",
    ],
    900,
    rate_limited_create,
    plan: rate_limited_plan
);
/// The model API rate limits (429, Retry-After 20 to 79 s) from the moment the pool is
/// full, and recovers when the body marks it (partway through the pre-warm pause).
fn rate_limited_plan(seed: u64) -> FaultPlan {
    let retry_after_ms = 1_000 * (20 + SimRng::new(seed, "plan").below(60));
    let mode = |set| Fault::UpstreamMode {
        host: UPSTREAM_HOST.into(),
        set,
    };
    crate::kit::plans::channel_upstream(seed)
        .after(
            "pool-full",
            0,
            mode(UpstreamMode::RateLimited { retry_after_ms }),
        )
        .after("api-recovers", 0, mode(UpstreamMode::Serving))
}
async fn rate_limited_create(world: World) -> Outcome {
    let mut st = ChannelStage::start(&world, |s, _| {
        with_upstream(s);
        s.pool.size_target = 2;
    })
    .await?;
    st.ready(secs(60)).await?;
    st.eventually("two warm workers", secs(120), || {
        st.sessions.pool_depth() == 2
    })
    .await?;
    let up = upstream_of(&st)?;
    let limited = !world.mark("pool-full").is_empty();

    // Ana takes a warm worker: the pool refills, and the new worker's check meets 429.
    let token = st.token("ana", "member", secs(3600));
    let d = st.new_delivery();
    let mut ana = st.open(0, &format!("token={token}"), &d).await?;
    if !limited {
        // No rate limit (a shrunk or given plan): the model answers, the pool refills.
        ana.query("hello model").await?;
        let (_, answer) = wait_answer(&mut ana, 1).await?;
        ensure!(
            answer.contains("hello model"),
            "not the model's: {answer:?}"
        );
        st.eventually("the pool refilled", secs(120), || {
            st.sessions.pool_depth() == 2
        })
        .await?;
        return st.check_global();
    }
    st.eventually("a pre-warm refused as rate limited", secs(120), || {
        st.sessions.prewarm_rate_limited().0 >= 1
    })
    .await?;
    let paused_at = first_refused_check(&up)?;
    let failures_then = st.sessions.pool_counters().2;
    ana.query("hello model").await?;
    let told = ana
        .until(
            "the rate-limit error",
            secs(60),
            is_error(ErrorCode::UpstreamRateLimited),
        )
        .await?;
    ensure!(
        matches!(&told.event, ServerEvent::Error { message, .. } if message.contains("retry in") && message.contains("session is kept")),
        "ana was not told to retry with her session kept: {told:?}"
    );
    refused_never_bound(&st)?;

    // The API recovers partway through the pause; Bob arrives after that, still inside it.
    let heal_at = paused_at + secs(60 + st.rng.below(120));
    tokio::time::sleep_until(heal_at).await;
    world.mark("api-recovers");
    tokio::time::sleep_until(paused_at + secs(250)).await;
    ensure!(
        st.sessions.pool_depth() == 1,
        "the pool holds {} warm workers, not the one checked before the limit",
        st.sessions.pool_depth()
    );
    let d = st.new_delivery();
    let mut bob = st.open(1, &format!("token={token}"), &d).await?;
    bob.query("warm and answered").await?;
    let (_, answer) = wait_answer(&mut bob, 1).await?;
    ensure!(
        answer.contains("warm and answered"),
        "bob's answer is not the model's: {answer:?}"
    );
    tokio::time::sleep_until(paused_at + secs(295)).await;
    let checks_in_pause = up
        .requests()
        .iter()
        .filter(|r| r.path == MODELS_PATH && r.at > paused_at + secs(1))
        .count();
    ensure!(
        checks_in_pause == 0,
        "{checks_in_pause} pre-warm checks inside the 5-minute pause"
    );
    ensure!(
        st.sessions.pool_depth() == 0 && st.sessions.pool_counters().2 == failures_then,
        "pre-warm went on during the pause: depth {}, failures {} (were {failures_then})",
        st.sessions.pool_depth(),
        st.sessions.pool_counters().2
    );

    // After the pause the pool refills, checked against the API again.
    st.eventually("the pool refilled after the pause", secs(120), || {
        st.sessions.pool_depth() == 2
    })
    .await?;
    ensure!(
        up.requests()
            .iter()
            .any(|r| r.path == MODELS_PATH && r.at >= paused_at + secs(300) && r.status == 200),
        "the refill after the pause was not checked against the API"
    );
    ana.query("hello again").await?;
    let (_, answer) = wait_answer(&mut ana, 2).await?;
    ensure!(
        answer.contains("hello again"),
        "ana's retry was not answered by the model: {answer:?}"
    );
    refused_never_bound(&st)?;
    st.check_global()
}

scenario!(
    UNREACHABLE_MID_SESSION,
    "core.EC-015",
    "Upstream unreachable during an active session",
    "The model API is cut off from the engine under a live session: a query waiting on it is interrupted at once; each query fails with upstream_unavailable (within the 60 s its answer may take to begin, retries included) while the session stays live and its history stays stored (it was written before the query); after 3 failures the breaker opens and the next query is refused at once without waiting out a timeout; once the network heals, the breaker's trial succeeds, the client is told the API is back, and its next query on the same session is answered.",
    ["net.partition"],
    cores: [
        "engine/src/upstream/breaker.rs",
        "engine/src/upstream/client/mod.rs",
        "engine/src/upstream/client/streamed.rs",
        "engine/src/upstream/retry.rs",
        "engine/src/sessions/upstream.rs",
    ],
    600,
    unreachable_mid_session,
    plan: unreachable_plan
);
/// The engine cut off from the model API (connections dropped) once a first answer came
/// through, healed when the body marks it.
fn unreachable_plan(seed: u64) -> FaultPlan {
    let (a, b) = (ENGINE_HOST.to_string(), UPSTREAM_HOST.to_string());
    crate::kit::plans::channel_upstream(seed)
        .after(
            "answered",
            0,
            Fault::Partition {
                a: a.clone(),
                b: b.clone(),
                mode: PartitionMode::Drop,
                one_way: false,
            },
        )
        .after("heal", 0, Fault::Heal { a, b })
}
async fn unreachable_mid_session(world: World) -> Outcome {
    let (mut st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    let id = ana.session_id.clone();
    ana.query("before the outage").await?;
    let (_, answer) = wait_answer(&mut ana, 1).await?;
    ensure!(
        answer.contains("before the outage"),
        "the model's answer did not come through: {answer:?}"
    );
    let outage_at = Instant::now();
    let cut = !world.mark("answered").is_empty();
    let client = st
        .sessions
        .upstream()
        .cloned()
        .ok_or_else(|| Failure::correctness("the engine has no upstream client"))?;
    if !cut {
        // No outage (a shrunk or given plan): the next answer comes through.
        ana.query("no outage").await?;
        let (_, answer) = wait_answer(&mut ana, 2).await?;
        ensure!(answer.contains("no outage"), "not the model's: {answer:?}");
        ensure!(!client.is_open(), "the breaker opened with no outage");
        return st.check_global();
    }
    let breaker = st.sessions.config().upstream.clone().map(|u| u.breaker);
    let breaker = breaker.ok_or_else(|| Failure::correctness("no breaker policy"))?;

    // A query waiting on the unreachable API is interrupted at once, not after the
    // request timeout.
    ana.query("interrupted while the API is silent").await?;
    tokio::time::sleep(secs(1 + st.rng.below(5))).await;
    let asked = Instant::now();
    ana.send_text(r#"{"type":"interrupt"}"#).await?;
    ana.until("the interruption", secs(5), |m| {
        matches!(m.event, ServerEvent::Interrupted { query: 2 })
    })
    .await?;
    ensure!(
        asked.elapsed() < secs(1),
        "the interrupt waited {:?} for the model API",
        asked.elapsed()
    );

    // Queries fail one by one until the breaker opens.
    // (A pre-warm check failing meanwhile counts toward it too: at most 3 queries.)
    let mut failed = 0u32;
    while !client.is_open() {
        ensure!(
            failed < breaker.failures_to_open,
            "{failed} failures and the breaker is still closed"
        );
        ana.query(&format!("during the outage {failed}")).await?;
        let e = ana
            .until(
                "the unavailable error",
                secs(90),
                is_error(ErrorCode::UpstreamUnavailable),
            )
            .await?;
        ensure!(
            matches!(&e.event, ServerEvent::Error { message, .. } if message.contains("session is kept")),
            "the client was not told its session is kept: {e:?}"
        );
        failed += 1;
        let s = st.session(&id)?;
        ensure!(s.end_reason().is_none(), "the outage ended the session");
        history_holds(&st, &id, "> before the outage")?;
    }
    ensure!(
        failed >= 1 && client.stats().breaker_opened == 1,
        "the breaker opened without a failed query ({failed}): {:?}",
        client.stats()
    );
    let before = client.stats();
    let asked = Instant::now();
    ana.query("while the breaker is open").await?;
    ana.until(
        "the fast refusal",
        secs(5),
        is_error(ErrorCode::UpstreamUnavailable),
    )
    .await?;
    ensure!(
        asked.elapsed() < secs(1) && client.stats().refused_open > before.refused_open,
        "an open breaker still let the query wait {:?} ({:?})",
        asked.elapsed(),
        client.stats()
    );

    // The network heals; the client is told, and the same session answers again.
    let heal_at = outage_at + secs(30 + st.rng.below(90));
    tokio::time::sleep_until(heal_at).await;
    world.mark("heal");
    let bound = breaker.open_for * 2 + secs(30);
    ana.until(
        "the API-is-back notice",
        bound,
        is_status("upstream_available"),
    )
    .await?;
    ensure!(
        !client.is_open() && client.stats().breaker_closed >= 1,
        "told the API is back while the breaker is open: {:?}",
        client.stats()
    );
    let query = failed as u64 + 4;
    ana.query("after the outage").await?;
    let (_, answer) = wait_answer(&mut ana, query).await?;
    ensure!(
        answer.contains("after the outage"),
        "the session did not answer after the outage: {answer:?}"
    );
    ensure!(
        st.sessions.get(&id).is_some(),
        "the session did not survive the outage"
    );
    st.check_global()
}
