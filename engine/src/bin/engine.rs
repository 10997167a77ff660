//! The `engine` binary: `engine serve` runs the engine for real on loopback (the real
//! environment, real worker child processes, the gateway over real TCP), and
//! `engine token` mints a client token for it, and `engine upstream` serves the local
//! model API (an echo model) that `engine serve --upstream` sends each query to.
//!
//! This is a real environment's entry point, like the worker binary: the few places
//! that reach the OS directly (the runtime, the wall clock for a token's expiry, the
//! data directory, signals) say so with a narrow `#[allow]`. Everything else goes
//! through `engine::env::real`.
//!
//! Bad input (a bad flag, a missing secret, no worker binary) is a clear message and
//! exit status 2, never a panic.

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};
use engine::env::real::{RealEnvOptions, real_env};
use engine::gateway::{Claims, TokenKeys};
use engine::sessions::QueryMode;
use engine::sessions::lock::SessionLockConfig;
use engine::upstream::{
    AnswerPolicy, ExpiredPolicy, LocalUpstream, PacedStream, TlsConfig, TlsIdentity,
    UpstreamConfig, certificates_from_pem,
};
use engine::{Engine, EngineConfig, EngineError, LockChoice};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Exit status for bad input (as `chaos`).
const EXIT_USAGE: u8 = 2;
/// Exit status when the server could not start or stop cleanly.
const EXIT_FAILED: u8 = 1;
/// Accepted clock difference between a token's issuer and this server.
const TOKEN_SKEW: Duration = Duration::from_secs(30);
/// How long a shutdown waits for live sessions to end before stopping their workers
/// anyway.
const SHUTDOWN_SESSIONS_MAX: Duration = Duration::from_secs(15);

/// The agent platform engine, for real on this machine.
#[derive(Parser, Debug)]
#[command(name = "engine", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the gateway (HTTP and WebSocket) on loopback, with real worker processes.
    Serve(Box<ServeArgs>),
    /// Print a client token (an HS256 JWT) the server started with the same secret accepts.
    Token(TokenArgs),
    /// Serve the local model API (an echo model) on loopback, for `serve --upstream`.
    Upstream(UpstreamArgs),
}

#[derive(Args, Debug)]
struct UpstreamArgs {
    /// Loopback port to listen on (0 picks a free one; the `listening on` line says which).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The key callers must send as `x-api-key`.
    #[arg(
        long,
        env = "ENGINE_UPSTREAM_KEY",
        hide_env_values = true,
        value_parser = NonEmptyStringValueParser::new()
    )]
    api_key: String,
    /// Serve over TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PKCS#8 PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Stream answers at a model's pace: milliseconds before each event after the
    /// first (0: all at once).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    stream_pace_ms: u64,
}

#[derive(Args, Debug)]
struct SecretArg {
    /// The shared secret tokens are signed with: at least 32 bytes (HS256's key size).
    #[arg(
        long,
        env = "ENGINE_TOKEN_SECRET",
        hide_env_values = true,
        value_parser = NonEmptyStringValueParser::new()
    )]
    token_secret: String,
}

/// The least a token secret may hold: HS256 signs with a 256-bit key, and a shorter
/// secret can be guessed offline from any one token.
const TOKEN_SECRET_BYTES_MIN: usize = 32;

