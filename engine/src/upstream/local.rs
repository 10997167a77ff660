//! A local model server speaking the upstream API: an echo model (its answer is the
//! input it was sent). `engine upstream` serves it for real on loopback; scenarios host
//! it on a simulated host with the simulated model API's [`AnswerPolicy`]
//! (`sim::upstream::SimUpstream`), which decides per call which fault it meets. The
//! server here only carries a decision out.

use super::{MESSAGES_PATH, MODELS_PATH};
use crate::http::set_retry_after;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// How one call is answered, decided per call by the server's [`AnswerPolicy`]. The
/// server only carries it out: which call meets which fault, how often and when, is the
/// policy's business (the simulated model API, `sim::upstream::SimUpstream`, is one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerPlan {
    /// How long the server takes before it answers (or before it fails the answer).
    pub delay: Duration,
    pub outcome: AnswerOutcome,
}

/// What the call gets, after the plan's delay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// The model's answer.
    #[default]
    Serve,
    /// An HTTP error status (429, 5xx), with a `Retry-After` if given.
    Refuse {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Nothing, ever: the caller's own timeout must end the call.
    Hang,
    /// The answer's head and part of its body, then the connection drops.
    DropMidAnswer,
    /// A 200 whose body is cut short (not valid JSON).
    Truncate,
    /// A 200 with an empty answer.
    Empty,
}

/// Decides how each call is answered (`path` is the API path called).
pub trait AnswerPolicy: Send + Sync {
    fn plan(&self, path: &str) -> AnswerPlan;
}

/// One call the server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamRequest {
    pub at: Instant,
    pub path: String,
    pub status: u16,
    /// The start of a messages call's input (at most `INPUT_HEAD_CHARS` characters):
    /// what was asked, for a checker.
    pub input_head: Option<String>,
}

/// How much of each call's input the log keeps.
const INPUT_HEAD_CHARS: usize = 64;

pub struct LocalUpstream {
    api_key: String,
    state: Mutex<LocalState>,
    /// `None`: every call with the right key is served at once.
    policy: Option<Arc<dyn AnswerPolicy>>,
}

struct LocalState {
    requests: VecDeque<UpstreamRequest>,
    /// Every call since the start (the log keeps only the latest).
    calls: u64,
}

/// The log keeps this many calls (oldest dropped): a long local run stays bounded.
const LOG_MAX: usize = 10_000;

#[derive(serde::Deserialize)]
struct MessagesRequest {
    input: String,
}

impl LocalUpstream {
    pub fn new(api_key: impl Into<String>, policy: Option<Arc<dyn AnswerPolicy>>) -> Arc<Self> {
        Arc::new(LocalUpstream {
            api_key: api_key.into(),
            state: Mutex::new(LocalState {
                requests: VecDeque::new(),
                calls: 0,
            }),
            policy,
        })
    }

    fn state(&self) -> MutexGuard<'_, LocalState> {
        self.state.lock().expect("local upstream poisoned")
    }

    /// The latest calls (at most `LOG_MAX`), oldest first.
    pub fn requests(&self) -> Vec<UpstreamRequest> {
        self.state().requests.iter().cloned().collect()
    }

    /// How many calls it has answered since it started.
    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    /// Serves the model API on `listener`, each connection a task of `env`'s host,
    /// until the task is aborted.
    pub async fn serve(
        self: &Arc<Self>,
        env: crate::env::Env,
        listener: Box<dyn crate::env::NetListener>,
    ) {
        crate::http::serve_router(env, self.router(), listener).await;
    }

    fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route(MODELS_PATH, get(models))
            .route(MESSAGES_PATH, post(messages))
            .with_state(self.clone())
    }

    /// Checks the key and asks the policy how to answer; logs the call with the status
    /// it gets (0 for a call left hanging or dropped). Returns the plan (a 401 for a
    /// wrong key).
    fn admit(&self, path: &str, headers: &HeaderMap, input_head: Option<String>) -> AnswerPlan {
        let key_ok = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| k == self.api_key);
        let plan = match (&self.policy, key_ok) {
            (_, false) => AnswerPlan {
                delay: Duration::ZERO,
                outcome: AnswerOutcome::Refuse {
                    status: 401,
                    retry_after: None,
                },
            },
            (Some(policy), true) => policy.plan(path),
            (None, true) => AnswerPlan::default(),
        };
        let status = match &plan.outcome {
            AnswerOutcome::Refuse { status, .. } => *status,
            AnswerOutcome::Hang | AnswerOutcome::DropMidAnswer => 0,
            AnswerOutcome::Serve | AnswerOutcome::Truncate | AnswerOutcome::Empty => 200,
        };
        {
            let mut s = self.state();
            s.calls += 1;
            if s.requests.len() == LOG_MAX {
                s.requests.pop_front();
            }
            s.requests.push_back(UpstreamRequest {
                at: Instant::now(),
                path: path.to_string(),
                status,
                input_head,
            });
        }
        plan
    }
}

