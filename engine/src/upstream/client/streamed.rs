//! A streamed model call: the answer's text deltas go to the caller as they arrive, in
//! order, through a bounded channel (a burst waits for the caller instead of piling up
//! here). A transient failure before the first streamed byte is retried
//! (`upstream::retry`); after it, the call fails and the partial length is logged. The
//! breaker and the rate-limit window learn each call's final outcome.

use super::UpstreamClient;
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

impl UpstreamClient {
    /// An error answer's body is read up to this many bytes (its message, for the log).
    const ERROR_BODY_MAX: usize = 64 << 10;

    /// Streams the model's answer to `input`, each text delta sent to `deltas` in order.
    /// Returns the answer's summary once it is whole.
    pub async fn stream(
        &self,
        input: &str,
        deltas: &mpsc::Sender<String>,
    ) -> Result<StreamSummary, UpstreamError> {
        let body = self.messages_body(input, true)?;
        let mut retry = CallRetry::new(self.config.retry.clone());
        let deadline = Instant::now() + self.config.first_byte_timeout;
        loop {
            let mut streamed = 0usize;
            let attempt = self.stream_once(body.clone(), deltas, &mut streamed, deadline);
            let error = match attempt.await {
                Ok(summary) => {
                    self.record(Ok(()));
                    return Ok(summary);
                }
                Err(e) => e,
            };
            if streamed > 0 {
                tracing::warn!(
                    partial_bytes = streamed,
                    "the model's answer broke off mid-stream: {error}"
                );
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
                    // The breaker counts calls, not attempts: a call retried three times
                    // is one failure, so one query's retries cannot open it alone.
                    self.record(Err(&error));
                    tracing::debug!(?reason, "the model call fails: {error}");
                    return Err(error);
                }
            }
        }
    }

    async fn stream_once(
        &self,
        body: Vec<u8>,
        deltas: &mpsc::Sender<String>,
        streamed: &mut usize,
        deadline: Instant,
    ) -> Result<StreamSummary, UpstreamError> {
        self.admit()?;
        // Until its first byte, an attempt waits no longer than the call's deadline.
        let head_bound = self
            .config
            .request_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let call = Call {
            method: hyper::Method::POST,
            path: MESSAGES_PATH,
            api_key: &self.config.api_key,
            body: Some(body),
            body_max: self.config.answer_bytes_max,
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
        if !(200..300).contains(&opened.status) {
            // The error's body is only its message: one that cannot be read is empty.
            let (status, retry_after) = (opened.status, opened.retry_after);
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
        let mut events = BodyDataStream::new(opened.body).eventsource();
        loop {
            let idle_bound = if *streamed == 0 {
                let left = deadline.saturating_duration_since(Instant::now());
                self.config.stream_idle_timeout.min(left)
            } else {
                self.config.stream_idle_timeout
            };
            let next = tokio::time::timeout(idle_bound, events.next()).await;
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
                    if deltas.send(text).await.is_err() {
                        return Err(UpstreamError::Abandoned);
                    }
                }
                StreamStep::Done(summary) if summary.text_bytes == 0 => {
                    // An empty answer is no answer: the query fails and may be sent again.
                    tracing::warn!("the model's answer is empty");
                    return Err(UpstreamError::Malformed {
                        detail: "the answer is empty".to_string(),
                    });
                }
                StreamStep::Done(summary) => return Ok(summary),
            }
        }
    }

    fn silent(&self, bound: std::time::Duration, what: &str) -> UpstreamError {
        tracing::warn!(
            bound_ms = bound.as_millis() as u64,
            "model call timed out ({what} within the bound): the model API may be degraded"
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
