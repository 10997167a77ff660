//! In-memory pipes that behave like Linux pipes: a bounded buffer, a writer that blocks
//! when it is full, EOF once the writer is gone and the buffer drained, `EPIPE` for a
//! writer whose reader is gone. Like tokio's `ChildStdin`, `shutdown` does not close a
//! pipe: only dropping the end does, so code that relies on `shutdown` for EOF hangs in
//! the simulation as it would in production.

use crate::faults::FaultCounters;
use crate::seed::SimRng;
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `EPIPE`: writing to a pipe nobody reads (Rust programs ignore SIGPIPE, so the write
/// fails instead of killing the writer).
const EPIPE: i32 = 32;

/// Which of the child's standard streams a pipe carries (for fault details).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdin => "stdin",
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

struct PipeState {
    buf: VecDeque<u8>,
    bytes_max: usize,
    writer_open: bool,
    reader_open: bool,
    reader_waker: Option<Waker>,
    writer_waker: Option<Waker>,
    /// The writer is blocked on a full buffer and this episode was already counted.
    blocked: bool,
    pid: u32,
    stream: Stream,
    faults: FaultCounters,
}

/// A handle on a pipe that can close either side, whoever holds the ends (a killed
/// process's descriptors close at once, even if its task is still being torn down).
#[derive(Clone)]
pub(crate) struct Pipe {
    state: Arc<Mutex<PipeState>>,
}

impl Pipe {
    pub(crate) fn new(
        pid: u32,
        stream: Stream,
        bytes_max: usize,
        faults: FaultCounters,
    ) -> (Pipe, PipeReader, PipeWriter) {
        assert!(bytes_max > 0, "a pipe holds at least one byte");
        let state = Arc::new(Mutex::new(PipeState {
            buf: VecDeque::new(),
            bytes_max,
            writer_open: true,
            reader_open: true,
            reader_waker: None,
            writer_waker: None,
            blocked: false,
            pid,
            stream,
            faults,
        }));
        let pipe = Pipe {
            state: state.clone(),
        };
        let reader = PipeReader {
            state: state.clone(),
        };
        let writer = PipeWriter {
            state,
            faults: None,
        };
        (pipe, reader, writer)
    }

    /// Closes the write side: the reader drains what is buffered, then reads EOF.
    pub(crate) fn close_writer(&self) {
        close_writer(&self.state);
    }

    /// Closes the read side: buffered bytes are discarded, the writer gets `EPIPE`.
    pub(crate) fn close_reader(&self) {
        close_reader(&self.state);
    }
}

fn lock(state: &Mutex<PipeState>) -> MutexGuard<'_, PipeState> {
    state.lock().expect("sim pipe poisoned")
}

