//! Scripted children: a [`ScriptedBehaviour`] turned into a program.

use super::options::{ScriptedBehaviour, ScriptedEnding};
use super::program::{ProgramCtx, SimProgram};
use engine::env::Signal;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// How the script's main part or its signal handler decided to end.
enum End {
    Code(i32),
    /// A scripted crash: a fault, counted.
    Crash(Signal),
    /// A signal whose default action ends the process: the parent's doing, not a fault.
    Default(Signal),
}

pub(crate) fn program(script: ScriptedBehaviour) -> SimProgram {
    let script = Arc::new(script);
    Arc::new(move |ctx| Box::pin(run(script.clone(), ctx)))
}

async fn run(script: Arc<ScriptedBehaviour>, ctx: ProgramCtx) -> i32 {
    let ProgramCtx {
        pid,
        stdin,
        mut stdout,
        memory,
        mut signals,
        ..
    } = ctx;
    // A program that never reads stdin still holds it open: the parent's writes fill the
    // pipe and block rather than fail.
    let _stdin = stdin;
    if script.handles_signals() {
        signals.handle();
    }
    if script.memory_bytes_initial > 0 {
        memory.set(script.memory_bytes_initial);
    }
    if script.memory_growth_bytes_per_s > 0 {
        memory.set_growth(script.memory_growth_bytes_per_s);
    }

    let faults = signals.proc.faults.clone();
    let main = async {
        tokio::time::sleep(script.start_delay).await;
        for (i, line) in script.stdout_lines.iter().enumerate() {
            if i > 0 && !script.line_interval.is_zero() {
                tokio::time::sleep(script.line_interval).await;
            }
            let mut bytes = line.clone().into_bytes();
            bytes.push(b'\n');
            if stdout.write_all(&bytes).await.is_err() {
                break;
            }
        }
        tokio::time::sleep(script.run_time).await;
        match script.ending {
            ScriptedEnding::Exit(code) => End::Code(code),
            ScriptedEnding::Crash(signal) => End::Crash(signal),
            ScriptedEnding::Hang => {
                // The main loop is stuck; signal handlers (if any) still run.
                faults.fire("proc.hang", &format!("pid {pid} (scripted) hangs"));
                std::future::pending().await
            }
        }
    };
    let handler = async {
        loop {
            match signals.recv().await {
                Some(Signal::Term) if script.ignore_sigterm => continue,
                Some(signal) => match script.term_exit_delay {
                    Some(delay) => {
                        tokio::time::sleep(delay).await;
                        return End::Code(0);
                    }
                    // Only SIGTERM was meant to be ignored: the others keep their
                    // default action.
                    None => return End::Default(signal),
                },
                None => std::future::pending::<()>().await,
            }
        }
    };
    let end = tokio::select! {
        biased;
        end = handler => end,
        end = main => end,
    };
    match end {
        End::Code(code) => code,
        End::Default(signal) => {
            signals.die(signal);
            std::future::pending().await
        }
        End::Crash(signal) => {
            let kind = if signal == Signal::Segv {
                "proc.crash_segv"
            } else {
                "proc.crash_signal"
            };
            signals.proc.faults.fire(
                kind,
                &format!("pid {pid} (scripted) dies of {}", signal.name()),
            );
            signals.die(signal);
            std::future::pending().await
        }
    }
}
