//! The async shell around one worker's lifecycle core: it owns the child process, feeds
//! the core what happened (commands, exits, heartbeats, measurements, the time) and
//! carries out its actions. Deadlines and decisions are the core's: the shell sleeps
//! until `poll_timeout()` (time since the worker's origin), measures what it is asked
//! to, and counts what its own I/O did.
//!
//! One task per worker, alive as long as the worker's handle: it waits for commands
//! when idle. Every `select!` only produces a wake-up value; the work happens after it,
//! so no future borrowing the child is alive while the child is signalled.

use super::WorkerError;
use super::lifecycle::{Action, Event, Note, describe_exit};
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

/// What the shell hands the core, one at a time and in order: an action's result is
/// fed in before anything that happened after it.
enum Input {
    Event(Event),
    /// The core's `poll_timeout()` has passed.
    Timeout,
    MemorySample(u64),
    CheckpointDone,
    DiskSample(u64),
    ReadOnlyFailed(bool),
}

enum Wake {
    Command(Option<Command>),
    Exited(io::Result<ExitStatus>),
    Line(io::Result<Line>),
    Timeout,
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
    let mut inputs: VecDeque<Input> = VecDeque::new();
    loop {
        while let Some(input) = inputs.pop_front() {
            for action in feed(&shared, input) {
                execute(&shared, action, &mut run, &mut inputs).await;
            }
        }
        // The core counts time from the worker's origin (tokio's clock: virtual in a
        // simulated world).
        let deadline = shared.core().poll_timeout().map(|at| shared.origin + at);
        let wake = tokio::select! {
            biased;
            command = commands.recv() => Wake::Command(command),
            status = wait_opt(&mut run.child) => Wake::Exited(status),
            line = line_opt(&mut run.lines) => Wake::Line(line),
            _ = sleep_opt(deadline) => Wake::Timeout,
        };
        match wake {
            Wake::Command(Some(Command::Event(event))) => inputs.push_back(Input::Event(event)),
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
                shared.stats().last_exit = Some(describe_exit(status));
                tracing::info!(worker = %shared.name, code = ?status.code(), signal = ?status.signal(), "worker process exited");
                inputs.push_back(Input::Event(Event::Exited { status }));
            }
            Wake::Line(line) => on_line(&shared, line, &mut run),
            Wake::Timeout => inputs.push_back(Input::Timeout),
        }
    }
}

/// Hands one input to the core, at the current time.
fn feed(shared: &WorkerShared, input: Input) -> Vec<Action> {
    let now = shared.elapsed();
    let mut core = shared.core();
    match input {
        Input::Event(event) => {
            // Only an event can fail a start, so only events take a draw (a restart's
            // jitter).
            let random = shared.env.random().next_u64();
            core.handle_event(now, event, random)
        }
        Input::Timeout => core.handle_timeout(now),
        Input::MemorySample(bytes) => core.handle_memory_sample(now, bytes),
        Input::CheckpointDone => core.handle_checkpoint_done(now),
        Input::DiskSample(used_bytes) => core.handle_disk_sample(used_bytes),
        Input::ReadOnlyFailed(on) => {
            core.handle_read_only_failed(on);
            Vec::new()
        }
    }
}

/// Asks the worker to persist its session before the memory watch stops it, waiting
/// `checkpoint_timeout` at most (a worker stuck in its allocation loop never answers).
async fn checkpoint(shared: &WorkerShared, port: u16) {
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

/// Tells the worker to enter or leave read-only mode, within the health bound; whether
/// it took the change.
async fn set_read_only(
    shared: &WorkerShared,
    port: u16,
    on: bool,
    used: u64,
    percent: u64,
) -> bool {
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
            true
        }
        failed => {
            tracing::warn!(worker = %shared.name, on, ?failed, "could not change read-only mode");
            false
        }
    }
}

/// Counts a decision of the core, and logs the ones that carry figures.
fn record(shared: &WorkerShared, note: Note) {
    let name = &shared.name;
    let mut stats = shared.stats();
    match note {
        Note::Crash => stats.crashes += 1,
        Note::SlowStartup => stats.slow_startups += 1,
        Note::ForcedKill => stats.forced_kills += 1,
        Note::Restart => stats.restarts += 1,
        Note::HangDetected => stats.hangs_detected += 1,
        Note::MemoryWarning { bytes, percent } => {
            stats.memory_warnings += 1;
            tracing::warn!(worker = %name, bytes, percent, "memory above the warning threshold");
        }
        Note::MemoryRestartDue {
            bytes,
            percent,
            growth_bytes_per_s,
        } => {
            stats.memory_restart_due = true;
            tracing::warn!(worker = %name, bytes, percent, growth_bytes_per_s, "memory growing into the limit: restart due, the owner decides when");
        }
        Note::MemoryRestart {
            bytes,
            percent,
            growth_bytes_per_s,
        } => {
            stats.memory_restarts += 1;
            tracing::warn!(worker = %name, bytes, percent, growth_bytes_per_s, "memory growing into the limit: checkpoint, then restart");
        }
        Note::DiskAlert {
            used_bytes,
            quota_bytes,
            percent,
        } => {
            stats.disk_alerts += 1;
            tracing::warn!(worker = %name, used = used_bytes, quota = quota_bytes, percent, "disk use above the alert threshold");
        }
    }
}

