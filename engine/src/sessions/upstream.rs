//! Sessions and the model API: a pre-warmed worker is kept only if the upstream answers
//! its check (a rate-limited one is disposed and pre-warming pauses); each model call
//! of a query's agent loop (`agent`) streams the answer's deltas to the client as they
//! come, within the query's deadline, and a failure there fails the query but keeps
//! the session; after an outage the sessions that were told are told again when the
//! upstream is back.

use super::service::Shared;
use super::session::Session;
use super::slow_stream::SlowStream;
use crate::env::BoxFuture;
use crate::protocol::{ErrorCode, ServerEvent};
use crate::upstream::wire::Usage;
use crate::upstream::{ModelCall, ModelEvent, ToolUse, UpstreamClient, UpstreamError};
use crate::workers::{CheckRefusal, WarmCheck};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// One whole answer of the model: its text, the tools it asks for, what it cost.
pub(crate) struct ModelAnswer {
    pub text: String,
    pub tool_uses: Vec<ToolUse>,
    pub model: String,
    pub usage: Usage,
}

/// One model call (turn `turn` of query `query`), or `None` when it gave no answer: the
/// client has been told why. The answer's text deltas reach the client as they stream,
/// in order; the call ends at the query's `deadline` (its start plus the query timeout).
pub(crate) async fn ask_turn(
    shared: &Shared,
    session: &Session,
    up: &UpstreamClient,
    (query, turn): (u64, u32),
    call: &ModelCall,
    deadline: tokio::time::Instant,
) -> Option<ModelAnswer> {
    let config = up.config();
    let forwarded = AtomicUsize::new(0);
    let answer = streamed_answer(shared, session, up, (query, turn), call, &forwarded);
    // Past the deadline already (tool rounds took the rest): no call goes out.
    let timed = if tokio::time::Instant::now() >= deadline {
        None
    } else {
        tokio::time::timeout_at(deadline, answer).await.ok()
    };
    let e = match timed {
        Some(Ok(answer)) => return Some(answer),
        Some(Err(e)) => e,
        None => {
            crate::met!(
                "upstream.query_timeout",
                "session {} query {query}: no whole answer within {} s",
                session.id,
                config.query_timeout.as_secs()
            );
            UpstreamError::Unavailable {
                detail: format!(
                    "no whole answer within the query timeout ({} s)",
                    config.query_timeout.as_secs()
                ),
            }
        }
    };
    tell_failure(shared, session, e, forwarded.load(Ordering::Relaxed)).await;
    None
}

/// Tells the client why its query has no answer (and keeps the session).
async fn tell_failure(shared: &Shared, session: &Session, e: UpstreamError, forwarded: usize) {
    let (code, next) = match &e {
        _ if forwarded > 0 => (
            ErrorCode::AnswerBrokeOff,
            "discard the part of the answer you received; your session is kept: send it again",
        ),
        UpstreamError::RateLimited { .. } => (
            ErrorCode::UpstreamRateLimited,
            "your session is kept: send it again then",
        ),
        UpstreamError::KeyRejected { .. } => (
            ErrorCode::UpstreamUnavailable,
            "your session is kept; the engine's operator must fix its model API key",
        ),
        UpstreamError::ModelNotFound { .. } => {
            // The session's model is gone: later queries go to the default.
            session.with_core(|c| c.handle_model_chosen(None));
            (
                ErrorCode::ModelNotFound,
                "your session is kept and its next query goes to the default model",
            )
        }
        UpstreamError::Rejected { .. } => (
            ErrorCode::UpstreamRejected,
            "your session is kept: send it again without what was refused",
        ),
        UpstreamError::Malformed { .. }
        | UpstreamError::Abandoned
        | UpstreamError::BrokeOff { .. } => (
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
    let error = ServerEvent::Error {
        code,
        message: format!("the query failed: {e}; {next}"),
    };
    session.publish(shared.now(), error).await;
}

/// Model events waiting to be forwarded (a burst waits for the session's stream,
/// which waits for the client: nothing grows without bound).
const EVENTS_QUEUED_MAX: usize = 64;

/// The model's answer, streamed: each delta is published to the client as it comes,
/// in order, and joined for the worker (`forwarded` counts the bytes published). A
/// stream slower than the configured rate draws one `upstream_slow` warning.
async fn streamed_answer(
    shared: &Shared,
    session: &Session,
    up: &UpstreamClient,
    (query, turn): (u64, u32),
    call: &ModelCall,
    forwarded: &AtomicUsize,
) -> Result<ModelAnswer, UpstreamError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(EVENTS_QUEUED_MAX);
    let streaming = async move {
        let summary = up.stream(call, &tx).await;
        drop(tx);
        summary
    };
    let config = up.config();
    let forward = async {
        let mut answer = String::new();
        let mut pace = SlowStream::new(config.slow_window, config.slow_tokens);
        loop {
            let check = pace.next_check();
            let event = tokio::select! {
                biased;
                event = rx.recv() => event,
                _ = shared.sleep_until(check.unwrap_or(Duration::MAX)), if check.is_some() => {
                    if let Some(message) = pace.handle_check(shared.now()) {
                        crate::met!("upstream.slow_stream", "session {} query {query}: {message}", session.id);
                        let warning = ServerEvent::Warning { kind: "upstream_slow".to_string(), message };
                        session.publish(shared.now(), warning).await;
                    }
                    continue;
                }
            };
            let Some(event) = event else { break };
            match event {
                ModelEvent::Delta(text) => {
                    pace.handle_delta(shared.now());
                    answer.push_str(&text);
                    forwarded.fetch_add(text.len(), Ordering::Relaxed);
                    let delta = ServerEvent::ModelDelta { query, text, turn };
                    session.publish(shared.now(), delta).await;
                }
                ModelEvent::Fallback { from, to, why } => {
                    let message = format!("{to} is answering: {from} is unavailable ({why})");
                    let warning = ServerEvent::Warning {
                        kind: "model_fallback".to_string(),
                        message,
                    };
                    session.publish(shared.now(), warning).await;
                }
            }
        }
        answer
    };
    let (summary, answer) = tokio::join!(biased; streaming, forward);
    match summary {
        Ok(summary) => {
            debug_assert_eq!(
                summary.text_bytes,
                answer.len(),
                "a delta was lost or repeated"
            );
            Ok(ModelAnswer {
                text: answer,
                tool_uses: summary.tool_uses,
                model: summary.model,
                usage: summary.usage,
            })
        }
        Err(e) => Err(e),
    }
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
