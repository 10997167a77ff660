//! The model API over TLS, its certificate judged by the engine's wall clock
//! (enable.1.2.3). The local model server on `upstream-0` presents a leaf for that name
//! signed by a test CA the engine trusts; the plan jumps the engine host's clock into
//! the leaf's expiring-soon window, then past its notAfter.
//!
//! Choices where the catalog leaves one: blocking or warning is drawn per seed (both
//! are shipped configurations); the leaf lives 90 days and the warning window is 14
//! days (the engine's default: half the usual 30-day renewal lead, so one failed renewal
//! is still noticed). A refused certificate fails the query as `upstream_unavailable`
//! with the session kept (a clock put right makes the certificate valid again, so it is
//! a transient failure, retried and counted by the breaker like an unreachable API). In
//! warning mode an expired certificate is accepted only if it is otherwise valid (chain,
//! name) as of its own last valid second. Every call is a full handshake (no
//! resumption), so each call's certificate is judged at that call's time. A certificate
//! not yet valid by the engine's clock (a clock set back) is refused in both modes: the
//! catalog's warning mode is about expiry only.

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::sessions::upstream_of;
use crate::kit::tls::test_pki;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::{ChannelStage, ENGINE_HOST, UPSTREAM_HOST, with_upstream};
use crate::stage::client::SimClient;
use engine::protocol::{ErrorCode, ServerEvent};
use engine::upstream::{
    ExpiredPolicy, LocalUpstream, MESSAGES_PATH, TlsConfig, TlsStats, UpstreamClient,
};
use sim::faults::Fault;
use sim::{FaultPlan, SimRng, World};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&EXPIRED_CERTIFICATE]
}

scenario!(
    EXPIRED_CERTIFICATE,
    "enable.1.2.3",
    "Remote service presents an expired TLS certificate",
    "The engine reaches the model API over TLS and judges its certificate by its own wall clock. While the certificate is valid and far from expiry, queries are answered with no warning; once the engine's clock is inside the 14-day warning window, each handshake warns (tls.expiring_soon) and queries are still answered; once it is past notAfter, in blocking mode the handshake is refused (tls.expired_rejected): the query fails with upstream_unavailable, no request reaches the API and the session is kept; in warning mode the certificate is accepted with a warning (tls.expired_accepted) and the query is answered. Warnings appear exactly when the clock is in the window or past expiry.",
    ["clock.jump", "tls.expiring_soon", "tls.expired_accepted", "tls.expired_rejected"],
    cores: [
        "engine/src/upstream/tls/expiry.rs",
        "engine/src/upstream/tls/mod.rs",
        "engine/src/upstream/tls/from_env.rs",
        "engine/src/upstream/http.rs",
    ],
    900,
    expired_certificate,
    plan: expiry_plan
);

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;
/// The leaf's lifetime from the simulated epoch (the run starts there).
const LIFETIME_MS: u64 = 90 * DAY_MS;
const WINDOW_MS: u64 = 14 * DAY_MS;

/// The engine's clock jumps into the warning window (at least an hour inside either
/// edge) when the body marks `into-window`, then past the leaf's notAfter (by an hour to
/// 30 days) at `past-expiry`. Alone, the second jump lands well before the window.
fn expiry_plan(seed: u64) -> FaultPlan {
    let mut rng = SimRng::new(seed, "plan");
    let inside = HOUR_MS + rng.below(WINDOW_MS - 2 * HOUR_MS);
    let into = LIFETIME_MS - WINDOW_MS + inside;
    let past = (WINDOW_MS - inside) + HOUR_MS + rng.below(30 * DAY_MS);
    let jump = |ms: u64| Fault::ClockJump {
        host: ENGINE_HOST.into(),
        delta_ms: ms as i64,
    };
    crate::kit::plans::channel_upstream(seed)
        .after("into-window", 0, jump(into))
        .after("past-expiry", 0, jump(past))
}

/// Where the engine's clock stands against the leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Standing {
    Valid,
    ExpiringSoon,
    Expired,
}

struct Judge {
    policy: ExpiredPolicy,
    not_after: SystemTime,
    window: Duration,
    client: Arc<UpstreamClient>,
    api: Arc<LocalUpstream>,
    asked: u64,
}

fn since(before: TlsStats, after: TlsStats) -> TlsStats {
    TlsStats {
        expiring_soon: after.expiring_soon - before.expiring_soon,
        expired_accepted: after.expired_accepted - before.expired_accepted,
        expired_rejected: after.expired_rejected - before.expired_rejected,
    }
}

impl Judge {
    fn standing(&self, now: SystemTime) -> Standing {
        if now > self.not_after {
            Standing::Expired
        } else if now + self.window >= self.not_after {
            Standing::ExpiringSoon
        } else {
            Standing::Valid
        }
    }

