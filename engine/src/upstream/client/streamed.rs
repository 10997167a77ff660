//! A streamed model call: the answer's text deltas go to the caller as they arrive, in
//! order, through a bounded channel (a burst waits for the caller instead of piling up
//! here). A transient failure before the first streamed byte is retried
//! (`upstream::retry`); after it, the call fails and the partial length is logged. The
//! breaker and the rate-limit window learn each call's final outcome.

use super::{ModelCall, UpstreamClient};
use crate::upstream::MESSAGES_PATH;
use crate::upstream::error::UpstreamError;
use crate::upstream::http::{Answer, Call, open};
use crate::upstream::retry::{CallRetry, RetryVerdict};
use crate::upstream::stream::{StreamAssembler, StreamError, StreamStep, StreamSummary};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use http_body_util::BodyDataStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What a streamed call tells its caller, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelEvent {
    /// The next text delta of the answer.
    Delta(String),
    /// The model asked for is unavailable: the configured fallback answers instead.
    /// Comes before any delta of that answer.
    Fallback {
        from: String,
        to: String,
        why: String,
    },
}

impl UpstreamClient {
    /// An error answer's body is read up to this many bytes (its message, for the log).
    const ERROR_BODY_MAX: usize = 64 << 10;

    /// Streams the model's answer to `call`, each text delta sent to `events` in order.
    /// Returns the answer's summary once it is whole. When the model asked for stays
    /// unavailable through its retries and a fallback model is configured, the
    /// fallback is asked (with its own retries), after a [`ModelEvent::Fallback`].
    pub async fn stream(
        &self,
        call: &ModelCall,
        events: &mpsc::Sender<ModelEvent>,
    ) -> Result<StreamSummary, UpstreamError> {
        let mut sent = false;
        let first = self.stream_model(call, events, &mut sent).await;
        let fallback = self.config.fallback_model.as_ref();
        let error = match (first, fallback) {
            (Err(e @ UpstreamError::Unavailable { .. }), Some(to)) if *to != call.model => e,
            (first, _) => return self.recorded(first, sent),
        };
        let to = fallback.expect("matched above").clone();
        crate::met!(
            "upstream.fallback",
            "model {} unavailable, {to} answers instead: {error}",
            call.model
        );
        self.state().stats.fallbacks += 1;
        let note = ModelEvent::Fallback {
            from: call.model.clone(),
            to: to.clone(),
            why: error.to_string(),
        };
        if events.send(note).await.is_err() {
            return self.recorded(Err(UpstreamError::Abandoned), sent);
        }
        let call = ModelCall {
            model: to,
            ..call.clone()
        };
        let second = self.stream_model(&call, events, &mut sent).await;
        self.recorded(second, sent)
    }

    /// The breaker and the rate-limit window learn a call's final outcome: a call
    /// retried three times (or answered by the fallback) is one outcome, so one
    /// query's retries cannot open the breaker alone. A call none of whose attempts
    /// was sent (held back by the window, the pace or the breaker) teaches nothing.
    fn recorded(
        &self,
        outcome: Result<StreamSummary, UpstreamError>,
        sent: bool,
    ) -> Result<StreamSummary, UpstreamError> {
        if sent {
            self.record(outcome.as_ref().map(|_| ()));
        }
        outcome
    }

