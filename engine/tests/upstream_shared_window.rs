//! The 429 window shared by two instances of one account through the lock service, for
//! real on loopback (real sockets, the machine's clock): a 429 one instance reads holds
//! the other back without a call, another account is not held, and with the service
//! gone an instance follows its own 429s alone.

mod common;

use common::serve;
use engine::env::real::{RealEnvOptions, real_env};
use engine::env::{Env, NetAddr};
use engine::sessions::lock::{LockLimits, LockServer, SessionLock, SessionLockConfig};
use engine::upstream::{AnswerOutcome, UpstreamClient, UpstreamConfig, UpstreamError, WindowShare};
use std::sync::Arc;
use std::time::Duration;

fn instance(
    env: &Env,
    api: &NetAddr,
    key: &str,
    service: &NetAddr,
    name: &str,
) -> Arc<UpstreamClient> {
    let lock = SessionLock::new(
        env.clone(),
        service.clone(),
        name,
        SessionLockConfig::standard(),
    );
    let share = WindowShare::new(Arc::new(lock), api, key);
    UpstreamClient::try_new_shared(
        env.clone(),
        UpstreamConfig::new(api.clone(), key),
        Some(share),
    )
    .expect("no TLS to build")
}

#[tokio::test]
async fn two_instances_share_a_429_window_through_the_lock_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    let (_upstream, mode, api) = serve(&env).await;
    let service = LockServer::start(&env, 0, LockLimits::default())
        .await
        .expect("the lock service binds a loopback port");
    let a = instance(&env, &api, "key-1", service.addr(), "a");
    let b = instance(&env, &api, "key-1", service.addr(), "b");
    a.probe().await.expect("the API answers");

    let window = Duration::from_secs(30);
    mode.set(AnswerOutcome::Refuse {
        status: 429,
        retry_after: Some(window),
    });
    assert_eq!(
        a.complete("meets the limit").await,
        Err(UpstreamError::RateLimited {
            retry_after: window
        })
    );
    assert_eq!(a.stats().shared_window.published, 1);
    assert_eq!(service.hold_stats().holds, 1);

    let sent = b.stats().requests;
    let held = b.probe().await;
    assert!(
        matches!(held, Err(UpstreamError::RateLimited { retry_after }) if retry_after <= window && retry_after > window - Duration::from_secs(10)),
        "b was not held back for what is left of a's window: {held:?}"
    );
    assert_eq!(
        b.stats().requests,
        sent,
        "b called the API inside a's window"
    );
    assert_eq!(b.stats().shared_window.held, 1);
    assert_eq!(b.stats().held_back, 1);

    // Another account's instance is not held by this one's window.
    let other = instance(&env, &api, "key-2", service.addr(), "other");
    let refused = other.probe().await;
    assert_eq!(other.stats().requests, 1, "{refused:?}");

    // The service gone: a new instance asks, finds no one, and goes alone.
    service.stop();
    let alone = instance(&env, &api, "key-1", service.addr(), "alone");
    let met = alone.probe().await;
    assert!(
        matches!(met, Err(UpstreamError::RateLimited { .. })),
        "{met:?}"
    );
    let stats = alone.stats();
    assert_eq!(stats.requests, 1, "it called the API itself: {stats:?}");
    assert_eq!(stats.shared_window.unreachable, 1, "{stats:?}");
    let again = alone.probe().await;
    assert!(
        matches!(again, Err(UpstreamError::RateLimited { .. })),
        "{again:?}"
    );
    assert_eq!(
        alone.stats().requests,
        1,
        "its own window holds it back, without the service"
    );
}
