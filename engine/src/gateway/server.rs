//! HTTP routes and the accept loop. Serving goes through hyper's HTTP/1 connection
//! driver (with upgrades, for WebSockets) on streams from the environment's listener,
//! each connection a task of the host, so the same code serves loopback for real and a
//! simulated network in a scenario.

use super::auth::{AuthError, Claims, TokenKeys};
use super::connection::run_socket;
use super::forwarded::client_addr;
use super::rate::{RateLimit, RateLimiter};
use super::upgrade;
use crate::env::NetListener;
use crate::http::Peer;
use crate::protocol::{ErrorCode, ServerEvent, ServerMessage};
use crate::sessions::{CreateError, Resumed, Session, Sessions};
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Clone)]
pub struct GatewayConfig {
    pub keys: TokenKeys,
    /// Longest client frame, in characters (inclusive).
    pub message_chars_max: usize,
    /// Messages per user, checked when a message enters.
    pub user_rate: RateLimit,
    /// Upgrades and session creations per client address.
    pub address_rate: RateLimit,
    /// Peers whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: Vec<String>,
    /// `refresh_required` goes out this long before a token expires.
    pub refresh_lead: Duration,
    /// A write to a client that takes longer than this drops the connection (the
    /// session keeps its stream for a reconnect).
    pub write_timeout: Duration,
}

impl GatewayConfig {
    pub fn new(keys: TokenKeys) -> Self {
        GatewayConfig {
            keys,
            message_chars_max: 100_000,
            user_rate: RateLimit {
                burst: 20,
                refill: Duration::from_secs(3),
            },
            address_rate: RateLimit {
                burst: 30,
                refill: Duration::from_secs(2),
            },
            trusted_proxies: Vec::new(),
            refresh_lead: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Counters for oracles and operators.
#[derive(Debug, Default)]
pub struct GatewayStats {
    pub unauthorized: AtomicU64,
    pub frames_refused: AtomicU64,
    pub rate_limited: AtomicU64,
    pub address_limited: AtomicU64,
    pub sockets: AtomicU64,
    /// Socket tasks that exist at this moment (a gauge: up at an accepted handshake,
    /// down when the task is gone, however it ended).
    pub sockets_live: AtomicU64,
    /// Socket tasks dropped before they finished: their host crashed (or the runtime
    /// shut down) while they ran.
    pub sockets_aborted: AtomicU64,
    /// Sockets attached to a session at this moment, per session, at most (an oracle:
    /// never above one).
    pub write_timeouts: AtomicU64,
}

pub struct Gateway {
    pub sessions: Sessions,
    pub config: GatewayConfig,
    pub stats: GatewayStats,
    user_rate: Mutex<RateLimiter>,
    address_rate: Mutex<RateLimiter>,
}

impl Gateway {
    pub fn new(sessions: Sessions, config: GatewayConfig) -> Arc<Self> {
        Arc::new(Gateway {
            user_rate: Mutex::new(RateLimiter::new(config.user_rate)),
            address_rate: Mutex::new(RateLimiter::new(config.address_rate)),
            sessions,
            config,
            stats: GatewayStats::default(),
        })
    }

    pub(crate) fn now_unix_s(&self) -> u64 {
        self.sessions.env().wall_unix_ms() / 1000
    }

    pub(crate) fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.config.keys.verify(token, self.now_unix_s())
    }

    /// Rate limit for a message from `user` (at ingress only).
    pub(crate) fn admit_message(&self, user: &str) -> Result<(), Duration> {
        let now = self.sessions.now();
        self.user_rate
            .lock()
            .expect("rate limiter poisoned")
            .admit(user, now)
    }

    fn admit_address(&self, addr: &str) -> Result<(), Duration> {
        let now = self.sessions.now();
        self.address_rate
            .lock()
            .expect("rate limiter poisoned")
            .admit(addr, now)
            .inspect_err(|_| {
                self.stats.address_limited.fetch_add(1, Ordering::Relaxed);
            })
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/ready", get(ready))
            .route("/sessions", post(create_session))
            .route("/sessions/{id}/results/{query}", get(full_result))
            .route("/ws", get(upgrade))
            .with_state(self.clone())
    }
}

/// Accepts connections on `listener` until it fails for good, serving each on a task
/// of the host.
pub async fn serve(gateway: Arc<Gateway>, listener: Box<dyn NetListener>) {
    let env = gateway.sessions.env().clone();
    crate::http::serve_router(env, gateway.router(), listener).await;
}

pub(super) fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = serde_json::json!({ "v": crate::protocol::PROTOCOL_VERSION, "error": code, "message": message });
    (status, axum::Json(body)).into_response()
}

fn busy_response(retry_after: Duration, code: ErrorCode, message: &str) -> Response {
    let mut r = error_response(StatusCode::SERVICE_UNAVAILABLE, code, message);
    crate::http::set_retry_after(&mut r, retry_after);
    r
}

fn bearer(headers: &HeaderMap, query_token: Option<&str>) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .or_else(|| query_token.map(str::to_string))
}

