//! The client channel: real HTTP and WebSocket serving (axum over hyper) on a listener
//! from the environment, JSON messages with a protocol version, JWT authentication,
//! sequence numbers with a bounded replay log, one connection per session, per-user
//! rate limits, draining.

mod auth;
mod connection;
mod forwarded;
mod inbound;
mod rate;
mod server;
mod upgrade;

pub use auth::{AuthError, Claims, TokenKeys};
pub use rate::{RateLimit, RateLimiter};
pub use server::{Gateway, GatewayConfig, GatewayStats, serve};
