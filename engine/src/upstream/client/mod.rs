//! The upstream client every session of an instance shares: one breaker and one
//! rate-limit window for all of them, so a failing or limiting upstream is not hammered
//! by each session in turn. When the instance shares a state service with others (the
//! session lock's), the 429 window is shared by all of them too (`window_share`).

mod streamed;
mod window_share;

pub use streamed::ModelEvent;
pub use window_share::{SHARE_ANSWER_BOUND, SHARE_RETRY_AFTER, ShareStats, WindowShare};

use super::breaker::Breaker;
use super::config::UpstreamConfig;
use super::dns::{DnsChain, DnsStats};
use super::error::UpstreamError;
use super::http::{Answer, Call, ExchangeError, RateHeaders, exchange};
use super::pacing::{Pacer, RateReport};
use super::tls::{TlsClient, TlsStats};
use super::wire::{
    Content, ErrorAnswer, Message, MessagesAnswer, MessagesRequest, OutputFormat, Role, ToolSpec,
};
use super::{MESSAGES_PATH, MODELS_PATH};
use crate::env::Env;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the client has seen, for operators and oracles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamStats {
    /// Calls that went out on the network.
    pub requests: u64,
    /// Times a call waited for the account's pace (rate-limit headers near the limit).
    pub paced: u64,
    pub answered: u64,
    /// 429s received.
    pub rate_limited: u64,
    /// Calls held back inside a rate-limit window, without a request.
    pub held_back: u64,
    /// Not reached, timed out, or 5xx.
    pub unavailable: u64,
    /// Calls refused because the breaker was open.
    pub refused_open: u64,
    /// Streamed calls tried again after a transient failure.
    pub retries: u64,
    /// Attempts that timed out (no answer, or a silent stream): a degraded upstream.
    pub timeouts: u64,
    /// Streamed answers that broke off after part of them was forwarded.
    pub broke_off: u64,
    /// Calls answered by the fallback model because the asked one was unavailable.
    pub fallbacks: u64,
    pub breaker_opened: u64,
    pub breaker_closed: u64,
    /// What the TLS checks met (all zero without TLS).
    pub tls: TlsStats,
    /// What the window shared with other instances did (all zero without one).
    pub shared_window: ShareStats,
}

struct State {
    breaker: Breaker,
    pacer: Pacer,
    limited_until: Option<Duration>,
    stats: UpstreamStats,
}

impl State {
    /// When the 429 window open at `now` ends, if one is.
    fn limited_at(&self, now: Duration) -> Option<Duration> {
        self.limited_until.filter(|&until| now < until)
    }

    /// Holds calls back until `until` at least (a longer window already open stays).
    fn hold_until(&mut self, until: Duration) {
        self.limited_until = Some(self.limited_until.map_or(until, |t| t.max(until)));
    }
}

pub struct UpstreamClient {
    env: Env,
    config: UpstreamConfig,
    /// Built once from `config.tls`.
    tls: Option<TlsClient>,
    origin: Instant,
    state: Mutex<State>,
    /// The resolver chain, when the upstream is reached by name (`config.dns`).
    dns: Option<DnsChain>,
    /// Woken when the breaker opens (whoever watches for the upstream's return).
    opened: Notify,
    /// The 429 window shared with the account's other instances, if any.
    share: Option<WindowShare>,
}

impl UpstreamClient {
    /// The client for `config`. Panics if its TLS configuration does not build (tests;
    /// the engine starts through [`UpstreamClient::try_new`]).
    pub fn new(env: Env, config: UpstreamConfig) -> Arc<Self> {
        match Self::try_new(env, config) {
            Ok(client) => client,
            Err(e) => panic!("{e}"),
        }
    }

    /// The client for `config`, or why its TLS configuration does not build.
    pub fn try_new(env: Env, config: UpstreamConfig) -> Result<Arc<Self>, String> {
        Self::try_new_shared(env, config, None)
    }

    /// Like `try_new`, its 429 window shared with other instances through `share`.
    pub fn try_new_shared(
        env: Env,
        config: UpstreamConfig,
        share: Option<WindowShare>,
    ) -> Result<Arc<Self>, String> {
        config.check();
        let tls = match &config.tls {
            Some(tls) => Some(TlsClient::new(&env, tls)?),
            None => None,
        };
        Ok(Arc::new(UpstreamClient {
            tls,
            env,
            dns: config.dns.clone().map(DnsChain::new),
            state: Mutex::new(State {
                breaker: Breaker::new(config.breaker.clone()),
                pacer: Pacer::default(),
                limited_until: None,
                stats: UpstreamStats::default(),
            }),
            config,
            origin: Instant::now(),
            opened: Notify::new(),
            share,
        }))
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("upstream state poisoned")
    }

