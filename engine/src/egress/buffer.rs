//! The egress buffer (sans-IO): outbound requests waiting while egress is down, first
//! in, first out, bounded by count and by age. Nothing leaves it silently: a request
//! over the count bound is refused at the door (`handle_push` hands it back with the
//! error), one past the age bound comes out of `poll_expired` to be failed, every other
//! one leaves by `handle_sent`, in the order it came.

use super::error::EgressError;
use std::collections::VecDeque;
use std::time::Duration;

struct Entry<T> {
    since: Duration,
    item: T,
}

pub struct EgressBuffer<T> {
    entries: VecDeque<Entry<T>>,
    count_max: usize,
    age_max: Duration,
    peak: usize,
}

impl<T> EgressBuffer<T> {
    pub fn new(count_max: usize, age_max: Duration) -> Self {
        assert!(count_max > 0, "an egress buffer holds at least one request");
        EgressBuffer {
            entries: VecDeque::new(),
            count_max,
            age_max,
            peak: 0,
        }
    }

    /// Queues `item` at `now`, or hands it back with the error when the buffer holds
    /// its bound already.
    pub fn handle_push(&mut self, now: Duration, item: T) -> Result<(), (T, EgressError)> {
        if self.entries.len() >= self.count_max {
            let full = EgressError::BufferFull {
                bound: self.count_max,
            };
            return Err((item, full));
        }
        self.entries.push_back(Entry { since: now, item });
        self.peak = self.peak.max(self.entries.len());
        Ok(())
    }

    /// The request to send next (it stays counted until `handle_sent`).
    pub fn front(&self) -> Option<&T> {
        self.entries.front().map(|e| &e.item)
    }

    /// The front request was answered (or failed for good): it leaves.
    pub fn handle_sent(&mut self) -> Option<T> {
        self.entries.pop_front().map(|e| e.item)
    }

    /// The requests that have waited `age_max` or longer at `now`, oldest first, each
    /// with its error; they leave the buffer.
    pub fn poll_expired(&mut self, now: Duration) -> Vec<(T, EgressError)> {
        let mut out = Vec::new();
        // First in, first out: the oldest are at the front.
        while let Some(e) = self.entries.front() {
            let waited = now.saturating_sub(e.since);
            if waited < self.age_max {
                break;
            }
            let e = self.entries.pop_front().expect("front just seen");
            let error = EgressError::Expired {
                waited,
                bound: self.age_max,
            };
            out.push((e.item, error));
        }
        out
    }

    /// When the oldest request expires.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.entries.front().map(|e| e.since + self.age_max)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most requests it ever held.
    pub fn peak(&self) -> usize {
        self.peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn requests_leave_in_the_order_they_came() {
        let mut b = EgressBuffer::new(10, s(300));
        for i in 0..5 {
            assert!(b.handle_push(s(i), i).is_ok());
        }
        let mut out = Vec::new();
        while let Some(&i) = b.front() {
            assert_eq!(b.handle_sent(), Some(i));
            out.push(i);
        }
        assert_eq!(out, vec![0, 1, 2, 3, 4]);
        assert_eq!(b.peak(), 5);
    }

    #[test]
    fn a_request_over_the_count_bound_is_refused_with_an_error_not_dropped() {
        let mut b = EgressBuffer::new(3, s(300));
        for i in 0..3 {
            assert!(b.handle_push(s(0), i).is_ok());
        }
        let Err((back, e)) = b.handle_push(s(1), 99) else {
            panic!("the fourth request was taken past the bound");
        };
        assert_eq!(back, 99);
        assert_eq!(e, EgressError::BufferFull { bound: 3 });
        assert_eq!(b.len(), 3);
        assert_eq!(b.peak(), 3);
        // Room again once one leaves.
        b.handle_sent();
        assert!(b.handle_push(s(2), 4).is_ok());
    }

    #[test]
    fn requests_past_the_age_bound_come_out_with_their_error() {
        let mut b = EgressBuffer::new(10, s(300));
        b.handle_push(s(0), "a").ok();
        b.handle_push(s(100), "b").ok();
        assert_eq!(b.poll_timeout(), Some(s(300)));
        assert!(b.poll_expired(s(299)).is_empty());
        let expired = b.poll_expired(s(300));
        assert_eq!(
            expired,
            vec![(
                "a",
                EgressError::Expired {
                    waited: s(300),
                    bound: s(300)
                }
            )]
        );
        assert_eq!(b.poll_timeout(), Some(s(400)));
        assert_eq!(b.front(), Some(&"b"));
    }
}
