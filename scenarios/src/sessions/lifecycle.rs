//! A session's life: cold starts (core.EC-001), admission at the cap (EC-002), limits
//! (EC-003, EC-011, EC-021), resume and fork (EC-005, EC-006), tabs (EC-010, EC-033),
//! and the pre-warm pool (EC-018, EC-022, EC-024).

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::fail::OrFail;
use crate::kit::plans::{met, on_host};
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::ChannelStage;
use crate::stage::channel::ENGINE_HOST;
use engine::protocol::{ErrorCode, ServerEvent, ServerMessage};
use engine::sessions::AdmissionMode;
use sim::{Fault, FaultPlan, World};
use std::time::Duration;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &COLD_START,
        &SESSION_CAP,
        &DURATION_MID_QUERY,
        &RESUME_MISSING,
        &FORK_LIVE,
        &TABS,
        &TIMEOUT_MID_QUERY,
        &STALE_POOL,
        &NEVER_FIRST_MESSAGE,
        &PREWARM_ALL_FAIL,
        &SHUTDOWN_POOL,
        &TWO_TABS_SEND,
    ]
}

scenario!(
    COLD_START,
    "core.EC-001",
    "Pre-warm pool empty when a session is requested",
    "With worker start-up taking 20 to 30 s, a session that finds the pool empty is told it is being prepared and answers once its cold start is done; the drain is counted (the operator alert) and the pool refills itself once fewer than 2 are warm.",
    ["sessions.pool_drained"],
    cores: [
        "engine/src/workers/pool/decisions/claims.rs",
        "engine/src/workers/pool/decisions.rs",
        "engine/src/sessions/driver.rs",
    ],
    300,
    cold_start,
    plan: cold_start_plan
);
/// The channel swarm; from the stage's start, every worker takes 20 to 30 s to start.
fn cold_start_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel(seed).after("stage-up", 0, on_host::slow_starts(secs(20), secs(30)))
}
async fn cold_start(world: World) -> Outcome {
    let mut st = ChannelStage::start(&world, |s, _| {
        // A 20-30 s start-up needs a connection schedule that waits that long.
        s.pool.template.init_timeout = secs(60);
        s.pool.template.connect.initial_wait = secs(15);
        s.pool.template.connect.attempts_max = 20;
        s.pool.template.connect.delay_max = secs(2);
        s.pool.template.connect.total_max = secs(55);
        s.pool.size_target = 2;
    })
    .await?;
    let met = world.mark("stage-up");
    let slowest_start = met::slow_starts(&met).map_or(Duration::ZERO, |(min, _)| min);
    st.ready(secs(120)).await?;
    st.eventually("two warm workers", secs(120), || {
        st.sessions.pool_depth() == 2
    })
    .await?;
    let token = st.token("ana", "member", secs(3600));
    let mut warm = Vec::new();
    for n in 0..2 {
        let d = st.new_delivery();
        warm.push(st.open(n, &format!("token={token}"), &d).await?);
    }
    let d = st.new_delivery();
    let mut cold = st.open(2, &format!("token={token}"), &d).await?;
    let asked = st.sessions.now();
    cold.query("cold question").await?;
    let (drained, _, _) = st.sessions.pool_counters();
    ensure!(drained == 1, "{drained} drains counted, expected 1");
    cold.until("the cold session's result", secs(60), is_result)
        .await?;
    let waited = st.sessions.now() - asked;
    ensure!(
        waited + secs(1) >= slowest_start,
        "the cold session answered after {} ms: it was not cold",
        waited.as_millis()
    );
    let msgs = d.lock().expect("delivery").messages.clone();
    let preparing = msgs.iter().position(is_status("preparing"));
    let result = msgs.iter().position(is_result);
    ensure!(
        preparing.is_some() && preparing < result,
        "the user was not told the session is being prepared"
    );
    for c in &mut warm {
        c.query("warm question").await?;
        c.until("a warm result", secs(10), is_result).await?;
    }
    st.eventually("the pool refills", secs(120), || {
        st.sessions.pool_depth() >= 1
    })
    .await?;
    st.check_global()
}