    /// Asks one query and judges its outcome and the warnings it raised against where
    /// the engine's clock stands (the plan's jumps keep it an hour from either edge).
    async fn ask(&mut self, st: &ChannelStage, ana: &mut SimClient, text: &str) -> Outcome {
        let standing = self.standing(st.env.wall_now());
        let before = self.client.stats().tls;
        let asked_at = Instant::now();
        self.asked += 1;
        let query = self.asked;
        ana.query(text).await?;
        let m = ana
            .until("the answer or the refusal", secs(120), |m| {
                matches!(m.event, ServerEvent::Result { query: q, .. } if q == query)
                    || matches!(
                        m.event,
                        ServerEvent::Error {
                            code: ErrorCode::UpstreamUnavailable,
                            ..
                        }
                    )
            })
            .await?;
        ensure!(
            self.standing(st.env.wall_now()) == standing,
            "the engine's clock crossed an edge during the query"
        );
        let met = since(before, self.client.stats().tls);
        let refused = standing == Standing::Expired && self.policy == ExpiredPolicy::Block;
        if refused {
            ensure!(
                matches!(&m.event, ServerEvent::Error { message, .. } if message.contains("session is kept")),
                "a query over an expired certificate in blocking mode was not refused with the session kept: {m:?}"
            );
            let reached: Vec<_> = self
                .api
                .requests()
                .into_iter()
                .filter(|r| r.path == MESSAGES_PATH && r.at >= asked_at)
                .collect();
            ensure!(
                reached.is_empty(),
                "a query reached the model API over an expired certificate: {reached:?}"
            );
            let total = self.client.stats().tls;
            ensure!(
                total.expired_rejected >= 1,
                "the expired certificate's refusal was not counted: {total:?}"
            );
            let s = st.session(&ana.session_id)?;
            ensure!(s.end_reason().is_none(), "the refusal ended the session");
        } else {
            ensure!(
                matches!(m.event, ServerEvent::Result { .. }),
                "a query over a certificate acceptable at the engine's clock ({standing:?}, {:?}) was not answered: {m:?}",
                self.policy
            );
            let (_, answer) = answer_of(ana, query);
            ensure!(
                answer.as_deref().is_some_and(|a| a.contains(text)),
                "query {query}'s answer is not the model's: {answer:?}"
            );
        }
        // Each warning exactly when the clock stands there (a refusal may also come
        // from the breaker its earlier refusals opened: counted once at least, above).
        let warned = met.expiring_soon > 0;
        let accepted = met.expired_accepted > 0;
        ensure!(
            warned == (standing == Standing::ExpiringSoon)
                && accepted == (standing == Standing::Expired && !refused)
                && (refused || met.expired_rejected == 0),
            "warnings {met:?} for a certificate whose standing is {standing:?} ({:?} mode)",
            self.policy
        );
        Ok(())
    }
}

async fn expired_certificate(world: World) -> Outcome {
    let mut draw = world.rng("tls");
    let policy = if draw.below(2) == 0 {
        ExpiredPolicy::Block
    } else {
        ExpiredPolicy::Warn
    };
    let epoch = UNIX_EPOCH + Duration::from_nanos(sim::clock::EPOCH_UNIX_NS);
    let pki = test_pki(
        draw.next_u64(),
        UPSTREAM_HOST,
        epoch,
        epoch + Duration::from_millis(LIFETIME_MS),
    )?;
    let window = Duration::from_millis(WINDOW_MS);
    let tls = TlsConfig {
        roots: vec![pki.root.clone()],
        server_name: UPSTREAM_HOST.to_string(),
        expired: policy,
        expiring_soon_window: window,
    };
    let mut st = ChannelStage::start_tls(&world, pki.identity.clone(), |s, _| {
        with_upstream(s);
        if let Some(up) = s.upstream.as_mut() {
            up.tls = Some(tls);
        }
    })
    .await?;
    st.ready(secs(60)).await?;
    // The token outlives every jump: only the certificate is judged here.
    let token = st.token("ana", "member", secs(400 * 86_400));
    let d = st.new_delivery();
    let mut ana = st.open(0, &format!("token={token}"), &d).await?;
    let client = st
        .sessions
        .upstream()
        .cloned()
        .ok_or_else(|| Failure::correctness("the engine has no upstream client"))?;
    let mut judge = Judge {
        policy,
        not_after: pki.leaf_not_after,
        window,
        client,
        api: upstream_of(&st)?,
        asked: 0,
    };
    judge.ask(&st, &mut ana, "a fresh certificate").await?;
    world.mark("into-window");
    judge
        .ask(&st, &mut ana, "inside the warning window")
        .await?;
    world.mark("past-expiry");
    judge
        .ask(&st, &mut ana, "after the certificate expired")
        .await?;
    // Over the whole run: a warning of each kind exactly when the clock stood there.
    let total = judge.client.stats().tls;
    let end = judge.standing(st.env.wall_now());
    ensure!(
        (total.expired_accepted > 0) == (end == Standing::Expired && policy == ExpiredPolicy::Warn)
            && (total.expired_rejected > 0)
                == (end == Standing::Expired && policy == ExpiredPolicy::Block),
        "expiry warnings {total:?} for a run that ended {end:?} in {policy:?} mode"
    );
    st.check_global()
}