/// The token keys of `secret`, refused under [`TOKEN_SECRET_BYTES_MIN`] (checked here,
/// not by clap, whose message would quote the secret).
fn token_keys(secret: &SecretArg, skew: Duration) -> Result<TokenKeys, Failed> {
    let bytes = secret.token_secret.len();
    if bytes < TOKEN_SECRET_BYTES_MIN {
        return Err(Failed::usage(format!(
            "the token secret has {bytes} bytes; it needs at least {TOKEN_SECRET_BYTES_MIN} \
             (make one with: openssl rand -hex 32)"
        )));
    }
    Ok(TokenKeys::new(secret.token_secret.as_bytes(), skew))
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Loopback port to listen on (0 picks a free one; the `listening on` line says which).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Directory for the workers' files (created if missing).
    #[arg(long, default_value = "results/engine-data")]
    data_dir: PathBuf,
    /// The worker binary [default: `worker` next to this executable].
    #[arg(long)]
    worker_bin: Option<PathBuf>,
    #[command(flatten)]
    secret: SecretArg,
    /// Live sessions at most.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    session_limit: u64,
    /// Pre-warmed workers the pool keeps ready (0: every session cold-starts; `/ready`
    /// then never answers 200).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=64))]
    prewarm: u64,
    /// Pause before each streamed part of an answer, in milliseconds (a model's token
    /// rate; 0: as fast as the worker can).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    answer_pace_ms: u64,
    /// Accepted clock difference between the token issuer and this server, in seconds
    /// (a token is still accepted this long after its `exp`).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=600))]
    token_skew_secs: u64,
    /// A session with no message from its user for this long ends, in seconds (at least
    /// the 300 s a new session waits for its first message).
    #[arg(long, default_value_t = 1800, value_parser = clap::value_parser!(u64).range(300..=604_800))]
    idle_timeout_secs: u64,
    /// A query sent while one runs waits behind it (`queue`) or is refused with
    /// `query_in_progress` (`reject`).
    #[arg(long, default_value = "reject", value_parser = ["queue", "reject"])]
    queries: String,
    /// The model API each query goes to first, as HOST:PORT (see `engine upstream`);
    /// without it the worker gets each query as it is.
    #[arg(long)]
    upstream: Option<engine::env::NetAddr>,
    /// The key sent to the model API as `x-api-key`.
    #[arg(
        long,
        env = "ENGINE_UPSTREAM_KEY",
        hide_env_values = true,
        value_parser = NonEmptyStringValueParser::new()
    )]
    upstream_key: Option<String>,
    /// Reach the model API over TLS, trusting the certificates of this PEM file as roots.
    #[arg(long, value_name = "FILE", requires = "upstream")]
    upstream_tls_root: Option<PathBuf>,
    /// The name the model API's certificate must carry (default: --upstream's host).
    #[arg(long, requires = "upstream_tls_root")]
    upstream_tls_name: Option<String>,
    /// An expired model API certificate is refused (`block`) or accepted with a
    /// warning (`warn`).
    #[arg(long, default_value = "block", value_parser = ["block", "warn"], requires = "upstream_tls_root")]
    upstream_tls_expired: String,
    /// Warn of a model API certificate expiring within this many days.
    #[arg(long, default_value_t = 14, requires = "upstream_tls_root")]
    upstream_tls_warn_days: u64,
    /// Take a stored session's lock at this lock service (HOST:PORT, hosted by another
    /// `engine serve --serve-lock`) before resuming it.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "serve_lock")]
    lock_service: Option<engine::env::NetAddr>,
    /// Host the session lock service on this loopback port and take a stored session's
    /// lock there before resuming it (other instances use it with `--lock-service`).
    /// Leases last at most 30 s; started again on the same data directory after
    /// serving with leases still live, the service grants nothing for 30 s.
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    serve_lock: Option<u16>,
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// The user.
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    sub: String,
    /// The user's role (`admin`, `member`, `viewer`).
    #[arg(long, default_value = "member", value_parser = NonEmptyStringValueParser::new())]
    role: String,
    /// Validity from now, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=10 * 365 * 24 * 3600))]
    ttl_secs: u64,
    #[command(flatten)]
    secret: SecretArg,
}

/// A failure of the command: printed as `engine: …`, with the exit status.
struct Failed {
    message: String,
    code: u8,
}

impl Failed {
    fn usage(message: impl Into<String>) -> Self {
        Failed {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }

    fn runtime(message: impl Into<String>) -> Self {
        Failed {
            message: message.into(),
            code: EXIT_FAILED,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and errors to stderr (exit 2).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Token(args) => token(args),
        Command::Upstream(args) => upstream(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("engine: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "a token minted outside any engine is stamped with the machine's wall clock"
)]
fn unix_now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn token(args: TokenArgs) -> Result<(), Failed> {
    let keys = token_keys(&args.secret, TOKEN_SKEW)?;
    let token = keys.issue(&Claims {
        sub: args.sub,
        role: args.role,
        exp: unix_now_s().saturating_add(args.ttl_secs),
    });
    println!("{token}");
    Ok(())
}

/// Where the worker binary is: the flag, else `worker` next to this executable (cargo
/// builds both into `target/<profile>/`). Absolute, because workers run in their own
/// directories.
fn worker_program(flag: Option<PathBuf>) -> Result<PathBuf, Failed> {
    let path = match flag {
        Some(p) => p,
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.join("worker")))
            .ok_or_else(|| Failed::usage("cannot locate this executable: pass --worker-bin"))?,
    };
    if !path.is_file() {
        return Err(Failed::usage(format!(
            "the worker binary is not at {}: build it with `cargo build -p engine --bin worker` or pass --worker-bin",
            path.display()
        )));
    }
    std::fs::canonicalize(&path)
        .map_err(|e| Failed::usage(format!("worker binary {}: {e}", path.display())))
}

#[allow(
    clippy::disallowed_methods,
    reason = "the real environment needs its root directory to exist before it is built"
)]
fn data_dir(dir: &Path) -> Result<PathBuf, Failed> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::canonicalize(dir))
        .map_err(|e| Failed::usage(format!("data directory {}: {e}", dir.display())))
}

