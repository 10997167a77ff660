//! A local model server speaking the upstream API (the Messages API, plain or streamed
//! as server-sent events, as the official SDKs call it): an echo model (its answer is
//! the text of the last user turn). `engine upstream` serves it for real on loopback; scenarios host
//! it on a simulated host with the simulated model API's [`AnswerPolicy`]
//! (`sim::upstream::SimUpstream`), which decides per call which fault it meets. The
//! server here only carries a decision out.

use super::echo::{echo, last_user_text};
use super::http::{RATE_LIMIT, RATE_REMAINING, RATE_RESET};
use super::wire::{
    Block, ErrorAnswer, MessagesAnswer, MessagesRequest, ModelInfo, ModelList, StreamEvent, Usage,
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
    /// A streamed answer's pause before each event after the first (a slow model).
    pub event_pace: Duration,
    /// A streamed answer's events all go out in one write (a burst), not one by one.
    pub one_write: bool,
    /// The account's request budget, sent as rate-limit headers.
    pub rate: Option<RateWindow>,
    /// A structured answer comes back as prose, not the JSON asked for.
    pub garbled: bool,
}

/// What the rate-limit headers of an answer say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWindow {
    pub limit: u64,
    pub remaining: u64,
    /// From the answer to the window's reset.
    pub reset_in: Duration,
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

/// What the server knows of a call when it asks its policy how to answer.
#[derive(Clone, Copy, Debug)]
pub struct CallInfo<'a> {
    /// The API path called.
    pub path: &'a str,
    /// A messages call's model.
    pub model: Option<&'a str>,
    /// The beta features the call asks for (`anthropic-beta`).
    pub betas: &'a [String],
    /// A messages call that asks for a streamed answer.
    pub stream: bool,
    /// A messages call that asks for structured output (an output format).
    pub structured: bool,
}

/// Decides how each call is answered.
pub trait AnswerPolicy: Send + Sync {
    fn plan(&self, call: &CallInfo<'_>) -> AnswerPlan;
}

/// Serves every call, streaming answers at a model's pace: this long before each
/// event after the first (`engine upstream --stream-pace-ms`).
pub struct PacedStream(pub Duration);

impl AnswerPolicy for PacedStream {
    fn plan(&self, _call: &CallInfo<'_>) -> AnswerPlan {
        AnswerPlan {
            event_pace: self.0,
            ..AnswerPlan::default()
        }
    }
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
    /// A messages call's model, its beta features and how many turns it carried.
    pub model: Option<String>,
    pub betas: Vec<String>,
    pub turns: usize,
    /// The start of its first turn (the oldest context it carried).
    pub first_head: Option<String>,
    /// The tool results its last turn carried back: the start of each one's text
    /// (at most `INPUT_HEAD_CHARS` × 4 characters), and each binary document's base64
    /// data (its first `DOCUMENT_KEPT_CHARS` characters) with its whole length.
    pub tool_results: Vec<String>,
    pub documents: Vec<(usize, String)>,
    /// The call's number since the server started, from 1.
    pub number: u64,
    /// What the answer it was served used, once served (the echo model's count).
    pub usage: Option<Usage>,
}

/// How much of each call's input the log keeps.
const INPUT_HEAD_CHARS: usize = 64;
/// How much of each binary document the log keeps.
const DOCUMENT_KEPT_CHARS: usize = 16 << 10;

pub struct LocalUpstream {
    api_key: String,
    state: Mutex<LocalState>,
    /// `None`: every call with the right key is served at once.
    policy: Option<Arc<dyn AnswerPolicy>>,
    /// The serving host's environment (its wall clock dates rate-limit resets).
    env: std::sync::OnceLock<crate::env::Env>,
}

struct LocalState {
    requests: VecDeque<UpstreamRequest>,
    /// Every call since the start (the log keeps only the latest).
    calls: u64,
}

/// The log keeps this many calls (oldest dropped): a long local run stays bounded.
const LOG_MAX: usize = 10_000;

/// The models the local server answers as (any other name gets 404, as the API does).
pub const LOCAL_MODELS: [&str; 3] = ["local-echo-1", "local-echo-2", "local-echo-lite"];

/// The beta features the local server accepts (any other name gets 400, as the API
/// does).
pub const LOCAL_BETAS: [&str; 2] = ["echo-tools-2026-01-01", "echo-context-2026-06-01"];

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
            env: std::sync::OnceLock::new(),
        })
    }

    /// Now on the serving host's wall clock, in Unix milliseconds (0 before serving).
    fn wall_unix_ms(&self) -> u64 {
        self.env.get().map_or(0, |env| env.wall_unix_ms())
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
        let _ = self.env.set(env.clone());
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
    /// Call `number` was served an answer that used `usage`.
    fn record_usage(&self, number: u64, usage: Usage) {
        let mut s = self.state();
        if let Some(r) = s.requests.iter_mut().rev().find(|r| r.number == number) {
            r.usage = Some(usage);
        }
    }

    /// The plan and the call's number.
    fn admit(&self, headers: &HeaderMap, call: CallInfo<'_>, logged: Logged) -> (AnswerPlan, u64) {
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
                outcome: AnswerOutcome::Refuse {
                    status: 401,
                    retry_after: None,
                },
                ..AnswerPlan::default()
            },
            (Some(policy), true) => policy.plan(&call),
            (None, true) => AnswerPlan::default(),
        };
        let status = match &plan.outcome {
            AnswerOutcome::Refuse { status, .. } => *status,
            AnswerOutcome::Hang | AnswerOutcome::DropMidAnswer => 0,
            AnswerOutcome::Serve | AnswerOutcome::Truncate | AnswerOutcome::Empty => 200,
        };
        let number = {
            let mut s = self.state();
            s.calls += 1;
            let number = s.calls;
            if s.requests.len() == LOG_MAX {
                s.requests.pop_front();
            }
            s.requests.push_back(UpstreamRequest {
                at: Instant::now(),
                path: call.path.to_string(),
                status,
                input_head: logged.input_head,
                model: call.model.map(str::to_string),
                betas: call.betas.to_vec(),
                turns: logged.turns,
                first_head: logged.first_head,
                tool_results: logged.tool_results,
                documents: logged.documents,
                number,
                usage: None,
            });
            number
        };
        (plan, number)
    }
}

