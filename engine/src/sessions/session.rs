//! One live session: its lifecycle state, its sequenced stream (the replay log, which
//! is also the connection's outbound queue), the connection attached to it, and the
//! queries waiting for it.
//!
//! The log is the single source of what a client sees. Producers append to it; the
//! attached connection writes what it has not yet written (`sent_through`) and a
//! reconnect starts from the client's `last_seq`. A producer waits while the attached
//! connection has `outbound_max` messages unwritten: a slow client slows its session
//! instead of growing memory.

use super::lifecycle::{self, SessionEvent, SessionState};
use super::limits::LimitClock;
use super::replay::{ReplayError, ReplayLog};
use crate::protocol::{ServerEvent, ServerMessage};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Counters of one session, for oracles and operators.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionStats {
    pub queries: u64,
    pub interrupts: u64,
    pub restarts: u64,
    pub connections: u64,
    /// Connections displaced by a newer one, and connections that went away.
    pub replaced: u64,
    pub detaches: u64,
    /// Messages written again to a reconnected client.
    pub replayed: u64,
    /// Times a producer waited for a slow connection.
    pub backpressure_waits: u64,
    /// Most messages ever waiting for the connection.
    pub outbound_peak: usize,
    /// Most bytes the replay log ever held.
    pub log_bytes_peak: usize,
    pub truncated_results: u64,
}

/// The connection currently attached.
pub(crate) struct Attached {
    pub(crate) generation: u64,
    /// Everything up to here was written to this connection.
    pub(crate) sent_through: u64,
    /// Told when a newer connection takes over (with the reason).
    pub(crate) displaced: watch::Sender<Option<String>>,
}

/// Why a session whose sequence numbers ran out ended.
pub const SEQUENCE_EXHAUSTED: &str = "sequence numbers exhausted";

pub struct SessionCore {
    pub state: SessionState,
    pub(crate) log: ReplayLog,
    pub(crate) attached: Option<Attached>,
    next_generation: u64,
    /// Queries waiting: (query id, text).
    pub(crate) pending: VecDeque<(u64, String)>,
    next_query: u64,
    pub(crate) running: Option<u64>,
    pub(crate) interrupt_requested: bool,
    pub role: String,
    pub(crate) results: BTreeMap<u64, String>,
    pub(crate) limit: LimitClock,
    /// Since when no connection is attached (`None`: one is).
    pub(crate) detached_since: Option<Duration>,
    /// The session's history (query texts and answers): what a fork copies.
    pub transcript: Vec<String>,
    pub(crate) end_reason: Option<String>,
    /// The worker serving the session now (`None` until one is bound).
    pub worker: Option<String>,
    /// The number of the stream's last message (`session_ended`), once it is published.
    pub(crate) final_seq: Option<u64>,
    /// The stream had no number left for `session_ended`: the connection sends it
    /// unnumbered before closing.
    pub(crate) end_unsequenced: Option<String>,
    /// Ending here hands the session over (its record stays, unclaimed).
    pub(crate) handed_off: bool,
    /// The client was told the model API is unavailable: it is told again when it is back.
    pub(crate) upstream_lost: bool,
    pub stats: SessionStats,
}

impl SessionCore {
    /// Messages the attached connection has not been sent yet (0 when none is attached).
    fn behind(&self) -> u64 {
        self.attached
            .as_ref()
            .map_or(0, |a| self.log.last_seq() - a.sent_through)
    }
}

pub struct Session {
    pub id: String,
    pub user: String,
    /// A parent's id, for a fork.
    pub parent: Option<String>,
    core: Mutex<SessionCore>,
    outbound_max: usize,
    /// New entries for the connection.
    pub(crate) out_ready: Notify,
    /// Room for producers (the connection wrote something).
    space: Notify,
    /// Work for the session's driver (a query, an interrupt, a limit change, the end).
    pub(crate) work: Notify,
}

/// What attaching a connection gives it.
pub struct Attachment {
    pub generation: u64,
    pub displaced: watch::Receiver<Option<String>>,
    /// The connection's stream continues after this number.
    pub start_after: u64,
    /// Messages a bound pushed out before the client got them, if any.
    pub gap: Option<(u64, u64)>,
}