scenario!(
    SESSION_CAP,
    "core.EC-002",
    "Configured session cap reached on create",
    "At the cap a create gets HTTP 503 with Retry-After 60 (refuse mode), or waits in a creation queue that reports positions and admits in order as slots free (queue mode); the mode is drawn per seed, and the count never passes the cap.",
    ["sessions.cap_reached"],
    cores: ["engine/src/sessions/admission.rs", "engine/src/gateway/server.rs"],
    300,
    session_cap
);
async fn session_cap(world: World) -> Outcome {
    let queue = world.rng("mode").below(2) == 1;
    let mut st = ChannelStage::start(&world, |s, _| {
        s.session_limit = 2;
        if queue {
            s.admission = AdmissionMode::Queue {
                depth: 4,
                retry_after: secs(60),
            };
        }
    })
    .await?;
    st.ready(secs(60)).await?;
    let token = st.token("ana", "member", secs(3600));
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, _, body) = st.http(0, "POST", "/sessions", &headers).await?;
        ensure!(status == 201, "create under the cap: HTTP {status} {body}");
        let v: serde_json::Value = serde_json::from_str(&body).or_fail("create body")?;
        ids.push(v["session_id"].as_str().unwrap_or_default().to_string());
    }
    if !queue {
        let (status, head, body) = st.http(0, "POST", "/sessions", &headers).await?;
        ensure!(status == 503, "create at the cap: HTTP {status}");
        ensure!(
            head.to_ascii_lowercase().contains("retry-after: 60"),
            "no Retry-After of 60 s: {head}"
        );
        ensure!(body.contains("worker_unavailable"), "body: {body}");
    } else {
        let mut tickets = Vec::new();
        for expected in 1..=2u64 {
            let (status, _, body) = st.http(0, "POST", "/sessions", &headers).await?;
            ensure!(status == 202, "queued create: HTTP {status} {body}");
            let v: serde_json::Value = serde_json::from_str(&body).or_fail("queue body")?;
            ensure!(
                v["position"].as_u64() == Some(expected),
                "position {} for the {expected}. waiter",
                v["position"]
            );
            tickets.push(v["ticket"].as_u64().unwrap_or_default());
        }
        st.sessions.end(&ids[0], "user left");
        st.eventually("a slot frees", secs(30), || st.sessions.live_count() == 1)
            .await?;
        let second = format!("/sessions?ticket={}", tickets[1]);
        let (status, _, body) = st.http(0, "POST", &second, &headers).await?;
        ensure!(
            status == 202 && body.contains("\"position\":2"),
            "the second waiter jumped the queue: HTTP {status} {body}"
        );
        let first = format!("/sessions?ticket={}", tickets[0]);
        let (status, _, body) = st.http(0, "POST", &first, &headers).await?;
        ensure!(
            status == 201,
            "the first waiter was not admitted: HTTP {status} {body}"
        );
        let (status, _, body) = st.http(0, "POST", &second, &headers).await?;
        ensure!(
            status == 202 && body.contains("\"position\":1"),
            "the second waiter's position did not move up: HTTP {status} {body}"
        );
    }
    ensure!(
        st.sessions.live_count() <= 2,
        "{} sessions live",
        st.sessions.live_count()
    );
    st.check_global()
}