#[allow(
    clippy::result_large_err,
    reason = "the error is the HTTP response itself, built once on a refused upgrade"
)]
fn authenticate(
    gw: &Gateway,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Claims, Response> {
    let token = bearer(headers, query_token).unwrap_or_default();
    gw.verify(&token).map_err(|e| {
        gw.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        crate::met!("client.bad_token", "request refused with 401: {e}");
        let code = match e {
            AuthError::Expired { .. } => ErrorCode::TokenExpired,
            AuthError::Invalid(_) => ErrorCode::Unauthorized,
        };
        error_response(StatusCode::UNAUTHORIZED, code, &e.to_string())
    })
}

fn client_address(gw: &Gateway, peer: &Peer, headers: &HeaderMap) -> String {
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    client_addr(&peer.0.host, forwarded, &gw.config.trusted_proxies)
}

async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.sessions.is_draining() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerShuttingDown,
            "draining",
        );
    }
    if gw.sessions.is_full() {
        // No session can be admitted now: a load balancer must send new users
        // elsewhere, not here to be refused.
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::WorkerUnavailable,
            "the session limit is reached",
        );
    }
    if !gw.sessions.is_ready() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::WorkerUnavailable,
            "no pre-warm has succeeded yet",
        );
    }
    (StatusCode::OK, "ready").into_response()
}

#[derive(serde::Deserialize)]
struct CreateQuery {
    ticket: Option<u64>,
}

fn create_error(e: CreateError) -> Response {
    match e {
        CreateError::Full { retry_after } => busy_response(
            retry_after,
            ErrorCode::WorkerUnavailable,
            "the session limit is reached",
        ),
        CreateError::Queued { ticket, position } => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "v": crate::protocol::PROTOCOL_VERSION, "ticket": ticket, "position": position })),
        )
            .into_response(),
        CreateError::Draining => busy_response(
            Duration::from_secs(30),
            ErrorCode::ServerShuttingDown,
            "the server is shutting down",
        ),
        CreateError::Unavailable { reason } => busy_response(
            Duration::from_secs(5),
            ErrorCode::WorkerUnavailable,
            &format!("no session can be started now: {reason}"),
        ),
    }
}

/// The ingress checks of the session routes: a valid token, then the per-address rate
/// limit (in that order: a bad token is a 401 whatever the rate).
#[allow(
    clippy::result_large_err,
    reason = "the error is the HTTP response itself, built once on a refused request"
)]
fn admit(
    gw: &Gateway,
    peer: &Peer,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Claims, Response> {
    let claims = authenticate(gw, headers, query_token)?;
    if let Err(wait) = gw.admit_address(&client_address(gw, peer, headers)) {
        // 429, the status clients and proxies know for "slow down" (503 means the
        // service is down), with when to come back.
        let mut r = error_response(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            "too many requests from this address",
        );
        crate::http::set_retry_after(&mut r, wait);
        return Err(r);
    }
    Ok(claims)
}

async fn create_session(
    State(gw): State<Arc<Gateway>>,
    axum::Extension(peer): axum::Extension<Peer>,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
) -> Response {
    let claims = match admit(&gw, &peer, &headers, None) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match gw.sessions.create(&claims.sub, &claims.role, q.ticket) {
        Ok(s) => (
            StatusCode::CREATED,
            axum::Json(
                serde_json::json!({ "v": crate::protocol::PROTOCOL_VERSION, "session_id": s.id }),
            ),
        )
            .into_response(),
        Err(e) => create_error(e),
    }
}

async fn full_result(
    State(gw): State<Arc<Gateway>>,
    Path((id, query)): Path<(String, u64)>,
    headers: HeaderMap,
) -> Response {
    let claims = match authenticate(&gw, &headers, None) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(session) = gw.sessions.get(&id).filter(|s| s.user == claims.sub) else {
        return error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::SessionNotFound,
            "no such session",
        );
    };
    match session.full_result(query) {
        Some(text) => full_result_response(text),
        None => error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "no stored result for that query",
        ),
    }
}

