//! The network's delivery alarm: one tokio timer for every reader waiting on a message.
//!
//! A reader whose next message is still in flight waits here (under the network's
//! traffic lock, which every write takes anyway), keyed by the message's delivery
//! instant. One tokio timer (the alarm) is armed at the earliest key; when it
//! fires, its waker (no task: it runs where tokio fires timers) wakes every reader due
//! by then, in key order (delivery instant, then the order they began to wait), and
//! arms the alarm at the next key.
//!
//! Why: a tokio timer per pipe direction cost a timer-wheel re-registration and two
//! polls per message, about a sixth of a W1 round trip. Deliveries due at one tick of
//! tokio's 1 ms wheel now share one wheel entry, and a message costs an insert into a
//! short sorted queue and a removal from its front. Delivery times are unchanged (a
//! message is readable at the first tick at or after its instant); the order in which
//! readers due at the same tick are woken, relative to each other and to other timers of
//! that tick, is this queue's order.

use super::SimNet;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Where a waiting reader sits in the queue (its pipe keeps it, to move it): the
/// delivery instant in nanoseconds since the world's start, and the order of waiting.
pub(super) type WaitKey = (u64, u64);

/// A reader's seat: the place its waker stays from one delivery to the next.
pub(super) type Seat = usize;

pub(super) struct Deliveries {
    /// Sorted by key, earliest first. Short (a few readers per pending tick), and a new
    /// key nearly always goes near the end (latencies are close to each other), so a
    /// sorted deque beats a heap here.
    waiting: VecDeque<Waiting>,
    /// Entries still in `waiting` whose reader moved (rare): skipped when due.
    cancelled: Vec<u64>,
    /// Each reader's waker, kept while the reader lives (its pipe keeps the seat), so a
    /// delivery wakes it by reference: one atomic state change of the reader's task,
    /// where a waker cloned into the queue per message cost two more (the clone's count
    /// and its release), about 3% of a W1 round trip.
    seats: Vec<Option<Waker>>,
    free_seats: Vec<Seat>,
    next_seq: u64,
    timer: Option<Pin<Box<Sleep>>>,
    /// The deadline the alarm is registered for; `None` while nothing is registered.
    armed_for: Option<u64>,
    /// The world's virtual time zero, which keys count from.
    start: Instant,
    /// The alarm timer's waker: fires the due deliveries.
    alarm: Waker,
}

struct Waiting {
    key: WaitKey,
    reader: Reader,
}

enum Reader {
    Seated(Seat),
    /// The reader is gone (`Deliveries::leave`): its waker is woken all the same when
    /// due, a spurious wake-up as before seats existed, so runs stay the same.
    Left(Waker),
}

struct Alarm(Weak<SimNet>);

impl Wake for Alarm {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(net) = self.0.upgrade() {
            net.fire_deliveries();
        }
    }
}

impl Deliveries {
    pub(super) fn new(net: Weak<SimNet>, start: Instant) -> Self {
        Deliveries {
            waiting: VecDeque::new(),
            cancelled: Vec::new(),
            seats: Vec::new(),
            free_seats: Vec::new(),
            next_seq: 0,
            timer: None,
            armed_for: None,
            start,
            alarm: Waker::from(Arc::new(Alarm(net))),
        }
    }

    /// Has `reader` woken at `deliver_at` (strictly after `now`, the current virtual
    /// time; both in nanoseconds since the world's start); `key` is the reader's earlier
    /// place in the queue, moved. Returns the new one.
    pub(super) fn wait(
        &mut self,
        key: Option<WaitKey>,
        seat: &mut Option<Seat>,
        deliver_at: u64,
        now: u64,
        reader: &Waker,
    ) -> WaitKey {
        // A deadline already reached would fire the alarm inside its own registration,
        // which re-enters the traffic lock: callers read or wake at once instead.
        assert!(deliver_at > now, "a due delivery is read, not waited for");
        if let Some((old_at, old_seq)) = key
            && old_at > now
        {
            // Still queued (everything due by now has fired): skip it when it comes due.
            self.cancelled.push(old_seq);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = (deliver_at, seq);
        // Keys are unique (the sequence number), so this is the only place for it. A
        // new key nearly always belongs near the end (latencies are close to each other):
        // found from the back, the search costs about one mispredicted branch, where a
        // binary search costs one per halving (it was a sixth of a message's wall time).
        let seat = match *seat {
            Some(seat) => seat,
            None => *seat.insert(self.take_seat()),
        };
        match &mut self.seats[seat] {
            Some(kept) if kept.will_wake(reader) => {}
            kept => *kept = Some(reader.clone()),
        }
        let waiting = Waiting {
            key,
            reader: Reader::Seated(seat),
        };
        match self.waiting.iter().rposition(|w| w.key < key) {
            Some(before) if before + 1 < self.waiting.len() => {
                self.waiting.insert(before + 1, waiting);
            }
            Some(_) => self.waiting.push_back(waiting),
            None => self.waiting.push_front(waiting),
        }
        if self.armed_for.is_none_or(|armed| deliver_at < armed) {
            self.arm(deliver_at);
        }
        key
    }

    fn take_seat(&mut self) -> Seat {
        self.free_seats.pop().unwrap_or_else(|| {
            self.seats.push(None);
            self.seats.len() - 1
        })
    }

    /// The reader of `seat` is gone: its seat is freed; a wake-up it still has queued
    /// keeps its waker and wakes it when due (a spurious wake-up, harmless).
    pub(super) fn leave(&mut self, seat: Seat) {
        if let Some(waker) = self.seats[seat].take() {
            for waiting in self.waiting.iter_mut() {
                if matches!(waiting.reader, Reader::Seated(s) if s == seat) {
                    waiting.reader = Reader::Left(waker.clone());
                }
            }
        }
        self.free_seats.push(seat);
    }

    /// Registers the alarm for `deadline` (in the future: tokio does not fire it now).
    fn arm(&mut self, deadline_ns: u64) {
        let deadline = self.start + Duration::from_nanos(deadline_ns);
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().reset(deadline);
        // Polled outside any task's cooperative budget: the alarm belongs to no task,
        // and a spent budget would wake the alarm from inside the traffic lock.
        let poll = std::pin::pin!(tokio::task::coop::unconstrained(timer.as_mut()))
            .poll(&mut Context::from_waker(&self.alarm));
        assert!(
            poll.is_pending(),
            "the alarm was armed for a passed instant"
        );
        self.armed_for = Some(deadline_ns);
    }

    /// The alarm fired at `now` (nanoseconds since the world's start): wakes the readers
    /// due by then, in key order, and arms the alarm for the next one. The wakers are
    /// tasks' (they only schedule their task, never call back into the network), so they
    /// are woken under the traffic lock.
    pub(super) fn fire(&mut self, now: u64) {
        self.armed_for = None;
        while self.waiting.front().is_some_and(|w| w.key.0 <= now) {
            let Waiting { key, reader } = self.waiting.pop_front().expect("looked");
            if let Some(i) = self.cancelled.iter().position(|&seq| seq == key.1) {
                self.cancelled.swap_remove(i);
                continue;
            }
            match reader {
                Reader::Seated(seat) => {
                    if let Some(waker) = &self.seats[seat] {
                        waker.wake_by_ref();
                    }
                }
                Reader::Left(waker) => waker.wake(),
            }
        }
        if let Some(next) = self.waiting.front().map(|w| w.key.0) {
            self.arm(next);
        }
    }
}