    pub fn stats(&self) -> UpstreamStats {
        let s = self.state();
        let mut stats = s.stats.clone();
        stats.breaker_opened = s.breaker.opened;
        stats.breaker_closed = s.breaker.closed;
        stats.tls = self.tls.as_ref().map(TlsClient::stats).unwrap_or_default();
        stats.shared_window = self
            .share
            .as_ref()
            .map(WindowShare::stats)
            .unwrap_or_default();
        stats
    }

    /// What the resolver chain has done (`None`: the upstream is not reached by name).
    pub fn dns_stats(&self) -> Option<DnsStats> {
        self.dns.as_ref().map(DnsChain::stats)
    }

    pub fn is_open(&self) -> bool {
        self.state().breaker.is_open()
    }

    /// How long until the breaker lets a call through (zero when closed).
    pub fn retry_in(&self) -> Duration {
        self.state().breaker.retry_in(self.now())
    }

    /// Waits until the breaker opens (returns at once if it opened since the last wait).
    pub async fn wait_opened(&self) {
        self.opened.notified().await;
    }

    /// The cheap call a pre-warm makes: is the upstream answering, and not limiting us?
    pub async fn probe(&self) -> Result<(), UpstreamError> {
        self.call(hyper::Method::GET, MODELS_PATH, None).await?;
        Ok(())
    }

    /// Sends a query's input to the default model; its answer comes back.
    pub async fn complete(&self, input: &str) -> Result<String, UpstreamError> {
        let body = self.messages_body(&ModelCall::user(&self.config.model, input), false)?;
        let answer = self
            .call(hyper::Method::POST, MESSAGES_PATH, Some(body))
            .await?;
        serde_json::from_slice::<MessagesAnswer>(&answer)
            .map(|a| a.text())
            .map_err(|e| UpstreamError::Malformed {
                detail: format!("answer is not a messages answer: {e}"),
            })
    }

    /// The messages call's body for `call`.
    fn messages_body(&self, call: &ModelCall, stream: bool) -> Result<Vec<u8>, UpstreamError> {
        serde_json::to_vec(&MessagesRequest {
            model: call.model.clone(),
            max_tokens: self.config.max_tokens,
            messages: call.messages.clone(),
            system: None,
            stream,
            tools: call.tools.clone(),
            output_format: call.output_format.clone(),
        })
        .map_err(|e| UpstreamError::Malformed {
            detail: e.to_string(),
        })
    }

    /// An answer's rate-limit headers: the pace of later calls follows them (the reset
    /// time is the API's wall clock; the engine's own tells how far away it is).
    fn learn_rate(&self, rate: RateHeaders) {
        let reset_in_ms = (rate.reset_unix_ms - self.env.wall_unix_ms() as i64).max(0);
        let report = RateReport {
            limit: rate.limit,
            remaining: rate.remaining,
            reset_in: Duration::from_millis(reset_in_ms as u64),
        };
        let now = self.now();
        self.state().pacer.handle_report(now, report);
    }

    /// Whether a call may go now: not inside this instance's 429 window nor the one
    /// shared with other instances (asked only when this one's is not enough), and the
    /// breaker lets it through.
    async fn admit(&self) -> Result<(), UpstreamError> {
        if let Some(share) = &self.share
            && !self.locally_limited()
            && let Some(left) = share.check(|| self.now()).await
        {
            // Another instance read a 429: this one holds back as if it had.
            let until = self.now() + left;
            self.state().hold_until(until);
        }
        self.admit_now()
    }

    fn locally_limited(&self) -> bool {
        let now = self.now();
        self.state().limited_at(now).is_some()
    }

    /// The model API answered 429: this instance's window opens now (before the answer
    /// is classified and recorded), and the account's other instances are told.
    async fn limited_by_api(&self, retry_after: Option<Duration>) {
        let retry_after = retry_after.unwrap_or(self.config.rate_limit_default);
        let until = self.now() + retry_after;
        self.state().hold_until(until);
        if let Some(share) = &self.share {
            share.publish(retry_after, || self.now()).await;
        }
    }

