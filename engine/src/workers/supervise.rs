//! The async shell around one worker's lifecycle core: it owns the child process,
//! feeds the core events (exits, lines, timers, commands) and carries out its actions.
//!
//! One task per worker, alive as long as the worker's handle: it waits for commands
//! when idle. Every `select!` only produces a wake-up value; the work happens after it,
//! so no future borrowing the child is alive while the child is signalled.

use super::WorkerError;
use super::disk::{DiskVerdict, DiskWatch};
use super::lifecycle::{Action, Event, WorkerStatus, describe_exit};
use super::memory::{MemoryVerdict, MemoryWatch};
use super::oversight::OversightRequest;
use super::sanitize::sanitize_env;
use super::worker::WorkerShared;
use crate::env::{ChildOutput, ChildProc, ChildStdin, ExitStatus, NetAddr, ProcSpec};
use crate::workers::program::lines::{Line, LineReader};
use crate::workers::program::protocol::{Reply, Request, decode_reply};
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub(crate) enum Command {
    Event(Event),
}

/// The running process, split so its parts can be awaited side by side.
#[derive(Default)]
struct Running {
    child: Option<Box<dyn ChildProc>>,
    lines: Option<LineReader<ChildOutput>>,
    /// Held open: dropping it sends the worker EOF, which it takes as a shutdown.
    _stdin: Option<ChildStdin>,
}

#[derive(Default)]
struct Timers {
    grace: Option<Instant>,
    restart: Option<Instant>,
    heartbeat: Option<Instant>,
    memory: Option<Instant>,
    disk: Option<Instant>,
}