/// A stored result as the response body, served from the session's own copy (a 10 MB
/// result is not copied per fetch), with the headers a `String` body gets.
fn full_result_response(text: Arc<String>) -> Response {
    /// The bytes of a shared result, for a body that owns a reference to them.
    struct SharedText(Arc<String>);
    impl AsRef<[u8]> for SharedText {
        fn as_ref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    let body = axum::body::Body::from(axum::body::Bytes::from_owner(SharedText(text)));
    let content_type = (header::CONTENT_TYPE, "text/plain; charset=utf-8");
    (StatusCode::OK, [content_type], body).into_response()
}

#[derive(serde::Deserialize)]
struct SocketQuery {
    session: Option<String>,
    last_seq: Option<u64>,
    token: Option<String>,
    fork: Option<String>,
}

/// What a socket starts with.
pub(crate) enum Opening {
    Attach {
        session: Arc<Session>,
        last_seq: Option<u64>,
        notice: Option<String>,
    },
    /// The reconnect cannot be served: tell the client and close.
    Refuse(ServerMessage),
}

async fn upgrade(
    State(gw): State<Arc<Gateway>>,
    axum::Extension(peer): axum::Extension<Peer>,
    Query(q): Query<SocketQuery>,
    headers: HeaderMap,
    mut request: Request,
) -> Response {
    // The handshake is checked first, as axum's extractor did: a request that is not a
    // WebSocket handshake is refused before any token or rate check.
    let handshake = match upgrade::handshake(&mut request) {
        Ok(h) => h,
        Err(refusal) => return refusal,
    };
    let claims = match admit(&gw, &peer, &headers, q.token.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if gw.sessions.is_draining() {
        return busy_response(
            Duration::from_secs(30),
            ErrorCode::ServerShuttingDown,
            "the server is shutting down",
        );
    }
    let opening = match (&q.session, q.last_seq, &q.fork) {
        (_, _, Some(parent)) => match gw.sessions.fork(parent, &claims.sub, &claims.role) {
            Ok(session) => Opening::Attach {
                session,
                last_seq: None,
                notice: Some(format!("forked from {parent}")),
            },
            Err(crate::sessions::ForkError::NotFound) => {
                Opening::Refuse(ServerMessage::control(ServerEvent::Error {
                    code: ErrorCode::SessionNotFound,
                    message: format!("cannot fork {parent}: no such live session"),
                }))
            }
            Err(crate::sessions::ForkError::Create(e)) => return create_error(e),
        },
        (None, _, None) => match gw.sessions.create(&claims.sub, &claims.role, None) {
            Ok(session) => Opening::Attach {
                session,
                last_seq: None,
                notice: None,
            },
            Err(e) => return create_error(e),
        },
        (Some(id), Some(last_seq), None) => match gw.sessions.get(id) {
            Some(session) if session.user == claims.sub => Opening::Attach {
                session,
                last_seq: Some(last_seq),
                notice: None,
            },
            _ => {
                let why = match gw.sessions.tombstone(id) {
                    Some(t) => {
                        crate::met!(
                            "client.reconnect_after_end",
                            "reconnect to session {id} refused: it ended ({})",
                            t.reason
                        );
                        format!("session {id} ended: {}; start a new session", t.reason)
                    }
                    None => format!("session {id} does not exist; start a new session"),
                };
                Opening::Refuse(ServerMessage::control(ServerEvent::Error {
                    code: ErrorCode::SessionNotFound,
                    message: why,
                }))
            }
        },
        (Some(id), None, None) => match gw.sessions.resume(id, &claims.sub, &claims.role).await {
            Ok(Resumed::Live(session)) if session.user == claims.sub => Opening::Attach {
                session,
                last_seq: None,
                notice: None,
            },
            Ok(Resumed::Live(_)) => Opening::Refuse(ServerMessage::control(ServerEvent::Error {
                code: ErrorCode::SessionAlreadyActive,
                message: format!("session {id} belongs to another user"),
            })),
            Ok(Resumed::Busy { by }) => {
                Opening::Refuse(ServerMessage::control(ServerEvent::Error {
                    code: ErrorCode::SessionAlreadyActive,
                    message: format!("session {id} is active elsewhere ({by}); fork it instead"),
                }))
            }
            Ok(Resumed::Fresh { session, notice }) => Opening::Attach {
                session,
                last_seq: None,
                notice: Some(notice),
            },
            Err(e) => return create_error(e),
        },
    };
    gw.stats.sockets.fetch_add(1, Ordering::Relaxed);
    // Room for a frame of `message_chars_max` characters (at most 4 UTF-8 bytes each)
    // and its JSON envelope.
    let max_message = gw
        .config
        .message_chars_max
        .saturating_mul(4)
        .saturating_add(1024);
    let config = WebSocketConfig::default().max_message_size(Some(max_message));
    let gw2 = gw.clone();
    handshake.accept(&gw, config, move |socket| {
        run_socket(gw2, socket, claims, opening)
    })
}