    fn admit_now(&self) -> Result<(), UpstreamError> {
        let now = self.now();
        let mut s = self.state();
        if let Some(until) = s.limited_at(now) {
            s.stats.held_back += 1;
            return Err(UpstreamError::RateLimited {
                retry_after: until - now,
            });
        }
        if let Err(retry_in) = s.breaker.admit(now) {
            s.stats.refused_open += 1;
            return Err(UpstreamError::CircuitOpen { retry_in });
        }
        s.stats.requests += 1;
        Ok(())
    }

    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, UpstreamError> {
        self.admit().await?;
        let call = Call {
            method,
            path,
            api_key: &self.config.api_key,
            betas: &[],
            body,
            body_max: self.config.answer_bytes_max,
            dns: self.dns.as_ref(),
            tls: self.tls.as_ref(),
        };
        let result = tokio::time::timeout(
            self.config.request_timeout,
            exchange(&self.env, &self.config.addr, call),
        )
        .await;
        let outcome = match result {
            Err(_) => Err(UpstreamError::Unavailable {
                detail: format!(
                    "no answer within {} s",
                    self.config.request_timeout.as_secs()
                ),
            }),
            Ok(Err(ExchangeError::Unreached(e))) => Err(UpstreamError::Unavailable {
                detail: e.to_string(),
            }),
            Ok(Err(ExchangeError::TooLarge(max))) => Err(UpstreamError::Malformed {
                detail: format!("answer longer than {max} bytes"),
            }),
            Ok(Ok(answer)) => {
                if answer.status == 429 {
                    self.limited_by_api(answer.retry_after).await;
                }
                self.classify(answer)
            }
        };
        self.record(outcome.as_ref().map(|_| ()));
        outcome
    }

    fn classify(&self, answer: Answer) -> Result<Vec<u8>, UpstreamError> {
        match answer.status {
            200..=299 => Ok(answer.body),
            429 => Err(UpstreamError::RateLimited {
                retry_after: answer.retry_after.unwrap_or(self.config.rate_limit_default),
            }),
            401 | 403 => Err(UpstreamError::KeyRejected {
                status: answer.status,
                detail: error_message(&answer.body),
            }),
            404 => Err(UpstreamError::ModelNotFound {
                model: String::new(),
                detail: error_message(&answer.body),
            }),
            400 | 422 => Err(UpstreamError::Rejected {
                status: answer.status,
                detail: error_message(&answer.body),
            }),
            500..=599 => Err(UpstreamError::Unavailable {
                detail: format!("HTTP {}", answer.status),
            }),
            status => Err(UpstreamError::Malformed {
                detail: format!("HTTP {status}: {}", error_message(&answer.body)),
            }),
        }
    }

    fn record(&self, outcome: Result<(), &UpstreamError>) {
        let now = self.now();
        let mut s = self.state();
        match outcome {
            Ok(_)
            | Err(
                UpstreamError::Malformed { .. }
                | UpstreamError::KeyRejected { .. }
                | UpstreamError::ModelNotFound { .. }
                | UpstreamError::Rejected { .. },
            ) => {
                // It answered: the upstream is reachable.
                s.stats.answered += 1;
                s.breaker.succeeded();
            }
            Err(UpstreamError::RateLimited { retry_after }) => {
                // Limiting is an answer too; the window holds every session back.
                s.stats.answered += 1;
                s.stats.rate_limited += 1;
                s.breaker.succeeded();
                let until = now + *retry_after;
                s.hold_until(until);
            }
            Err(UpstreamError::Unavailable { .. } | UpstreamError::BrokeOff { .. }) => {
                s.stats.unavailable += 1;
                if s.breaker.failed(now) {
                    tracing::warn!(
                        "model API unavailable: circuit breaker open for {:?}",
                        self.config.breaker.open_for
                    );
                    self.opened.notify_one();
                }
            }
            // Not an answer from the upstream: nothing to learn about it.
            Err(UpstreamError::CircuitOpen { .. } | UpstreamError::Abandoned) => {}
        }
    }
}

/// One model call: the model, the beta features asked for, and the conversation (its
/// last turn is the user's query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelCall {
    pub model: String,
    pub betas: Vec<String>,
    pub messages: Vec<Message>,
    /// The tools the model may ask for.
    pub tools: Vec<ToolSpec>,
    /// The final answer's required shape, if any.
    pub output_format: Option<OutputFormat>,
}

impl ModelCall {
    /// One user turn to `model`, no betas.
    pub fn user(model: &str, text: &str) -> Self {
        ModelCall {
            model: model.to_string(),
            betas: Vec::new(),
            messages: vec![Message {
                role: Role::User,
                content: Content::Text(text.to_string()),
            }],
            tools: Vec::new(),
            output_format: None,
        }
    }
}

/// An error answer's message: the API's own words when the body is its error shape,
/// else the body's start.
fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(e) => format!("{} ({})", e.error.message, e.error.kind),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}