fn serve(args: ServeArgs) -> Result<(), Failed> {
    init_logging();
    let program = worker_program(args.worker_bin.clone())?;
    let dir = data_dir(&args.data_dir)?;
    // Held until the process exits: the kernel releases it with the process.
    let _lock = lock_data_dir(&dir)?;
    run_to_end(run(args, program, dir))
}

/// Takes the data directory for this process alone: its session store takes no file
/// locks, so two engines on one directory would overwrite each other's sessions.
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    unsafe_code,
    reason = "an entry point's exclusive lock on its data directory; flock(2) has no safe wrapper in libc"
)]
fn lock_data_dir(dir: &Path) -> Result<std::fs::File, Failed> {
    use std::os::fd::AsRawFd;
    let path = dir.join("engine.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failed::usage(format!("lock file {}: {e}", path.display())))?;
    // SAFETY: flock(2) takes a descriptor this function owns and plain flags.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        return Err(Failed::usage(format!(
            "another engine is serving the data directory {}: only one engine may use a data directory (pass another --data-dir)",
            dir.display()
        )));
    }
    Ok(file)
}

/// Logs go to stderr (stdout carries only the `listening on` line).
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .init();
}

/// Runs `work` on a current-thread runtime until it returns.
fn run_to_end(work: impl std::future::Future<Output = Result<(), Failed>>) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::runtime(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(work);
    // The accept loop and any connection still open are tasks that never end by
    // themselves: do not wait for them.
    runtime.shutdown_background();
    result
}

/// Prints `listening on ADDR` for whoever started us; a closed stdout is only logged.
fn print_listening(addr: &engine::env::NetAddr) {
    let mut out = std::io::stdout().lock();
    let printed = writeln!(out, "listening on {addr}").and_then(|()| out.flush());
    if let Err(e) = printed {
        tracing::warn!("cannot print the listening line: {e}");
    }
}

/// The production profile with this command line's choices.
fn config(args: &ServeArgs, program: &Path) -> Result<EngineConfig, Failed> {
    let keys = token_keys(&args.secret, Duration::from_secs(args.token_skew_secs))?;
    let mut config = EngineConfig::production(program.to_string_lossy().into_owned(), keys);
    config.port = args.port;
    let sessions = &mut config.sessions;
    sessions.session_limit = usize::try_from(args.session_limit).unwrap_or(usize::MAX);
    sessions.limits.idle_timeout = Duration::from_secs(args.idle_timeout_secs);
    sessions.pool.size_target = usize::try_from(args.prewarm).unwrap_or(usize::MAX);
    sessions.answer_pace =
        (args.answer_pace_ms > 0).then(|| Duration::from_millis(args.answer_pace_ms));
    sessions.queries = if args.queries == "queue" {
        QueryMode::Queue
    } else {
        QueryMode::Reject
    };
    if let Some(addr) = &args.upstream {
        let key = args.upstream_key.clone().ok_or_else(|| {
            Failed::usage("--upstream needs --upstream-key (or ENGINE_UPSTREAM_KEY)")
        })?;
        let mut upstream = UpstreamConfig::new(addr.clone(), key);
        if let Some(path) = &args.upstream_tls_root {
            let roots = read_pem(path, certificates_from_pem)?;
            upstream.tls = Some(TlsConfig {
                roots,
                server_name: args.upstream_tls_name.clone().unwrap_or(addr.host.clone()),
                expired: if args.upstream_tls_expired == "warn" {
                    ExpiredPolicy::Warn
                } else {
                    ExpiredPolicy::Block
                },
                expiring_soon_window: Duration::from_secs(
                    args.upstream_tls_warn_days.saturating_mul(86_400),
                ),
            });
        }
        sessions.upstream = Some(upstream);
    }
    config.lock = match (&args.lock_service, args.serve_lock) {
        (Some(service), _) if service.port == 0 => {
            return Err(Failed::usage(format!(
                "--lock-service {service}: the port must be 1..=65535"
            )));
        }
        (Some(service), _) => LockChoice::Use {
            service: service.clone(),
            config: SessionLockConfig::standard(),
        },
        (None, Some(port)) => LockChoice::Serve {
            port,
            config: SessionLockConfig::standard(),
        },
        (None, None) => LockChoice::None,
    };
    Ok(config)
}

