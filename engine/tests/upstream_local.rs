//! The upstream client against the local model server, for real on loopback: answers,
//! 429 with Retry-After and the shared rate-limit window, 5xx opening the breaker, a
//! bad key.

mod common;

use common::serve;
use engine::env::real::{RealEnvOptions, real_env};
use engine::env::{Env, NetAddr};
use engine::upstream::{
    AnswerOutcome, BreakerPolicy, UpstreamClient, UpstreamConfig, UpstreamError,
};
use std::sync::Arc;
use std::time::Duration;

fn client(env: &Env, addr: &NetAddr, key: &str) -> Arc<UpstreamClient> {
    let mut config = UpstreamConfig::new(addr.clone(), key);
    config.breaker = BreakerPolicy {
        failures_to_open: 2,
        open_for: Duration::from_secs(60),
    };
    UpstreamClient::new(env.clone(), config)
}

#[tokio::test]
async fn answers_limits_failures_and_bad_keys_are_told_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    let (upstream, mode, addr) = serve(&env).await;

    let c = client(&env, &addr, "key-1");
    c.probe().await.expect("probe");
    assert_eq!(c.complete("echo me").await.expect("answer"), "echo me");

    mode.set(AnswerOutcome::Refuse {
        status: 429,
        retry_after: Some(Duration::from_secs(7)),
    });
    assert_eq!(
        c.complete("x").await,
        Err(UpstreamError::RateLimited {
            retry_after: Duration::from_secs(7)
        })
    );
    let sent = c.stats().requests;
    assert!(matches!(
        c.probe().await,
        Err(UpstreamError::RateLimited { retry_after }) if retry_after <= Duration::from_secs(7)
    ));
    assert_eq!(c.stats().requests, sent, "held back inside the window");
    assert_eq!(c.stats().held_back, 1);
    assert!(!c.is_open(), "a 429 is an answer, not an outage");

    mode.set(AnswerOutcome::Refuse {
        status: 503,
        retry_after: None,
    });
    let c = client(&env, &addr, "key-1");
    for _ in 0..2 {
        assert!(matches!(
            c.complete("x").await,
            Err(UpstreamError::Unavailable { detail }) if detail.contains("503")
        ));
    }
    assert!(c.is_open(), "two failures in a row open the breaker");
    assert!(matches!(
        c.complete("x").await,
        Err(UpstreamError::CircuitOpen { .. })
    ));
    let stats = c.stats();
    assert_eq!(
        (stats.requests, stats.refused_open, stats.breaker_opened),
        (2, 1, 1)
    );

    mode.set(AnswerOutcome::Serve);
    let bad = client(&env, &addr, "wrong");
    assert!(matches!(
        bad.probe().await,
        Err(UpstreamError::KeyRejected { status: 401, detail }) if detail.contains("authentication_error")
    ));
    let statuses: Vec<u16> = upstream.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 429, 503, 503, 401]);
}

#[tokio::test]
async fn nothing_listening_is_unavailable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    let listener = env.net().bind(0).await.expect("bind");
    let addr = NetAddr::new("127.0.0.1", listener.local_addr().port);
    drop(listener);
    let c = client(&env, &addr, "key-1");
    assert!(matches!(
        c.probe().await,
        Err(UpstreamError::Unavailable { .. })
    ));
}

#[tokio::test]
async fn an_answer_past_the_bound_is_unusable_not_an_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    let (_upstream, _mode, addr) = serve(&env).await;
    let mut config = UpstreamConfig::new(addr, "key-1");
    // A messages answer's envelope is about 250 bytes: a short answer fits.
    config.answer_bytes_max = 512;
    let c = UpstreamClient::new(env.clone(), config);
    assert!(matches!(
        c.complete(&"w ".repeat(400)).await,
        Err(UpstreamError::Malformed { detail }) if detail.contains("longer than 512 bytes")
    ));
    assert_eq!(c.complete("short").await.expect("a short answer"), "short");
    assert!(!c.is_open());
}

#[tokio::test]
async fn cut_short_empty_and_dropped_answers_are_errors_or_answers_never_garbage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    let (_upstream, mode, addr) = serve(&env).await;
    let c = client(&env, &addr, "key-1");
    mode.set(AnswerOutcome::Empty);
    assert_eq!(c.complete("say it").await, Ok(String::new()));
    mode.set(AnswerOutcome::Truncate);
    assert!(
        matches!(
            c.complete("say it").await,
            Err(UpstreamError::Malformed { .. })
        ),
        "a body cut short does not parse"
    );
    mode.set(AnswerOutcome::DropMidAnswer);
    let dropped = c.complete("say it").await;
    assert!(
        matches!(
            dropped,
            Err(UpstreamError::Unavailable { .. } | UpstreamError::Malformed { .. })
        ),
        "a connection dropped mid-answer is an error, got {dropped:?}"
    );
}
