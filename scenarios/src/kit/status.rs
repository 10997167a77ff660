//! Watching a worker over time: every status it published, with the instant (a
//! [`StatusLog`]), and the first instant a condition held (a [`Probe`]).

use crate::scenario::Failure;
use engine::env::{Env, Task};
use engine::workers::{Worker, WorkerStatus};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Every status a worker published, with the virtual instant it was published at (a
/// task on the worker's host follows the status channel).
pub struct StatusLog {
    worker: String,
    entries: Arc<Mutex<Vec<(Instant, WorkerStatus)>>>,
    grew: watch::Receiver<usize>,
    task: Task<()>,
}

impl StatusLog {
    pub fn follow(env: &Env, worker: &Worker) -> StatusLog {
        let mut status = worker.subscribe();
        let first = status.borrow_and_update().clone();
        let entries = Arc::new(Mutex::new(vec![(Instant::now(), first)]));
        let (grew_tx, grew) = watch::channel(1);
        let log = entries.clone();
        let task = env.spawn("status-log", async move {
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().clone();
                let len = {
                    let mut log = log.lock().expect("status log poisoned");
                    log.push((Instant::now(), now));
                    log.len()
                };
                grew_tx.send_replace(len);
            }
        });
        StatusLog {
            worker: worker.name().to_string(),
            entries,
            grew,
            task,
        }
    }

    /// The index the next status will be logged at.
    pub fn mark(&self) -> usize {
        self.entries.lock().expect("status log poisoned").len()
    }

    /// The first status logged so far at index `from` or later that satisfies `wanted`.
    pub fn find(
        &self,
        from: usize,
        wanted: impl Fn(&WorkerStatus) -> bool,
    ) -> Option<(usize, Instant, WorkerStatus)> {
        let log = self.entries.lock().expect("status log poisoned");
        log.iter()
            .enumerate()
            .skip(from)
            .find(|(_, (_, s))| wanted(s))
            .map(|(i, (at, status))| (i, *at, status.clone()))
    }

    /// The first status logged at index `from` or later that satisfies `wanted`, with its
    /// index and instant; waits for it at most `bound`.
    pub async fn next(
        &self,
        from: usize,
        bound: Duration,
        what: &str,
        wanted: impl Fn(&WorkerStatus) -> bool,
    ) -> Result<(usize, Instant, WorkerStatus), Failure> {
        let deadline = Instant::now() + bound;
        let mut grew = self.grew.clone();
        loop {
            grew.borrow_and_update();
            if let Some(found) = self.find(from, &wanted) {
                return Ok(found);
            }
            let changed = tokio::time::timeout_at(deadline, grew.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                let seen: Vec<String> = self
                    .entries
                    .lock()
                    .expect("status log poisoned")
                    .iter()
                    .skip(from)
                    .map(|(_, s)| s.to_string())
                    .collect();
                return Err(Failure::liveness(format!(
                    "{:?}: {what} did not happen within {} ms (statuses since: {seen:?})",
                    self.worker,
                    bound.as_millis()
                )));
            }
        }
    }
}

impl Drop for StatusLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first instant at which `check` held, sampled every `step` by a task.
pub struct Probe {
    seen: Arc<Mutex<Option<Instant>>>,
    task: Task<()>,
}

impl Probe {
    pub fn start(env: &Env, step: Duration, check: impl Fn() -> bool + Send + 'static) -> Probe {
        let seen = Arc::new(Mutex::new(None));
        let slot = seen.clone();
        let task = env.spawn("probe", async move {
            loop {
                if check() {
                    *slot.lock().expect("probe poisoned") = Some(Instant::now());
                    return;
                }
                tokio::time::sleep(step).await;
            }
        });
        Probe { seen, task }
    }

    pub fn seen(&self) -> Option<Instant> {
        *self.seen.lock().expect("probe poisoned")
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StatusLog {
    /// [`StatusLog::next`] status that is Ready.
    pub async fn next_ready(
        &self,
        from: usize,
        bound: Duration,
        what: &str,
    ) -> Result<(usize, Instant, WorkerStatus), Failure> {
        self.next(from, bound, what, |s| {
            matches!(s, WorkerStatus::Ready { .. })
        })
        .await
    }

    /// [`StatusLog::next`] status that is not Ready (the worker left Ready).
    pub async fn next_down(
        &self,
        from: usize,
        bound: Duration,
        what: &str,
    ) -> Result<(usize, Instant, WorkerStatus), Failure> {
        self.next(from, bound, what, |s| {
            !matches!(s, WorkerStatus::Ready { .. })
        })
        .await
    }

    /// [`StatusLog::next`] status that is Stopping.
    pub async fn next_stopping(
        &self,
        from: usize,
        bound: Duration,
        what: &str,
    ) -> Result<(usize, Instant, WorkerStatus), Failure> {
        self.next(from, bound, what, |s| *s == WorkerStatus::Stopping)
            .await
    }

    /// The failure counts of the Restarting statuses logged at index `from` or later.
    pub fn restarting(&self, from: usize) -> Vec<u32> {
        let log = self.entries.lock().expect("status log poisoned");
        let since = log.iter().skip(from);
        since
            .filter_map(|(_, s)| match s {
                WorkerStatus::Restarting { failures } => Some(*failures),
                _ => None,
            })
            .collect()
    }
}

/// Zombies of a simulated host, sampled every `step` by a task (which runs on when the
/// watch is dropped, until the world ends): each pid with the instants it was first and
/// last seen a zombie.
pub struct ZombieWatch {
    seen: Arc<Mutex<BTreeMap<u32, (Instant, Instant)>>>,
    _task: Task<()>,
}

impl ZombieWatch {
    pub fn start(env: &Env, host: &sim::Host, step: Duration) -> ZombieWatch {
        let seen: Arc<Mutex<BTreeMap<u32, (Instant, Instant)>>> = Arc::default();
        let book = seen.clone();
        let host = host.clone();
        let task = env.spawn("zombie-monitor", async move {
            loop {
                let now = Instant::now();
                let zombies = host.procs().zombie_pids();
                {
                    let mut book = book.lock().expect("zombie book poisoned");
                    for pid in zombies {
                        book.entry(pid).or_insert((now, now)).1 = now;
                    }
                }
                tokio::time::sleep(step).await;
            }
        });
        ZombieWatch { seen, _task: task }
    }

    /// Every zombie seen so far, with the instants it was first and last seen.
    pub fn seen(&self) -> BTreeMap<u32, (Instant, Instant)> {
        self.seen.lock().expect("zombie book poisoned").clone()
    }
}
