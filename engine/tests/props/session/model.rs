//! The reference model of one session: plain data, written from the behaviour the
//! core's documentation promises, not from its code.

use super::{EXTENSIONS_MAX, OUTBOUND_MAX, RESULT_BYTES_MAX};
use engine::protocol::{ErrorCode, ServerEvent};
use engine::sessions::SessionState;
use engine::sessions::core::{InputOutcome, QueryEnd, Step, Stop};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

pub struct Running {
    pub id: u64,
    text: String,
    parts: Vec<String>,
    streamed: usize,
    /// Its end was told; `finish` is next.
    pub ended: bool,
}

pub enum Predicted {
    Refused,
    Attached {
        generation: u64,
        start_after: u64,
        gap: Option<(u64, u64)>,
        displaced: Option<u64>,
    },
}

pub struct Model {
    queue: bool,
    pub state: SessionState,
    pending: VecDeque<(u64, String)>,
    next_query: u64,
    pub running: Option<Running>,
    interrupted: bool,
    pub last_seq: u64,
    /// The client acknowledged everything up to here: the log no longer holds it.
    acked: u64,
    /// (generation, written through).
    pub attached: Option<(u64, u64)>,
    next_generation: u64,
    extensions: u32,
    pub transcript: Vec<String>,
    pub results: BTreeMap<u64, String>,
    pub end_reason: Option<String>,
    pub queries: u64,
    pub interrupts: u64,
    pub restarts: u64,
    pub connections: u64,
    pub replaced: u64,
    pub detaches: u64,
    pub truncated: u64,
}

impl Model {
    pub fn new(queue: bool) -> Self {
        Model {
            queue,
            state: SessionState::Idle,
            pending: VecDeque::new(),
            next_query: 1,
            running: None,
            interrupted: false,
            last_seq: 0,
            acked: 0,
            attached: None,
            next_generation: 1,
            extensions: 0,
            transcript: Vec::new(),
            results: BTreeMap::new(),
            end_reason: None,
            queries: 0,
            interrupts: 0,
            restarts: 0,
            connections: 0,
            replaced: 0,
            detaches: 0,
            truncated: 0,
        }
    }

    /// A query waits behind a running or queued one in queue mode; in reject mode it is
    /// refused then, except while the worker restarts.
    pub fn query(&mut self, text: String) -> InputOutcome {
        let busy =
            self.running.is_some() || self.state != SessionState::Idle || !self.pending.is_empty();
        if busy && !self.queue && self.state != SessionState::Restarting {
            return InputOutcome::Refuse {
                code: ErrorCode::QueryInProgress,
                message: "a query is running: wait for its result or interrupt it".into(),
            };
        }
        let id = self.next_query;
        self.next_query += 1;
        self.pending.push_back((id, text));
        // Its place behind the running query (0: it runs next).
        let ahead = self.pending.len() - 1 + usize::from(busy);
        let position = if busy { ahead } else { 0 };
        if position == 0 {
            InputOutcome::None
        } else {
            InputOutcome::Publish(ServerEvent::Queued {
                query: id,
                position: position as u32,
            })
        }
    }

    pub fn interrupt(&mut self) {
        if self.running.is_some() {
            self.interrupted = true;
        }
    }

    /// At most `EXTENSIONS_MAX` extensions of 600 s each on a 3600 s session.
    pub fn extend(&mut self, now: Duration) -> InputOutcome {
        if self.extensions == EXTENSIONS_MAX {
            return InputOutcome::Refuse {
                code: ErrorCode::ExtensionRefused,
                message: "no extension is left for this session".into(),
            };
        }
        self.extensions += 1;
        let end = Duration::from_secs(3600 + 600 * u64::from(self.extensions));
        InputOutcome::Publish(ServerEvent::SessionExtended {
            remaining_ms: end.saturating_sub(now).as_millis() as u64,
            extensions_left: EXTENSIONS_MAX - self.extensions,
        })
    }

    pub fn attached_generation(&self) -> Option<u64> {
        self.attached.map(|(g, _)| g)
    }

    /// Everything up to `seq` (at most the last number) is no longer held.
    pub fn ack(&mut self, seq: u64) {
        self.acked = self.acked.max(seq.min(self.last_seq));
    }