/// Starts the engine (`Engine::start`, the one composition root) on the real
/// environment; serves until SIGINT or SIGTERM, then drains and stops.
async fn run(args: ServeArgs, program: PathBuf, dir: PathBuf) -> Result<(), Failed> {
    let stop = stop_signal().map_err(|e| Failed::runtime(format!("cannot handle signals: {e}")))?;
    let env = real_env(RealEnvOptions::loopback(dir.clone()));
    let config = config(&args, &program)?;
    let engine = Engine::start(env, config).await.map_err(|e| match e {
        // A refused key is the operator's configuration, like a bad argument.
        EngineError::UpstreamKey(_) | EngineError::UpstreamTls(_) => Failed::usage(e.to_string()),
        e => Failed::runtime(e.to_string()),
    })?;
    let addr = engine.addr().clone();
    if let Some(service) = engine.lock_service() {
        tracing::info!(addr = %service.addr(), "session lock service listening");
    }
    tracing::info!(
        %addr,
        worker = %program.display(),
        data_dir = %dir.display(),
        "serving"
    );
    print_listening(&addr);
    stop.await;
    tracing::info!("stop requested: draining");
    let drained = engine.drain(SHUTDOWN_SESSIONS_MAX).await;
    engine.stop().await;
    tracing::info!(
        sessions = drained.sessions_ended,
        warm_destroyed = drained.warm_destroyed,
        "stopped"
    );
    Ok(())
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM. The handlers are installed before
/// the server listens, so a caller that saw `listening on` may rely on a graceful stop.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            biased;
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

#[allow(
    clippy::disallowed_methods,
    reason = "an entry point reads the operator's certificate files once, before it serves"
)]
fn read_file(path: &Path) -> Result<Vec<u8>, Failed> {
    std::fs::read(path).map_err(|e| Failed::usage(format!("cannot read {}: {e}", path.display())))
}

/// Reads the PEM file at `path` and parses it with `parse`; either failure is a usage
/// error naming the file.
fn read_pem<T>(path: &Path, parse: impl FnOnce(&[u8]) -> Result<T, String>) -> Result<T, Failed> {
    let text = read_file(path)?;
    parse(&text).map_err(|e| Failed::usage(format!("{}: {e}", path.display())))
}

fn upstream(args: UpstreamArgs) -> Result<(), Failed> {
    init_logging();
    run_to_end(async {
        let stop =
            stop_signal().map_err(|e| Failed::runtime(format!("cannot handle signals: {e}")))?;
        // The model server keeps nothing on disk; the environment wants a directory.
        let env = real_env(RealEnvOptions::loopback(std::env::temp_dir()));
        let listener =
            env.net().bind(args.port).await.map_err(|e| {
                Failed::runtime(format!("cannot listen on port {}: {e}", args.port))
            })?;
        let addr = listener.local_addr();
        let identity = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                let key = read_file(key)?;
                Some(read_pem(cert, |chain| TlsIdentity::from_pem(chain, &key))?)
            }
            _ => None,
        };
        let pace = Duration::from_millis(args.stream_pace_ms);
        let policy =
            (!pace.is_zero()).then(|| Arc::new(PacedStream(pace)) as Arc<dyn AnswerPolicy>);
        let model = LocalUpstream::new(args.api_key, policy);
        let served = model.clone();
        let serve_env = env.clone();
        let serving = match identity {
            None => env.spawn("upstream", async move {
                served.serve(serve_env, listener).await;
            }),
            Some(identity) => env.spawn("upstream", async move {
                if let Err(e) = served.serve_tls(serve_env, listener, &identity).await {
                    tracing::error!("cannot serve TLS: {e}");
                }
            }),
        };
        print_listening(&addr);
        stop.await;
        serving.abort();
        tracing::info!(calls = model.calls(), "stopped");
        Ok(())
    })
}