/// What the log keeps of a messages call beyond its `CallInfo`.
#[derive(Default)]
struct Logged {
    input_head: Option<String>,
    turns: usize,
    first_head: Option<String>,
    tool_results: Vec<String>,
    documents: Vec<(usize, String)>,
}

impl Logged {
    fn of(request: &MessagesRequest) -> Self {
        let head = |text: &str, chars| text.chars().take(chars).collect::<String>();
        let mut tool_results = Vec::new();
        let mut documents = Vec::new();
        let last = request.messages.last().map(|m| m.content.blocks());
        for block in last.iter().flatten() {
            let Block::ToolResult { content, .. } = block else {
                continue;
            };
            let text: String = content.iter().filter_map(Block::text).collect();
            tool_results.push(head(&text, INPUT_HEAD_CHARS * 4));
            for inner in content {
                if let Block::Document { source } = inner {
                    let kept = head(&source.data, DOCUMENT_KEPT_CHARS);
                    documents.push((source.data.len(), kept));
                }
            }
        }
        Logged {
            input_head: Some(head(&last_user_text(request), INPUT_HEAD_CHARS)),
            turns: request.messages.len(),
            first_head: request
                .messages
                .first()
                .map(|m| head(&m.content.text(), INPUT_HEAD_CHARS)),
            tool_results,
            documents,
        }
    }
}

/// The beta features a call asks for (`anthropic-beta`, comma-separated).
fn betas_of(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .collect()
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
    /// A refusal: nothing is built.
    Refused,
    Models(ModelList),
    Message {
        answer: MessagesAnswer,
        stream: bool,
    },
}

/// Carries out `plan` for `reply`; rate-limit resets are dated from `wall_unix_ms`.
async fn answer(plan: AnswerPlan, reply: Reply, wall_unix_ms: u64) -> Response {
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    let rate = plan.rate;
    let mut response = carry_out(plan, reply).await;
    if let Some(rate) = rate {
        set_rate_headers(
            &mut response,
            rate,
            wall_unix_ms + rate.reset_in.as_millis() as u64,
        );
    }
    response
}

