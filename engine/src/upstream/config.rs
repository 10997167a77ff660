use super::breaker::BreakerPolicy;
use super::dns::DnsConfig;
use super::limits::ModelLimits;
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
    /// The default model: queries that name none, or name one not in `known_models`.
    pub model: String,
    /// The models a query may name; another name falls back to `model`, with a warning.
    pub known_models: Vec<String>,
    /// Answers when `model` is unavailable (5xx or overloaded after the retries); the
    /// user is told.
    pub fallback_model: Option<String>,
    /// Beta features a query may ask for; others are left out, with a warning.
    pub known_betas: Vec<String>,
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
    /// The whole model call of one query, streaming included (QUERY_TIMEOUT_SECONDS).
    pub query_timeout: Duration,
    /// A stream slower than `slow_tokens` deltas in a `slow_window` draws an
    /// `upstream_slow` warning (once per query).
    pub slow_window: Duration,
    pub slow_tokens: u32,
    /// `Some` when `addr`'s host is a DNS name the engine resolves itself, through its
    /// resolver chain (primary, secondary, DoH; a cache kept past its TTL during a
    /// failure; pinned addresses); `None`: `addr` is connected to as given.
    pub dns: Option<DnsConfig>,
    /// TLS to the API (`None`: plain HTTP, as to a local server on loopback).
    pub tls: Option<TlsConfig>,
    /// What one query may spend: turns, retries, context, money.
    pub limits: ModelLimits,
}

impl UpstreamConfig {
    pub fn new(addr: NetAddr, api_key: impl Into<String>) -> Self {
        UpstreamConfig {
            addr,
            api_key: api_key.into(),
            model: "local-echo-1".to_string(),
            known_models: crate::upstream::LOCAL_MODELS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            fallback_model: None,
            known_betas: crate::upstream::LOCAL_BETAS
                .iter()
                .map(|b| b.to_string())
                .collect(),
            max_tokens: 4096,
            request_timeout: Duration::from_secs(30),
            answer_bytes_max: 4 * 1024 * 1024,
            breaker: BreakerPolicy::DEFAULT,
            retry: upstream_retry_policy(),
            stream_idle_timeout: Duration::from_secs(60),
            first_byte_timeout: Duration::from_secs(60),
            rate_limit_default: Duration::from_secs(60),
            query_timeout: Duration::from_secs(300),
            // Below 1 token a second, judged over 10 s.
            slow_window: Duration::from_secs(10),
            slow_tokens: 10,
            dns: None,
            tls: None,
            limits: ModelLimits::new(),
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
        assert!(
            self.known_models.contains(&self.model),
            "the default model {:?} is not among the known models",
            self.model
        );
        assert!(
            !self.query_timeout.is_zero() && !self.slow_window.is_zero(),
            "query_timeout and slow_window must be positive"
        );
        if let Some(dns) = &self.dns {
            dns.check();
        }
        self.limits.check();
    }
}
