//! A local model server speaking the upstream API: an echo model (its answer is the
//! input it was sent) whose operator can make it rate limit or fail. `engine upstream`
//! serves it for real on loopback; scenarios host it on a simulated host and drive
//! its mode as a fault.

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

/// How the server answers right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LocalUpstreamMode {
    #[default]
    Serving,
    /// Every call gets 429 with this `Retry-After`.
    RateLimited { retry_after: Duration },
    /// Every call gets 503.
    Failing,
    /// Every call is answered, after this long (an overloaded model).
    Slow { delay: Duration },
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

/// Called for each refusal or slowed answer the mode caused (kind, detail): a scenario
/// counts them as fault activations.
pub type RefusalHook = Arc<dyn Fn(&'static str, String) + Send + Sync>;

pub struct LocalUpstream {
    api_key: String,
    state: Mutex<LocalState>,
    on_refusal: Option<RefusalHook>,
}

struct LocalState {
    mode: LocalUpstreamMode,
    requests: VecDeque<UpstreamRequest>,
    /// Every call since the start (the log keeps only the latest).
    calls: u64,
}

/// A refusal: its status, `Retry-After`, message, and the fault kind it counts as.
struct Refusal {
    code: StatusCode,
    retry_after: Option<Duration>,
    message: &'static str,
    kind: &'static str,
}

/// The log keeps this many calls (oldest dropped): a long local run stays bounded.
const LOG_MAX: usize = 10_000;

#[derive(serde::Deserialize)]
struct MessagesRequest {
    input: String,
}

impl LocalUpstream {
    pub fn new(api_key: impl Into<String>, on_refusal: Option<RefusalHook>) -> Arc<Self> {
        Arc::new(LocalUpstream {
            api_key: api_key.into(),
            state: Mutex::new(LocalState {
                mode: LocalUpstreamMode::Serving,
                requests: VecDeque::new(),
                calls: 0,
            }),
            on_refusal,
        })
    }

    fn state(&self) -> MutexGuard<'_, LocalState> {
        self.state.lock().expect("local upstream poisoned")
    }

    pub fn set_mode(&self, mode: LocalUpstreamMode) {
        self.state().mode = mode;
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

    /// Checks the key and the mode: the refusal to send, if any. Logs the call.
    fn refusal(
        &self,
        path: &str,
        headers: &HeaderMap,
        input_head: Option<String>,
    ) -> Option<Response> {
        let key_ok = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|k| k == self.api_key);
        let mode = self.state().mode.clone();
        let refusal = if !key_ok {
            Some(Refusal {
                code: StatusCode::UNAUTHORIZED,
                retry_after: None,
                message: "invalid x-api-key",
                kind: "upstream.unauthorized",
            })
        } else {
            match mode {
                LocalUpstreamMode::Serving | LocalUpstreamMode::Slow { .. } => None,
                LocalUpstreamMode::RateLimited { retry_after } => Some(Refusal {
                    code: StatusCode::TOO_MANY_REQUESTS,
                    retry_after: Some(retry_after),
                    message: "rate limited",
                    kind: "upstream.rate_limited",
                }),
                LocalUpstreamMode::Failing => Some(Refusal {
                    code: StatusCode::SERVICE_UNAVAILABLE,
                    retry_after: None,
                    message: "overloaded",
                    kind: "upstream.failing",
                }),
            }
        };
        let status = refusal.as_ref().map_or(200, |r| r.code.as_u16());
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
        let refusal = refusal?;
        if let Some(hook) = &self.on_refusal {
            let detail = format!("{path} answered {}", refusal.code.as_u16());
            hook(refusal.kind, detail);
        }
        let body = axum::Json(serde_json::json!({ "error": refusal.message }));
        let mut response = (refusal.code, body).into_response();
        if let Some(after) = refusal.retry_after {
            set_retry_after(&mut response, after);
        }
        Some(response)
    }
}

async fn models(State(up): State<Arc<LocalUpstream>>, headers: HeaderMap) -> Response {
    if let Some(refused) = up.refusal(MODELS_PATH, &headers, None) {
        return refused;
    }
    axum::Json(serde_json::json!({ "models": ["local-echo-1"] })).into_response()
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
    if let Some(refused) = up.refusal(MESSAGES_PATH, &headers, input_head) {
        return refused;
    }
    let mode = up.state().mode.clone();
    if let LocalUpstreamMode::Slow { delay } = mode {
        if let Some(hook) = &up.on_refusal {
            hook(
                "upstream.slow",
                format!("{MESSAGES_PATH} answered after {delay:?}"),
            );
        }
        tokio::time::sleep(delay).await;
    }
    match request {
        Ok(request) => axum::Json(serde_json::json!({ "output": request.input })).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": format!("bad request: {e}") })),
        )
            .into_response(),
    }
}
