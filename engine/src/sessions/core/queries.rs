//! Queries: what a client's frames do to the session (enqueue in queue or reject mode,
//! interrupt, extend, acknowledge), which step the driver takes next, and how a query
//! runs and ends (the bound on streamed answer bytes, truncation, the transcript).

use super::{QueryMode, Running, SessionCore};
use crate::protocol::{ErrorCode, QueryOptions, ServerEvent};
use crate::sessions::lifecycle::{IllegalTransition, SessionEvent, SessionState};
use std::sync::Arc;
use std::time::Duration;

/// A client's request to the session (decoded and admitted by the gateway).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientInput {
    Query { text: String, options: QueryOptions },
    Interrupt,
    Extend,
    Ack { seq: u64 },
}

/// What the connection does with the answer to a [`ClientInput`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputOutcome {
    /// Nothing to say.
    None,
    /// Publish this on the stream.
    Publish(ServerEvent),
    /// Refuse the frame with this error.
    Refuse { code: ErrorCode, message: String },
}

/// What the session's driver does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The session ends, for this reason.
    End { reason: String },
    /// Replace the worker (between queries only).
    Restart,
    /// Run this query (it left the queue).
    Run {
        query: u64,
        text: String,
        options: QueryOptions,
    },
    /// Nothing until an input or a timeout.
    Wait,
}

/// Why a running query must stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    Interrupted,
    Ended(String),
}

/// How a query that ran ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryEnd {
    Done,
    Interrupted,
    /// The session ends (a limit, shutdown): the query is interrupted first.
    Ended(String),
    /// The worker failed it.
    Failed(String),
}

impl SessionCore {
    /// A client's request. Queries wait behind a running one in queue mode, and are
    /// refused meanwhile in reject mode (during a worker restart they always wait).
    pub fn handle_input(&mut self, now: Duration, input: ClientInput) -> InputOutcome {
        match input {
            ClientInput::Query { text, options } => {
                let busy = self.running.is_some()
                    || self.state != SessionState::Idle
                    || !self.pending.is_empty();
                let queue = self.settings.queries == QueryMode::Queue;
                if busy && !queue && self.state != SessionState::Restarting {
                    crate::met!(
                        "client.concurrent_query",
                        "a query while query {:?} runs: refused",
                        self.running()
                    );
                    return InputOutcome::Refuse {
                        code: ErrorCode::QueryInProgress,
                        message: "a query is running: wait for its result or interrupt it"
                            .to_string(),
                    };
                }
                let query = self.next_query;
                self.next_query += 1;
                self.pending.push_back((query, text, options));
                self.limit.on_message(now);
                let position = self.pending.len() - usize::from(!busy);
                if position == 0 {
                    return InputOutcome::None;
                }
                if self.running.is_some() {
                    crate::met!(
                        "client.concurrent_query",
                        "query {query} while query {:?} runs: queued at position {position}",
                        self.running()
                    );
                }
                InputOutcome::Publish(ServerEvent::Queued {
                    query,
                    position: position as u32,
                })
            }
            ClientInput::Interrupt => {
                // Idempotent: nothing running is not an error.
                if self.running.is_some() {
                    self.interrupt_requested = true;
                } else {
                    crate::met!(
                        "client.idle_interrupt",
                        "an interrupt with no query running: ignored"
                    );
                }
                InputOutcome::None
            }
            ClientInput::Extend => match self.limit.extend(now) {
                Some(remaining) => {
                    let left = self.limit.limits().extensions_max - self.limit.extensions();
                    InputOutcome::Publish(ServerEvent::SessionExtended {
                        remaining_ms: remaining.as_millis() as u64,
                        extensions_left: left,
                    })
                }
                None => InputOutcome::Refuse {
                    code: ErrorCode::ExtensionRefused,
                    message: "no extension is left for this session".to_string(),
                },
            },
            ClientInput::Ack { seq } if seq > self.log.last_seq() => InputOutcome::Refuse {
                // Acknowledging what was never sent: a confused or forged client. Said, not
                // silently clamped, so the client can see its own bug.
                code: ErrorCode::InvalidSequence,
                message: format!(
                    "ack {seq} is ahead of the stream: the last message sent is {}",
                    self.log.last_seq()
                ),
            },
            ClientInput::Ack { seq } => {
                self.handle_ack(seq);
                InputOutcome::None
            }
        }
    }

    /// The driver's next step at `now`; `restart_due`: its worker asks to be replaced.
    /// A session abandoned past `detached_max` ends (parked) before it runs another of
    /// its queued queries: a backlog must not hold a worker for nobody.
    pub fn poll_step(&mut self, now: Duration, restart_due: bool) -> Step {
        self.park_if_abandoned(now);
        if let Some(reason) = &self.end_reason {
            return Step::End {
                reason: reason.clone(),
            };
        }
        if self.state != SessionState::Idle {
            return Step::Wait;
        }
        if restart_due {
            return Step::Restart;
        }
        match self.pending.pop_front() {
            Some((query, text, options)) => Step::Run {
                query,
                text,
                options,
            },
            None => Step::Wait,
        }
    }

