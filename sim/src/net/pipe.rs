//! One direction of a simulated connection and the stream type built from two of them.

use super::SimNet;
use super::deliveries::{Seat, WaitKey};
use crate::thread_lock::ThreadLock;
use engine::env::{NetAddr, NetStream};
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(super) const ECONNRESET: i32 = 104;
const EPIPE: i32 = 32;

struct Segment {
    /// When the segment becomes readable, in nanoseconds of virtual time since the
    /// network's start (`SimNet::now_ns`): plain integers on the hot path, where
    /// comparing and adding `Instant`s cost a message more than its copying.
    deliver_at: u64,
    data: Vec<u8>,
    read_pos: usize,
}

#[derive(Default)]
struct PipeState {
    segments: VecDeque<Segment>,
    /// Bytes written and not yet read; bounded by `in_flight_bytes_max`.
    in_flight: usize,
    /// The last segment's `deliver_at` (0 before the first).
    last_deliver_at: u64,
    /// The writer shut down (FIN): the reader sees EOF after the last segment.
    write_closed: bool,
    /// The reading end is gone: further writes fail.
    reader_gone: bool,
    reset: bool,
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
    /// Buffers of segments read to the end, reused by later writes: a message then
    /// costs no allocation (a request and its reply each reuse the last one's buffer).
    spare: Vec<Vec<u8>>,
    /// The parked reader's place in the network's delivery queue (`deliveries.rs`),
    /// waiting for the head segment. Queued by whoever learns the head's time first: the
    /// reader, or the writer on a parked reader's behalf, so a message costs the reader
    /// one wake-up, at delivery.
    waiting: Option<WaitKey>,
    /// The reader's seat in the delivery queue, where its waker stays (taken at its
    /// first wait, given back when the reader is dropped).
    seat: Option<Seat>,
}

/// Spare buffers a pipe direction keeps, and the largest one it keeps: enough for a
/// request/response exchange; a bulk transfer's large buffers go back to the allocator.
const SPARE_BUFFERS_MAX: usize = 2;
const SPARE_CAPACITY_MAX: usize = 16 * 1024;

impl PipeState {
    /// A segment holding `bytes`, in a spare buffer when there is one.
    fn segment(&mut self, deliver_at: u64, bytes: &[u8]) -> Segment {
        let mut data = self.spare.pop().unwrap_or_default();
        debug_assert!(data.is_empty(), "a spare buffer is kept empty");
        data.extend_from_slice(bytes);
        Segment {
            deliver_at,
            data,
            read_pos: 0,
        }
    }

    /// Drops the head segment (read to its end), keeping its buffer for a later write.
    fn pop_head(&mut self) {
        let Some(head) = self.segments.pop_front() else {
            return;
        };
        let mut data = head.data;
        if self.spare.len() < SPARE_BUFFERS_MAX && data.capacity() <= SPARE_CAPACITY_MAX {
            data.clear();
            self.spare.push(data);
        }
    }
}

/// One direction of a connection, from host `from` to host `to`.
pub(super) struct Pipe {
    pub(super) from: usize,
    pub(super) to: usize,
    state: ThreadLock<PipeState>,
}

impl Pipe {
    pub(super) fn new(from: usize, to: usize) -> Arc<Pipe> {
        Arc::new(Pipe {
            from,
            to,
            state: ThreadLock::default(),
        })
    }

    /// Resets this direction: pending data is discarded and both ends fail from now on.
    pub(super) fn reset(&self) {
        let mut state = self.state.lock();
        state.reset = true;
        state.segments.clear();
        state.in_flight = 0;
        wake(&mut state.reader_waker);
        wake(&mut state.writer_waker);
    }

    pub(super) fn is_reset(&self) -> bool {
        self.state.lock().reset
    }

    /// Wakes a reader parked on a held partition so it looks again.
    pub(super) fn wake_reader(&self) {
        wake(&mut self.state.lock().reader_waker);
    }
}

fn wake(slot: &mut Option<Waker>) {
    if let Some(waker) = slot.take() {
        waker.wake();
    }
}

