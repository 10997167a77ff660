use super::breaker::BreakerPolicy;
use super::retry::upstream_retry_policy;
use super::tls::TlsConfig;
use crate::env::NetAddr;
use crate::workers::retry::RetryPolicy;
use std::time::Duration;

/// How the engine reaches its upstream model API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    pub addr: NetAddr,
    /// Sent as `x-api-key`.
    pub api_key: String,
    pub model: String,
    /// The most tokens an answer may have (`max_tokens` of each call).
    pub max_tokens: u32,
    /// One request, connect to last body byte: past this the upstream counts as
    /// unreachable.
    pub request_timeout: Duration,
    /// Answers longer than this are refused as malformed (the engine's memory bound).
    pub answer_bytes_max: usize,
    pub breaker: BreakerPolicy,
    /// How a streamed call is retried after a transient failure before its first byte.
    pub retry: RetryPolicy,
    /// A stream silent this long (no event, not even a ping) counts as timed out.
    pub stream_idle_timeout: Duration,
    /// A streamed call, retries included, waits at most this long for its answer to
    /// begin; each attempt waits at most `request_timeout` of it.
    pub first_byte_timeout: Duration,
    /// A 429 without `Retry-After` holds requests back this long.
    pub rate_limit_default: Duration,
    /// TLS to the API (`None`: plain HTTP, as to a local server on loopback).
    pub tls: Option<TlsConfig>,
}

impl UpstreamConfig {
    pub fn new(addr: NetAddr, api_key: impl Into<String>) -> Self {
        UpstreamConfig {
            addr,
            api_key: api_key.into(),
            model: "local-echo-1".to_string(),
            max_tokens: 4096,
            request_timeout: Duration::from_secs(30),
            answer_bytes_max: 4 * 1024 * 1024,
            breaker: BreakerPolicy::DEFAULT,
            retry: upstream_retry_policy(),
            stream_idle_timeout: Duration::from_secs(60),
            first_byte_timeout: Duration::from_secs(60),
            rate_limit_default: Duration::from_secs(60),
            tls: None,
        }
    }

    pub fn check(&self) {
        assert!(
            !self.request_timeout.is_zero(),
            "request_timeout must be positive"
        );
        assert!(
            self.answer_bytes_max > 0,
            "answer_bytes_max must be positive"
        );
        self.breaker.check();
        self.retry.check();
        assert!(
            !self.stream_idle_timeout.is_zero(),
            "stream_idle_timeout must be positive"
        );
        assert!(
            !self.first_byte_timeout.is_zero(),
            "first_byte_timeout must be positive"
        );
    }
}
