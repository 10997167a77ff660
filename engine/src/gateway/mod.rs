//! The client channel: real HTTP and WebSocket serving (axum over hyper) on a listener
//! from the environment, JSON messages with a protocol version, JWT authentication,
//! sequence numbers with a bounded replay log, one connection per session, per-user
//! rate limits, draining.

pub mod auth;
mod connection;
pub mod forwarded;
pub mod protocol;
pub mod rate;
pub mod replay;
mod server;
mod upgrade;

pub use auth::{AuthError, Claims, TokenKeys};
pub use protocol::{
    ClientMessage, DETAIL_CHARS_MAX, ErrorCode, FrameError, PROTOCOL_VERSION, ServerEvent,
    ServerMessage, decode_client,
};
pub use rate::{RateLimit, RateLimiter};
pub use replay::{ReplayError, ReplayLimits, ReplayLog};
pub(crate) use server::set_retry_after;
pub use server::{Gateway, GatewayConfig, GatewayStats, serve, serve_router};
