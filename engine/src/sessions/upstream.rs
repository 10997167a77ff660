//! Sessions and the model API: a pre-warmed worker is kept only if the upstream answers
//! its check (a rate-limited one is disposed and pre-warming pauses); each query asks
//! the model first, and a failure there fails the query but keeps the session; after
//! an outage the sessions that were told are told again when the upstream is back.

use super::service::Shared;
use super::session::Session;
use crate::env::BoxFuture;
use crate::protocol::{ErrorCode, ServerEvent};
use crate::upstream::{UpstreamClient, UpstreamError};
use crate::workers::{CheckRefusal, WarmCheck};
use std::sync::Arc;
use std::time::Duration;

/// The pre-warm pool's check: a freshly started warm worker is kept only if the model
/// API answers (a rate-limited refusal pauses pre-warming; see the pool).
pub struct UpstreamCheck(pub Arc<UpstreamClient>);

impl WarmCheck for UpstreamCheck {
    fn check<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), CheckRefusal>> {
        Box::pin(async move {
            let Err(e) = self.0.probe().await else {
                return Ok(());
            };
            tracing::warn!(worker = %name, "pre-warm not kept: {e}");
            Err(CheckRefusal {
                rate_limited: matches!(e, UpstreamError::RateLimited { .. }),
                reason: e.to_string(),
            })
        })
    }
}

/// The model's answer to a query's text (what the worker then carries out), or `None`
/// when there is none: the client has been told why.
pub(crate) async fn ask_model(shared: &Shared, session: &Session, text: &str) -> Option<String> {
    let Some(up) = &shared.upstream else {
        return Some(text.to_string());
    };
    let e = match streamed_answer(up, text).await {
        Ok(answer) => return Some(answer),
        Err(e) => e,
    };
    let (code, next) = match e {
        UpstreamError::RateLimited { .. } => (
            ErrorCode::UpstreamRateLimited,
            "your session is kept: send it again then",
        ),
        UpstreamError::KeyRejected { .. } => (
            ErrorCode::UpstreamUnavailable,
            "your session is kept; the engine's operator must fix its model API key",
        ),
        UpstreamError::Malformed { .. } | UpstreamError::Abandoned => (
            ErrorCode::UpstreamUnavailable,
            "your session is kept: send it again",
        ),
        UpstreamError::Unavailable { .. } | UpstreamError::CircuitOpen { .. } => {
            session.with_core(|c| c.handle_upstream_lost());
            (
                ErrorCode::UpstreamUnavailable,
                "your session is kept and you will be told when the model API is back",
            )
        }
    };
    session
        .publish(
            shared.now(),
            ServerEvent::Error {
                code,
                message: format!("the query failed: {e}; {next}"),
            },
        )
        .await;
    None
}

/// Deltas of a streamed answer waiting to be joined (a burst waits for the joiner).
const DELTAS_QUEUED_MAX: usize = 64;

/// The model's answer, streamed and joined in order. The session does not forward the
/// deltas to the client yet (the worker carries the answer out as a whole); the stream
/// brings the upstream's retries, its idle timeout and its end-of-stream checks.
async fn streamed_answer(up: &UpstreamClient, text: &str) -> Result<String, UpstreamError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(DELTAS_QUEUED_MAX);
    let call = async move {
        let summary = up.stream(text, &tx).await;
        drop(tx);
        summary
    };
    let join = async {
        let mut answer = String::new();
        while let Some(delta) = rx.recv().await {
            answer.push_str(&delta);
        }
        answer
    };
    let (summary, answer) = tokio::join!(biased; call, join);
    let summary = summary?;
    debug_assert_eq!(
        summary.text_bytes,
        answer.len(),
        "a delta was lost or repeated"
    );
    Ok(answer)
}

/// Each time the breaker opens: probe when it allows, until the breaker is closed
/// again, then tell every live session that was told it was unavailable.
pub(crate) async fn watch_upstream(shared: Arc<Shared>, up: Arc<UpstreamClient>) {
    loop {
        up.wait_opened().await;
        // A probe's answer (or a query's) closes the breaker; its result is not needed.
        while up.is_open() {
            tokio::time::sleep(up.retry_in().max(Duration::from_millis(100))).await;
            let _ = up.probe().await;
        }
        let live: Vec<Arc<Session>> = shared.table().live.values().cloned().collect();
        for s in live {
            let told = s.with_core(|c| c.poll_upstream_back());
            if told {
                let status = ServerEvent::Status {
                    state: "upstream_available".to_string(),
                };
                s.publish(shared.now(), status).await;
            }
        }
    }
}