fn close_writer(state: &Mutex<PipeState>) {
    let waker = {
        let mut st = lock(state);
        st.writer_open = false;
        st.reader_waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

fn close_reader(state: &Mutex<PipeState>) {
    let waker = {
        let mut st = lock(state);
        st.reader_open = false;
        st.buf.clear();
        st.writer_waker.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// The read end.
pub(crate) struct PipeReader {
    state: Arc<Mutex<PipeState>>,
}

impl AsyncRead for PipeReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if out.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let waker = {
            let mut st = lock(&self.state);
            if st.buf.is_empty() {
                // No writer left (or our own side was closed by a kill): EOF.
                if !st.writer_open || !st.reader_open {
                    return Poll::Ready(Ok(()));
                }
                st.reader_waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            let n = out.remaining().min(st.buf.len());
            let (front, back) = st.buf.as_slices();
            let from_front = n.min(front.len());
            out.put_slice(&front[..from_front]);
            out.put_slice(&back[..n - from_front]);
            st.buf.drain(..n);
            st.writer_waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        close_reader(&self.state);
    }
}

/// Faults applied to what a child writes to its stdout, drawn at spawn.
pub(crate) struct OutputFaults {
    rng: SimRng,
    /// Replace one byte of every write.
    garble: bool,
    /// Deliver this many bytes, then EOF; later writes vanish.
    truncate_after: Option<u64>,
    written: u64,
    truncated: bool,
}

impl OutputFaults {
    pub(crate) fn new(rng: SimRng, garble: bool, truncate_after: Option<u64>) -> Self {
        OutputFaults {
            rng,
            garble,
            truncate_after,
            written: 0,
            truncated: false,
        }
    }
}

/// The write end.
pub(crate) struct PipeWriter {
    state: Arc<Mutex<PipeState>>,
    faults: Option<OutputFaults>,
}

impl PipeWriter {
    pub(crate) fn with_faults(mut self, faults: OutputFaults) -> Self {
        self.faults = Some(faults);
        self
    }

    /// Ends the stream early for a truncation fault: the reader sees EOF.
    fn truncate_now(&mut self) {
        let (detail, counters) = {
            let st = lock(&self.state);
            let written = self.faults.as_ref().map_or(0, |f| f.written);
            let detail = format!(
                "pid {} {} closed after {written} bytes",
                st.pid,
                st.stream.name()
            );
            (detail, st.faults.clone())
        };
        if let Some(faults) = self.faults.as_mut() {
            faults.truncated = true;
        }
        counters.fire("proc.truncate", &detail);
        close_writer(&self.state);
    }
}

impl AsyncWrite for PipeWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut allowed = data.len();
        if let Some(faults) = self.faults.as_ref() {
            if faults.truncated {
                return Poll::Ready(Ok(data.len()));
            }
            if let Some(cut) = faults.truncate_after {
                let room = cut.saturating_sub(faults.written);
                if room == 0 {
                    self.truncate_now();
                    return Poll::Ready(Ok(data.len()));
                }
                allowed = allowed.min(usize::try_from(room).unwrap_or(usize::MAX));
            }
        }
        let this = &mut *self;
        let (n, waker, garbled, counters) = {
            let mut st = lock(&this.state);
            if !st.reader_open || !st.writer_open {
                return Poll::Ready(Err(io::Error::from_raw_os_error(EPIPE)));
            }
            let space = st.bytes_max - st.buf.len();
            if space == 0 {
                st.writer_waker = Some(cx.waker().clone());
                let first = !st.blocked;
                st.blocked = true;
                if first {
                    let detail = format!(
                        "pid {} {} full at {} bytes: writer blocks",
                        st.pid,
                        st.stream.name(),
                        st.bytes_max
                    );
                    let counters = st.faults.clone();
                    drop(st);
                    counters.fire("proc.pipe_full", &detail);
                }
                return Poll::Pending;
            }
            let n = space.min(allowed);
            let start = st.buf.len();
            st.buf.extend(&data[..n]);
            st.blocked = false;
            let mut garbled = None;
            if let Some(faults) = this.faults.as_mut().filter(|f| f.garble) {
                let at = faults.rng.below(n as u64) as usize;
                let flip = 1 + faults.rng.below(255) as u8;
                st.buf[start + at] ^= flip;
                garbled = Some(format!(
                    "pid {} {} byte {} of a {n}-byte write xor {flip:#04x}",
                    st.pid,
                    st.stream.name(),
                    faults.written + at as u64
                ));
            }
            (n, st.reader_waker.take(), garbled, st.faults.clone())
        };
        if let Some(detail) = garbled {
            counters.fire("proc.garble", &detail);
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        if let Some(faults) = this.faults.as_mut() {
            faults.written += n as u64;
            if faults.truncate_after == Some(faults.written) {
                // Only reachable with `n == allowed`: the bytes past the cut are dropped.
                this.truncate_now();
                return Poll::Ready(Ok(data.len()));
            }
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A no-op, like tokio's `ChildStdin`: drop the end to send EOF.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        close_writer(&self.state);
    }
}
