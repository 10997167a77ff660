//! A local model server speaking the upstream API (the Messages API, plain or streamed
//! as server-sent events, as the official SDKs call it): an echo model (its answer is
//! the text of the last user turn). `engine upstream` serves it for real on loopback; scenarios host
//! it on a simulated host with the simulated model API's [`AnswerPolicy`]
//! (`sim::upstream::SimUpstream`), which decides per call which fault it meets. The
//! server here only carries a decision out.

use super::wire::{
    Block, ErrorAnswer, MessagesAnswer, MessagesRequest, ModelInfo, ModelList, Role, StreamEvent,
    Usage,
};
use super::{MESSAGES_PATH, MODELS_PATH};
use crate::http::set_retry_after;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
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

/// The models the local server answers as (any other name gets 404, as the API does).
pub const LOCAL_MODELS: [&str; 2] = ["local-echo-1", "local-echo-2"];

/// Characters per streamed text delta.
const DELTA_CHARS: usize = 16;

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

    /// Serves the model API over TLS, presenting `identity`, until the task is aborted;
    /// returns at once with the reason if the identity does not build.
    pub async fn serve_tls(
        self: &Arc<Self>,
        env: crate::env::Env,
        listener: Box<dyn crate::env::NetListener>,
        identity: &super::TlsIdentity,
    ) -> Result<(), String> {
        let tls = Arc::new(super::TlsServer::new(&env, identity)?);
        crate::http::serve_router_over(env, self.router(), listener, Some(tls)).await;
        Ok(())
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
        // The SDKs send the key as `x-api-key` or, newer ones, as a bearer token.
        let bearer = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .or(bearer);
        let key_ok = key.is_some_and(|k| k == self.api_key);
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

/// An error answer in the API's shape and, if given, `Retry-After`.
fn refusal(status: u16, retry_after: Option<Duration>, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::Json(ErrorAnswer::new(
        ErrorAnswer::kind_for_status(status),
        message,
    ));
    let mut response = (code, body).into_response();
    if let Some(after) = retry_after {
        set_retry_after(&mut response, after);
    }
    response
}

/// What a served call answers with.
enum Reply {
    Models(ModelList),
    Message {
        answer: MessagesAnswer,
        stream: bool,
    },
}

/// Carries out `plan` for `reply`.
async fn answer(plan: AnswerPlan, reply: Reply) -> Response {
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    match plan.outcome {
        AnswerOutcome::Refuse {
            status,
            retry_after,
        } => {
            let message = match status {
                401 => "invalid API key (x-api-key or a bearer token)",
                429 => "rate limited",
                _ => "overloaded",
            };
            refusal(status, retry_after, message)
        }
        AnswerOutcome::Hang => std::future::pending().await,
        AnswerOutcome::Empty => {
            let reply = match reply {
                Reply::Message { mut answer, stream } => {
                    answer.content = vec![Block::Text {
                        text: String::new(),
                    }];
                    answer.usage.output_tokens = 0;
                    Reply::Message { answer, stream }
                }
                models => models,
            };
            whole(reply, Ending::Whole)
        }
        AnswerOutcome::Serve => whole(reply, Ending::Whole),
        AnswerOutcome::Truncate => whole(reply, Ending::CutClean),
        AnswerOutcome::DropMidAnswer => whole(reply, Ending::Dropped),
    }
}

/// How an answer's body ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Whole,
    /// Half the body, then a clean end: JSON that does not parse, or a stream without
    /// its `message_stop`.
    CutClean,
    /// Half the body, then the connection drops.
    Dropped,
}