enum Wake {
    Command(Option<Command>),
    Exited(io::Result<ExitStatus>),
    Line(io::Result<Line>),
    Grace,
    Restart,
    HeartbeatLost,
    MemorySample,
    DiskSample,
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn wait_opt(child: &mut Option<Box<dyn ChildProc>>) -> io::Result<ExitStatus> {
    match child {
        Some(child) => child.wait().await,
        None => std::future::pending().await,
    }
}

async fn line_opt(lines: &mut Option<LineReader<ChildOutput>>) -> io::Result<Line> {
    match lines {
        Some(lines) => lines.next_line().await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn supervise(
    shared: Arc<WorkerShared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut run = Running::default();
    let mut timers = Timers::default();
    let mut memory = shared.config.memory.clone().map(MemoryWatch::new);
    let mut disk = shared.config.disk.clone().map(DiskWatch::new);
    let mut queue: VecDeque<Event> = VecDeque::new();
    loop {
        while let Some(event) = queue.pop_front() {
            let now = shared.elapsed();
            let random = shared.env.random().next_u64();
            let actions = shared
                .core
                .lock()
                .expect("core poisoned")
                .on(now, event, random);
            for action in actions {
                execute(
                    &shared,
                    action,
                    &mut run,
                    &mut timers,
                    &mut queue,
                    memory.as_mut(),
                    disk.as_mut(),
                )
                .await;
            }
        }
        let wake = tokio::select! {
            biased;
            command = commands.recv() => Wake::Command(command),
            status = wait_opt(&mut run.child) => Wake::Exited(status),
            line = line_opt(&mut run.lines) => Wake::Line(line),
            _ = sleep_opt(timers.grace) => Wake::Grace,
            _ = sleep_opt(timers.restart) => Wake::Restart,
            _ = sleep_opt(timers.heartbeat) => Wake::HeartbeatLost,
            _ = sleep_opt(timers.memory) => Wake::MemorySample,
            _ = sleep_opt(timers.disk) => Wake::DiskSample,
        };
        match wake {
            Wake::Command(Some(Command::Event(event))) => queue.push_back(event),
            Wake::Command(None) => {
                // The handle is gone (unregistered or replaced): nobody will ask for a
                // graceful stop, so the process is killed and reaped in the background.
                if let Some(child) = run.child.take() {
                    shared.reaper.adopt(&shared.name, child);
                }
                return;
            }
            Wake::Exited(result) => {
                run = Running::default();
                let status = match result {
                    Ok(status) => status,
                    Err(e) => {
                        // ECHILD: the process vanished with its host; report it as killed.
                        tracing::warn!(worker = %shared.name, error = %e, "wait failed");
                        ExitStatus::from_signal(9)
                    }
                };
                {
                    let mut stats = shared.stats();
                    stats.last_exit = Some(describe_exit(status));
                    if matches!(*shared.status.borrow(), WorkerStatus::Ready { .. }) {
                        stats.crashes += 1;
                    }
                }
                tracing::info!(worker = %shared.name, code = ?status.code(), signal = ?status.signal(), "worker process exited");
                queue.push_back(Event::Exited { status });
            }
            Wake::Line(line) => on_line(&shared, line, &mut run, &mut timers),
            Wake::Grace => {
                timers.grace = None;
                shared.stats().forced_kills += 1;
                queue.push_back(Event::GraceElapsed);
            }
            Wake::Restart => {
                timers.restart = None;
                shared.stats().restarts += 1;
                queue.push_back(Event::RestartDue);
            }
            Wake::HeartbeatLost => {
                timers.heartbeat = None;
                shared.stats().hangs_detected += 1;
                queue.push_back(Event::HeartbeatLost);
            }
            Wake::DiskSample => {
                timers.disk = None;
                if let Some(watch) = disk.as_mut() {
                    timers.disk = Some(Instant::now() + watch.policy().sample_interval);
                    sample_disk(&shared, watch).await;
                }
            }
            Wake::MemorySample => {
                timers.memory = None;
                if let (Some(watch), Some(child)) = (memory.as_mut(), run.child.as_ref()) {
                    timers.memory = Some(Instant::now() + watch.policy().sample_interval);
                    if let Ok(bytes) = child.resident_bytes() {
                        shared.stats().resident_bytes = Some(bytes);
                        match watch.sample(shared.elapsed(), bytes) {
                            MemoryVerdict::Normal => {}
                            MemoryVerdict::Warn { percent } => {
                                shared.stats().memory_warnings += 1;
                                tracing::warn!(worker = %shared.name, bytes, percent, "memory above the warning threshold");
                            }
                            MemoryVerdict::Restart {
                                percent,
                                growth_bytes_per_s,
                            } if watch.policy().owner_restarts => {
                                shared.stats().memory_restart_due = true;
                                tracing::warn!(worker = %shared.name, bytes, percent, growth_bytes_per_s, "memory growing into the limit: restart due, the owner decides when");
                            }
                            MemoryVerdict::Restart {
                                percent,
                                growth_bytes_per_s,
                            } => {
                                shared.stats().memory_restarts += 1;
                                tracing::warn!(worker = %shared.name, bytes, percent, growth_bytes_per_s, "memory growing into the limit: checkpoint, then restart");
                                timers.memory = None;
                                let limit = watch.policy().limit_bytes;
                                checkpoint(&shared).await;
                                shared.file_oversight(OversightRequest::RaiseMemoryLimit {
                                    current_bytes: limit,
                                    proposed_bytes: limit.saturating_mul(2),
                                });
                                queue.push_back(Event::MemoryRestart);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Asks the worker to persist its session before the memory watch stops it, waiting
/// `checkpoint_timeout` at most (a worker stuck in its allocation loop never answers).
async fn checkpoint(shared: &WorkerShared) {
    let WorkerStatus::Ready { port, .. } = *shared.status.borrow() else {
        return;
    };
    let bound = shared.config.checkpoint_timeout;
    let request = super::request::exchange(shared, port, Request::Checkpoint { id: 0 });
    match tokio::time::timeout(bound, request).await {
        Ok(Ok(_)) => {
            shared.stats().checkpoints += 1;
            tracing::info!(worker = %shared.name, "checkpoint taken");
        }
        Ok(Err(e)) => {
            shared.stats().checkpoint_failures += 1;
            tracing::warn!(worker = %shared.name, error = %e, "checkpoint failed");
        }
        Err(_) => {
            shared.stats().checkpoint_failures += 1;
            tracing::warn!(worker = %shared.name, bound_ms = bound.as_millis() as u64, "checkpoint timed out");
        }
    }
}

/// Measures the worker's directory and acts on the disk watch's verdict.
async fn sample_disk(shared: &WorkerShared, watch: &mut DiskWatch) {
    let policy = watch.policy().clone();
    let dir = &shared.config.dir;
    let used = super::request::dir_bytes(shared.env.disk(), dir);
    let (alert, mode) = match watch.sample(used) {
        DiskVerdict::Normal => (false, None),
        DiskVerdict::Alert { .. } => (true, None),
        DiskVerdict::ReadOnly { alert, .. } => (alert, Some(true)),
        DiskVerdict::Writable { .. } => (false, Some(false)),
    };
    let percent = watch.percent(used);
    if alert {
        shared.stats().disk_alerts += 1;
        tracing::warn!(worker = %shared.name, used, quota = policy.quota_bytes, percent, "disk use above the alert threshold");
        let files = super::request::files_over(shared.env.disk(), dir, policy.large_file_bytes);
        if !files.is_empty() {
            shared.file_oversight(OversightRequest::ApproveCleanup {
                used_bytes: used,
                quota_bytes: policy.quota_bytes,
                files,
            });
        }
    }
    let Some(on) = mode else {
        return;
    };
    let WorkerStatus::Ready { port, .. } = *shared.status.borrow() else {
        watch.undo_mode_change();
        return;
    };
    let request = super::request::exchange(shared, port, Request::ReadOnly { id: 0, on });
    match tokio::time::timeout(shared.config.health_timeout, request).await {
        Ok(Ok(_)) => {
            let mut stats = shared.stats();
            if on {
                stats.read_only_entries += 1;
            } else {
                stats.read_only_exits += 1;
            }
            drop(stats);
            tracing::warn!(worker = %shared.name, used, percent, on, "read-only mode");
        }
        failed => {
            // Asked again at the next sample.
            watch.undo_mode_change();
            tracing::warn!(worker = %shared.name, on, ?failed, "could not change read-only mode");
        }
    }
}

fn on_line(shared: &WorkerShared, line: io::Result<Line>, run: &mut Running, timers: &mut Timers) {
    let bytes = match line {
        Ok(Line::Text(bytes)) => bytes,
        Ok(Line::TooLong) => {
            shared.stats().malformed_lines += 1;
            tracing::warn!(worker = %shared.name, "worker wrote a line over the length limit");
            return;
        }
        Ok(Line::Eof) | Err(_) => {
            // EOF is not an exit: the status still comes from wait. Without stdout the
            // heartbeat stops, and a worker that runs on silent is killed as hung.
            tracing::info!(worker = %shared.name, "worker stdout closed");
            run.lines = None;
            return;
        }
    };
    match decode_reply(&bytes) {
        Ok(Reply::Heartbeat { .. }) => {
            if timers.heartbeat.is_some() {
                timers.heartbeat = Some(Instant::now() + shared.config.heartbeat_timeout);
            }
        }
        Ok(Reply::Error { code, message, .. }) => {
            tracing::warn!(worker = %shared.name, ?code, %message, "worker reported an error");
        }
        Ok(reply) => tracing::debug!(worker = %shared.name, ?reply, "worker line"),
        Err(e) => {
            shared.stats().malformed_lines += 1;
            tracing::warn!(worker = %shared.name, error = %e, "malformed line from worker");
        }
    }
}

async fn execute(
    shared: &WorkerShared,
    action: Action,
    run: &mut Running,
    timers: &mut Timers,
    queue: &mut VecDeque<Event>,
    memory: Option<&mut MemoryWatch>,
    disk: Option<&mut DiskWatch>,
) {
    let name = &shared.name;
    match action {
        Action::Spawn => {
            if let Some(watch) = memory {
                watch.reset();
            }
            if let Some(watch) = disk {
                watch.reset();
            }
            start_process(shared, run, queue).await;
        }
        // The init timeout is enforced around the init sequence in `start_process`.
        Action::ArmInitTimer(_) => {}
        Action::Signal(signal) => {
            if let Some(child) = run.child.as_ref() {
                tracing::info!(worker = %name, pid = child.pid(), signal = signal.name(), "signalling worker");
                if let Err(e) = child.signal(signal) {
                    tracing::warn!(worker = %name, error = %e, "signal failed");
                }
            }
        }
        Action::ArmGraceTimer(d) => timers.grace = Some(Instant::now() + d),
        Action::ArmRestartTimer(d) => timers.restart = Some(Instant::now() + d),
        Action::Abandon => {
            if let Some(child) = run.child.take() {
                shared.reaper.adopt(name, child);
            }
            *run = Running::default();
        }
        Action::Publish(status) => {
            tracing::info!(worker = %name, %status, "status");
            let ready = matches!(status, WorkerStatus::Ready { .. });
            timers.heartbeat = (ready && !shared.config.heartbeat_interval.is_zero())
                .then(|| Instant::now() + shared.config.heartbeat_timeout);
            timers.memory = match (&shared.config.memory, ready) {
                (Some(policy), true) => Some(Instant::now() + policy.sample_interval),
                _ => None,
            };
            timers.disk = match (&shared.config.disk, ready) {
                (Some(policy), true) => Some(Instant::now() + policy.sample_interval),
                _ => None,
            };
            if status != WorkerStatus::Stopping {
                timers.grace = None;
            }
            shared.status.send_replace(status);
        }
        Action::Warn(message) => {
            if message.starts_with("slow startup") {
                shared.stats().slow_startups += 1;
            }
            tracing::warn!(worker = %name, "{message}");
        }
        Action::Info(message) => tracing::info!(worker = %name, "{message}"),
    }
}

/// Spawns the worker and runs its init sequence; queues what happened for the core.
async fn start_process(shared: &WorkerShared, run: &mut Running, queue: &mut VecDeque<Event>) {
    let spawned_at = Instant::now();
    let (mut child, port) = match spawn(shared).await {
        Ok(spawned) => spawned,
        Err(error) => {
            shared.stats().spawn_failures += 1;
            let reason = error.to_string();
            *shared.last_error.lock().expect("poisoned") = Some(error);
            queue.push_back(Event::StartFailed { reason });
            return;
        }
    };
    shared.stats().spawns += 1;
    queue.push_back(Event::Spawned { pid: child.pid() });
    let mut lines = child.take_stdout().map(LineReader::new);
    let stdin = child.take_stdin();
    if let Some(stderr) = child.take_stderr() {
        drain_stderr(shared, stderr);
    }
    let bound = shared.config.init_timeout;
    let outcome = tokio::time::timeout(bound, init(shared, &mut child, &mut lines, port)).await;
    match outcome {
        Ok(Ok(port)) => {
            let startup = spawned_at.elapsed();
            shared.stats().last_startup_ms = Some(startup.as_millis() as u64);
            *run = Running {
                child: Some(child),
                lines,
                _stdin: stdin,
            };
            queue.push_back(Event::Connected { port, startup });
        }
        Ok(Err(InitFailure::Exited(status))) => {
            let error = WorkerError::ExitedDuringInit {
                name: shared.name.clone(),
                status: describe_exit(status),
            };
            *shared.last_error.lock().expect("poisoned") = Some(error);
            queue.push_back(Event::Exited { status });
        }
        Ok(Err(InitFailure::Error(error))) => {
            let reason = error.to_string();
            *shared.last_error.lock().expect("poisoned") = Some(error);
            *run = Running {
                child: Some(child),
                lines: None,
                _stdin: stdin,
            };
            queue.push_back(Event::StartFailed { reason });
        }
        Err(_) => {
            *shared.last_error.lock().expect("poisoned") = Some(WorkerError::InitTimeout {
                name: shared.name.clone(),
                after: bound,
            });
            *run = Running {
                child: Some(child),
                lines: None,
                _stdin: stdin,
            };
            queue.push_back(Event::InitTimedOut);
        }
    }
}

async fn spawn(shared: &WorkerShared) -> Result<(Box<dyn ChildProc>, u16), WorkerError> {
    let name = &shared.name;
    let config = &shared.config;
    let port = shared.ports.allocate(&shared.env, name).await?;
    let (vars, refused) = sanitize_env(name, &config.env);
    shared.stats().env_rejections += refused.len() as u64;
    if let Err(e) = make_dirs(&shared.env, &config.dir).await {
        return Err(io_spawn_error(name, &format!("creating {}", config.dir), e));
    }
    let mut spec = ProcSpec::new(config.program.clone())
        .arg("--name")
        .arg(name.clone())
        .arg("--port")
        .arg(port.to_string())
        .arg("--cache-dir")
        .arg(CACHE_DIR)
        .arg("--heartbeat-ms")
        .arg(config.heartbeat_interval.as_millis().to_string());
    if let Some(disk) = &config.disk {
        spec = spec
            .arg("--disk-quota-bytes")
            .arg(disk.quota_bytes.to_string());
        if let Some(cap) = disk.cache_cap_bytes {
            spec = spec.arg("--cache-cap-bytes").arg(cap.to_string());
        }
    }
    spec.args.extend(config.args.iter().cloned());
    spec.env = vars;
    spec.env_clear = true;
    spec.cwd = Some(config.dir.clone());
    tracing::info!(worker = %name, program = %config.program, port, "spawning worker");
    shared
        .env
        .procs()
        .spawn(&spec)
        .await
        .map(|child| (child, port))
        .map_err(|e| io_spawn_error(name, &config.program, e))
}

/// The worker's cache directory, relative to its own directory.
const CACHE_DIR: &str = "cache";

/// Creates the worker's directory and its cache directory and makes their names durable:
/// each directory's entry is synced in its parent, from the disk's root down. Without
/// this, what the worker syncs inside them (cache files, its snapshot) would still vanish
/// with the host: a name is durable only once its parent directory is synced.
async fn make_dirs(env: &crate::env::Env, dir: &str) -> io::Result<()> {
    env.create_dir_all_durable(&format!("{dir}/{CACHE_DIR}"))
        .await
}

fn io_spawn_error(name: &str, what: &str, e: io::Error) -> WorkerError {
    match e.raw_os_error() {
        Some(24) | Some(23) => WorkerError::FdExhausted {
            name: name.to_string(),
            detail: format!("{what}: {e}"),
        },
        _ => WorkerError::SpawnFailed {
            name: name.to_string(),
            reason: format!("{what}: {e}"),
        },
    }
}

enum InitFailure {
    Exited(ExitStatus),
    Error(WorkerError),
}

enum InitWake {
    Exited(io::Result<ExitStatus>),
    Line(io::Result<Line>),
    Connected(io::Result<()>),
}

/// Waits for the ready line and, side by side, connects to the endpoint on the retry
/// schedule (the endpoint may lag the process: a slow start, a busy machine).
async fn init(
    shared: &WorkerShared,
    child: &mut Box<dyn ChildProc>,
    lines: &mut Option<LineReader<ChildOutput>>,
    port: u16,
) -> Result<u16, InitFailure> {
    let name = &shared.name;
    let mut schedule = super::retry::RetrySchedule::new(shared.config.connect.clone());
    let mut ready_port: Option<u16> = None;
    let mut connected_port: Option<u16> = None;
    let mut attempt: Option<crate::env::BoxFuture<'_, io::Result<()>>> =
        next_attempt(shared, &mut schedule, port);
    loop {
        if let (Some(ready), Some(connected)) = (ready_port, connected_port) {
            if ready != connected {
                return Err(InitFailure::Error(WorkerError::Protocol {
                    name: name.clone(),
                    detail: format!("ready on port {ready}, but asked to listen on {connected}"),
                }));
            }
            return Ok(connected);
        }
        let wake = tokio::select! {
            biased;
            status = child.wait() => InitWake::Exited(status),
            line = line_opt(lines) => InitWake::Line(line),
            result = async { match attempt.as_mut() { Some(a) => a.await, None => std::future::pending().await } } => InitWake::Connected(result),
        };
        match wake {
            InitWake::Exited(status) => {
                let status = status.unwrap_or(ExitStatus::from_signal(9));
                return Err(InitFailure::Exited(status));
            }
            InitWake::Line(Ok(Line::Text(bytes))) => match decode_reply(&bytes) {
                Ok(Reply::Ready { port: Some(p), .. }) => ready_port = Some(p),
                Ok(Reply::Ready { port: None, .. }) => {
                    return Err(InitFailure::Error(WorkerError::Protocol {
                        name: name.clone(),
                        detail: "ready without an endpoint port".into(),
                    }));
                }
                Ok(Reply::Error { code, message, .. }) => {
                    return Err(InitFailure::Error(WorkerError::Refused {
                        name: name.clone(),
                        code: format!("{code:?}").to_lowercase(),
                        message,
                    }));
                }
                Ok(_) => {}
                Err(e) => {
                    shared.stats().malformed_lines += 1;
                    tracing::warn!(worker = %name, error = %e, "malformed line during init");
                }
            },
            InitWake::Line(Ok(Line::TooLong)) => shared.stats().malformed_lines += 1,
            InitWake::Line(Ok(Line::Eof) | Err(_)) => {
                *lines = None;
                if ready_port.is_none() {
                    return Err(InitFailure::Error(WorkerError::Protocol {
                        name: name.clone(),
                        detail: "stdout closed before the ready line".into(),
                    }));
                }
            }
            InitWake::Connected(Ok(())) => {
                attempt = None;
                connected_port = Some(port);
            }
            InitWake::Connected(Err(e)) => {
                tracing::info!(worker = %name, attempt = schedule.attempts(), error = %e, "endpoint connect attempt failed");
                attempt = next_attempt(shared, &mut schedule, port);
                if attempt.is_none() {
                    return Err(InitFailure::Error(WorkerError::ConnectFailed {
                        name: name.clone(),
                        attempts: schedule.attempts(),
                        last: e.to_string(),
                    }));
                }
            }
        }
    }
}

/// The next connect attempt after its delay, or `None` when the schedule is spent.
fn next_attempt<'a>(
    shared: &'a WorkerShared,
    schedule: &mut super::retry::RetrySchedule,
    port: u16,
) -> Option<crate::env::BoxFuture<'a, io::Result<()>>> {
    let delay: Duration = schedule.next_delay(shared.env.random().next_u64())?;
    let attempt = schedule.attempts();
    shared.stats().connect_attempts += 1;
    Some(Box::pin(async move {
        tokio::time::sleep(delay).await;
        let addr = NetAddr::new(shared.env.host(), port);
        tracing::info!(worker = %shared.name, attempt, %addr, "connecting to worker endpoint");
        shared.env.net().connect(&addr).await.map(drop)
    }))
}

/// Logs what the worker writes on stderr, so its pipe never fills and blocks it.
fn drain_stderr(shared: &WorkerShared, mut stderr: ChildOutput) {
    let name = shared.name.clone();
    drop(shared.env.spawn("worker-stderr", async move {
        let mut buf = vec![0u8; 4096];
        loop {
            match stderr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => tracing::debug!(worker = %name, bytes = n, "worker stderr"),
            }
        }
    }));
}
