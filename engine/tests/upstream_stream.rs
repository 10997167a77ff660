//! Streamed model calls against the local model server, for real on loopback: every
//! delta once and in order; a transient failure before the first byte retried (and
//! counted), never after it; a 429 not retried; a stream cut short, an error mid-stream
//! or an empty answer never taken for an answer.

mod common;

use common::{OneOutcome, serve};
use engine::env::Env;
use engine::env::real::{RealEnvOptions, real_env};
use engine::upstream::{
    AnswerOutcome, LocalUpstream, ModelCall, ModelEvent, UpstreamClient, UpstreamConfig,
    UpstreamError,
};
use engine::workers::retry::RetryPolicy;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

struct Setup {
    env: Env,
    upstream: Arc<LocalUpstream>,
    outcome: Arc<OneOutcome>,
    client: Arc<UpstreamClient>,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = real_env(RealEnvOptions::loopback(dir.path()));
        let (upstream, outcome, addr) = serve(&env).await;
        let mut config = UpstreamConfig::new(addr, "key-1");
        // The upstream's schedule, with delays short enough for a test on real time.
        config.retry = RetryPolicy {
            delay_first: Duration::from_millis(5),
            delay_max: Duration::from_millis(20),
            ..config.retry
        };
        let client = UpstreamClient::new(env.clone(), config);
        Setup {
            env,
            upstream,
            outcome,
            client,
            _dir: dir,
        }
    }

    fn set(&self, outcome: AnswerOutcome) {
        self.outcome.set(outcome);
    }

    /// Streams `input`; returns the deltas received and the call's result.
    async fn stream(&self, input: &str) -> (Vec<String>, Result<u64, UpstreamError>) {
        let (tx, mut rx) = mpsc::channel(4);
        let client = self.client.clone();
        let call = ModelCall::user("local-echo-1", input);
        let call = self.env.spawn("call", async move {
            client.stream(&call, &tx).await.map(|s| s.deltas)
        });
        let mut deltas = Vec::new();
        while let Some(event) = rx.recv().await {
            match event {
                ModelEvent::Delta(d) => deltas.push(d),
                other => panic!("no fallback is configured: {other:?}"),
            }
        }
        (deltas, call.await.expect("the call task ends"))
    }
}

const INPUT: &str = "a streamed answer, long enough for several deltas of sixteen characters";

#[tokio::test]
async fn every_delta_arrives_once_and_in_order() {
    let s = Setup::new().await;
    let (deltas, result) = s.stream(INPUT).await;
    assert_eq!(deltas.concat(), INPUT);
    assert!(deltas.len() > 3, "{} deltas", deltas.len());
    assert_eq!(result, Ok(deltas.len() as u64));
    assert_eq!(s.upstream.calls(), 1);
}

#[tokio::test]
async fn a_5xx_is_retried_three_times_then_fails() {
    let s = Setup::new().await;
    s.set(AnswerOutcome::Refuse {
        status: 503,
        retry_after: None,
    });
    let (deltas, result) = s.stream(INPUT).await;
    assert!(deltas.is_empty());
    assert!(
        matches!(result, Err(UpstreamError::Unavailable { .. })),
        "{result:?}"
    );
    assert_eq!(s.upstream.calls(), 4, "one call and three retries");
    assert_eq!(s.client.stats().retries, 3);
    // The breaker (3 failed calls open it) counted one call, not four attempts.
    assert!(!s.client.is_open());
    for _ in 0..2 {
        s.stream(INPUT).await.1.expect_err("still failing");
    }
    assert!(s.client.is_open(), "three failed calls open the breaker");
    assert_eq!(s.upstream.calls(), 12);
    let (_, refused) = s.stream(INPUT).await;
    assert!(
        matches!(refused, Err(UpstreamError::CircuitOpen { .. })),
        "{refused:?}"
    );
    assert_eq!(
        s.upstream.calls(),
        12,
        "an open breaker sends nothing, and nothing is retried"
    );
}

#[tokio::test]
async fn a_429_is_not_retried() {
    let s = Setup::new().await;
    s.set(AnswerOutcome::Refuse {
        status: 429,
        retry_after: Some(Duration::from_secs(3)),
    });
    let (_, result) = s.stream(INPUT).await;
    assert!(
        matches!(result, Err(UpstreamError::RateLimited { .. })),
        "{result:?}"
    );
    assert_eq!(s.upstream.calls(), 1);
}

#[tokio::test]
async fn a_stream_broken_after_its_first_byte_fails_without_a_retry() {
    for outcome in [AnswerOutcome::DropMidAnswer, AnswerOutcome::Truncate] {
        let s = Setup::new().await;
        s.set(outcome.clone());
        let (deltas, result) = s.stream(INPUT).await;
        assert!(
            !deltas.is_empty(),
            "{outcome:?}: part of the answer streamed first"
        );
        assert!(
            INPUT.starts_with(&deltas.concat()),
            "{outcome:?}: a prefix, in order"
        );
        match result {
            Err(UpstreamError::BrokeOff { partial_bytes, .. }) => assert_eq!(
                partial_bytes,
                deltas.concat().len(),
                "{outcome:?}: the partial length is what was streamed"
            ),
            other => panic!("{outcome:?}: {other:?}"),
        }
        assert_eq!(
            s.upstream.calls(),
            1,
            "{outcome:?}: never retried after a byte"
        );
        assert_eq!(s.client.stats().retries, 0);
    }
}

#[tokio::test]
async fn a_stream_broken_before_its_first_byte_is_retried() {
    let s = Setup::new().await;
    s.set(AnswerOutcome::DropMidAnswer);
    // Two words: the first half of the stream's events carries no text yet.
    let (deltas, result) = s.stream("hi").await;
    assert!(deltas.is_empty());
    assert!(
        matches!(result, Err(UpstreamError::Unavailable { .. })),
        "{result:?}"
    );
    assert_eq!(s.upstream.calls(), 4, "retried: nothing had been streamed");
}

#[tokio::test]
async fn an_empty_answer_is_an_error_not_an_answer() {
    let s = Setup::new().await;
    s.set(AnswerOutcome::Empty);
    let (deltas, result) = s.stream(INPUT).await;
    assert!(deltas.is_empty());
    assert!(
        matches!(&result, Err(UpstreamError::Malformed { detail }) if detail.contains("empty")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_caller_that_stops_listening_abandons_the_call() {
    let s = Setup::new().await;
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let result = s
        .client
        .stream(&ModelCall::user("local-echo-1", INPUT), &tx)
        .await;
    assert_eq!(result.map(|_| ()), Err(UpstreamError::Abandoned));
    assert_eq!(s.client.stats().breaker_opened, 0);
}
