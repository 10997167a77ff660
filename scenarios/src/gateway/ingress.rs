//! What is checked where a client comes in: tokens at the upgrade (core.EC-042), tokens
//! that expire on an open socket (EC-016, EC-043), roles that change (EC-017), rate
//! limits (EC-049), forwarded-for trust (api.CONFIG-001), handshakes cut short
//! (EC-039) and messages racing a shutdown (EC-047).

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::fail::{OrFail, unexpected};
use crate::scenario::{Failure, Outcome, Scenario};
use engine::gateway::{Claims, GatewayConfig, RateLimit, TokenKeys};
use engine::protocol::{ErrorCode, ServerEvent};
use engine::sessions::QueryMode;
use sim::World;
use std::sync::atomic::Ordering;
use tokio::io::AsyncWriteExt;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &BAD_TOKEN,
        &EXPIRY_ON_OPEN_SOCKET,
        &EXPIRED_BEFORE_FIRST_MESSAGE,
        &ROLE_DOWNGRADE,
        &RATE_LIMIT_IN_FLIGHT,
        &FORWARDED_FOR,
        &HANDSHAKE_CUT,
        &SHUTDOWN_RACE,
    ]
}

scenario!(
    BAD_TOKEN,
    "core.EC-042",
    "Socket upgrade with an invalid token",
    "Garbage, a wrong signature, a missing token and a token expired beyond the skew tolerance are each refused with HTTP 401 before any socket or session exists; a token expired within the skew tolerance is accepted.",
    ["client.bad_token"],
    cores: ["engine/src/gateway/auth.rs", "engine/src/gateway/server.rs"],
    120,
    bad_token
);
async fn bad_token(world: World) -> Outcome {
    let mut st = crate::stage::channel::ChannelStage::start(&world, |_, _| {}).await?;
    st.ready(secs(60)).await?;
    let skew = st.keys.skew.as_secs();
    let now_s = st.env.wall_unix_ms() / 1000;
    let forged = TokenKeys::new(b"not-the-secret", st.keys.skew).issue(&Claims {
        sub: "ana".to_string(),
        role: "admin".to_string(),
        exp: now_s + 3600,
    });
    let stale = st.keys.issue(&Claims {
        sub: "ana".to_string(),
        role: "member".to_string(),
        exp: now_s - skew - 1 - st.rng.below(1000),
    });
    let d = st.new_delivery();
    for (what, query) in [
        ("garbage", "token=abc.def.ghi".to_string()),
        ("wrong signature", format!("token={forged}")),
        ("no token", String::new()),
        ("expired beyond the skew", format!("token={stale}")),
    ] {
        match st.connect(0, &query, &d).await {
            Err(crate::stage::client::ConnectError::Refused(r)) => {
                ensure!(r.status == 401, "{what}: HTTP {} instead of 401", r.status)
            }
            Err(e) => return Err(unexpected(what, e)),
            Ok(_) => return Err(Failure::correctness(format!("{what}: a socket opened"))),
        }
    }
    let sockets = st.gateway.stats.sockets.load(Ordering::Relaxed);
    ensure!(sockets == 0, "{sockets} sockets opened for bad tokens");
    ensure!(
        st.sessions.live_count() == 0,
        "a refused upgrade created a session"
    );
    let within_skew = st.keys.issue(&Claims {
        sub: "ana".to_string(),
        role: "member".to_string(),
        exp: now_s - skew / 2,
    });
    let mut c = st.open(0, &format!("token={within_skew}"), &d).await?;
    c.query("skewed but fine").await?;
    c.until("a result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    EXPIRY_ON_OPEN_SOCKET,
    "core.EC-016",
    "Token expires while the socket stays open",
    "Ahead of expiry the server sends refresh_required; a refresh_token over the open socket is accepted without reconnecting and the session works past the old expiry; a client that ignores the notice gets token_expired on its next message once expiry (plus skew) passes.",
    ["clock.token_expiry"],
    cores: ["engine/src/gateway/inbound.rs", "engine/src/gateway/auth.rs"],
    900,
    expiry_on_open_socket
);
async fn expiry_on_open_socket(world: World) -> Outcome {
    let mut st = crate::stage::channel::ChannelStage::start(&world, |_, g| {
        g.refresh_lead = secs(60);
    })
    .await?;
    st.ready(secs(60)).await?;
    let life = secs(120 + st.rng.below(120));
    let skew = st.keys.skew;
    let (ana, bob) = (
        st.token("ana", "member", life),
        st.token("bob", "member", life),
    );
    let (da, db) = (st.new_delivery(), st.new_delivery());
    let mut a = st.open(0, &format!("token={ana}"), &da).await?;
    let mut b = st.open(1, &format!("token={bob}"), &db).await?;
    let notice = a
        .until("refresh_required", life, |m| {
            matches!(m.event, ServerEvent::RefreshRequired { .. })
        })
        .await?;
    let ServerEvent::RefreshRequired { expires_in_ms } = notice.event else {
        unreachable!("matched above")
    };
    ensure!(
        (59_000..=60_000).contains(&expires_in_ms),
        "refresh_required {expires_in_ms} ms before expiry, lead is 60 s"
    );
    let fresh = st.token("ana", "member", secs(3600));
    a.send_text(&serde_json::json!({ "type": "refresh_token", "token": fresh }).to_string())
        .await?;
    a.until("token_refreshed", secs(10), |m| {
        matches!(m.event, ServerEvent::TokenRefreshed { .. })
    })
    .await?;
    b.until("bob's refresh_required", secs(10), |m| {
        matches!(m.event, ServerEvent::RefreshRequired { .. })
    })
    .await?;
    tokio::time::sleep(secs(60) + skew + secs(5)).await;
    a.query("after the old expiry").await?;
    a.until("ana's result", secs(30), is_result).await?;
    ensure!(!a.closed, "ana's socket closed");
    let sa = st.session(&a.session_id)?;
    ensure!(sa.stats().connections == 1, "ana reconnected to refresh");
    b.query("too late").await?;
    b.until("token_expired", secs(10), is_error(ErrorCode::TokenExpired))
        .await?;
    ensure!(
        crate::kit::channel::answer_of(&b, 1).1.is_none(),
        "an expired token's query ran"
    );
    st.check_global()
}

scenario!(
    EXPIRED_BEFORE_FIRST_MESSAGE,
    "core.EC-043",
    "Token expires between connect and first message",
    "A token with little validity left gets refresh_required at once on connect; if it expires before the first message, that message gets token_expired and does not run; a refresh over the socket then lets the session go on.",
    ["clock.token_expiry"],
    cores: ["engine/src/gateway/inbound.rs", "engine/src/gateway/auth.rs"],
    300,
    expired_before_first_message
);
async fn expired_before_first_message(world: World) -> Outcome {
    let mut st = crate::stage::channel::ChannelStage::start(&world, |_, _| {}).await?;
    st.ready(secs(60)).await?;
    let life = secs(5 + st.rng.below(20));
    let token = st.token("ana", "member", life);
    let d = st.new_delivery();
    let mut c = st.open(0, &format!("token={token}"), &d).await?;
    c.until("refresh_required at once", secs(1), |m| {
        matches!(m.event, ServerEvent::RefreshRequired { .. })
    })
    .await?;
    tokio::time::sleep(life + st.keys.skew + secs(1)).await;
    c.query("first words").await?;
    c.until("token_expired", secs(10), is_error(ErrorCode::TokenExpired))
        .await?;
    let s = st.session(&c.session_id)?;
    ensure!(s.stats().queries == 0, "the expired message ran");
    let fresh = st.token("ana", "member", secs(3600));
    c.send_text(&serde_json::json!({ "type": "refresh_token", "token": fresh }).to_string())
        .await?;
    c.until("token_refreshed", secs(10), |m| {
        matches!(m.event, ServerEvent::TokenRefreshed { .. })
    })
    .await?;
    c.query("first words again").await?;
    c.until("a result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    ROLE_DOWNGRADE,
    "core.EC-017",
    "User role downgraded while a session is live",
    "A member's write tool works; after a downgrade to viewer the session is told which tools it lost (permissions_changed), the next write is denied with tool_denied, reads still work and the session carries on.",
    ["auth.role_downgrade"],
    cores: ["engine/src/sessions/gate.rs", "engine/src/sessions/service.rs"],
    120,
    role_downgrade
);
async fn role_downgrade(world: World) -> Outcome {
    let (st, mut c, _) = one_client(&world, |_, _| {}).await?;
    c.query("tool:write draft one").await?;
    let first = c.until("a result", secs(30), is_result).await?;
    ensure!(
        matches!(&first.event, ServerEvent::Result { text, .. } if text.contains("draft")),
        "the write before the downgrade did not run: {first:?}"
    );
    st.sessions.set_role("ana", "viewer").await;
    let changed = c
        .until("permissions_changed", secs(10), |m| {
            matches!(m.event, ServerEvent::PermissionsChanged { .. })
        })
        .await?;
    ensure!(
        matches!(&changed.event, ServerEvent::PermissionsChanged { role, removed_tools } if role == "viewer" && removed_tools == &["write".to_string()]),
        "wrong permissions notice: {changed:?}"
    );
    c.query("tool:write draft two").await?;
    c.until("tool_denied", secs(10), is_error(ErrorCode::ToolDenied))
        .await?;
    c.query("tool:read draft one").await?;
    let read = c.until("the read's result", secs(30), is_result).await?;
    ensure!(
        matches!(&read.event, ServerEvent::Result { query: 3, .. }),
        "the read after the denial did not run: {read:?}"
    );
    ensure!(
        answer_of(&c, 2).1.is_none(),
        "the denied write produced a result"
    );
    st.check_global()
}

scenario!(
    RATE_LIMIT_IN_FLIGHT,
    "core.EC-049",
    "Rate limit crossed while a query is in flight",
    "Limits apply only where a message enters: with a user's budget spent, the running and queued queries finish normally, the next message is refused with rate_limited saying when to retry, and after the refill messages pass again.",
    ["client.rate_limit_crossed"],
    cores: ["engine/src/gateway/rate.rs", "engine/src/gateway/inbound.rs"],
    300,
    rate_limit_in_flight
);
async fn rate_limit_in_flight(world: World) -> Outcome {
    let (mut st, mut c, _) = one_client(&world, |s, g| {
        s.queries = QueryMode::Queue;
        s.answer_pace = Some(ms(100));
        g.user_rate = RateLimit {
            burst: 3,
            refill: secs(30),
        };
    })
    .await?;
    let long = words(20 + st.rng.below(20) as usize, "r");
    c.query(&long).await?;
    c.query("second").await?;
    c.query("third").await?;
    deltas(&mut c, 2).await?;
    c.query("fourth").await?;
    let refused = c
        .until("rate_limited", secs(10), is_error(ErrorCode::RateLimited))
        .await?;
    ensure!(
        matches!(&refused.event, ServerEvent::Error { message, .. } if message.contains("retry in")),
        "the refusal does not say when to retry: {refused:?}"
    );
    for _ in 0..3 {
        c.until("a result", secs(60), is_result).await?;
    }
    answer_is(&c, 1, &long)?;
    answer_is(&c, 3, "third")?;
    ensure!(answer_of(&c, 4).1.is_none(), "the refused message ran");
    tokio::time::sleep(secs(31)).await;
    c.query("after the refill").await?;
    c.until("a result after the refill", secs(30), is_result)
        .await?;
    st.check_global()
}

scenario!(
    FORWARDED_FOR,
    "api.CONFIG-001",
    "Forwarded-for headers trusted only from configured proxies",
    "Trust is off by default; a client that is not a configured proxy cannot escape its per-address limit by inventing X-Forwarded-For values, while requests through the configured proxy are limited per original client.",
    ["client.forwarded_for"],
    cores: [
        "engine/src/gateway/forwarded.rs",
        "engine/src/gateway/rate.rs",
        "engine/src/gateway/server.rs",
    ],
    120,
    forwarded_for
);
async fn forwarded_for(world: World) -> Outcome {
    let defaults = GatewayConfig::new(TokenKeys::new(b"x", secs(1)));
    ensure!(
        defaults.trusted_proxies.is_empty(),
        "proxy trust is on by default"
    );
    let proxy = world.add_host("proxy-0");
    let proxy_ip = proxy.ip().to_string();
    let mut st = crate::stage::channel::ChannelStage::start(&world, |s, g| {
        s.session_limit = 30;
        g.address_rate = RateLimit {
            burst: 3,
            refill: secs(600),
        };
        g.trusted_proxies = vec![proxy_ip.clone()];
    })
    .await?;
    st.ready(secs(60)).await?;
    let token = st.token("ana", "member", secs(3600));
    let auth = format!("Bearer {token}");
    let mut spoofer_ok = 0;
    let mut proxied_ok = 0;
    for i in 1..=6 {
        let xff = format!("203.0.113.{i}");
        let headers = [
            ("authorization", auth.as_str()),
            ("x-forwarded-for", xff.as_str()),
        ];
        let (status, _, body) = st.http(0, "POST", "/sessions", &headers).await?;
        match status {
            201 => spoofer_ok += 1,
            429 if body.contains("rate_limited") => {}
            other => {
                return Err(Failure::correctness(format!(
                    "spoofer: HTTP {other} {body}"
                )));
            }
        }
        let (status, _, body) =
            crate::stage::client::http(proxy.env().net(), &st.addr, "POST", "/sessions", &headers)
                .await?;
        match status {
            201 => proxied_ok += 1,
            other => {
                return Err(Failure::correctness(format!(
                    "via proxy: HTTP {other} {body}"
                )));
            }
        }
    }
    ensure!(
        spoofer_ok == 3,
        "an untrusted client got {spoofer_ok} requests past a burst of 3 by forging X-Forwarded-For"
    );
    ensure!(proxied_ok == 6, "the proxy's clients were limited together");
    ensure!(
        st.gateway.stats.address_limited.load(Ordering::Relaxed) == 3,
        "address limit counted wrong"
    );
    st.check_global()
}

scenario!(
    HANDSHAKE_CUT,
    "core.EC-039",
    "Connection lost during the handshake before authentication",
    "A connection reset halfway through the upgrade request leaves nothing behind on the server (no socket, no session); the client retries with exponential backoff and its next attempt succeeds.",
    ["net.reset"],
    cores: ["engine/src/gateway/upgrade.rs", "engine/src/gateway/server.rs", "engine/src/http.rs"],
    120,
    handshake_cut,
    plan: handshake_cut_plan
);
/// Up to 3 handshakes cut (client 0's connection reset) at the moments the body marks.
fn handshake_cut_plan(seed: u64) -> sim::FaultPlan {
    crate::kit::plans::reset_client_at_each(crate::kit::plans::channel(seed), "handshake", 3)
}
async fn handshake_cut(world: World) -> Outcome {
    let mut st = crate::stage::channel::ChannelStage::start(&world, |_, _| {}).await?;
    st.ready(secs(60)).await?;
    let token = st.token("ana", "member", secs(3600));
    let cuts = 1 + st.rng.below(3);
    let host = st.client_host(0);
    let mut backoff = ms(100);
    for attempt in 1..=cuts {
        let mut raw = host
            .env()
            .net()
            .connect(&st.addr)
            .await
            .or_fail("connect")?;
        let head = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n",
            st.addr
        );
        let cut = 1 + st.rng.below(head.len() as u64 - 1) as usize;
        raw.write_all(&head.as_bytes()[..cut])
            .await
            .or_fail("write")?;
        tokio::time::sleep(ms(5)).await;
        world.mark(&format!("handshake-{attempt}"));
        drop(raw);
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    ensure!(
        st.gateway.stats.sockets.load(Ordering::Relaxed) == 0 && st.sessions.live_count() == 0,
        "a cut handshake left a socket or session behind"
    );
    let d = st.new_delivery();
    let mut c = st.open(0, &format!("token={token}"), &d).await?;
    c.query("made it").await?;
    c.until("a result", secs(30), is_result).await?;
    ensure!(
        st.sessions.live_count() == 1,
        "{} sessions for one client",
        st.sessions.live_count()
    );
    st.check_global()
}

scenario!(
    SHUTDOWN_RACE,
    "core.EC-047",
    "User message races the shutdown announcement",
    "Draining raises its flag before announcing: a message sent at any moment around the announcement is either answered (before the flag) or refused with server_shutting_down (after), never lost; new sockets and /ready get 503 while draining.",
    ["engine.shutdown"],
    cores: [
        "engine/src/sessions/service.rs",
        "engine/src/gateway/inbound.rs",
        "engine/src/gateway/server.rs",
    ],
    120,
    shutdown_race
);
async fn shutdown_race(world: World) -> Outcome {
    let (mut st, mut c, token) = one_client(&world, |s, _| {
        s.queries = QueryMode::Queue;
    })
    .await?;
    c.query("before").await?;
    c.until("a result", secs(30), is_result).await?;
    let lead = ms(st.rng.below(40));
    let sessions = st.sessions.clone();
    let drain = st.env.spawn("drain", async move {
        tokio::time::sleep(lead).await;
        sessions.drain().await
    });
    tokio::time::sleep(ms(20)).await;
    c.query("racing").await?;
    let verdict = c
        .until("the racing message's fate", secs(30), |m| {
            is_result(m) || is_error(ErrorCode::ServerShuttingDown)(m)
        })
        .await?;
    let announcement = |m: &engine::protocol::ServerMessage| matches!(&m.event, ServerEvent::SessionEnding { reason, .. } if reason.contains("shutting down"));
    let announced = c
        .delivery
        .lock()
        .expect("delivery")
        .messages
        .iter()
        .any(announcement);
    if !announced {
        c.until("the shutdown announcement", secs(30), announcement)
            .await?;
    }
    drain
        .await
        .map_err(|e| Failure::correctness(format!("drain: {e:?}")))?;
    let ran = answer_of(&c, 2).1.is_some();
    ensure!(
        ran == is_result(&verdict),
        "the racing message both ran and was refused, or neither"
    );
    c.query("after").await?;
    c.until(
        "server_shutting_down",
        secs(10),
        is_error(ErrorCode::ServerShuttingDown),
    )
    .await?;
    ensure!(answer_of(&c, 3).1.is_none(), "a message after the flag ran");
    let d = st.new_delivery();
    match st.connect(1, &format!("token={token}"), &d).await {
        Err(crate::stage::client::ConnectError::Refused(r)) if r.status == 503 => {}
        other => {
            return Err(Failure::correctness(format!(
                "a new socket while draining: {:?}",
                other.map(|_| "opened")
            )));
        }
    }
    let (status, _, _) = st.http(1, "GET", "/ready", &[]).await?;
    ensure!(status == 503, "/ready answered {status} while draining");
    st.check_global()
}
