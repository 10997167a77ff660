//! The per-session replay log: every message of a session's stream, numbered gap-free
//! from 1, kept so a client that reconnects with `last_seq` gets exactly what it
//! missed, once.
//!
//! A pure core (BRIEF §3): time comes in as `now`. It is bounded three ways (count,
//! bytes, age) so a client that never comes back cannot make it grow; an entry leaves
//! when the client acknowledges it, when a bound pushes it out, or when it ages out.
//! A reconnect that needs an entry that already left gets [`ReplayError::Gap`], never a
//! silent hole.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// How much one session's log may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayLimits {
    pub count: usize,
    pub bytes: usize,
    pub age: Duration,
}

impl ReplayLimits {
    /// 100 messages, 10 MB, 5 minutes.
    pub const DEFAULT: ReplayLimits = ReplayLimits {
        count: 100,
        bytes: 10 * 1024 * 1024,
        age: Duration::from_secs(300),
    };

    pub fn check(&self) {
        assert!(
            self.count > 0,
            "a replay log must hold at least one message"
        );
        assert!(self.bytes > 0, "a replay log must hold at least one byte");
        assert!(
            !self.age.is_zero(),
            "a replay log's age bound must be positive"
        );
    }
}

#[derive(Clone, Debug)]
struct Entry {
    seq: u64,
    at: Duration,
    text: Arc<str>,
}

/// Why a replay cannot be served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// The client claims a message the server never sent: corruption or tampering.
    Ahead { client: u64, server: u64 },
    /// Messages `from..=to` are needed but no longer held (a bound pushed them out).
    Gap { from: u64, to: u64 },
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Ahead { client, server } => write!(
                f,
                "the client's last sequence number {client} is ahead of the server's {server}"
            ),
            ReplayError::Gap { from, to } => {
                write!(f, "messages {from} to {to} are no longer held for replay")
            }
        }
    }
}

/// The last sequence number was used: wrapping would repeat numbers, so the stream ends
/// instead (2^64 messages: at a million a second, about 584,000 years).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceExhausted;

#[derive(Clone, Debug)]
pub struct ReplayLog {
    limits: ReplayLimits,
    entries: VecDeque<Entry>,
    /// The last sequence number handed out (0: none yet).
    last_seq: u64,
    bytes: usize,
    /// Entries pushed out by a bound (not by an ack), for operators.
    evicted: u64,
}

impl ReplayLog {
    pub fn new(limits: ReplayLimits) -> Self {
        Self::starting_after(limits, 0)
    }

    /// A log whose first message gets `last_seq + 1` (a fork continues its parent's
    /// numbering; tests start near the end of the sequence space).
    pub fn starting_after(limits: ReplayLimits, last_seq: u64) -> Self {
        limits.check();
        ReplayLog {
            limits,
            entries: VecDeque::new(),
            last_seq,
            bytes: 0,
            evicted: 0,
        }
    }

