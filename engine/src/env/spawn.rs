//! Tasks of one host. The environment spawns every task itself, straight onto the
//! runtime: the future lives in tokio's task cell (no second allocation) and its result
//! comes back through the join handle (no channel). A simulated host adds a
//! [`TaskGate`], which every poll passes: the task waits while its host is paused and
//! ends, result-less, once its host crashed.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::task::{AbortHandle, JoinHandle};

/// What a task of a simulated host may do at a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The host runs: poll the task.
    Run,
    /// The host is paused: the gate keeps the waker and wakes it on resume.
    Wait,
    /// The host crashed since the task started: it never runs again.
    Gone,
}

/// The liveness of one simulated host, which each of its tasks passes on every poll.
/// The real environment has none: its tasks are plain runtime tasks.
pub trait TaskGate: Send + Sync {
    /// The incarnation a task started now belongs to, or `None` while the host is down
    /// (the task never starts).
    fn start(&self) -> Option<u64>;

    /// Whether a task of `incarnation` may be polled now. `parked_in` is the task's own
    /// note of the pause in which it last left its waker, so that a task polled twice
    /// during one pause leaves it once.
    fn admit(&self, incarnation: u64, parked_in: &mut u64, cx: &Context<'_>) -> Admission;

    /// Marks the host as the one running (for the trace); returns what to restore.
    fn enter(&self) -> usize;

    /// Restores what [`TaskGate::enter`] returned.
    fn leave(&self, previous: usize);

    /// Keeps the task's abort handle, so a crash stops it at once rather than at its
    /// next wake-up.
    fn track(&self, task: AbortHandle);
}

/// A spawned task's result. Dropping it does not cancel the task; [`Task::abort`] does.
pub struct Task<T> {
    handle: JoinHandle<Option<T>>,
}

/// The task ended without a result: it was aborted, panicked or its host crashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskGone;

impl fmt::Display for TaskGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task ended without a result (aborted, or its host crashed)")
    }
}

impl std::error::Error for TaskGone {}

impl<T> Task<T> {
    pub fn abort(&self) {
        self.handle.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, TaskGone>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let joined = ready!(Pin::new(&mut self.handle).poll(cx));
        Poll::Ready(joined.ok().flatten().ok_or(TaskGone))
    }
}

/// Spawns `future` as a task of the host behind `gate` (`None`: a plain runtime task).
#[allow(
    clippy::disallowed_methods,
    reason = "the environment's spawn is the seam: a simulated host's gate wraps every task"
)]
pub fn spawn_task<T, F>(gate: Option<&Arc<dyn TaskGate>>, name: &'static str, future: F) -> Task<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let Some(gate) = gate else {
        return Task {
            handle: tokio::spawn(Ungated { future }),
        };
    };
    let Some(incarnation) = gate.start() else {
        tracing::debug!(target: "sim::host", "task {name} not started: host is down");
        return Task {
            handle: tokio::spawn(std::future::ready(None)),
        };
    };
    let handle = tokio::spawn(Gated {
        gate: gate.clone(),
        incarnation,
        parked_in: 0,
        future,
    });
    gate.track(handle.abort_handle());
    Task { handle }
}

pin_project_lite::pin_project! {
    /// A task of the real environment: its result, always.
    struct Ungated<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Ungated<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().future.poll(cx).map(Some)
    }
}

pin_project_lite::pin_project! {
    /// A task of a simulated host: waits while the host is paused, ends without a result
    /// once the host crashed, and marks its host as running while it is polled.
    struct Gated<F> {
        gate: Arc<dyn TaskGate>,
        incarnation: u64,
        parked_in: u64,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.gate.admit(*this.incarnation, this.parked_in, cx) {
            Admission::Gone => Poll::Ready(None),
            Admission::Wait => Poll::Pending,
            Admission::Run => {
                let _entered = Entered::new(&**this.gate);
                this.future.poll(cx).map(Some)
            }
        }
    }
}

/// The host marked as running for one poll, restored even if the poll panics.
struct Entered<'a> {
    gate: &'a dyn TaskGate,
    previous: usize,
}

impl<'a> Entered<'a> {
    fn new(gate: &'a dyn TaskGate) -> Self {
        let previous = gate.enter();
        Entered { gate, previous }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.gate.leave(self.previous);
    }
}