    /// The first connection gets the stream from the start of what is held, a new tab
    /// joins at its end, a reconnect continues after its `last_seq` (or, when messages
    /// it needs are no longer held, after them, told as a gap); a `last_seq` the server
    /// never sent is refused.
    pub fn attach(&mut self, last_seq: Option<u64>) -> Predicted {
        let (start_after, gap) = match last_seq {
            Some(l) if l > self.last_seq => return Predicted::Refused,
            Some(l) if l < self.acked => (self.acked, Some((l + 1, self.acked))),
            Some(l) => (l, None),
            None if self.connections == 0 => (self.acked, None),
            None => (self.last_seq, None),
        };
        let displaced = self.attached.take().map(|(g, _)| g);
        if displaced.is_some() {
            self.replaced += 1;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.attached = Some((generation, start_after));
        self.connections += 1;
        Predicted::Attached {
            generation,
            start_after,
            gap,
            displaced,
        }
    }

    pub fn detach(&mut self) {
        self.attached = None;
        self.detaches += 1;
    }

    pub fn behind(&self) -> u64 {
        self.attached.map_or(0, |(_, sent)| self.last_seq - sent)
    }

    pub fn has_room(&self) -> bool {
        (self.behind() as usize) < OUTBOUND_MAX
    }

    /// What the attached connection writes next: past what it wrote and, if the
    /// client acknowledged messages it was never sent, past those too.
    pub fn unsent(&mut self) -> Vec<u64> {
        let acked = self.acked;
        let Some((_, sent)) = self.attached.as_mut() else {
            return Vec::new();
        };
        *sent = (*sent).max(acked);
        (*sent + 1..=self.last_seq).collect()
    }

    pub fn written(&mut self, seq: u64) {
        if let Some((_, sent)) = self.attached.as_mut() {
            *sent = seq;
        }
    }

    pub fn publish(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// An ended session ends first; then, idle, a due restart; then the oldest query.
    pub fn step(&mut self, restart_due: bool) -> Step {
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
            Some((query, text)) => Step::Run {
                query,
                text,
                options: Default::default(),
            },
            None => Step::Wait,
        }
    }

    pub fn start(&mut self, id: u64, text: String) {
        self.state = SessionState::Processing;
        self.running = Some(Running {
            id,
            text,
            parts: Vec::new(),
            streamed: 0,
            ended: false,
        });
        self.interrupted = false;
        self.queries += 1;
    }

    /// Parts stream while the answer so far is within `RESULT_BYTES_MAX`.
    pub fn delta(&mut self, data: String) -> Option<ServerEvent> {
        let r = self.running.as_mut()?;
        r.streamed += data.len();
        let event = (r.streamed <= RESULT_BYTES_MAX).then(|| ServerEvent::Delta {
            query: r.id,
            text: data.clone(),
        });
        r.parts.push(data);
        event
    }

    pub fn stop(&self) -> Option<Stop> {
        if self.interrupted {
            return Some(Stop::Interrupted);
        }
        self.end_reason.clone().map(Stop::Ended)
    }

    pub fn end(&mut self, end: QueryEnd) -> Option<ServerEvent> {
        let r = self.running.as_mut()?;
        r.ended = true;
        let query = r.id;
        Some(match end {
            QueryEnd::Done => {
                let full = r.parts.join(" ");
                // Prefixes of ASCII answers: every byte is a boundary.
                let shown: String = full.chars().take(RESULT_BYTES_MAX).collect();
                let truncated = full.len() > RESULT_BYTES_MAX;
                self.transcript.push(format!("> {}", r.text));
                self.transcript.push(full.clone());
                if truncated {
                    self.results.insert(query, full.clone());
                    self.truncated += 1;
                }
                ServerEvent::Result {
                    query,
                    text: shown,
                    truncated,
                    bytes: full.len() as u64,
                    subtype: None,
                }
            }
            QueryEnd::Interrupted => {
                self.interrupts += 1;
                ServerEvent::Interrupted { query }
            }
            QueryEnd::Ended(reason) => {
                self.end_reason.get_or_insert(reason);
                ServerEvent::Interrupted { query }
            }
            QueryEnd::Failed(detail) => ServerEvent::Error {
                code: ErrorCode::WorkerUnavailable,
                message: format!("the query failed: {detail}"),
            },
        })
    }

    pub fn finish(&mut self) {
        self.running = None;
        self.interrupted = false;
        self.state = SessionState::Idle;
    }
}
