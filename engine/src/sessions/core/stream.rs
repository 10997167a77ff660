//! The session's stream: the replay log is the outbound queue. Producers append
//! (numbered gap-free); the attached connection writes what it has not written yet
//! (`sent_through`); a reconnect starts from the client's `last_seq`. A producer must
//! wait while the attached connection is `outbound_max` messages behind: a slow client
//! slows its session instead of growing memory.

use super::{Attached, SessionCore};
use crate::protocol::{ServerEvent, ServerMessage};
use crate::sessions::replay::ReplayError;
use std::sync::Arc;
use std::time::Duration;

/// Why a session whose sequence numbers ran out ended.
pub const SEQUENCE_EXHAUSTED: &str = "sequence numbers exhausted";

/// What publishing did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Appended under this number.
    Seq(u64),
    /// The sequence space is used up: nothing was appended and the session ends.
    Exhausted,
}

impl Published {
    pub fn seq(self) -> Option<u64> {
        match self {
            Published::Seq(seq) => Some(seq),
            Published::Exhausted => None,
        }
    }
}

/// Messages a connection has yet to write, with their numbers.
pub type Unsent = Vec<(u64, Arc<str>)>;

/// What attaching a connection gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attach {
    pub generation: u64,
    /// The connection's stream continues after this number.
    pub start_after: u64,
    /// Messages a bound pushed out before the client got them, if any.
    pub gap: Option<(u64, u64)>,
    /// The connection this one displaced (it is told and closes).
    pub displaced: Option<u64>,
}

impl SessionCore {
    /// Messages the attached connection has not been sent yet (0 when none is attached).
    pub fn behind(&self) -> u64 {
        self.attached
            .as_ref()
            .map_or(0, |a| self.log.last_seq() - a.sent_through)
    }

    /// Whether a producer may publish now (the attached connection is not
    /// `outbound_max` behind).
    pub fn has_room(&self) -> bool {
        (self.behind() as usize) < self.settings.outbound_max
    }

    /// A producer found no room and waits for the connection.
    pub fn handle_backpressure(&mut self) {
        self.stats.backpressure_waits += 1;
        crate::met!(
            "client.slow_reader",
            "the connection is {} messages behind (the bound): the producer waits",
            self.behind()
        );
    }

    pub fn last_seq(&self) -> u64 {
        self.log.last_seq()
    }

    /// Bytes and entries the replay log holds now.
    pub fn log_usage(&self) -> (usize, usize) {
        (self.log.bytes(), self.log.len())
    }

    pub fn is_attached(&self) -> bool {
        self.attached.is_some()
    }

    /// Appends `event` to the stream. The caller checked [`SessionCore::has_room`]: a
    /// publish without room is a bug in the shell.
    pub fn handle_publish(&mut self, now: Duration, event: ServerEvent) -> Published {
        let behind = self.behind();
        assert!(
            (behind as usize) < self.settings.outbound_max,
            "published with the outbound queue full"
        );
        let appended = self
            .log
            .append(now, |seq| ServerMessage::sequenced(seq, event).encode());
        let Ok((seq, _)) = appended else {
            // Numbers never wrap: the session ends instead (its client is told
            // without a number, see `end_unsequenced`).
            if self.end_reason.is_none() {
                tracing::error!("sequence numbers exhausted: the session ends");
                crate::met!(
                    "sessions.seq_exhausted",
                    "number {} was the last: the session ends",
                    self.log.last_seq()
                );
                self.end_reason = Some(SEQUENCE_EXHAUSTED.to_string());
            }
            return Published::Exhausted;
        };
        let log_bytes = self.log.bytes();
        let s = &mut self.stats;
        s.outbound_peak = s.outbound_peak.max(behind as usize + 1);
        s.log_bytes_peak = s.log_bytes_peak.max(log_bytes);
        Published::Seq(seq)
    }

