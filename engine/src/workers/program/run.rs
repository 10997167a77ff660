//! The worker's main: start-up (arguments, snapshot, endpoint, `Ready`), the serve loop,
//! and the graceful stop.
//!
//! The same function is the real binary's main (`src/bin/worker.rs`) and a simulated
//! program (`scenarios::stage::install_worker`): everything it touches comes in through
//! [`WorkerIo`] and the [`Env`].

use super::args::{self, WorkerArgs};
use super::handle::{Channel, Next, Shared, handle_line, send_now};
use super::lines::{Line, LineReader};
use super::protocol::{ErrorCode, PROTOCOL_VERSION, Reply, SnapshotState};
use super::snapshot;
use crate::env::{BoxFuture, Env, NetAddr, NetListener, NetStream, Task};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Exit code of a graceful stop (and of a stop because the parent went away).
pub const EXIT_OK: i32 = 0;
/// Exit code for bad arguments.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the endpoint cannot be bound.
pub const EXIT_BIND: i32 = 3;

/// Pause after a failed accept (EMFILE, say) so a persistent failure does not spin.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The worker's process-level plumbing.
pub struct WorkerIo {
    pub stdin: Box<dyn AsyncRead + Send + Unpin>,
    pub stdout: Box<dyn AsyncWrite + Send + Unpin>,
    /// Resolves when SIGTERM arrives (None: no handler installed, SIGTERM kills by default).
    pub terminate: Option<BoxFuture<'static, ()>>,
    /// The process id reported in `Ready` (the caller knows it; a simulated process has
    /// no `std::process::id()`).
    pub pid: u32,
}

/// Why the serve loop ended.
#[derive(Debug)]
enum Ending {
    ShutdownRequested,
    Terminated,
    StdinClosed,
    StdinFailed(io::Error),
    /// Writing to stdout failed: the parent is gone, nobody will read a `Bye`.
    ParentGone(io::Error),
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::ShutdownRequested => f.write_str("shutdown requested"),
            Ending::Terminated => f.write_str("terminated (SIGTERM)"),
            Ending::StdinClosed => f.write_str("stdin closed"),
            Ending::StdinFailed(e) => write!(f, "reading stdin failed: {e}"),
            Ending::ParentGone(e) => write!(f, "writing stdout failed (parent gone): {e}"),
        }
    }
}

/// Runs the worker until a graceful stop; returns the process exit code.
///
/// Exit codes: [`EXIT_OK`] after a `Shutdown` request, EOF on stdin, the `terminate`
/// future, or a failed write to stdout (the parent is gone: there is nobody left to
/// report a failure to, and the parent closing our pipes is how a session ends when the
/// parent itself dies, so it is not an error of the worker's); [`EXIT_USAGE`] for bad
/// arguments; [`EXIT_BIND`] when the endpoint's port cannot be bound.
pub async fn run_worker(io: WorkerIo, env: Env, args: Vec<String>) -> i32 {
    let WorkerIo {
        stdin,
        mut stdout,
        terminate,
        pid,
    } = io;
    let args = match args::parse(&args) {
        Ok(args) => args,
        Err(message) => {
            tracing::warn!(error = %message, "worker: bad arguments");
            let reply = Reply::Error {
                id: None,
                code: ErrorCode::Usage,
                message,
            };
            let _ = send_now(&mut stdout, &reply).await;
            return EXIT_USAGE;
        }
    };
    tracing::info!(name = %args.name, "worker starting");
    let (snapshot_state, restored) = match &args.snapshot {
        Some(path) => snapshot::load(&env, path).await,
        None => (SnapshotState::None, None),
    };
    let listener = match args.port {
        Some(port) => match env.net().bind(port).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                let code = if e.kind() == io::ErrorKind::AddrInUse {
                    ErrorCode::AddrInUse
                } else {
                    ErrorCode::Io
                };
                tracing::warn!(port, error = %e, "worker: cannot bind its endpoint");
                let reply = Reply::Error {
                    id: None,
                    code,
                    message: format!("binding port {port}: {e}"),
                };
                let _ = send_now(&mut stdout, &reply).await;
                return EXIT_BIND;
            }
        },
        None => None,
    };
    let ready = Reply::Ready {
        pid,
        port: listener.as_ref().map(|l| l.local_addr().port),
        version: PROTOCOL_VERSION,
        snapshot: snapshot_state,
    };
    if let Err(e) = send_now(&mut stdout, &ready).await {
        tracing::warn!(error = %e, "worker: parent gone before ready");
        return EXIT_OK;
    }
    let name = args.name.clone();
    let heartbeat = heartbeat_interval(&args);
    let shared = Arc::new(Shared::new(env, args, restored));
    let mut serve = Serve {
        shared,
        stdin: LineReader::new(stdin),
        stdout,
        terminate,
        listener,
        heartbeat,
        heartbeat_seq: 0,
        connections: Vec::new(),
    };
    let ending = serve.run().await;
    tracing::info!(name = %name, ending = %ending, "worker stopping");
    serve.stop(ending).await
}

