//! The worker binary: the real process behind one session (see `engine::workers::program`).
//!
//! Disk paths are relative to the working directory the parent started it in; the
//! endpoint listens on loopback. Logs go to stderr (INFO and above).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the worker binary's main is a real environment's entry point: it reads the OS's pid, cwd and signals"
)]

use engine::env::real::{RealEnvOptions, real_env};
use engine::workers::program::{WorkerIo, run_worker};
use tokio::signal::unix::{SignalKind, signal};

/// Exit code when the process cannot even start its runtime.
const EXIT_START_FAILED: i32 = 1;

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("worker: cannot start the runtime: {e}");
            std::process::exit(EXIT_START_FAILED);
        }
    };
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("worker: cannot read the working directory: {e}");
            std::process::exit(EXIT_START_FAILED);
        }
    };
    let code = runtime.block_on(async move {
        let env = real_env(RealEnvOptions::loopback(cwd));
        // Installed before anything is written, so a parent that saw `Ready` may rely
        // on SIGTERM being a graceful stop.
        let terminate = match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => Some(Box::pin(async move {
                sigterm.recv().await;
            }) as engine::env::BoxFuture<'static, ()>),
            Err(e) => {
                tracing::warn!(error = %e, "no SIGTERM handler: SIGTERM will kill the worker");
                None
            }
        };
        let io = WorkerIo {
            stdin: Box::new(tokio::io::stdin()),
            stdout: Box::new(tokio::io::stdout()),
            terminate,
            pid: std::process::id(),
        };
        run_worker(io, env, args).await
    });
    // Do not wait for the runtime's blocking threads: one may sit in a read of stdin
    // that only the parent can end.
    runtime.shutdown_background();
    std::process::exit(code);
}
