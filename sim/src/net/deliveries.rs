//! The network's delivery alarm: one tokio timer for every reader waiting on a message.
//!
//! A reader whose next message is still in flight waits here, keyed by the message's
//! delivery instant. One tokio timer (the alarm) is armed at the earliest key; when it
//! fires, its waker (no task: it runs where tokio fires timers) wakes every reader due
//! by then, in key order (delivery instant, then the order they began to wait), and
//! arms the alarm at the next key.
//!
//! Why: a tokio timer per pipe direction cost a timer-wheel re-registration and two
//! polls per message, about a sixth of a W1 round trip. Deliveries due at one tick of
//! tokio's 1 ms wheel now share one wheel entry, and a message costs an ordered-map
//! insert and removal. Delivery times are unchanged (a message is readable at the first
//! tick at or after its instant); the order in which readers due at the same tick are
//! woken, relative to each other and to other timers of that tick, is this map's order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use tokio::time::{Instant, Sleep};

/// Where a waiting reader sits in the queue (its pipe keeps it, to move or remove it).
pub(super) type WaitKey = (Instant, u64);

pub(super) struct Deliveries {
    state: Mutex<AlarmState>,
    /// The alarm timer's waker: fires the due deliveries.
    alarm: Waker,
}

struct AlarmState {
    /// Earliest key on top.
    waiting: BinaryHeap<Waiting>,
    /// Entries still in `waiting` whose reader moved or left (rare): skipped when due.
    cancelled: Vec<u64>,
    next_seq: u64,
    timer: Option<Pin<Box<Sleep>>>,
    /// The deadline the alarm is registered for; `None` while nothing is registered.
    armed_for: Option<Instant>,
    /// Wakers taken out of `waiting` by a firing, woken once the lock is released
    /// (kept to reuse its allocation).
    firing: Vec<Waker>,
}

struct Waiting {
    key: WaitKey,
    reader: Waker,
}

impl Ord for Waiting {
    /// Reversed, so the max-heap's top is the earliest key.
    fn cmp(&self, other: &Self) -> Ordering {
        other.key.cmp(&self.key)
    }
}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Waiting {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Waiting {}

struct Alarm(Weak<Deliveries>);

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(deliveries) = self.0.upgrade() {
            deliveries.fire();
        }
    }
}

impl Deliveries {
    pub(super) fn new() -> Arc<Self> {
        Arc::new_cyclic(|me| Deliveries {
            state: Mutex::new(AlarmState {
                waiting: BinaryHeap::new(),
                cancelled: Vec::new(),
                next_seq: 0,
                timer: None,
                armed_for: None,
                firing: Vec::new(),
            }),
            alarm: Waker::from(Arc::new(Alarm(me.clone()))),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AlarmState> {
        self.state.lock().expect("deliveries poisoned")
    }

    /// Has `reader` woken at `deliver_at` (strictly after `now`, the current virtual
    /// time); `key` is the reader's earlier place in the queue, moved. Returns the new one.
    pub(super) fn wait(
        &self,
        key: Option<WaitKey>,
        deliver_at: Instant,
        now: Instant,
        reader: &Waker,
    ) -> WaitKey {
        // A deadline already reached would fire the alarm inside its own registration,
        // which re-enters this lock: callers read or wake at once instead.
        assert!(deliver_at > now, "a due delivery is read, not waited for");
        let mut state = self.lock();
        if let Some((old_at, old_seq)) = key
            && old_at > now
        {
            // Still queued (everything due by now has fired): skip it when it comes due.
            state.cancelled.push(old_seq);
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let key = (deliver_at, seq);
        state.waiting.push(Waiting {
            key,
            reader: reader.clone(),
        });
        if state.armed_for.is_none_or(|armed| deliver_at < armed) {
            self.arm(&mut state, deliver_at);
        }
        key
    }

    /// Registers the alarm for `deadline` (in the future: tokio does not fire it now).
    fn arm(&self, state: &mut AlarmState, deadline: Instant) {
        let timer = state
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().reset(deadline);
        // Polled outside any task's cooperative budget: the alarm belongs to no task,
        // and a spent budget would wake the alarm from inside this lock.
        let poll = std::pin::pin!(tokio::task::coop::unconstrained(timer.as_mut()))
            .poll(&mut Context::from_waker(&self.alarm));
        assert!(
            poll.is_pending(),
            "the alarm was armed for a passed instant"
        );
        state.armed_for = Some(deadline);
    }

    /// The alarm fired: wakes the readers due by now and arms it for the next one.
    fn fire(&self) {
        // Read tokio's clock itself: this runs while the runtime parks, before a world's
        // cached reading (`clock::virtual_now`) is marked stale.
        let now = Instant::now();
        let mut firing = {
            let mut state = self.lock();
            state.armed_for = None;
            let mut firing = std::mem::take(&mut state.firing);
            while state.waiting.peek().is_some_and(|w| w.key.0 <= now) {
                let Waiting { key, reader } = state.waiting.pop().expect("peeked");
                if let Some(i) = state.cancelled.iter().position(|&seq| seq == key.1) {
                    state.cancelled.swap_remove(i);
                    continue;
                }
                firing.push(reader);
            }
            if let Some(next) = state.waiting.peek().map(|w| w.key.0) {
                self.arm(&mut state, next);
            }
            firing
        };
        for waker in firing.drain(..) {
            waker.wake();
        }
        let mut state = self.lock();
        if state.firing.capacity() < firing.capacity() {
            state.firing = firing;
        }
    }
}
