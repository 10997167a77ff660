use super::BoxFuture;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Spawns tasks for one host. Simulated: the task belongs to the host, pauses with it
/// and dies when the host crashes.
pub trait Spawner: Send + Sync {
    fn spawn(&self, name: &'static str, future: BoxFuture<'static, ()>) -> JoinHandle<()>;
}

/// A spawned task's result. Dropping it does not cancel the task; [`Task::abort`] does.
pub struct Task<T> {
    handle: JoinHandle<()>,
    result: oneshot::Receiver<T>,
}

/// The task ended without a result: it was aborted or its host crashed.
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
        Pin::new(&mut self.result)
            .poll(cx)
            .map(|r| r.map_err(|_| TaskGone))
    }
}

pub(super) fn spawn_typed<T, F>(spawner: &dyn Spawner, name: &'static str, future: F) -> Task<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let handle = spawner.spawn(
        name,
        Box::pin(async move {
            let value = future.await;
            // The receiver may be gone: nobody waits for this task's result.
            let _ = tx.send(value);
        }),
    );
    Task { handle, result: rx }
}
