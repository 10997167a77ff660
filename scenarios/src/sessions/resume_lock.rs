//! A resume from the store takes the distributed session lock
//! (`sim.sessions.resume-takes-lock`, a self-check outside the catalog): the lock
//! api.SCALE-001 measures is the one the engine's resume path takes, hosted by an engine
//! and used by another, both built by `Engine::start`.
//!
//! The store's claim alone already lets one of two resumes win, so "exactly one wins"
//! cannot tell whether the lock was taken. A probe holding the session's key can: while
//! it holds the key, no resume may look at the record, and a resume that cannot get the
//! key within the acquire timeout must be refused, not left waiting.

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::sessions::handed_over;
use crate::scenario::{Failure, Outcome, Scenario, converge};
use crate::stage::channel::ChannelStage;
use crate::stage::client::SimClient;
use engine::protocol::ErrorCode;
use engine::sessions::lock::{LockServer, SessionLock, SessionLockConfig, session_key};
use engine::{Engine, LockChoice};
use sim::World;
use std::time::Duration;
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&RESUME_TAKES_LOCK]
}

/// Where instance b hosts the lock service (on the engine host).
const LOCK_PORT: u16 = 7300;
/// The probe's lease: the service's longest (the standard lease), and longer than the
/// whole exchange, so only its release frees the key.
const PROBE_TTL: Duration = Duration::from_secs(30);
/// How long the probe holds the key while two resumes wait (below the acquire timeout,
/// so both are still trying when it lets go).
const HOLD: Duration = Duration::from_secs(1);
/// A refused resume is answered within the acquire timeout plus this (the last try's
/// round trip, the handshake's).
const ANSWER_SLACK: Duration = Duration::from_millis(500);

