//! The upstream model API: the client the engine calls for every query (and to check a
//! pre-warmed worker is not already rate limited), with one circuit breaker and one
//! rate-limit window shared by every session of the instance, and a local model server
//! that speaks the same API (the real one for local runs, hosted on a simulated host in
//! scenarios).

mod breaker;
mod client;
mod config;
mod dns;
mod echo;
mod error;
mod http;
pub mod limits;
mod local;
pub mod pacing;
pub mod retry;
mod stream;
mod tls;
pub mod wire;

pub use breaker::{Breaker, BreakerPolicy};
pub use client::{
    ModelCall, ModelEvent, SHARE_ANSWER_BOUND, SHARE_RETRY_AFTER, ShareStats, UpstreamClient,
    UpstreamStats, WindowShare,
};
pub use config::UpstreamConfig;
pub use dns::{DnsConfig, DnsCore, DnsSource, DnsStats, DnsStep};
pub use error::UpstreamError;
pub use limits::{ModelLimits, ModelPrice};
pub use local::{
    AnswerOutcome, AnswerPlan, AnswerPolicy, CallInfo, LOCAL_BETAS, LOCAL_MODELS, LocalUpstream,
    PacedStream, RateWindow, UpstreamRequest,
};
pub use stream::{StreamAssembler, StreamError, StreamStep, StreamSummary, ToolUse};
pub(crate) use tls::TlsServer;
/// The expiry core, for the property tests.
pub use tls::{Checked as CertificateCheck, Decision as ExpiryDecision, decide as decide_expiry};
pub use tls::{ExpiredPolicy, TlsConfig, TlsIdentity, TlsStats, certificates_from_pem};

/// Where the model list is read: the cheap call a pre-warm makes.
pub const MODELS_PATH: &str = "/v1/models";
/// Where a query's input is sent and the model's answer comes back.
pub const MESSAGES_PATH: &str = "/v1/messages";