scenario!(
    DURATION_MID_QUERY,
    "core.EC-003",
    "Maximum session duration reached mid-query",
    "A warning goes out at 90% of the duration; the user may extend by the configured extension, at most twice (a third is refused); when the end comes during a query, the query gets the grace period, then is interrupted and the session ends.",
    ["sessions.duration_limit"],
    cores: [
        "engine/src/sessions/limits.rs",
        "engine/src/sessions/core/queries.rs",
        "engine/src/sessions/core/mod.rs",
    ],
    900,
    duration_mid_query
);
async fn duration_mid_query(world: World) -> Outcome {
    let (mut st, mut c, _) = one_client(&world, |s, _| {
        s.limits.duration = secs(100);
        s.limits.grace = secs(30);
        s.limits.extension = secs(50);
        s.limits.idle_timeout = secs(600);
        s.limits.first_message_timeout = secs(600);
        s.answer_pace = Some(secs(1));
    })
    .await?;
    let s = st.session(&c.session_id)?;
    let start = st.sessions.now();
    let ending = |m: &ServerMessage| matches!(m.event, ServerEvent::SessionEnding { .. });
    let warn = c.until("the 90% warning", secs(100), ending).await?;
    let at = st.sessions.now() - start;
    ensure!(
        at >= secs(89) && at <= secs(91),
        "warned at {} ms of a 100 s session",
        at.as_millis()
    );
    ensure!(
        matches!(
            warn.event,
            ServerEvent::SessionEnding {
                remaining_ms: 10_000,
                ..
            }
        ),
        "warning: {warn:?}"
    );
    let extensions = st.rng.below(3);
    for _ in 0..extensions {
        c.send_text(r#"{"type":"extend"}"#).await?;
        c.until("session_extended", secs(10), |m| {
            matches!(m.event, ServerEvent::SessionExtended { .. })
        })
        .await?;
    }
    if extensions == 2 {
        c.send_text(r#"{"type":"extend"}"#).await?;
        c.until(
            "extension_refused",
            secs(10),
            is_error(ErrorCode::ExtensionRefused),
        )
        .await?;
    }
    let end = secs(100 + 50 * extensions);
    // A long query that straddles the end.
    let until_end = end.saturating_sub(st.sessions.now() - start);
    if until_end > secs(5) {
        tokio::time::sleep(until_end - secs(5)).await;
    }
    c.query(&words(120, "long")).await?;
    let ended = c
        .until("session_ended", end + secs(60), |m| {
            matches!(m.event, ServerEvent::SessionEnded { .. })
        })
        .await?;
    let ended_at = st.sessions.now() - start;
    ensure!(
        ended_at >= end + secs(29) && ended_at <= end + secs(31),
        "the session ended at {} ms; end {} s plus 30 s grace",
        ended_at.as_millis(),
        end.as_secs()
    );
    ensure!(
        matches!(&ended.event, ServerEvent::SessionEnded { reason } if reason.contains("grace")),
        "ended for another reason: {ended:?}"
    );
    let (parts, result) = answer_of(&c, 1);
    ensure!(
        result.is_none() && !parts.is_empty(),
        "the straddling query should have run into the grace and been cut"
    );
    ensure!(s.stats().queries == 1, "query count {:?}", s.stats());
    st.check_global()
}

scenario!(
    TIMEOUT_MID_QUERY,
    "core.EC-011",
    "Session timeout fires while a query is processing",
    "The idle timeout comes due during a long query: the query finishes with its full answer, and only then is the session ended for idleness.",
    ["sessions.idle_timeout"],
    cores: ["engine/src/sessions/limits.rs", "engine/src/sessions/core/mod.rs"],
    300,
    timeout_mid_query
);
async fn timeout_mid_query(world: World) -> Outcome {
    let idle = secs(20 + world.rng("idle").below(10));
    let (st, mut c, _) = one_client(&world, |s, _| {
        s.limits.idle_timeout = idle;
        s.limits.first_message_timeout = secs(10);
        s.answer_pace = Some(secs(1));
    })
    .await?;
    let answer = words(45, "i");
    let sent = st.sessions.now();
    c.query(&answer).await?;
    c.until("the result", secs(90), is_result).await?;
    c.until(
        "session_ended",
        secs(10),
        |m| matches!(&m.event, ServerEvent::SessionEnded { reason } if reason.contains("idle")),
    )
    .await?;
    let ended = st.sessions.now() - sent;
    ensure!(
        ended > idle && ended >= secs(44),
        "the session ended {} ms after the message: the query was not left to finish",
        ended.as_millis()
    );
    answer_is(&c, 1, &answer)?;
    st.check_global()
}

scenario!(
    NEVER_FIRST_MESSAGE,
    "core.EC-021",
    "Session created but no first message",
    "A session whose user never writes is reclaimed at the first-message timeout, shorter than the idle timeout: the client is told, its socket closed and the slot freed; a session that did get a message lives on past it.",
    ["client.silent"],
    cores: ["engine/src/sessions/limits.rs", "engine/src/sessions/core/mod.rs"],
    300,
    never_first_message
);
async fn never_first_message(world: World) -> Outcome {
    let first = secs(10 + world.rng("first").below(20));
    let mut st = ChannelStage::start(&world, |s, _| {
        s.limits.first_message_timeout = first;
        s.limits.idle_timeout = secs(120);
    })
    .await?;
    st.ready(secs(60)).await?;
    let token = st.token("ana", "member", secs(3600));
    let (d0, d1) = (st.new_delivery(), st.new_delivery());
    let mut silent = st.open(0, &format!("token={token}"), &d0).await?;
    let mut talker = st.open(1, &format!("token={token}"), &d1).await?;
    let opened = st.sessions.now();
    talker.query("hello").await?;
    talker.until("a result", secs(30), is_result).await?;
    silent
        .until("session_ended", first + secs(5), |m| {
            matches!(&m.event, ServerEvent::SessionEnded { reason } if reason.contains("first"))
        })
        .await?;
    ensure!(
        silent.closes_within(secs(5)).await,
        "the socket of the ended session stayed open"
    );
    let at = st.sessions.now() - opened;
    ensure!(
        at + secs(1) >= first && at <= first + secs(1),
        "reclaimed after {} ms, timeout {} ms",
        at.as_millis(),
        first.as_millis()
    );
    st.eventually("the slot frees", secs(10), || st.sessions.live_count() == 1)
        .await?;
    ensure!(
        st.sessions.get(&talker.session_id).is_some(),
        "the session with a message was reclaimed too"
    );
    st.check_global()
}

scenario!(
    RESUME_MISSING,
    "core.EC-005",
    "Resume of a session id that does not exist",
    "Resuming an unknown id starts a new session with a notice saying it was not found; resuming one that ended says it ended and why (purged versus never existed); both new sessions work.",
    ["client.resume_missing"],
    cores: ["engine/src/sessions/service.rs"],
    180,
    resume_missing
);
async fn resume_missing(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |_, _| {}).await?;
    c.query("first").await?;
    c.until("a result", secs(30), is_result).await?;
    let old = c.session_id.clone();
    st.sessions.end(&old, "retention purge");
    st.eventually("the session ends", secs(10), || {
        st.sessions.get(&old).is_none()
    })
    .await?;
    drop(c);
    let ghost = format!("s{}", 900_000 + st.rng.below(99_999));
    for (id, says) in [
        (ghost.as_str(), "not found"),
        (old.as_str(), "retention purge"),
    ] {
        let d = st.new_delivery();
        let mut c = st
            .open(0, &format!("token={token}&session={id}"), &d)
            .await?;
        ensure!(c.session_id != id, "resumed a dead id {id}");
        let notice = match &c.welcome.event {
            ServerEvent::Welcome { notice, .. } => notice.clone().unwrap_or_default(),
            _ => String::new(),
        };
        ensure!(
            notice.contains(says) && notice.contains("new session"),
            "resume of {id}: notice {notice:?} should say {says:?}"
        );
        c.query("fresh").await?;
        c.until("a result", secs(30), is_result).await?;
    }
    st.check_global()
}

scenario!(
    FORK_LIVE,
    "core.EC-006",
    "Fork of a session that is live on another socket",
    "A fork of a session attached elsewhere is allowed and leaves the parent's socket alone; the fork starts with the parent's history at the fork point, and afterwards neither sees the other's new messages.",
    ["client.fork"],
    cores: ["engine/src/sessions/service.rs"],
    180,
    fork_live
);
async fn fork_live(world: World) -> Outcome {
    let (mut st, mut parent, token) = one_client(&world, |_, _| {}).await?;
    parent.query("shared past").await?;
    parent.until("a result", secs(30), is_result).await?;
    let pid = parent.session_id.clone();
    let d = st.new_delivery();
    let mut fork = st.open(1, &format!("token={token}&fork={pid}"), &d).await?;
    ensure!(fork.session_id != pid, "the fork reused the parent's id");
    let (ps, fs) = (st.session(&pid)?, st.session(&fork.session_id)?);
    ensure!(
        fs.parent.as_deref() == Some(pid.as_str()),
        "the fork does not name its parent"
    );
    ensure!(
        ps.is_attached() && ps.stats().replaced == 0,
        "forking disturbed the parent's socket"
    );
    parent.query("parent only").await?;
    fork.query("fork only").await?;
    parent.until("parent's result", secs(30), is_result).await?;
    fork.until("fork's result", secs(30), is_result).await?;
    let (pt, ft) = (ps.transcript(), fs.transcript());
    let has = |t: &[String], q: &str| t.iter().any(|l| l == &format!("> {q}"));
    ensure!(
        has(&pt, "shared past") && has(&ft, "shared past"),
        "the fork did not start from the parent's history"
    );
    ensure!(
        !has(&ft, "parent only") && !has(&pt, "fork only"),
        "parent and fork leaked into each other: {pt:?} / {ft:?}"
    );
    st.check_global()
}

scenario!(
    TABS,
    "core.EC-010",
    "Same session opened in several tabs",
    "Each newer tab on a session replaces the older connection, which is told the session was opened in another window and closed; at most one connection is ever attached, and the newest tab works.",
    ["client.new_tab"],
    cores: [
        "engine/src/sessions/core/stream.rs",
        "engine/src/sessions/session.rs",
        "engine/src/gateway/connection.rs",
    ],
    180,
    tabs
);
async fn tabs(world: World) -> Outcome {
    let (mut st, first, token) = one_client(&world, |_, _| {}).await?;
    let id = first.session_id.clone();
    let n = 2 + st.rng.below(3) as usize;
    let mut older = first;
    for tab in 1..=n {
        let d = st.new_delivery();
        let newer = st
            .open(tab, &format!("token={token}&session={id}"), &d)
            .await?;
        let told = older
            .until("replaced", secs(10), |m| {
                matches!(&m.event, ServerEvent::Replaced { reason } if reason.contains("another window"))
            })
            .await?;
        ensure!(
            told.seq.is_none(),
            "the replaced notice took a sequence number"
        );
        ensure!(
            older.closes_within(secs(5)).await,
            "the replaced tab stayed open"
        );
        older = newer;
    }
    older.query("from the newest tab").await?;
    older.until("a result", secs(30), is_result).await?;
    let s = st.session(&id)?;
    ensure!(
        s.stats().replaced == n as u64,
        "{} replacements for {n} new tabs",
        s.stats().replaced
    );
    st.check_global()
}

scenario!(
    TWO_TABS_SEND,
    "core.EC-033",
    "Two tabs send messages into the same session",
    "Once a second tab takes the session, the first tab's messages no longer reach it: only the attached tab drives the session, so queries from two tabs never interleave.",
    ["client.new_tab"],
    cores: ["engine/src/sessions/core/stream.rs", "engine/src/gateway/connection.rs"],
    180,
    two_tabs_send
);
async fn two_tabs_send(world: World) -> Outcome {
    let (mut st, mut one, token) = one_client(&world, |s, _| s.answer_pace = Some(ms(50))).await?;
    let id = one.session_id.clone();
    one.query("from tab one").await?;
    one.until("tab one's result", secs(30), is_result).await?;
    let d = st.new_delivery();
    let mut two = st
        .open(1, &format!("token={token}&session={id}"), &d)
        .await?;
    let rounds = 1 + st.rng.below(4);
    for r in 0..rounds {
        // Tab one's socket is closed by the server; its sends must go nowhere.
        let _ = one.query(&format!("intruder {r}")).await;
        two.query(&format!("from tab two {r}")).await?;
        two.until("tab two's result", secs(30), is_result).await?;
    }
    let s = st.session(&id)?;
    let transcript = s.transcript();
    ensure!(
        !transcript.iter().any(|l| l.contains("intruder")),
        "a replaced tab drove the session: {transcript:?}"
    );
    ensure!(
        s.stats().queries == 1 + rounds,
        "{} queries ran, expected {}",
        s.stats().queries,
        1 + rounds
    );
    st.check_global()
}

scenario!(
    STALE_POOL,
    "core.EC-018",
    "Pre-warmed workers built with an outdated plugin set",
    "A plugin registry change invalidates the pool: stale warm workers are disposed of, and every session started afterwards runs on a worker built with the new version, including when a stale start was still in flight.",
    ["plugins.registry_changed"],
    cores: ["engine/src/workers/pool/decisions.rs", "engine/src/workers/pool/shell.rs"],
    180,
    stale_pool
);
async fn stale_pool(world: World) -> Outcome {
    let mut st = ChannelStage::start(&world, |s, _| {
        s.pool.size_target = 3;
    })
    .await?;
    st.ready(secs(60)).await?;
    st.eventually("a full pool", secs(60), || st.sessions.pool_depth() == 3)
        .await?;
    let stale = st.sessions.invalidate_pool(2).await;
    ensure!(stale == 3, "{stale} warm workers invalidated, expected 3");
    let token = st.token("ana", "member", secs(3600));
    let d = st.new_delivery();
    let mut c = st.open(0, &format!("token={token}"), &d).await?;
    c.query("which tools").await?;
    c.until("a result", secs(60), is_result).await?;
    let s = st.session(&c.session_id)?;
    let name = s
        .worker()
        .ok_or_else(|| Failure::correctness("no worker bound"))?;
    let info = st
        .manager
        .get(&name)
        .await
        .ok_or_else(|| Failure::correctness(format!("worker {name} unknown")))?;
    ensure!(
        info.config_version == 2,
        "the session runs on {name} built for version {}",
        info.config_version
    );
    st.eventually("the pool refills", secs(60), || {
        st.sessions.pool_depth() >= 2
    })
    .await?;
    for w in st.manager.list().await {
        if w.name.starts_with("warm")
            && matches!(w.status, engine::workers::WorkerStatus::Ready { .. })
        {
            ensure!(
                w.config_version == 2,
                "a stale warm worker {} is still ready",
                w.name
            );
        }
    }
    st.check_global()
}

scenario!(
    PREWARM_ALL_FAIL,
    "core.EC-022",
    "Every pre-warm fails at start-up",
    "While every worker start fails, /ready answers 503 and retries back off (fewer attempts than a fixed 1 s retry would make); once starts succeed again the pool fills and /ready answers 200.",
    ["proc.spawn_fail"],
    cores: ["engine/src/workers/pool/decisions.rs", "engine/src/gateway/server.rs"],
    300,
    prewarm_all_fail,
    plan: prewarm_all_fail_plan
);
/// The channel swarm; every spawn fails from the stage's start until the body marks the
/// end of its outage (60 to 120 s later).
fn prewarm_all_fail_plan(seed: u64) -> FaultPlan {
    let host = || ENGINE_HOST.to_string();
    crate::kit::plans::channel(seed)
        .after("stage-up", 0, Fault::SpawnOutage { host: host() })
        .after("outage-over", 0, Fault::SpawnRecover { host: host() })
}
async fn prewarm_all_fail(world: World) -> Outcome {
    let mut st = ChannelStage::start(&world, |_, _| {}).await?;
    if world.mark("stage-up").is_empty() {
        // No outage: the pool fills at once and nothing failed.
        st.ready(secs(120)).await?;
        let (_, _, failures) = st.sessions.pool_counters();
        ensure!(failures == 0, "{failures} pre-warm failures with no outage");
        return st.check_global();
    }
    let outage = secs(60 + st.rng.below(60));
    tokio::time::sleep(outage).await;
    let (status, _, body) = st.http(0, "GET", "/ready", &[]).await?;
    ensure!(
        status == 503 && body.contains("worker_unavailable"),
        "/ready with no pre-warm ever done: HTTP {status} {body}"
    );
    ensure!(!st.sessions.is_ready(), "ready without a warm worker");
    let (_, _, failures) = st.sessions.pool_counters();
    ensure!(failures >= 2, "only {failures} pre-warm failures counted");
    ensure!(
        failures < outage.as_secs(),
        "{failures} attempts in {} s: no backoff",
        outage.as_secs()
    );
    world.mark("outage-over");
    st.ready(secs(120)).await?;
    let (status, _, _) = st.http(0, "GET", "/ready", &[]).await?;
    ensure!(status == 200, "/ready after recovery: HTTP {status}");
    st.check_global()
}

scenario!(
    SHUTDOWN_POOL,
    "core.EC-024",
    "Graceful shutdown with unused pre-warmed workers",
    "Draining destroys every unclaimed warm worker at once (and says how many), while the worker of a session in use keeps serving it.",
    ["engine.shutdown"],
    cores: ["engine/src/workers/pool/decisions.rs", "engine/src/sessions/service.rs"],
    180,
    shutdown_pool
);
async fn shutdown_pool(world: World) -> Outcome {
    let target = 2 + world.rng("target").below(3) as usize;
    let (st, c, _) = one_client(&world, |s, _| {
        s.pool.size_target = target;
    })
    .await?;
    st.eventually("a full pool", secs(60), || {
        st.sessions.pool_depth() == target
    })
    .await?;
    let s = st.session(&c.session_id)?;
    let used = s
        .worker()
        .ok_or_else(|| Failure::correctness("no worker bound"))?;
    let destroyed = st.sessions.drain().await;
    ensure!(
        destroyed == target,
        "{destroyed} warm workers destroyed, the pool held {target}"
    );
    ensure!(
        st.sessions.pool_depth() == 0,
        "warm workers survived the drain"
    );
    for w in st.manager.list().await {
        let ready = matches!(w.status, engine::workers::WorkerStatus::Ready { .. });
        ensure!(
            !ready || w.name == used,
            "worker {} still ready after the drain",
            w.name
        );
    }
    let info = st.manager.get(&used).await;
    ensure!(
        info.is_some_and(|i| matches!(i.status, engine::workers::WorkerStatus::Ready { .. })),
        "the session's own worker was destroyed"
    );
    st.check_global()
}