scenario!(
    RESUME_TAKES_LOCK,
    "sim.sessions.resume-takes-lock",
    "A resume from the store takes the session lock around its check and claim",
    "Instance A hands a session over; instance B hosts the session lock service and uses it, instance C uses B's; both share A's store. A probe takes the session's lock key and holds it past the acquire timeout: a resume through C is refused within the timeout plus 500 ms (session_already_active naming the lock) and the record stays unclaimed. The probe takes the key again and holds it for 1 s while two clients resume the session through B and C at once: meanwhile the record stays unclaimed, the session is live nowhere and the service refuses both instances; once the probe lets go exactly one resume wins with the history, the other is told session_already_active, and the service counted one grant and one release per taker (the probe twice, B and C once each), no lease lost. Throughout, a free key after an instance's grant comes with a claimed record (the lock is given back after the claim). Once B stops (its service with it), a resume through C is refused saying the lock service could not be reached, within the acquire timeout plus one request timeout.",
    ["lock.contention"],
    cores: [
        "engine/src/sessions/resume_lock.rs",
        "engine/src/sessions/lock/client.rs",
        "engine/src/sessions/service.rs",
        "engine/src/root/lock.rs"
    ],
    180,
    resume_takes_lock
);
async fn resume_takes_lock(world: World) -> Outcome {
    let (mut st, token, id) = handed_over(&world).await?;
    let config = SessionLockConfig::standard();
    let serve = LockChoice::Serve {
        port: LOCK_PORT,
        config: config.clone(),
    };
    let b = ready(&st, "b", 8081, serve).await?;
    let service = b
        .lock_service()
        .ok_or_else(|| Failure::correctness("instance b hosts no lock service"))?;
    let used = LockChoice::Use {
        service: service.addr().clone(),
        config: config.clone(),
    };
    let c = ready(&st, "c", 8082, used).await?;
    ensure!(
        c.lock_service().is_none() && b.session_lock().is_some() && c.session_lock().is_some(),
        "b and c should both have a lock client, and only b the service"
    );
    let key = session_key(&id);
    let probing = SessionLockConfig {
        ttl: PROBE_TTL,
        ..config.clone()
    };
    let probe = SessionLock::new(
        st.client_host(3).env(),
        service.addr().clone(),
        "probe",
        probing,
    );
    let query = format!("token={token}&session={id}");
    let lock_failed = |e| Failure::correctness(format!("the probe's lock {key}: {e}"));

    // The key held past the acquire timeout: the resume is refused in time.
    let held = probe.acquire(&key).await.map_err(lock_failed)?;
    let d = st.new_delivery();
    let bound = config.backoff.acquire_timeout + ANSWER_SLACK;
    let asked = Instant::now();
    let resume = st.connect_to(0, c.addr(), &query, &d);
    let refused = converge("a resume while its lock is held", 2 * bound, resume).await?;
    let waited = asked.elapsed();
    match refused {
        Ok(_) => {
            return Err(Failure::correctness(format!(
                "a resume through c won session {id} while the probe held its lock {key}: \
                 the resume did not take the lock"
            )));
        }
        Err(e) => ensure!(
            refusal_code(&e) == Some(ErrorCode::SessionAlreadyActive)
                && refusal_text(&e).contains("lock"),
            "a resume that could not take its lock was told: {e}"
        ),
    }
    ensure!(
        waited >= config.backoff.acquire_timeout && waited <= bound,
        "a resume that could not take its lock was answered after {} ms (acquire timeout {} \
         ms, +{} ms)",
        waited.as_millis(),
        config.backoff.acquire_timeout.as_millis(),
        ANSWER_SLACK.as_millis()
    );
    untouched(&st, &b, &c, &id, "after the refused resume")?;
    probe.release(held).await.map_err(lock_failed)?;

    // Two resumes at once while the probe holds the key: they wait, then one wins.
    let busy_before = service.stats().busy;
    let held = probe.acquire(&key).await.map_err(lock_failed)?;
    let probe_token = held.token.clone();
    let (h0, h1) = (st.client_host(0), st.client_host(1));
    let (e0, e1) = (h0.env(), h1.env());
    let (d0, d1) = (st.new_delivery(), st.new_delivery());
    let hold = async {
        tokio::time::sleep(HOLD).await;
        let stats = service.stats();
        let seen = (
            untouched(&st, &b, &c, &id, "while the probe held the lock"),
            service.holder(&key),
            stats.busy - busy_before,
        );
        let released = probe.release(held).await;
        // No instance can have been granted the key before this point: it was held.
        let watched = watch(&st, service, &key, &id, stats.grants, 2 * bound).await;
        (seen, released, watched)
    };
    let (r0, r1, (seen, released, watched)) = tokio::join!(
        SimClient::connect(e0.net(), b.addr(), &query, d0),
        SimClient::connect(e1.net(), c.addr(), &query, d1),
        hold,
    );
    let (untouched_during, holder, refusals) = seen;
    untouched_during?;
    watched?;
    ensure!(
        holder.as_deref() == Some(probe_token.as_str()),
        "after {} ms of the probe's hold, the service named {holder:?} as the holder of {key}",
        HOLD.as_millis()
    );
    ensure!(
        refusals >= 2,
        "the service refused {refusals} tries of {key} during the probe's hold: both \
         instances should have been waiting for the lock"
    );
    released.map_err(lock_failed)?;
    let live_on = [
        b.sessions().get(&id).is_some(),
        c.sessions().get(&id).is_some(),
    ];
    let (winner, loser) = match (r0, r1) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        (Ok(_), Ok(_)) => return Err(Failure::correctness("both resumes won")),
        (Err(x), Err(y)) => {
            return Err(Failure::correctness(format!(
                "both resumes lost: {x} / {y}"
            )));
        }
    };
    ensure!(
        live_on.iter().filter(|l| **l).count() == 1 && winner.session_id == id,
        "session {id} live on {live_on:?} (b, c); the winner got {}",
        winner.session_id
    );
    ensure!(
        refusal_code(&loser) == Some(ErrorCode::SessionAlreadyActive),
        "the loser was told: {loser}"
    );
    let restored = if live_on[0] {
        b.sessions()
    } else {
        c.sessions()
    }
    .get(&id);
    let history = restored.map(|s| s.transcript()).unwrap_or_default();
    ensure!(
        history.iter().any(|l| l == "> remember blue"),
        "the resumed session lost its history: {history:?}"
    );
    let s = service.stats();
    ensure!(
        s.grants == 4 && s.releases == 4 && service.holder(&key).is_none(),
        "the lock service granted {} and took back {} leases (expected 4 and 4: the probe \
         twice, b and c once each), and {key} is held by {:?}",
        s.grants,
        s.releases,
        service.holder(&key)
    );
    ensure!(
        s.not_owner == 0 && s.expired == 0 && s.errors == 0,
        "the lock service saw {} late releases, {} expired leases, {} bad lines",
        s.not_owner,
        s.expired,
        s.errors
    );

    // The lock host stops (and its service with it): a resume through c is refused,
    // saying so, within the acquire timeout and one request's timeout.
    b.stop().await;
    let d = st.new_delivery();
    let bound = config.backoff.acquire_timeout + config.request_timeout + ANSWER_SLACK;
    let asked = Instant::now();
    let query = format!("token={token}&session=s999999");
    let resume = st.connect_to(2, c.addr(), &query, &d);
    let answer = converge("a resume without a lock service", 2 * bound, resume).await?;
    let waited = asked.elapsed();
    match answer {
        Ok(c) => {
            return Err(Failure::correctness(format!(
                "a resume without a lock service was served (session {})",
                c.session_id
            )));
        }
        Err(e) => ensure!(
            refusal_code(&e) == Some(ErrorCode::SessionAlreadyActive)
                && refusal_text(&e).contains("could not be reached")
                && waited <= bound,
            "a resume without a lock service was told after {} ms (at most {} ms): {e}",
            waited.as_millis(),
            bound.as_millis()
        ),
    }
    drop(winner);
    st.check_global()
}

