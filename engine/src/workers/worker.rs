//! One supervised worker: its handle (start, stop, health, requests) and shared state.

use super::WorkerError;
use super::config::WorkerConfig;
use super::lifecycle::{Event, Lifecycle, LifecyclePolicy, WorkerStatus};
use super::oversight::OversightRequest;
use super::ports::PortAllocator;
use super::reaper::Reaper;
use super::supervise::{Command, supervise};
use crate::env::{Env, NetAddr, Task};
use crate::workers::program::protocol::{Reply, Request};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// Counters of one worker's history, for oracles and operators.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerStats {
    pub spawns: u64,
    pub spawn_failures: u64,
    /// Processes that ended while ready (crashes, kills, OOM).
    pub crashes: u64,
    pub restarts: u64,
    pub hangs_detected: u64,
    pub memory_warnings: u64,
    pub memory_restarts: u64,
    /// The latest resident-memory sample, in bytes.
    pub resident_bytes: Option<u64>,
    /// A restart verdict is waiting for the owner (`MemoryPolicy::owner_restarts`).
    pub memory_restart_due: bool,
    /// Checkpoints taken (and failed or timed out) before a memory stop.
    pub checkpoints: u64,
    pub checkpoint_failures: u64,
    /// Disk use crossed the alert line (once per excursion).
    pub disk_alerts: u64,
    /// Times the worker was put in read-only mode, and let out of it.
    pub read_only_entries: u64,
    pub read_only_exits: u64,
    pub slow_startups: u64,
    pub forced_kills: u64,
    pub connect_attempts: u64,
    /// Lines from the worker that broke the protocol.
    pub malformed_lines: u64,
    pub env_rejections: u64,
    /// Virtual milliseconds from spawn to ready of the latest start.
    pub last_startup_ms: Option<u64>,
    /// The latest process's exit, described.
    pub last_exit: Option<String>,
}

/// What `get` and `list` report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkerInfo {
    pub name: String,
    pub status: WorkerStatus,
    pub endpoint: Option<NetAddr>,
    pub pid: Option<u32>,
    pub config_version: u64,
}

/// A health check's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub status: WorkerStatus,
    /// The worker answered a ping within the bound.
    pub healthy: bool,
    /// Whether the worker was asked at all (only a ready worker is).
    pub probed: bool,
    pub detail: String,
}

pub(crate) struct WorkerShared {
    pub(crate) name: String,
    pub(crate) env: Env,
    pub(crate) config: WorkerConfig,
    pub(crate) reaper: Arc<Reaper>,
    pub(crate) ports: Arc<PortAllocator>,
    pub(crate) core: Mutex<Lifecycle>,
    pub(crate) status: watch::Sender<WorkerStatus>,
    pub(crate) stats: Mutex<WorkerStats>,
    /// Why the latest start failed, for the caller of `start`.
    pub(crate) last_error: Mutex<Option<WorkerError>>,
    /// Origin of the lifecycle core's clock.
    pub(crate) origin: tokio::time::Instant,
    /// Filed and not yet answered, oldest first.
    pub(crate) oversight: Mutex<Vec<OversightRequest>>,
}

impl WorkerShared {
    /// Virtual (or real monotonic) time since the worker was registered.
    pub(crate) fn elapsed(&self) -> std::time::Duration {
        self.origin.elapsed()
    }

    /// The lifecycle core; only the supervision task drives it, so the lock is never
    /// contended.
    pub(crate) fn core(&self) -> std::sync::MutexGuard<'_, Lifecycle> {
        self.core.lock().expect("core poisoned")
    }

    pub(crate) fn stats(&self) -> std::sync::MutexGuard<'_, WorkerStats> {
        self.stats.lock().expect("worker stats poisoned")
    }

    pub(crate) fn file_oversight(&self, request: OversightRequest) {
        tracing::warn!(worker = %self.name, ?request, "oversight request filed");
        self.oversight.lock().expect("poisoned").push(request);
    }
}

/// A registered worker. Starts and stops are handled one at a time.
pub struct Worker {
    shared: Arc<WorkerShared>,
    start_lock: tokio::sync::Mutex<()>,
    /// The running supervision task and its command queue.
    task: Mutex<Option<(mpsc::UnboundedSender<Command>, Task<()>)>>,
}