fn whole(reply: Reply, ending: Ending) -> Response {
    let (content_type, pieces): (&str, Vec<String>) = match reply {
        Reply::Models(list) => ("application/json", vec![json(&list)]),
        Reply::Message {
            answer,
            stream: false,
        } => ("application/json", vec![json(&answer)]),
        Reply::Message {
            answer,
            stream: true,
        } => (
            "text/event-stream",
            StreamEvent::answer(&answer, DELTA_CHARS)
                .iter()
                .map(StreamEvent::to_sse)
                .collect(),
        ),
    };
    let parts: Vec<Result<String, std::io::Error>> = match ending {
        Ending::Whole => pieces.into_iter().map(Ok).collect(),
        Ending::CutClean | Ending::Dropped => half(pieces).into_iter().map(Ok).collect(),
    };
    let dropped = futures_util::stream::once(async {
        // Once what was sent has gone out (hyper flushes while the body waits), the
        // server drops the connection instead of finishing the answer.
        tokio::task::yield_now().await;
        Err(std::io::Error::other("connection dropped mid-answer"))
    });
    let body = match ending {
        Ending::Dropped => {
            axum::body::Body::from_stream(futures_util::stream::iter(parts).chain(dropped))
        }
        Ending::Whole | Ending::CutClean => {
            axum::body::Body::from_stream(futures_util::stream::iter(parts))
        }
    };
    ([(axum::http::header::CONTENT_TYPE, content_type)], body).into_response()
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("answers serialize")
}

/// The first half of a body: of its characters if it is one piece (a JSON answer), of
/// its events otherwise (a stream).
fn half(mut pieces: Vec<String>) -> Vec<String> {
    if pieces.len() == 1 {
        let text = pieces.remove(0);
        return vec![text.chars().take(text.chars().count() / 2).collect()];
    }
    pieces.truncate(pieces.len() / 2);
    pieces
}

fn model_list() -> ModelList {
    let data: Vec<ModelInfo> = LOCAL_MODELS
        .iter()
        .map(|id| ModelInfo {
            id: id.to_string(),
            kind: "model".to_string(),
            display_name: format!("Local echo ({id})"),
            created_at: "2026-01-01T00:00:00Z".to_string(),
        })
        .collect();
    ModelList {
        first_id: data.first().map(|m| m.id.clone()),
        last_id: data.last().map(|m| m.id.clone()),
        data,
        has_more: false,
    }
}

async fn models(State(up): State<Arc<LocalUpstream>>, headers: HeaderMap) -> Response {
    let plan = up.admit(MODELS_PATH, &headers, None);
    answer(plan, Reply::Models(model_list())).await
}

/// The echo model's answer: the last user turn's text. Token counts are words, a
/// stand-in the budget checks can rely on.
fn echo(request: &MessagesRequest, call: u64) -> MessagesAnswer {
    let input = last_user_text(request);
    let words = |text: &str| text.split_whitespace().count() as u64;
    let input_tokens = request
        .messages
        .iter()
        .map(|m| words(&m.content.text()))
        .sum();
    MessagesAnswer {
        id: format!("msg_{call:016x}"),
        kind: "message".to_string(),
        role: Role::Assistant,
        model: request.model.clone(),
        stop_reason: Some("end_turn".to_string()),
        stop_sequence: None,
        usage: Usage {
            input_tokens,
            output_tokens: words(&input),
        },
        content: vec![Block::Text { text: input }],
    }
}

fn last_user_text(request: &MessagesRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.text())
        .unwrap_or_default()
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
        .map(|r| last_user_text(r).chars().take(INPUT_HEAD_CHARS).collect());
    let plan = up.admit(MESSAGES_PATH, &headers, input_head);
    match request {
        // A refusal is answered before the request is judged (a wrong key gets 401).
        _ if matches!(plan.outcome, AnswerOutcome::Refuse { .. }) => {
            answer(plan, Reply::Models(model_list())).await
        }
        Ok(request) if !LOCAL_MODELS.contains(&request.model.as_str()) => refusal(
            404,
            None,
            &format!("model: {} is not a model of this server", request.model),
        ),
        Ok(request) => {
            let call = up.calls();
            let stream = request.stream;
            let reply = Reply::Message {
                answer: echo(&request, call),
                stream,
            };
            answer(plan, reply).await
        }
        Err(e) => refusal(
            400,
            None,
            &format!("the request is not a messages request: {e}"),
        ),
    }
}
