//! Admission at the session limit: refuse with a retry hint, or queue creators and tell
//! each its position. A pure core; the shell turns its answers into HTTP.

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionMode {
    /// 503 with `Retry-After`.
    Refuse { retry_after: Duration },
    /// Wait in a queue of at most `depth`; beyond that, refuse.
    Queue { depth: usize, retry_after: Duration },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    Admitted,
    /// Queued as ticket `ticket` at `position` (1 = next).
    Queued {
        ticket: u64,
        position: usize,
    },
    Refused {
        retry_after: Duration,
    },
}

#[derive(Clone, Debug)]
pub(super) struct AdmissionControl {
    limit: usize,
    mode: AdmissionMode,
    live: usize,
    queue: VecDeque<u64>,
    next_ticket: u64,
}

impl AdmissionControl {
    pub(super) fn new(limit: usize, mode: AdmissionMode) -> Self {
        assert!(limit > 0, "the session limit must be positive");
        AdmissionControl {
            limit,
            mode,
            live: 0,
            queue: VecDeque::new(),
            next_ticket: 1,
        }
    }

    #[cfg(test)]
    fn live(&self) -> usize {
        self.live
    }

    pub(super) fn request(&mut self) -> Admission {
        if self.live < self.limit && self.queue.is_empty() {
            self.live += 1;
            return Admission::Admitted;
        }
        match self.mode {
            AdmissionMode::Refuse { retry_after } => Admission::Refused { retry_after },
            AdmissionMode::Queue { depth, retry_after } => {
                if self.queue.len() >= depth {
                    return Admission::Refused { retry_after };
                }
                let ticket = self.next_ticket;
                self.next_ticket += 1;
                self.queue.push_back(ticket);
                Admission::Queued {
                    ticket,
                    position: self.queue.len(),
                }
            }
        }
    }

    /// A queued ticket's position (1 = next), or `None` if it is no longer queued.
    pub(super) fn position(&self, ticket: u64) -> Option<usize> {
        self.queue.iter().position(|t| *t == ticket).map(|i| i + 1)
    }

    /// Admits `ticket` if it is at the head and a slot is free.
    pub(super) fn try_admit(&mut self, ticket: u64) -> bool {
        if self.live < self.limit && self.queue.front() == Some(&ticket) {
            self.queue.pop_front();
            self.live += 1;
            return true;
        }
        false
    }

    /// A session ended: its slot is free.
    pub(super) fn release(&mut self) {
        assert!(self.live > 0, "released a session slot that was not held");
        self.live -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_or_queues_at_the_limit() {
        let wait = Duration::from_secs(60);
        let mut r = AdmissionControl::new(1, AdmissionMode::Refuse { retry_after: wait });
        assert_eq!(r.request(), Admission::Admitted);
        assert_eq!(r.request(), Admission::Refused { retry_after: wait });
        let mut q = AdmissionControl::new(
            1,
            AdmissionMode::Queue {
                depth: 2,
                retry_after: wait,
            },
        );
        assert_eq!(q.request(), Admission::Admitted);
        assert_eq!(
            q.request(),
            Admission::Queued {
                ticket: 1,
                position: 1
            }
        );
        assert_eq!(
            q.request(),
            Admission::Queued {
                ticket: 2,
                position: 2
            }
        );
        assert_eq!(q.request(), Admission::Refused { retry_after: wait });
        assert!(!q.try_admit(2), "not at the head");
        assert!(!q.try_admit(1), "no free slot");
        q.release();
        assert!(q.try_admit(1));
        assert_eq!(q.position(2), Some(1));
        assert_eq!(q.live(), 1);
    }
}