/// An error answer with a JSON body and, if given, `Retry-After`.
fn refusal(status: u16, retry_after: Option<Duration>, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::Json(serde_json::json!({ "error": message }));
    let mut response = (code, body).into_response();
    if let Some(after) = retry_after {
        set_retry_after(&mut response, after);
    }
    response
}

/// Carries out `plan` for an answer whose whole JSON body is `answer`.
async fn answer(plan: AnswerPlan, answer: serde_json::Value) -> Response {
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    match plan.outcome {
        AnswerOutcome::Serve => axum::Json(answer).into_response(),
        AnswerOutcome::Refuse {
            status,
            retry_after,
        } => {
            let message = match status {
                401 => "invalid x-api-key",
                429 => "rate limited",
                _ => "overloaded",
            };
            refusal(status, retry_after, message)
        }
        AnswerOutcome::Hang => std::future::pending().await,
        AnswerOutcome::Truncate => {
            let text = answer.to_string();
            let cut: String = text.chars().take(text.chars().count() / 2).collect();
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                cut,
            )
                .into_response()
        }
        AnswerOutcome::Empty => {
            let mut empty = answer;
            if let Some(output) = empty.get_mut("output") {
                *output = serde_json::Value::String(String::new());
            }
            axum::Json(empty).into_response()
        }
        AnswerOutcome::DropMidAnswer => {
            // The head and half the body go out; then the body fails, and the server
            // drops the connection instead of finishing the answer.
            let text = answer.to_string();
            let half: String = text.chars().take(text.chars().count() / 2).collect();
            let parts: Vec<Result<Vec<u8>, std::io::Error>> = vec![
                Ok(half.into_bytes()),
                Err(std::io::Error::other("connection dropped mid-answer")),
            ];
            let body = axum::body::Body::from_stream(futures_util::stream::iter(parts));
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

async fn models(State(up): State<Arc<LocalUpstream>>, headers: HeaderMap) -> Response {
    let plan = up.admit(MODELS_PATH, &headers, None);
    answer(plan, serde_json::json!({ "models": ["local-echo-1"] })).await
}

async fn messages(
    State(up): State<Arc<LocalUpstream>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request = serde_json::from_slice::<MessagesRequest>(&body);
    let input_head = request
        .as_ref()
        .ok()
        .map(|r| r.input.chars().take(INPUT_HEAD_CHARS).collect());
    let plan = up.admit(MESSAGES_PATH, &headers, input_head);
    match request {
        // A refusal is answered before the request is judged (a wrong key gets 401).
        _ if matches!(plan.outcome, AnswerOutcome::Refuse { .. }) => {
            answer(plan, serde_json::json!({})).await
        }
        Ok(request) => answer(plan, serde_json::json!({ "output": request.input })).await,
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": format!("bad request: {e}") })),
        )
            .into_response(),
    }
}