    /// Attaches a new connection. `last_seq`: the client's last message (a reconnect).
    /// A connection already attached is displaced.
    pub fn handle_attach(
        &mut self,
        now: Duration,
        last_seq: Option<u64>,
    ) -> Result<Attach, ReplayError> {
        self.log.expire(now);
        let server_last = self.log.last_seq();
        let (start, gap) = match last_seq {
            // The first connection of a session gets its stream from the start (what
            // was said while it was being prepared); a new tab joins at the end.
            None if self.stats.connections == 0 => {
                (self.log.first_held().map_or(server_last, |f| f - 1), None)
            }
            None => (server_last, None),
            Some(l) => match self.log.replay_after(l) {
                Ok(_) => (l, None),
                Err(ReplayError::Gap { from, to }) => (to, Some((from, to))),
                Err(ahead) => return Err(ahead),
            },
        };
        let displaced = self.attached.take().map(|old| {
            self.stats.replaced += 1;
            if last_seq.is_none() {
                crate::met!(
                    "client.new_tab",
                    "a new connection takes the session over from connection {}",
                    old.generation
                );
            }
            old.generation
        });
        let generation = self.next_generation;
        self.next_generation += 1;
        self.attached = Some(Attached {
            generation,
            sent_through: start,
        });
        self.detached_since = None;
        self.stats.connections += 1;
        self.stats.replayed += server_last - start;
        Ok(Attach {
            generation,
            start_after: start,
            gap,
            displaced,
        })
    }

    /// Connection `generation` went away; whether it was the attached one.
    pub fn handle_detach(&mut self, now: Duration, generation: u64) -> bool {
        if self
            .attached
            .as_ref()
            .is_none_or(|a| a.generation != generation)
        {
            return false;
        }
        self.attached = None;
        self.detached_since = Some(now);
        self.stats.detaches += 1;
        true
    }

    /// What connection `generation` should write next: messages after its
    /// `sent_through`, and the range that left the log unwritten if the age bound
    /// pushed some out (the client is told before the stream goes on). `None`: it is no
    /// longer the attached connection.
    pub fn poll_unsent(&mut self, generation: u64) -> Option<(Option<(u64, u64)>, Unsent)> {
        let sent = self
            .attached
            .as_ref()
            .filter(|a| a.generation == generation)?
            .sent_through;
        match self.log.replay_after(sent) {
            Ok(v) => Some((None, v)),
            Err(ReplayError::Gap { from, to }) => {
                // Pushed out while unwritten (only the age bound can do this to an
                // attached connection): skip ahead, and say so.
                self.attached.as_mut().expect("checked above").sent_through = to;
                let (_, rest) = self.poll_unsent(generation)?;
                // What the client acknowledged it has is no hole to it.
                let from = from.max(self.acked.saturating_add(1));
                if from > to {
                    return Some((None, rest));
                }
                tracing::warn!(
                    sent,
                    to,
                    "messages aged out before the connection wrote them"
                );
                Some((Some((from, to)), rest))
            }
            Err(ReplayError::Ahead { .. }) => Some((None, Vec::new())),
        }
    }

    /// Connection `generation` wrote everything up to `seq`; whether it is still the
    /// attached one (room was made).
    pub fn handle_written(&mut self, generation: u64, seq: u64) -> bool {
        let Some(a) = self
            .attached
            .as_mut()
            .filter(|a| a.generation == generation)
        else {
            return false;
        };
        debug_assert!(seq > a.sent_through, "written out of order");
        a.sent_through = seq;
        true
    }

    /// The client has everything up to `seq`.
    pub fn handle_ack(&mut self, seq: u64) {
        self.log.ack(seq);
        self.acked = self.acked.max(seq.min(self.log.last_seq()));
    }

    /// The stream's last message was published (or, with no number left, could not
    /// be): connections close once they have written it.
    pub fn handle_final(&mut self, published: Published, reason: &str) {
        match published {
            Published::Seq(seq) => self.final_seq = Some(seq),
            Published::Exhausted => {
                self.final_seq = Some(self.log.last_seq());
                self.end_unsequenced = Some(reason.to_string());
            }
        }
    }

    /// The reason the stream ended without a number for `session_ended`, if it did.
    pub fn end_unsequenced(&self) -> Option<&str> {
        self.end_unsequenced.as_deref()
    }

    /// Whether the stream is over and connection `generation` wrote all of it (time to
    /// close the socket).
    pub fn finished_for(&self, generation: u64) -> bool {
        let Some(last) = self.final_seq else {
            return false;
        };
        self.attached.as_ref().is_none_or(|a| {
            a.generation != generation || a.sent_through >= last.min(self.log.last_seq())
        })
    }
}