    /// Query `query` starts running: the status to publish, or why it cannot.
    pub fn handle_query_started(
        &mut self,
        query: u64,
        text: &str,
    ) -> Result<Option<ServerEvent>, IllegalTransition> {
        let status = self.handle_lifecycle(SessionEvent::QueryStarted)?;
        self.running = Some(Running {
            id: query,
            text: text.to_string(),
            parts: Vec::new(),
            streamed: 0,
            subtype: None,
        });
        self.interrupt_requested = false;
        self.stats.queries += 1;
        Ok(status)
    }

    /// The running query's answer is incomplete: its result carries `subtype`.
    pub fn handle_result_subtype(&mut self, subtype: &'static str) {
        if let Some(running) = self.running.as_mut() {
            running.subtype = Some(subtype);
        }
    }

    /// Why the running query must stop now, if it must.
    pub fn poll_stop(&self) -> Option<Stop> {
        if self.interrupt_requested {
            return Some(Stop::Interrupted);
        }
        self.end_reason.clone().map(Stop::Ended)
    }

    /// A streamed part of the running query's answer: the delta to publish, while the
    /// answer is within the result bound (past it, parts are only kept for the HTTP
    /// fetch: the socket carries at most that much of one answer).
    pub fn handle_delta(&mut self, data: String) -> Option<ServerEvent> {
        let bound = self.settings.result_bytes_max;
        let running = self.running.as_mut()?;
        running.streamed += data.len();
        let event = (running.streamed <= bound).then(|| ServerEvent::Delta {
            query: running.id,
            text: data.clone(),
        });
        running.parts.push(data);
        event
    }

    /// The running query ended: what the client is told. A finished answer goes to the
    /// transcript; past the result bound it is sent truncated (on a character
    /// boundary) and kept whole for the HTTP fetch.
    pub fn handle_query_end(&mut self, end: QueryEnd) -> Option<ServerEvent> {
        let running = self.running.as_mut()?;
        let query = running.id;
        Some(match end {
            QueryEnd::Done => {
                // The parts go once the whole is made: a 10 MB answer is held twice only
                // for the join, then once (the transcript and, if truncated, the HTTP
                // fetch share it; `Arc<String>`, as `Arc<str>` would copy it again).
                let parts = std::mem::take(&mut running.parts);
                let full = Arc::new(parts.join(" "));
                drop(parts);
                let bytes = full.len();
                let limit = self.settings.result_bytes_max;
                let truncated = bytes > limit;
                let mut cut = bytes.min(limit);
                while !full.is_char_boundary(cut) {
                    cut -= 1;
                }
                let shown = full[..cut].to_string();
                let text = std::mem::take(&mut running.text);
                self.transcript.push(Arc::new(format!("> {text}")));
                self.transcript.push(full.clone());
                if truncated {
                    crate::met!(
                        "upstream.large_tool_result",
                        "query {query}'s answer of {bytes} bytes is sent truncated at {limit} bytes, kept whole for HTTP"
                    );
                    self.results.insert(query, full);
                    self.stats.truncated_results += 1;
                }
                ServerEvent::Result {
                    query,
                    text: shown,
                    truncated,
                    bytes: bytes as u64,
                    subtype: running.subtype.map(str::to_string),
                }
            }
            QueryEnd::Interrupted => {
                self.stats.interrupts += 1;
                ServerEvent::Interrupted { query }
            }
            QueryEnd::Ended(reason) => {
                self.handle_end_requested(&reason);
                ServerEvent::Interrupted { query }
            }
            QueryEnd::Failed(detail) => ServerEvent::Error {
                code: ErrorCode::WorkerUnavailable,
                message: format!("the query failed: {detail}"),
            },
        })
    }

    /// Query `query` is over (whatever its end): the status to publish.
    pub fn handle_query_finished(
        &mut self,
        query: u64,
    ) -> Result<Option<ServerEvent>, IllegalTransition> {
        debug_assert_eq!(self.running.as_ref().map(|r| r.id), Some(query));
        self.running = None;
        self.interrupt_requested = false;
        self.handle_lifecycle(SessionEvent::QueryFinished)
    }

    /// The worker was replaced (a restart between queries).
    pub fn handle_restarted(&mut self) {
        self.stats.restarts += 1;
    }

    /// The session ends now: the reason, and the stream's last message to publish.
    pub fn poll_ending(&self) -> (String, ServerEvent) {
        let reason = self
            .end_reason
            .clone()
            .unwrap_or_else(|| "ended".to_string());
        let event = ServerEvent::SessionEnded {
            reason: reason.clone(),
        };
        (reason, event)
    }

    /// The running query's id, if one runs.
    pub fn running(&self) -> Option<u64> {
        self.running.as_ref().map(|r| r.id)
    }
}
