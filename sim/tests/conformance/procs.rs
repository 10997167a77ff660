//! The process contract: what both launchers (real `tokio::process` children and
//! `SimProcs`) must do the same, checked through `env.procs()` only. It assumes
//! `/bin/cat`, `/bin/sh` (with `-c "exit N"`, `"kill -SEGV $$"`, `"sleep N"`) and
//! `/bin/true`; in the simulation [`install_contract_programs`] provides them.

use engine::env::{ChildProc, Env, ExitStatus, ProcSpec, Signal};
use sim::procs::SimProcs;
use std::future::Future;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest any one step may take (virtual time in the simulation): a hang is an error
/// with a message, not a stuck test.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// Installs the simulated `/bin/cat`, `/bin/sh`, `/bin/true` (and `/bin/false`).
pub fn install_contract_programs(procs: &SimProcs) {
    sim::procs::install_coreutils(procs);
}

pub async fn procs_contract(env: &Env) -> Result<(), String> {
    cat_echoes_then_exits_0(env).await?;
    exit_code_is_reported(env).await?;
    self_inflicted_sigsegv_is_signal_11(env).await?;
    sigkill_and_sigterm_are_reported_as_signals(env).await?;
    missing_program_is_enoent(env).await?;
    reaped_child_is_esrch(env).await?;
    live_child_has_resident_memory(env).await?;
    Ok(())
}

async fn within<T>(what: &str, step: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(STEP_TIMEOUT, step)
        .await
        .map_err(|_| format!("{what}: no answer within {STEP_TIMEOUT:?}"))
}

async fn spawn(env: &Env, program: &str, args: &[&str]) -> Result<Box<dyn ChildProc>, String> {
    let mut spec = ProcSpec::new(program);
    for arg in args {
        spec = spec.arg(*arg);
    }
    let what = format!("spawn {program} {args:?}");
    within(&what, env.procs().spawn(&spec))
        .await?
        .map_err(|e| format!("{what}: {e}"))
}

async fn wait(child: &mut dyn ChildProc, what: &str) -> Result<ExitStatus, String> {
    within(what, child.wait())
        .await?
        .map_err(|e| format!("{what}: wait failed: {e}"))
}

fn expect_status(
    what: &str,
    status: ExitStatus,
    code: Option<i32>,
    signal: Option<i32>,
) -> Result<(), String> {
    if (status.code(), status.signal()) == (code, signal) {
        Ok(())
    } else {
        Err(format!(
            "{what}: status {status} (code {:?}, signal {:?}), expected code {code:?}, signal {signal:?}",
            status.code(),
            status.signal()
        ))
    }
}

fn expect_errno(what: &str, result: io::Result<()>, errno: i32) -> Result<(), String> {
    match result {
        Err(e) if e.raw_os_error() == Some(errno) => Ok(()),
        Err(e) => Err(format!(
            "{what}: error {e} (raw {:?}), expected errno {errno}",
            e.raw_os_error()
        )),
        Ok(()) => Err(format!("{what}: succeeded, expected errno {errno}")),
    }
}

async fn cat_echoes_then_exits_0(env: &Env) -> Result<(), String> {
    let what = "/bin/cat echo";
    let mut child = spawn(env, "/bin/cat", &[]).await?;
    let mut stdin = child.take_stdin().ok_or(format!("{what}: no stdin"))?;
    let mut stdout = child.take_stdout().ok_or(format!("{what}: no stdout"))?;
    let sent = b"line one\nline two\n\x00\xffbinary too\n";
    within(what, stdin.write_all(sent))
        .await?
        .map_err(|e| format!("{what}: writing stdin: {e}"))?;
    // Dropping stdin is what sends EOF (shutdown does not close a child's pipe).
    drop(stdin);
    let mut got = Vec::new();
    within(what, stdout.read_to_end(&mut got))
        .await?
        .map_err(|e| format!("{what}: reading stdout: {e}"))?;
    if got != sent {
        return Err(format!("{what}: sent {sent:?}, read back {got:?}"));
    }
    let status = wait(&mut *child, what).await?;
    expect_status(what, status, Some(0), None)
}

async fn exit_code_is_reported(env: &Env) -> Result<(), String> {
    let what = "sh -c 'exit 3'";
    let mut child = spawn(env, "/bin/sh", &["-c", "exit 3"]).await?;
    let status = wait(&mut *child, what).await?;
    expect_status(what, status, Some(3), None)
}

async fn self_inflicted_sigsegv_is_signal_11(env: &Env) -> Result<(), String> {
    let what = "sh -c 'kill -SEGV $$'";
    let mut child = spawn(env, "/bin/sh", &["-c", "kill -SEGV $$"]).await?;
    let status = wait(&mut *child, what).await?;
    expect_status(what, status, None, Some(11))
}

async fn sigkill_and_sigterm_are_reported_as_signals(env: &Env) -> Result<(), String> {
    for (signal, number) in [(Signal::Kill, 9), (Signal::Term, 15)] {
        let what = format!("{} to sh -c 'sleep 100'", signal.name());
        let mut child = spawn(env, "/bin/sh", &["-c", "sleep 100"]).await?;
        child
            .signal(signal)
            .map_err(|e| format!("{what}: signal failed: {e}"))?;
        let status = wait(&mut *child, &what).await?;
        expect_status(&what, status, None, Some(number))?;
    }
    Ok(())
}

async fn missing_program_is_enoent(env: &Env) -> Result<(), String> {
    let what = "spawn of a missing program";
    let spec = ProcSpec::new("/nonexistent/conformance-no-such-program");
    let result = within(what, env.procs().spawn(&spec)).await?;
    expect_errno(what, result.map(|_| ()), 2)
}

async fn reaped_child_is_esrch(env: &Env) -> Result<(), String> {
    let what = "/bin/true";
    let mut child = spawn(env, "/bin/true", &[]).await?;
    let status = wait(&mut *child, what).await?;
    expect_status(what, status, Some(0), None)?;
    expect_errno("SIGTERM after reaping", child.signal(Signal::Term), 3)
}

async fn live_child_has_resident_memory(env: &Env) -> Result<(), String> {
    let what = "resident_bytes of a live sh -c 'sleep 100'";
    let mut child = spawn(env, "/bin/sh", &["-c", "sleep 100"]).await?;
    let resident = child.resident_bytes();
    child
        .signal(Signal::Kill)
        .map_err(|e| format!("{what}: SIGKILL failed: {e}"))?;
    wait(&mut *child, what).await?;
    match resident {
        Ok(bytes) if bytes > 0 => Ok(()),
        Ok(bytes) => Err(format!("{what}: {bytes} bytes, expected more than 0")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}