    /// One model's streamed answer, retried after transient failures before its first
    /// byte; the outcome is not recorded yet.
    async fn stream_model(
        &self,
        call: &ModelCall,
        events: &mpsc::Sender<ModelEvent>,
        sent: &mut bool,
    ) -> Result<StreamSummary, UpstreamError> {
        let body = self.messages_body(call, true)?;
        let mut retry = CallRetry::new(self.config.retry.clone());
        let deadline = Instant::now() + self.config.first_byte_timeout;
        loop {
            let mut streamed = 0usize;
            let attempt =
                self.stream_once(call, body.clone(), events, &mut streamed, deadline, sent);
            let error = match attempt.await {
                Ok(summary) => return Ok(summary),
                Err(UpstreamError::ModelNotFound { detail, .. }) => {
                    return Err(UpstreamError::ModelNotFound {
                        model: call.model.clone(),
                        detail,
                    });
                }
                Err(e) => e,
            };
            if streamed > 0 && error != UpstreamError::Abandoned {
                crate::met!(
                    "upstream.answer_broke_off",
                    "the model's answer broke off after {streamed} bytes, discarded: {error}"
                );
                self.state().stats.broke_off += 1;
                return Err(UpstreamError::BrokeOff {
                    partial_bytes: streamed,
                    detail: error.to_string(),
                });
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let draw = self.env.random().next_u64();
            match retry.handle_failure(&error, streamed, draw, remaining) {
                RetryVerdict::After(delay) => {
                    self.state().stats.retries += 1;
                    tracing::info!(
                        retry = retry.retries(),
                        delay_ms = delay.as_millis() as u64,
                        "retrying the model call: {error}"
                    );
                    tokio::time::sleep(delay).await;
                }
                RetryVerdict::GiveUp(reason) => {
                    tracing::debug!(?reason, "the model call fails: {error}");
                    return Err(error);
                }
            }
        }
    }

    async fn stream_once(
        &self,
        model_call: &ModelCall,
        body: Vec<u8>,
        events: &mpsc::Sender<ModelEvent>,
        streamed: &mut usize,
        deadline: Instant,
        sent: &mut bool,
    ) -> Result<StreamSummary, UpstreamError> {
        self.paced(deadline).await?;
        self.admit().await?;
        *sent = true;
        // Until its first byte, an attempt waits no longer than the call's deadline.
        let head_bound = self
            .config
            .request_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let call = Call {
            method: hyper::Method::POST,
            path: MESSAGES_PATH,
            api_key: &self.config.api_key,
            betas: &model_call.betas,
            body: Some(body),
            body_max: self.config.answer_bytes_max,
            dns: self.dns.as_ref(),
            tls: self.tls.as_ref(),
        };
        let head = tokio::time::timeout(head_bound, open(&self.env, &self.config.addr, call)).await;
        let opened = match head {
            Err(_) => return Err(self.silent(head_bound, "no answer")),
            Ok(Err(e)) => {
                return Err(UpstreamError::Unavailable {
                    detail: e.to_string(),
                });
            }
            Ok(Ok(opened)) => opened,
        };
        if let Some(rate) = opened.rate {
            self.learn_rate(rate);
        }
        if !(200..300).contains(&opened.status) {
            // The error's body is only its message: one that cannot be read is empty.
            let (status, retry_after) = (opened.status, opened.retry_after);
            if status == 429 {
                self.limited_by_api(retry_after).await;
            }
            let answer = opened.collect(Self::ERROR_BODY_MAX).await;
            let answer = answer.unwrap_or(Answer {
                status,
                retry_after,
                body: Vec::new(),
            });
            return Err(self
                .classify(answer)
                .expect_err("a status outside 2xx classifies as an error"));
        }
        let mut assembler = StreamAssembler::new(self.config.answer_bytes_max);
        let mut sse = BodyDataStream::new(opened.body).eventsource();
        loop {
            let idle_bound = if *streamed == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                self.config.stream_idle_timeout.min(left)
            } else {
                self.config.stream_idle_timeout
            };
            let next = tokio::time::timeout(idle_bound, sse.next()).await;
            let event = match next {
                Err(_) => return Err(self.silent(idle_bound, "no streamed event")),
                Ok(None) => return assembler.handle_end().map_err(UpstreamError::from),
                Ok(Some(Err(e))) => {
                    return Err(UpstreamError::Unavailable {
                        detail: format!(
                            "the stream broke off after {} bytes: {e}",
                            assembler.text_bytes()
                        ),
                    });
                }
                Ok(Some(Ok(event))) => event,
            };
            match assembler
                .handle_event(&event.event, &event.data)
                .map_err(UpstreamError::from)?
            {
                StreamStep::Nothing => {}
                StreamStep::Delta(text) => {
                    *streamed += text.len();
                    if events.send(ModelEvent::Delta(text)).await.is_err() {
                        return Err(UpstreamError::Abandoned);
                    }
                }
                StreamStep::Done(summary)
                    if summary.text_bytes == 0 && summary.tool_uses.is_empty() =>
                {
                    // An empty answer (no text, no tool asked for) is no answer: the
                    // query fails and may be sent again.
                    crate::met!("upstream.empty_answer", "the model's answer is empty");
                    return Err(UpstreamError::Malformed {
                        detail: "the answer is empty".to_string(),
                    });
                }
                StreamStep::Done(summary) => return Ok(summary),
            }
        }
    }

    /// Waits until the account's pace lets a call go (see `upstream::pacing`), or fails
    /// as rate limited when that is past the call's deadline.
    async fn paced(&self, deadline: Instant) -> Result<(), UpstreamError> {
        loop {
            let now = self.now();
            let wait = {
                let mut s = self.state();
                let wait = s.pacer.poll_wait(now);
                if wait.is_zero() {
                    s.pacer.handle_sent(now);
                }
                wait
            };
            if wait.is_zero() {
                return Ok(());
            }
            if Instant::now() + wait > deadline {
                return Err(UpstreamError::RateLimited { retry_after: wait });
            }
            self.state().stats.paced += 1;
            crate::met!(
                "upstream.pacing",
                "the account's requests run low: a call waits {} ms",
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn silent(&self, bound: std::time::Duration, what: &str) -> UpstreamError {
        self.state().stats.timeouts += 1;
        crate::met!(
            "upstream.timed_out",
            "model call timed out ({what} within {} ms): the model API may be degraded",
            bound.as_millis()
        );
        UpstreamError::Unavailable {
            detail: format!("{what} within {:.1} s", bound.as_secs_f64()),
        }
    }
}

/// A stream that broke off is the upstream failing (transient); one that breaks the
/// protocol is an unusable answer.
impl From<StreamError> for UpstreamError {
    fn from(e: StreamError) -> Self {
        match &e {
            StreamError::EndedEarly { .. } => UpstreamError::Unavailable {
                detail: e.to_string(),
            },
            StreamError::Api { kind, .. } if kind == "overloaded_error" || kind == "api_error" => {
                UpstreamError::Unavailable {
                    detail: e.to_string(),
                }
            }
            StreamError::Api { .. } | StreamError::Malformed(_) => UpstreamError::Malformed {
                detail: e.to_string(),
            },
        }
    }
}
