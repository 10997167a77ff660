//! The worker as a simulated program: the very same `engine::workers::program::run_worker` the
//! real binary runs, over a simulated process's stdio, signals and host environment.

use engine::env::{BoxFuture, Env, ScopedDisk, Signal};
use engine::workers::program::{WorkerIo, run_worker};
use sim::procs::{ProgramCtx, Signals, SimProcs};
use std::sync::Arc;

/// The program's environment with its disk rooted at its working directory, as a real
/// worker's is (`None` when the directory cannot be opened: the program exits 127).
pub(crate) fn rooted_at(env: Env, cwd: Option<String>) -> Option<Env> {
    match cwd {
        Some(dir) => ScopedDisk::new(env.disk_handle(), &dir)
            .ok()
            .map(|disk| env.with_disk(Arc::new(disk))),
        None => Some(env),
    }
}

/// Installs the worker at `path` on the host of `procs`.
pub fn install_worker(procs: &SimProcs, path: &str) {
    procs.install(path, Arc::new(|ctx| Box::pin(worker_main(ctx))));
}

async fn worker_main(ctx: ProgramCtx) -> i32 {
    // Like the real binary, which installs its SIGTERM handler before it writes a line.
    ctx.handle_signals();
    let ProgramCtx {
        pid,
        args,
        stdin,
        stdout,
        env,
        signals,
        cwd,
        ..
    } = ctx;
    let Some(env) = rooted_at(env, cwd) else {
        return 127;
    };
    let io = WorkerIo {
        stdin,
        stdout,
        terminate: Some(terminate(signals, env.clone())),
        pid,
    };
    run_worker(io, env, args).await
}

/// Resolves on SIGTERM. The simulated process can only handle SIGTERM, SIGINT and SIGHUP
/// all together, while the real binary handles SIGTERM alone: SIGINT and SIGHUP keep
/// their default (terminate the process with that signal), so they are re-raised with
/// the default dispositions restored. The re-raise runs on a task of its own: raised from
/// the worker's task, the rest of that task's current poll would still run (the process
/// ends at the task's next await), and the worker would be seen reacting to its own
/// closed stdin after its death, which a killed real process never does.
fn terminate(mut signals: Signals, env: Env) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let fatal = loop {
            match signals.recv().await {
                Some(Signal::Term) => return,
                Some(other) => break other,
                // No more signals can come: never resolve.
                None => std::future::pending::<()>().await,
            }
        };
        let _killer = env.spawn("worker-signal-default", async move {
            signals.reset();
            signals.raise(fatal);
        });
        std::future::pending::<()>().await
    })
}