impl Session {
    #[allow(
        clippy::too_many_arguments,
        reason = "one crate-private constructor called only by the session service"
    )]
    pub(crate) fn new(
        id: String,
        user: String,
        role: String,
        parent: Option<String>,
        log: ReplayLog,
        limit: LimitClock,
        outbound_max: usize,
        now: Duration,
    ) -> Self {
        Session {
            id,
            user,
            parent,
            core: Mutex::new(SessionCore {
                state: SessionState::Idle,
                log,
                attached: None,
                next_generation: 1,
                pending: VecDeque::new(),
                next_query: 1,
                running: None,
                interrupt_requested: false,
                role,
                results: BTreeMap::new(),
                limit,
                detached_since: Some(now),
                transcript: Vec::new(),
                end_reason: None,
                worker: None,
                final_seq: None,
                handed_off: false,
                upstream_lost: false,
                end_unsequenced: None,
                stats: SessionStats::default(),
            }),
            outbound_max,
            out_ready: Notify::new(),
            space: Notify::new(),
            work: Notify::new(),
        }
    }

    pub fn core(&self) -> MutexGuard<'_, SessionCore> {
        self.core.lock().expect("session state poisoned")
    }

    pub fn state(&self) -> SessionState {
        self.core().state
    }

    pub fn stats(&self) -> SessionStats {
        self.core().stats.clone()
    }

    pub fn last_seq(&self) -> u64 {
        self.core().log.last_seq()
    }

    /// Bytes and entries the replay log holds now.
    pub fn log_usage(&self) -> (usize, usize) {
        let c = self.core();
        (c.log.bytes(), c.log.len())
    }

    /// Messages waiting for the attached connection now.
    pub fn outbound_len(&self) -> usize {
        self.core().behind() as usize
    }

    pub fn outbound_max(&self) -> usize {
        self.outbound_max
    }

    pub fn is_attached(&self) -> bool {
        self.core().attached.is_some()
    }

    /// The full answer of query `query`, if it was truncated on the stream.
    pub fn full_result(&self, query: u64) -> Option<String> {
        self.core().results.get(&query).cloned()
    }

    /// Applies a lifecycle event, publishing the new state.
    pub(crate) async fn transition(&self, now: Duration, event: SessionEvent) -> bool {
        let to = {
            let mut c = self.core();
            match lifecycle::next(c.state, event) {
                Ok(to) => {
                    c.state = to;
                    to
                }
                Err(e) => {
                    tracing::warn!(session = %self.id, "{e}");
                    return false;
                }
            }
        };
        if to != SessionState::Terminated {
            self.publish(
                now,
                ServerEvent::Status {
                    state: to.name().to_string(),
                },
            )
            .await;
        }
        true
    }

    /// Appends `event` to the session's stream, waiting while the attached connection
    /// is `outbound_max` messages behind. Returns its sequence number (`None`: the
    /// sequence space is used up, which ends the stream).
    pub async fn publish(&self, now: Duration, event: ServerEvent) -> Option<u64> {
        let mut event = Some(event);
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut c = self.core();
                let behind = c.behind();
                if (behind as usize) < self.outbound_max {
                    let event = event.take().expect("published once");
                    return self.append(c, now, behind, event);
                }
                c.stats.backpressure_waits += 1;
            }
            space.await;
        }
    }

    /// Appends `event` unless the attached connection is `outbound_max` behind; then
    /// gives it back (the connection's own replies use this: it makes room by writing).
    pub(crate) fn try_publish(
        &self,
        now: Duration,
        event: ServerEvent,
    ) -> Result<Option<u64>, ServerEvent> {
        let c = self.core();
        let behind = c.behind();
        if behind as usize >= self.outbound_max {
            return Err(event);
        }
        Ok(self.append(c, now, behind, event))
    }

    /// Appends under the held lock (the caller checked there is room), records the
    /// peaks and wakes the connection. `None`: the sequence space is used up, which ends
    /// the stream.
    fn append(
        &self,
        mut c: MutexGuard<'_, SessionCore>,
        now: Duration,
        behind: u64,
        event: ServerEvent,
    ) -> Option<u64> {
        let appended = c
            .log
            .append(now, |seq| ServerMessage::sequenced(seq, event).encode());
        let Ok((seq, _)) = appended else {
            // Numbers never wrap: the session ends instead (its client is told
            // without a number, see `end_unsequenced`).
            if c.end_reason.is_none() {
                tracing::error!(session = %self.id, "sequence numbers exhausted: the session ends");
                c.end_reason = Some(SEQUENCE_EXHAUSTED.to_string());
            }
            drop(c);
            self.work.notify_one();
            return None;
        };
        let log_bytes = c.log.bytes();
        let s = &mut c.stats;
        s.outbound_peak = s.outbound_peak.max(behind as usize + 1);
        s.log_bytes_peak = s.log_bytes_peak.max(log_bytes);
        drop(c);
        self.out_ready.notify_one();
        Some(seq)
    }

    /// Attaches a new connection. `last_seq`: the client's last message (a reconnect).
    /// A connection already attached is displaced and told why.
    pub(crate) fn attach(
        &self,
        now: Duration,
        last_seq: Option<u64>,
    ) -> Result<Attachment, ReplayError> {
        let mut c = self.core();
        c.log.expire(now);
        let server_last = c.log.last_seq();
        let (start, gap) = match last_seq {
            // The first connection of a session gets its stream from the start (what
            // was said while it was being prepared); a new tab joins at the end.
            None if c.stats.connections == 0 => {
                (c.log.first_held().map_or(server_last, |f| f - 1), None)
            }
            None => (server_last, None),
            Some(l) => match c.log.replay_after(l) {
                Ok(_) => (l, None),
                Err(ReplayError::Gap { from, to }) => (to, Some((from, to))),
                Err(ahead) => return Err(ahead),
            },
        };
        if let Some(old) = c.attached.take() {
            let _ = old.displaced.send(Some(
                "this session was opened in another window".to_string(),
            ));
            c.stats.replaced += 1;
        }
        let generation = c.next_generation;
        c.next_generation += 1;
        let (tx, rx) = watch::channel(None);
        c.attached = Some(Attached {
            generation,
            sent_through: start,
            displaced: tx,
        });
        c.detached_since = None;
        c.stats.connections += 1;
        c.stats.replayed += server_last - start;
        drop(c);
        self.out_ready.notify_one();
        self.work.notify_one();
        Ok(Attachment {
            generation,
            displaced: rx,
            start_after: start,
            gap,
        })
    }

    /// The connection `generation` went away.
    pub(crate) fn detach(&self, now: Duration, generation: u64) {
        let mut c = self.core();
        if c.attached
            .as_ref()
            .is_some_and(|a| a.generation == generation)
        {
            c.attached = None;
            c.detached_since = Some(now);
            c.stats.detaches += 1;
            drop(c);
            self.space.notify_waiters();
            self.work.notify_one();
        }
    }

    /// What connection `generation` should write next: messages after its
    /// `sent_through`. `None`: it is no longer the attached connection.
    pub(crate) fn unsent(&self, generation: u64) -> Option<Vec<(u64, Arc<str>)>> {
        let mut c = self.core();
        let sent = c
            .attached
            .as_ref()
            .filter(|a| a.generation == generation)?
            .sent_through;
        match c.log.replay_after(sent) {
            Ok(v) => Some(v),
            Err(ReplayError::Gap { to, .. }) => {
                // Pushed out while unwritten (only the age bound can do this to an
                // attached connection): skip ahead, loudly.
                tracing::warn!(session = %self.id, sent, to, "messages aged out before the connection wrote them");
                c.attached.as_mut().expect("checked above").sent_through = to;
                drop(c);
                self.unsent(generation)
            }
            Err(ReplayError::Ahead { .. }) => Some(Vec::new()),
        }
    }

    /// The reason the stream ended without a number for `session_ended`, if it did.
    pub(crate) fn end_unsequenced(&self) -> Option<String> {
        self.core().end_unsequenced.clone()
    }

    /// Whether the stream is over and connection `generation` wrote all of it (time to
    /// close the socket).
    pub(crate) fn finished_for(&self, generation: u64) -> bool {
        let c = self.core();
        let Some(last) = c.final_seq else {
            return false;
        };
        c.attached.as_ref().is_none_or(|a| {
            a.generation != generation || a.sent_through >= last.min(c.log.last_seq())
        })
    }

    /// Connection `generation` wrote everything up to `seq`.
    pub(crate) fn written(&self, generation: u64, seq: u64) {
        let mut c = self.core();
        if let Some(a) = c.attached.as_mut().filter(|a| a.generation == generation) {
            debug_assert!(seq > a.sent_through, "written out of order");
            a.sent_through = seq;
            drop(c);
            self.space.notify_waiters();
        }
    }

    pub(crate) fn ack(&self, seq: u64) {
        self.core().log.ack(seq);
    }

    /// Adds a query; returns its id and its position behind the running one (0: it
    /// runs next), or `None` when one runs and queries are refused meanwhile.
    pub(crate) fn enqueue(&self, text: String, queue: bool, now: Duration) -> Option<(u64, usize)> {
        let mut c = self.core();
        let busy = c.running.is_some() || c.state != SessionState::Idle || !c.pending.is_empty();
        if busy && !queue && c.state != SessionState::Restarting {
            return None;
        }
        let id = c.next_query;
        c.next_query += 1;
        c.pending.push_back((id, text));
        c.limit.on_message(now);
        let position = c.pending.len() - usize::from(!busy);
        drop(c);
        self.work.notify_one();
        Some((id, position))
    }

    /// Interrupts the running query; a no-op when none runs.
    pub(crate) fn interrupt(&self) -> bool {
        let mut c = self.core();
        if c.running.is_none() {
            return false;
        }
        c.interrupt_requested = true;
        drop(c);
        self.work.notify_one();
        true
    }

    /// Extends the session's duration; returns the new time left and extensions left,
    /// or `None` when none is left.
    pub(crate) fn extend(&self, now: Duration) -> Option<(Duration, u32)> {
        let mut c = self.core();
        let remaining = c.limit.extend(now)?;
        let left = c.limit.limits().extensions_max - c.limit.extensions();
        drop(c);
        // The driver sleeps until the old deadline: wake it to look again.
        self.work.notify_one();
        Some((remaining, left))
    }

    /// Asks the driver to end the session.
    pub(crate) fn request_end(&self, reason: &str) {
        let mut c = self.core();
        c.end_reason.get_or_insert_with(|| reason.to_string());
        drop(c);
        self.work.notify_one();
    }

    /// The name of the worker serving the session now.
    pub fn worker(&self) -> Option<String> {
        self.core().worker.clone()
    }

    pub fn end_reason(&self) -> Option<String> {
        self.core().end_reason.clone()
    }
}