impl Worker {
    pub(crate) fn new(
        name: String,
        env: Env,
        config: WorkerConfig,
        reaper: Arc<Reaper>,
        ports: Arc<PortAllocator>,
    ) -> Self {
        config.check();
        let core = Lifecycle::new(LifecyclePolicy {
            init_timeout: config.init_timeout,
            startup_warn_after: config.startup_warn_after,
            grace: config.grace,
            restart: config.restart.clone(),
            // A worker told to send no heartbeats (interval 0) is not watched for them.
            heartbeat_timeout: (!config.heartbeat_interval.is_zero())
                .then_some(config.heartbeat_timeout),
            memory: config.memory.clone(),
            disk: config.disk.clone(),
        });
        Worker {
            shared: Arc::new(WorkerShared {
                name,
                env,
                config,
                reaper,
                ports,
                core: Mutex::new(core),
                status: watch::channel(WorkerStatus::Uninitialized).0,
                stats: Mutex::new(WorkerStats::default()),
                last_error: Mutex::new(None),
                origin: tokio::time::Instant::now(),
                oversight: Mutex::new(Vec::new()),
            }),
            start_lock: tokio::sync::Mutex::new(()),
            task: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.shared.config
    }

    pub fn status(&self) -> WorkerStatus {
        self.shared.status.borrow().clone()
    }

    /// Watches status changes.
    pub fn subscribe(&self) -> watch::Receiver<WorkerStatus> {
        self.shared.status.subscribe()
    }

    pub fn stats(&self) -> WorkerStats {
        self.shared.stats().clone()
    }

    pub fn info(&self) -> WorkerInfo {
        let status = self.status();
        let (endpoint, pid) = match &status {
            WorkerStatus::Ready { pid, port } => (
                Some(NetAddr::new(self.shared.env.host(), *port)),
                Some(*pid),
            ),
            _ => (None, None),
        };
        WorkerInfo {
            name: self.shared.name.clone(),
            status,
            endpoint,
            pid,
            config_version: self.shared.config.config_version,
        }
    }

    fn send(&self, command: Command) {
        let mut task = self.task.lock().expect("worker task poisoned");
        if let Some((tx, handle)) = task.as_ref()
            && !handle.is_finished()
            && tx.send(command.clone()).is_ok()
        {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // A fresh channel always takes its first command.
        let _ = tx.send(command);
        let handle = self
            .shared
            .env
            .spawn("worker-supervise", supervise(self.shared.clone(), rx));
        *task = Some((tx, handle));
    }

    /// Starts the worker and waits until it is ready or the attempt failed. A running
    /// worker is left alone. Concurrent starts are handled one at a time.
    pub async fn start(&self) -> Result<(), WorkerError> {
        let _one_at_a_time = self.start_lock.lock().await;
        let mut watch = self.shared.status.subscribe();
        let now = watch.borrow_and_update().clone();
        match now {
            WorkerStatus::Ready { .. } => return Ok(()),
            // A crashed worker waits for its backoff: the supervisor owns it.
            WorkerStatus::Restarting { .. } => {
                return Err(WorkerError::NotRunning {
                    name: self.shared.name.clone(),
                    status: now,
                });
            }
            _ => {}
        }
        *self.shared.last_error.lock().expect("poisoned") = None;
        self.send(Command::Event(Event::StartRequested));
        // Judge only statuses published after this request.
        loop {
            if watch.changed().await.is_err() {
                return Err(self.start_error("supervisor went away".into()));
            }
            let status = watch.borrow_and_update().clone();
            match status {
                WorkerStatus::Ready { .. } => return Ok(()),
                WorkerStatus::Failed { reason } => return Err(self.start_error(reason)),
                WorkerStatus::BreakerOpen { failures } => {
                    return Err(WorkerError::BreakerOpen {
                        name: self.shared.name.clone(),
                        failures,
                    });
                }
                WorkerStatus::Stopped
                | WorkerStatus::Uninitialized
                | WorkerStatus::Restarting { .. } => {
                    return Err(WorkerError::NotRunning {
                        name: self.shared.name.clone(),
                        status,
                    });
                }
                WorkerStatus::Starting { .. } | WorkerStatus::Stopping => {}
            }
        }
    }

    fn start_error(&self, reason: String) -> WorkerError {
        self.shared
            .last_error
            .lock()
            .expect("poisoned")
            .clone()
            .unwrap_or(WorkerError::SpawnFailed {
                name: self.shared.name.clone(),
                reason,
            })
    }

    /// Stops the worker: SIGTERM, the grace period, then SIGKILL. A worker that never
    /// started, or is already stopped, is left as it is. Waits for a start in progress.
    pub async fn stop(&self) -> Result<(), WorkerError> {
        let _one_at_a_time = self.start_lock.lock().await;
        if !self.status().is_active() {
            tracing::info!(worker = %self.shared.name, status = %self.status(), "stop: nothing running");
            return Ok(());
        }
        let mut watch = self.shared.status.subscribe();
        self.send(Command::Event(Event::StopRequested));
        loop {
            if !watch.borrow_and_update().is_active() {
                return Ok(());
            }
            if watch.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Answers from the status without I/O unless the worker is ready; a ready worker
    /// is pinged, within `health_timeout` at most.
    pub async fn health(&self) -> Health {
        let status = self.status();
        let WorkerStatus::Ready { .. } = status else {
            return Health {
                detail: format!("not probed: {status}"),
                status,
                healthy: false,
                probed: false,
            };
        };
        let bound = self.shared.config.health_timeout;
        let ping = self.request(Request::Ping { id: 1 });
        let (healthy, detail) = match tokio::time::timeout(bound, ping).await {
            Ok(Ok(replies)) if matches!(replies.last(), Some(Reply::Pong { .. })) => {
                (true, "pong".to_string())
            }
            Ok(Ok(replies)) => (
                false,
                format!(
                    "unexpected reply {}",
                    serde_json::to_string(&replies.last()).unwrap_or_default()
                ),
            ),
            Ok(Err(e)) => (false, e.to_string()),
            Err(_) => (false, format!("no answer within {} ms", bound.as_millis())),
        };
        Health {
            status,
            healthy,
            probed: true,
            detail,
        }
    }

    /// Sends one request over a fresh connection to the worker's endpoint and collects
    /// the replies up to the one that ends it.
    pub async fn request(&self, request: Request) -> Result<Vec<Reply>, WorkerError> {
        let status = self.status();
        let WorkerStatus::Ready { port, .. } = status else {
            return Err(WorkerError::NotRunning {
                name: self.shared.name.clone(),
                status,
            });
        };
        super::request::exchange(&self.shared, port, request).await
    }

    /// Sends one request and passes each reply into `replies` as it arrives (a session
    /// streaming a query's events to its client). The channel is bounded: a slow taker
    /// slows the reading, and so the worker. Ends early if the taker drops the channel.
    pub async fn request_streaming(
        &self,
        request: Request,
        mut replies: mpsc::Sender<Reply>,
    ) -> Result<(), WorkerError> {
        let status = self.status();
        let WorkerStatus::Ready { port, .. } = status else {
            return Err(WorkerError::NotRunning {
                name: self.shared.name.clone(),
                status,
            });
        };
        super::request::exchange_into(&self.shared, port, request, &mut replies).await
    }

    /// Bytes the worker's directory holds on the host's disk.
    pub fn disk_usage(&self) -> u64 {
        super::request::dir_bytes(self.shared.env.disk(), &self.shared.config.dir)
    }

    /// Oversight requests filed for this worker and not yet answered, oldest first.
    pub fn oversight_requests(&self) -> Vec<OversightRequest> {
        self.shared.oversight.lock().expect("poisoned").clone()
    }

    /// Answers the oldest pending cleanup request with an approval: its files are
    /// removed (those still there) and the bytes freed returned. `Ok(None)` when no
    /// cleanup is pending. The next disk sample lets the worker write again once use
    /// is back under the alert line.
    pub async fn approve_cleanup(&self) -> Result<Option<u64>, WorkerError> {
        let files = {
            let mut pending = self.shared.oversight.lock().expect("poisoned");
            let Some(at) = pending
                .iter()
                .position(|r| matches!(r, OversightRequest::ApproveCleanup { .. }))
            else {
                return Ok(None);
            };
            let OversightRequest::ApproveCleanup { files, .. } = pending.remove(at) else {
                return Ok(None);
            };
            files
        };
        let env = &self.shared.env;
        let mut freed = 0;
        let mut dirs = std::collections::BTreeSet::new();
        for file in files {
            env.disk_pace().await;
            match env.disk().remove(&file.path) {
                Ok(()) => freed += file.bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(WorkerError::Refused {
                        name: self.shared.name.clone(),
                        code: "cleanup".to_string(),
                        message: format!("removing {}: {e}", file.path),
                    });
                }
            }
            tracing::info!(worker = %self.shared.name, path = %file.path, bytes = file.bytes, "approved cleanup: file removed");
            if let Some((dir, _)) = file.path.rsplit_once('/') {
                dirs.insert(dir.to_string());
            }
        }
        // A removal is durable, and its space free, once its directory is synced.
        for dir in dirs {
            env.disk_pace().await;
            env.disk()
                .sync_dir(&dir)
                .map_err(|e| WorkerError::Refused {
                    name: self.shared.name.clone(),
                    code: "cleanup".to_string(),
                    message: format!("syncing {dir}: {e}"),
                })?;
        }
        Ok(Some(freed))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // The supervision task ends when its command queue closes: it stops the
        // process and hands it to the reaper.
        self.task.lock().expect("worker task poisoned").take();
    }
}
