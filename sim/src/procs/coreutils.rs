//! Small simulated stand-ins for the system programs the conformance contract runs, so
//! the same contract passes against real processes and simulated ones.

use super::host::SimProcs;
use super::program::{ProgramCtx, SimProgram};
use engine::env::Signal;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Installs `/bin/cat`, `/bin/sh`, `/bin/true` and `/bin/false` on the host.
pub fn install_coreutils(procs: &SimProcs) {
    procs.install("/bin/cat", cat());
    procs.install("/bin/sh", sh());
    procs.install("/bin/true", exits(0));
    procs.install("/bin/false", exits(1));
}

/// A program that exits with `code` at once.
pub fn exits(code: i32) -> SimProgram {
    Arc::new(move |_ctx| Box::pin(async move { code }))
}

/// `cat` without arguments: copies stdin to stdout until EOF, exits 0 (1 on a write
/// error, like GNU cat on `EPIPE` with SIGPIPE ignored).
pub fn cat() -> SimProgram {
    Arc::new(|ctx| Box::pin(cat_main(ctx)))
}

async fn cat_main(mut ctx: ProgramCtx) -> i32 {
    if !ctx.args.is_empty() {
        let _ = ctx
            .stderr
            .write_all(b"cat: file arguments are not simulated\n")
            .await;
        return 1;
    }
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match ctx.stdin.read(&mut buf).await {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(_) => return 1,
        };
        if ctx.stdout.write_all(&buf[..n]).await.is_err() {
            return 1;
        }
    }
}

/// `sh -c SCRIPT` for the few commands the contract uses, separated by `;` or newlines:
/// `exit [N]`, `true`, `false`, `sleep SECONDS`, `echo WORDS…`, `kill -SIG $$`
/// (SIG: `9`/`KILL`, `11`/`SEGV`, `15`/`TERM`, `2`/`INT`, `1`/`HUP`). Anything else is
/// "not found" (status 127), like dash.
pub fn sh() -> SimProgram {
    Arc::new(|ctx| Box::pin(sh_main(ctx)))
}

async fn sh_main(mut ctx: ProgramCtx) -> i32 {
    let script = match ctx.args.as_slice() {
        [flag, script, ..] if flag == "-c" => script.clone(),
        _ => {
            let _ = ctx
                .stderr
                .write_all(b"sh: only `sh -c SCRIPT` is simulated\n")
                .await;
            return 2;
        }
    };
    let mut status = 0;
    for command in script
        .split([';', '\n'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let words: Vec<&str> = command.split_whitespace().collect();
        status = match words.as_slice() {
            ["exit"] => return status,
            ["exit", n] => match n.parse::<i32>() {
                Ok(code) => return code & 0xff,
                Err(_) => {
                    return complain(&mut ctx, &format!("exit: Illegal number: {n}"), 2).await;
                }
            },
            ["true"] => 0,
            ["false"] => 1,
            ["sleep", seconds] => match parse_seconds(seconds) {
                Some(duration) => {
                    tokio::time::sleep(duration).await;
                    0
                }
                None => {
                    complain(
                        &mut ctx,
                        &format!("sleep: invalid time interval '{seconds}'"),
                        1,
                    )
                    .await
                }
            },
            ["echo", rest @ ..] => {
                let line = format!("{}\n", rest.join(" "));
                i32::from(ctx.stdout.write_all(line.as_bytes()).await.is_err())
            }
            ["kill", signal, "$$"] => match parse_signal(signal) {
                Some(signal) => {
                    ctx.signals.raise(signal);
                    // The signal ends us at this await, as the kernel would on return
                    // from kill(2).
                    tokio::task::yield_now().await;
                    0
                }
                None => complain(&mut ctx, &format!("kill: invalid signal {signal}"), 2).await,
            },
            [name, ..] => complain(&mut ctx, &format!("{name}: not found"), 127).await,
            [] => status,
        };
    }
    status
}

async fn complain(ctx: &mut ProgramCtx, message: &str, status: i32) -> i32 {
    let line = format!("sh: 1: {message}\n");
    let _ = ctx.stderr.write_all(line.as_bytes()).await;
    status
}

/// Seconds as `sleep` takes them: a whole or decimal number, at most a day here.
fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    (whole <= 86_400).then(|| Duration::new(whole, nanos))
}

fn parse_signal(text: &str) -> Option<Signal> {
    let name = text.strip_prefix('-')?;
    let name = name.strip_prefix("SIG").unwrap_or(name);
    match name {
        "9" | "KILL" => Some(Signal::Kill),
        "11" | "SEGV" => Some(Signal::Segv),
        "15" | "TERM" => Some(Signal::Term),
        "2" | "INT" => Some(Signal::Int),
        "1" | "HUP" => Some(Signal::Hup),
        _ => None,
    }
}