    pub fn limits(&self) -> ReplayLimits {
        self.limits
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The oldest sequence number still held.
    pub fn first_held(&self) -> Option<u64> {
        self.entries.front().map(|e| e.seq)
    }

    /// Numbers `text` with the next sequence number and keeps it; returns the number.
    /// `make` builds the stored text from the number (the number is part of the text).
    pub fn append(
        &mut self,
        now: Duration,
        make: impl FnOnce(u64) -> String,
    ) -> Result<(u64, Arc<str>), SequenceExhausted> {
        let seq = self.last_seq.checked_add(1).ok_or(SequenceExhausted)?;
        self.last_seq = seq;
        let text: Arc<str> = Arc::from(make(seq));
        self.expire(now);
        // A message bigger than the whole byte bound is sent but never held.
        if text.len() <= self.limits.bytes {
            self.bytes += text.len();
            self.entries.push_back(Entry {
                seq,
                at: now,
                text: text.clone(),
            });
        } else {
            // Never held: what came before it can no longer be replayed contiguously,
            // so it goes too, and a replay across the hole is a `Gap`, not a silent
            // skip (found by the ReplayLog property test).
            self.evicted += 1 + self.entries.len() as u64;
            self.entries.clear();
            self.bytes = 0;
        }
        while self.entries.len() > self.limits.count || self.bytes > self.limits.bytes {
            self.pop_front();
            self.evicted += 1;
        }
        debug_assert!(self.entries.len() <= self.limits.count && self.bytes <= self.limits.bytes);
        Ok((seq, text))
    }

    /// The client has everything up to `seq`: those entries are no longer needed.
    pub fn ack(&mut self, seq: u64) {
        while self
            .entries
            .front()
            .is_some_and(|e| e.seq <= seq.min(self.last_seq))
        {
            self.pop_front();
        }
    }

    /// Drops entries older than the age bound.
    pub fn expire(&mut self, now: Duration) {
        while self
            .entries
            .front()
            .is_some_and(|e| now.saturating_sub(e.at) > self.limits.age)
        {
            self.pop_front();
            self.evicted += 1;
        }
    }

    /// When the oldest entry passes the age bound (`None`: the log is empty). An idle
    /// session's driver sleeps until then, so an abandoned log empties by itself.
    pub fn next_expiry(&self) -> Option<Duration> {
        self.entries
            .front()
            .map(|e| e.at + self.limits.age + Duration::from_nanos(1))
    }

    /// Every message after `last_seq`, in order: what a client that saw `last_seq`
    /// missed.
    pub fn replay_after(&self, last_seq: u64) -> Result<Vec<(u64, Arc<str>)>, ReplayError> {
        if last_seq > self.last_seq {
            return Err(ReplayError::Ahead {
                client: last_seq,
                server: self.last_seq,
            });
        }
        if last_seq == self.last_seq {
            return Ok(Vec::new());
        }
        let needed = last_seq + 1;
        match self.first_held() {
            Some(first) if first <= needed => Ok(self
                .entries
                .iter()
                .filter(|e| e.seq >= needed)
                .map(|e| (e.seq, e.text.clone()))
                .collect()),
            Some(first) => Err(ReplayError::Gap {
                from: needed,
                to: first - 1,
            }),
            None => Err(ReplayError::Gap {
                from: needed,
                to: self.last_seq,
            }),
        }
    }

    fn pop_front(&mut self) {
        if let Some(e) = self.entries.pop_front() {
            self.bytes -= e.text.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(count: usize, bytes: usize) -> ReplayLog {
        ReplayLog::new(ReplayLimits {
            count,
            bytes,
            age: Duration::from_secs(60),
        })
    }

    fn push(l: &mut ReplayLog, at_s: u64) -> u64 {
        l.append(Duration::from_secs(at_s), |s| format!("m{s:04}"))
            .unwrap()
            .0
    }

    #[test]
    fn replay_returns_exactly_the_missing_messages() {
        let mut l = log(10, 1000);
        for _ in 0..5 {
            push(&mut l, 0);
        }
        let seqs: Vec<u64> = l.replay_after(2).unwrap().iter().map(|e| e.0).collect();
        assert_eq!(seqs, vec![3, 4, 5]);
        assert_eq!(l.replay_after(5).unwrap(), vec![]);
        assert_eq!(
            l.replay_after(6),
            Err(ReplayError::Ahead {
                client: 6,
                server: 5
            })
        );
    }

    #[test]
    fn bounds_push_out_old_entries_and_replay_reports_the_gap() {
        let mut l = log(3, 1000);
        for _ in 0..5 {
            push(&mut l, 0);
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.replay_after(1), Err(ReplayError::Gap { from: 2, to: 2 }));
        let mut b = log(100, 10);
        push(&mut b, 0);
        push(&mut b, 0);
        push(&mut b, 0);
        assert!(b.bytes() <= 10 && b.len() == 2);
    }

    #[test]
    fn acks_and_age_trim() {
        let mut l = log(10, 1000);
        push(&mut l, 0);
        push(&mut l, 0);
        push(&mut l, 30);
        l.ack(1);
        assert_eq!(l.first_held(), Some(2));
        l.expire(Duration::from_secs(61));
        assert_eq!(l.first_held(), Some(3));
        l.expire(Duration::from_secs(91));
        assert!(l.is_empty() && l.bytes() == 0);
        assert_eq!(l.replay_after(2), Err(ReplayError::Gap { from: 3, to: 3 }));
    }

    #[test]
    fn the_sequence_space_ends_instead_of_wrapping() {
        let mut l = ReplayLog::starting_after(ReplayLimits::DEFAULT, u64::MAX - 1);
        assert_eq!(push(&mut l, 0), u64::MAX);
        assert!(l.append(Duration::ZERO, |_| String::new()).is_err());
        assert_eq!(l.last_seq(), u64::MAX);
    }
}