fn heartbeat_interval(args: &WorkerArgs) -> Option<Interval> {
    if args.heartbeat_ms == 0 {
        return None;
    }
    let period = Duration::from_millis(args.heartbeat_ms);
    // The first beat one period after Ready, not at once.
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    // A worker that was busy (or paused) beats once when it can, not a burst.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(interval)
}

/// The serving worker's state.
struct Serve {
    shared: Arc<Shared>,
    stdin: LineReader<Box<dyn AsyncRead + Send + Unpin>>,
    stdout: Box<dyn AsyncWrite + Send + Unpin>,
    terminate: Option<BoxFuture<'static, ()>>,
    listener: Option<Box<dyn NetListener>>,
    heartbeat: Option<Interval>,
    heartbeat_seq: u64,
    /// The endpoint's connection tasks (finished ones are pruned at each accept).
    connections: Vec<Task<()>>,
}

impl Serve {
    async fn run(&mut self) -> Ending {
        loop {
            // Priorities: a stop signal first; then the heartbeat, so a flood of requests
            // cannot make a busy worker look dead; then the parent; then new connections.
            // Every branch is cancel-safe (the line reader keeps its state in itself).
            tokio::select! {
                biased;
                () = wait_terminate(&mut self.terminate) => return Ending::Terminated,
                () = tick(&mut self.heartbeat) => {
                    self.heartbeat_seq += 1;
                    let beat = Reply::Heartbeat { seq: self.heartbeat_seq };
                    if let Err(e) = send_now(&mut self.stdout, &beat).await {
                        return Ending::ParentGone(e);
                    }
                }
                line = self.stdin.next_line() => match line {
                    Ok(Line::Eof) => return Ending::StdinClosed,
                    Err(e) => return Ending::StdinFailed(e),
                    Ok(line) => {
                        match handle_line(&self.shared, line, Channel::Stdin, &mut self.stdout).await {
                            Ok(Next::Continue) => {}
                            Ok(Next::Shutdown) => return Ending::ShutdownRequested,
                            Err(e) => return Ending::ParentGone(e),
                        }
                    }
                },
                accepted = accept(&mut self.listener) => match accepted {
                    Ok((stream, peer)) => self.serve_connection(stream, peer),
                    Err(e) => {
                        tracing::warn!(error = %e, "worker: accept failed");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    }
                },
            }
        }
    }

    fn serve_connection(&mut self, stream: Box<dyn NetStream>, peer: NetAddr) {
        self.connections.retain(|task| !task.is_finished());
        tracing::debug!(peer = %peer, "worker: endpoint connection");
        let shared = self.shared.clone();
        let task = self
            .shared
            .env
            .spawn("worker-conn", serve_connection(shared, stream));
        self.connections.push(task);
    }

    /// The graceful stop: no more connections, `Bye` to the parent if it listens.
    async fn stop(mut self, ending: Ending) -> i32 {
        self.listener = None;
        for task in &self.connections {
            task.abort();
        }
        if !matches!(ending, Ending::ParentGone(_)) {
            // The parent may already be gone (stdin closed because it died): then this
            // write fails and there is nobody to tell.
            let _ = send_now(&mut self.stdout, &Reply::Bye).await;
        }
        let _ = self.stdout.shutdown().await;
        EXIT_OK
    }
}

/// Serves one endpoint connection: requests in, replies out, until the peer closes it.
async fn serve_connection(shared: Arc<Shared>, stream: Box<dyn NetStream>) {
    let mut lines = LineReader::new(stream);
    loop {
        let line = match lines.next_line().await {
            Ok(Line::Eof) | Err(_) => break,
            Ok(line) => line,
        };
        // Replies go back on the same stream; the reader holds no borrow between lines.
        if handle_line(&shared, line, Channel::Endpoint, lines.get_mut())
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = lines.get_mut().shutdown().await;
}

async fn wait_terminate(terminate: &mut Option<BoxFuture<'static, ()>>) {
    match terminate {
        Some(signal) => signal.await,
        None => std::future::pending().await,
    }
}

async fn tick(heartbeat: &mut Option<Interval>) {
    match heartbeat {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn accept(
    listener: &mut Option<Box<dyn NetListener>>,
) -> io::Result<(Box<dyn NetStream>, NetAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}