/// Instance `name` on `port` with the session lock `lock`, once its pool is ready.
async fn ready(
    st: &ChannelStage,
    name: &str,
    port: u16,
    lock: LockChoice,
) -> Result<Engine, Failure> {
    let engine = st.instance_with(name, port, lock).await?;
    let sessions = engine.sessions().clone();
    st.eventually(&format!("instance {name} ready"), secs(60), || {
        sessions.is_ready()
    })
    .await?;
    Ok(engine)
}

/// Session `id` is still stored unclaimed and live on neither instance.
fn untouched(st: &ChannelStage, b: &Engine, c: &Engine, id: &str, when: &str) -> Outcome {
    let claimed = st.store.get(id).map(|r| r.map(|r| r.claimed_by));
    let live = [
        b.sessions().get(id).is_some(),
        c.sessions().get(id).is_some(),
    ];
    ensure!(
        matches!(claimed, Ok(Some(None))) && live == [false, false],
        "{when}: session {id}'s record is {claimed:?} (expected stored, claimed by nobody) \
         and it is live on {live:?} (b, c): a resume did not wait for the lock"
    );
    Ok(())
}

/// From the probe's release until both instances have taken and given back the key
/// (or `bound` passed), every millisecond: once the service has granted the key to an
/// instance (past `grants_before`) and the key is free again, the record must be
/// claimed. A resume claims before it sends its release, so a free key after a grant
/// with no claim means the lock was given back before the claim.
async fn watch(
    st: &ChannelStage,
    service: &LockServer,
    key: &str,
    id: &str,
    grants_before: u64,
    bound: Duration,
) -> Outcome {
    let deadline = Instant::now() + bound;
    loop {
        let granted = service.stats().grants - grants_before;
        let free = service.holder(key).is_none();
        let claimed = matches!(st.store.get(id), Ok(Some(r)) if r.claimed_by.is_some());
        ensure!(
            granted == 0 || !free || claimed,
            "{key} was granted to an instance and is free again, yet session {id} is not \
             claimed: a resume gave its lock back before its claim"
        );
        // The oracles after both resumes say what went wrong if this never settles.
        if (granted >= 2 && free) || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
