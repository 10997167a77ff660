//! An invalid model API key (core.EC-098): found by the start-up check, not by every
//! session later. The key is made invalid by the simulated model API revoking it (its
//! `KeyRevoked` mode: 401 for every call) while one instance runs; a second instance
//! started then must refuse to start.

use super::kit::*;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::with_upstream;
use engine::EngineError;
use engine::env::NetAddr;
use engine::protocol::{ErrorCode, ServerEvent};
use engine::upstream::{MODELS_PATH, UpstreamError};
use sim::upstream::UpstreamMode;
use sim::{FaultPlan, World};

pub fn all() -> Vec<&'static Scenario> {
    vec![&INVALID_KEY]
}

/// The second instance's port.
const SECOND_PORT: u16 = 8081;

scenario!(
    INVALID_KEY,
    "core.EC-098",
    "Invalid upstream API key configured",
    "The model API revokes the engine's key: an instance started then makes one test call at start-up, gets 401, and refuses to start (EngineError::UpstreamKey, saying to fix the key; nothing listens on its port; no worker or session was started for it), instead of starting and tripping the breaker for every session; the instance already running tells its user the operator must fix the key, and its breaker stays closed (401 is an answer, not an outage); once the key is valid again, the second instance starts and answers.",
    ["upstream.key_revoked"],
    cores: ["engine/src/root/mod.rs", "engine/src/upstream/client/mod.rs"],
    300,
    invalid_key,
    plan: invalid_key_plan
);
/// The key revoked once the body marks it, valid again when it marks the fix.
fn invalid_key_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed)
        .after("revoked", 0, mode(UpstreamMode::KeyRevoked))
        .after("fixed", 0, mode(UpstreamMode::Serving))
}
async fn invalid_key(world: World) -> Outcome {
    let (mut st, mut ana, token) = one_client(&world, |s, _| with_upstream(s)).await?;
    let up = upstream_of(&st)?;
    let client = engine_client(&st)?;
    let upstream_config = st.sessions.config().upstream.clone();
    let configure = |c: &mut engine::EngineConfig| c.sessions.upstream = upstream_config.clone();
    let revoked = !world.mark("revoked").is_empty();
    let calls_before = up.requests().len();
    let started = st
        .instance_configured("second", SECOND_PORT, configure)
        .await;
    let second_addr = NetAddr::new(crate::stage::channel::ENGINE_HOST, SECOND_PORT);
    if !revoked {
        let second = started.map_err(|e| Failure::correctness(format!("start: {e}")))?;
        ensure!(
            second.addr() == &second_addr,
            "the second instance is elsewhere"
        );
        return st.check_global();
    }
    let e = match started {
        Ok(_) => {
            return Err(Failure::correctness(
                "an instance started with a revoked model API key",
            ));
        }
        Err(e) => e,
    };
    ensure!(
        matches!(
            &e,
            EngineError::UpstreamKey(UpstreamError::KeyRejected { status: 401, .. })
        ) && e.to_string().contains("fix the key"),
        "the start failed, but not as a rejected key the operator must fix: {e}"
    );
    let checks: Vec<_> = up.requests()[calls_before..]
        .iter()
        .filter(|r| r.status == 401)
        .map(|r| r.path.clone())
        .collect();
    ensure!(
        checks == [MODELS_PATH],
        "the start-up check was not exactly one test call refused with 401: {checks:?}"
    );
    let reached = st.client_host(1).env().net().connect(&second_addr).await;
    ensure!(
        reached.is_err(),
        "something listens on the port of the instance that refused to start"
    );
    // The running instance: its user is told the key must be fixed; no breaker opens.
    ana.query("while the key is revoked").await?;
    let told = ana
        .until(
            "the key error",
            secs(60),
            is_error(ErrorCode::UpstreamUnavailable),
        )
        .await?;
    ensure!(
        matches!(&told.event, ServerEvent::Error { message, .. } if message.contains("API key")),
        "the user was not told it is the engine's key: {told:?}"
    );
    ensure!(
        !client.is_open() && client.stats().breaker_opened == 0,
        "a rejected key opened the breaker: {:?}",
        client.stats()
    );
    world.mark("fixed");
    let second = st
        .instance_configured("second", SECOND_PORT, configure)
        .await
        .map_err(|e| Failure::correctness(format!("the start with a valid key failed: {e}")))?;
    let d = st.new_delivery();
    let mut bob = st
        .open_at(1, second.addr(), &format!("token={token}"), &d)
        .await?;
    answered(&mut bob, 1, "the key works again").await?;
    st.check_global()
}