fn on_line(shared: &WorkerShared, line: io::Result<Line>, run: &mut Running) {
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
        Ok(Reply::Heartbeat { .. }) => shared.core().handle_heartbeat(shared.elapsed()),
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
    inputs: &mut VecDeque<Input>,
) {
    let name = &shared.name;
    match action {
        Action::Spawn => start_process(shared, run, inputs).await,
        Action::Signal(signal) => {
            if let Some(child) = run.child.as_ref() {
                tracing::info!(worker = %name, pid = child.pid(), signal = signal.name(), "signalling worker");
                if let Err(e) = child.signal(signal) {
                    tracing::warn!(worker = %name, error = %e, "signal failed");
                }
            }
        }
        Action::Abandon => {
            if let Some(child) = run.child.take() {
                shared.reaper.adopt(name, child);
            }
            *run = Running::default();
        }
        Action::Publish(status) => {
            tracing::info!(worker = %name, %status, "status");
            shared.status.send_replace(status);
        }
        Action::SampleMemory => {
            // Unreadable (or no process): no sample; the core asks again at the next.
            if let Some(child) = run.child.as_ref()
                && let Ok(bytes) = child.resident_bytes()
            {
                shared.stats().resident_bytes = Some(bytes);
                inputs.push_back(Input::MemorySample(bytes));
            }
        }
        Action::SampleDisk => {
            let used = super::request::dir_bytes(shared.env.disk(), &shared.config.dir);
            inputs.push_back(Input::DiskSample(used));
        }
        Action::Checkpoint { port } => {
            checkpoint(shared, port).await;
            inputs.push_back(Input::CheckpointDone);
        }
        Action::SetReadOnly {
            port,
            on,
            used_bytes,
            percent,
        } => {
            if !set_read_only(shared, port, on, used_bytes, percent).await {
                inputs.push_back(Input::ReadOnlyFailed(on));
            }
        }
        Action::ProposeCleanup {
            used_bytes,
            quota_bytes,
            large_file_bytes,
        } => {
            let dir = &shared.config.dir;
            let files = super::request::files_over(shared.env.disk(), dir, large_file_bytes);
            if !files.is_empty() {
                shared.file_oversight(OversightRequest::ApproveCleanup {
                    used_bytes,
                    quota_bytes,
                    files,
                });
            }
        }
        Action::FileOversight(request) => shared.file_oversight(request),
        Action::Note(note) => record(shared, note),
        Action::Warn(message) => tracing::warn!(worker = %name, "{message}"),
        Action::Info(message) => tracing::info!(worker = %name, "{message}"),
    }
}

/// Spawns the worker and runs its init sequence; queues what happened for the core.
async fn start_process(shared: &WorkerShared, run: &mut Running, queue: &mut VecDeque<Input>) {
    let spawned_at = Instant::now();
    let (mut child, port) = match spawn(shared).await {
        Ok(spawned) => spawned,
        Err(error) => {
            shared.stats().spawn_failures += 1;
            let reason = error.to_string();
            *shared.last_error.lock().expect("poisoned") = Some(error);
            queue.push_back(Input::Event(Event::StartFailed { reason }));
            return;
        }
    };
    shared.stats().spawns += 1;
    queue.push_back(Input::Event(Event::Spawned { pid: child.pid() }));
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
            queue.push_back(Input::Event(Event::Connected { port, startup }));
        }
        Ok(Err(InitFailure::Exited(status))) => {
            let error = WorkerError::ExitedDuringInit {
                name: shared.name.clone(),
                status: describe_exit(status),
            };
            *shared.last_error.lock().expect("poisoned") = Some(error);
            queue.push_back(Input::Event(Event::Exited { status }));
        }
        Ok(Err(InitFailure::Error(error))) => {
            let reason = error.to_string();
            *shared.last_error.lock().expect("poisoned") = Some(error);
            *run = Running {
                child: Some(child),
                lines: None,
                _stdin: stdin,
            };
            queue.push_back(Input::Event(Event::StartFailed { reason }));
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
            queue.push_back(Input::Event(Event::InitTimedOut));
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
                        code: code.name().to_string(),
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