fn set_rate_headers(response: &mut Response, rate: RateWindow, reset_unix_ms: u64) {
    use axum::http::HeaderValue;
    let reset = chrono::DateTime::from_timestamp_millis(reset_unix_ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let headers = response.headers_mut();
    headers.insert(RATE_LIMIT, HeaderValue::from(rate.limit));
    headers.insert(RATE_REMAINING, HeaderValue::from(rate.remaining));
    if let Ok(reset) = HeaderValue::from_str(&reset) {
        headers.insert(RATE_RESET, reset);
    }
}

async fn carry_out(plan: AnswerPlan, reply: Reply) -> Response {
    match plan.outcome {
        AnswerOutcome::Refuse {
            status,
            retry_after,
        } => {
            let message = match status {
                400 => "invalid request",
                401 => "invalid API key (x-api-key or a bearer token)",
                404 => "model not found",
                429 => "rate limited",
                529 => "overloaded",
                _ => "internal server error",
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
            whole(reply, Ending::Whole, &plan)
        }
        AnswerOutcome::Serve => whole(reply, Ending::Whole, &plan),
        AnswerOutcome::Truncate => whole(reply, Ending::CutClean, &plan),
        AnswerOutcome::DropMidAnswer => whole(reply, Ending::Dropped, &plan),
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

fn whole(reply: Reply, ending: Ending, plan: &AnswerPlan) -> Response {
    let (content_type, pieces): (&str, Vec<String>) = match reply {
        Reply::Models(list) => ("application/json", vec![json(&list)]),
        // Only a refusal's plan comes with nothing built (answered above it).
        Reply::Refused => ("application/json", vec!["{}".to_string()]),
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
    let pieces = match ending {
        Ending::Whole => pieces,
        Ending::CutClean | Ending::Dropped => half(pieces),
    };
    let pieces = if plan.one_write {
        vec![pieces.concat()]
    } else {
        pieces
    };
    let pace = plan.event_pace;
    let parts = futures_util::stream::iter(pieces.into_iter().enumerate()).then(
        move |(i, piece)| async move {
            if i > 0 && !pace.is_zero() {
                tokio::time::sleep(pace).await;
            }
            Ok::<_, std::io::Error>(piece)
        },
    );
    let dropped = futures_util::stream::once(async {
        // Once what was sent has gone out (hyper flushes while the body waits), the
        // server drops the connection instead of finishing the answer.
        tokio::task::yield_now().await;
        Err(std::io::Error::other("connection dropped mid-answer"))
    });
    let body = match ending {
        Ending::Dropped => axum::body::Body::from_stream(parts.chain(dropped)),
        Ending::Whole | Ending::CutClean => axum::body::Body::from_stream(parts),
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
    let call = CallInfo {
        path: MODELS_PATH,
        model: None,
        betas: &[],
        stream: false,
        structured: false,
    };
    let (plan, _) = up.admit(&headers, call, Logged::default());
    answer(plan, Reply::Models(model_list()), up.wall_unix_ms()).await
}

async fn messages(
    State(up): State<Arc<LocalUpstream>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request = serde_json::from_slice::<MessagesRequest>(&body);
    let betas = betas_of(&headers);
    let logged = request.as_ref().map(Logged::of).unwrap_or_default();
    let call = CallInfo {
        path: MESSAGES_PATH,
        model: request.as_ref().ok().map(|r| r.model.as_str()),
        betas: &betas,
        stream: request.as_ref().is_ok_and(|r| r.stream),
        structured: request.as_ref().is_ok_and(|r| r.output_format.is_some()),
    };
    let (plan, number) = up.admit(&headers, call, logged);
    let unknown_beta = betas.iter().find(|b| !LOCAL_BETAS.contains(&b.as_str()));
    match request {
        // A refusal is answered before the request is judged (a wrong key gets 401).
        _ if matches!(plan.outcome, AnswerOutcome::Refuse { .. }) => {
            answer(plan, Reply::Refused, up.wall_unix_ms()).await
        }
        Ok(request) if !LOCAL_MODELS.contains(&request.model.as_str()) => refusal(
            404,
            None,
            &format!("model: {} is not a model of this server", request.model),
        ),
        Ok(_) if unknown_beta.is_some() => refusal(
            400,
            None,
            &format!(
                "anthropic-beta: {} is not a supported beta feature",
                unknown_beta.expect("matched")
            ),
        ),
        Ok(request) => {
            let stream = request.stream;
            let answer_ = echo(&request, number, plan.garbled);
            up.record_usage(number, answer_.usage);
            let reply = Reply::Message {
                answer: answer_,
                stream,
            };
            answer(plan, reply, up.wall_unix_ms()).await
        }
        Err(e) => refusal(
            400,
            None,
            &format!("the request is not a messages request: {e}"),
        ),
    }
}