fn store(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// One end of a simulated connection.
pub struct SimStream {
    net: Arc<SimNet>,
    tx: Arc<Pipe>,
    rx: Arc<Pipe>,
    local: NetAddr,
    peer: NetAddr,
    /// A time known to have passed (time only moves forward), in the network's
    /// nanoseconds: a segment due by then needs no clock read.
    passed: u64,
}

impl SimStream {
    pub(super) fn new(
        net: Arc<SimNet>,
        tx: Arc<Pipe>,
        rx: Arc<Pipe>,
        local: NetAddr,
        peer: NetAddr,
    ) -> Self {
        let passed = net.now_ns();
        SimStream {
            net,
            tx,
            rx,
            local,
            peer,
            passed,
        }
    }
}

impl NetStream for SimStream {
    fn peer_addr(&self) -> NetAddr {
        self.peer.clone()
    }

    fn local_addr(&self) -> NetAddr {
        self.local.clone()
    }
}

impl AsyncRead for SimStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut guard = this.rx.state.lock();
        let state = &mut *guard;
        if state.reset {
            return Poll::Ready(Err(io::Error::from_raw_os_error(ECONNRESET)));
        }
        let Some(head) = state.segments.front_mut() else {
            if state.write_closed {
                return Poll::Ready(Ok(()));
            }
            store(&mut state.reader_waker, cx);
            return Poll::Pending;
        };
        if head.deliver_at > this.passed {
            let now = this.net.now_ns();
            this.passed = now;
            let deliver_at = head.deliver_at;
            if deliver_at > now {
                // In flight: wait in the delivery queue, unless already there with
                // this waker for this segment.
                let known = matches!(
                    (&state.reader_waker, state.waiting),
                    (Some(parked), Some((queued_at, _)))
                        if queued_at == deliver_at && parked.will_wake(cx.waker())
                );
                if !known {
                    store(&mut state.reader_waker, cx);
                    let key = this.net.traffic().deliveries.wait(
                        state.waiting,
                        &mut state.seat,
                        deliver_at,
                        now,
                        cx.waker(),
                    );
                    state.waiting = Some(key);
                }
                return Poll::Pending;
            }
        }
        if this.net.holds(this.rx.from, this.rx.to) {
            store(&mut state.reader_waker, cx);
            drop(guard);
            this.net.park_held(&this.rx);
            return Poll::Pending;
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let available = &head.data[head.read_pos..];
        let n = available.len().min(buf.remaining());
        buf.put_slice(&available[..n]);
        this.net.tapped(this.rx.from, this.rx.to, &available[..n]);
        head.read_pos += n;
        if head.read_pos == head.data.len() {
            state.pop_head();
        }
        debug_assert!(state.in_flight >= n, "in-flight accounting underflow");
        state.in_flight -= n;
        wake(&mut state.writer_waker);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut state = this.tx.state.lock();
        if state.reset {
            return Poll::Ready(Err(io::Error::from_raw_os_error(ECONNRESET)));
        }
        if state.write_closed {
            return Poll::Ready(Err(io::Error::from_raw_os_error(EPIPE)));
        }
        if state.reader_gone {
            return Poll::Ready(Err(io::Error::from_raw_os_error(ECONNRESET)));
        }
        let cap = this.net.options_in_flight_max();
        if state.in_flight >= cap {
            store(&mut state.writer_waker, cx);
            return Poll::Pending;
        }
        let n = buf.len().min(cap - state.in_flight);
        let now = this.net.now_ns();
        this.passed = now;
        // Lock order: pipe, then the network's traffic (never the reverse). The swarm
        // reset and the latency come from the network's stream, in write order; a parked
        // reader of a new head segment is queued for its delivery under the same lock.
        let mut traffic = this.net.traffic();
        let (latency, reset, spike) = traffic.draw_write(this.tx.from, this.tx.to);
        if reset {
            drop(traffic);
            drop(state);
            this.net
                .reset_pair(&this.tx, &this.rx, "swarm reset on write");
            return Poll::Ready(Err(io::Error::from_raw_os_error(ECONNRESET)));
        }
        // A stream delivers in order: a message never overtakes an earlier one.
        let deliver_at = now.saturating_add(latency).max(state.last_deliver_at);
        // A new head segment: a parked reader is woken when it is due, not now (it could
        // do nothing with it before then).
        let head = state.segments.is_empty();
        if head && deliver_at > now {
            let state = &mut *state;
            if let Some(reader) = &state.reader_waker {
                let key = traffic.deliveries.wait(
                    state.waiting,
                    &mut state.seat,
                    deliver_at,
                    now,
                    reader,
                );
                state.waiting = Some(key);
            }
        }
        drop(traffic);
        if let Some(spike) = spike {
            this.net.count_spike(this.tx.from, this.tx.to, spike);
        }
        state.last_deliver_at = deliver_at;
        let segment = state.segment(deliver_at, &buf[..n]);
        state.segments.push_back(segment);
        state.in_flight += n;
        debug_assert!(state.in_flight <= cap, "in-flight bound exceeded");
        if head && deliver_at <= now {
            wake(&mut state.reader_waker);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut state = self.tx.state.lock();
        state.write_closed = true;
        wake(&mut state.reader_waker);
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        {
            let mut state = self.tx.state.lock();
            state.write_closed = true;
            wake(&mut state.reader_waker);
        }
        let mut state = self.rx.state.lock();
        state.reader_gone = true;
        state.segments.clear();
        state.in_flight = 0;
        // A queued wake-up of this reader stays queued: a spurious wake, harmless.
        if let Some(seat) = state.seat.take() {
            self.net.traffic().deliveries.leave(seat);
        }
        wake(&mut state.writer_waker);
    }
}
