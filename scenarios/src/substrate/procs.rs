//! Process self-checks: exit statuses as the OS reports them.

use crate::ensure;
use crate::scenario::{BodyFuture, Failure, Scenario, converge};
use engine::env::{ProcSpec, Signal};
use sim::World;
use sim::procs::{ScriptedBehaviour, ScriptedEnding};
use std::time::Duration;

fn proc_failure(e: std::io::Error) -> Failure {
    Failure::correctness(format!("unexpected process error: {e}"))
}

pub static OOM_KILL_STATUS: Scenario = Scenario {
    id: "sim.proc.oom-kill-status",
    declared_at: crate::declared_here!(),
    title: "A leaking child is OOM-killed and reports SIGKILL, never an exit code",
    proves: "A child leaks memory at a seeded rate on a host with a seeded memory limit. Its \
             resident size, sampled by the parent, must grow; the OOM killer must end it once it \
             passes the limit, and the parent must see the status the OS reports for that: \
             terminated by signal 9 with no exit code.",
    faults_expected: &["proc.oom_kill"],
    cores: &["sim/src/procs/launch.rs", "sim/src/procs/process.rs"],
    sim_time_max: Duration::from_secs(3600),
    body: oom_kill_status,
    real: None,
    plan: None,
};

fn oom_kill_status(world: World) -> BodyFuture {
    Box::pin(async move {
        let host = world.add_host("node");
        let mut rng = world.rng("scenario");
        let limit = (64 + rng.below(192)) << 20;
        let growth = (1 + rng.below(16)) << 20;
        let mut options = host.procs().options();
        options.memory_limit_bytes = limit;
        host.procs().set_options(options);
        let mut script = ScriptedBehaviour::exits(0);
        script.memory_growth_bytes_per_s = growth;
        script.ending = ScriptedEnding::Hang;
        host.procs().install_script("/usr/bin/leaky", script);
        let env = host.env();
        let mut child = env
            .procs()
            .spawn(&ProcSpec::new("/usr/bin/leaky"))
            .await
            .map_err(proc_failure)?;
        let first = child.resident_bytes().map_err(proc_failure)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = child.resident_bytes().map_err(proc_failure)?;
        ensure!(
            second > first,
            "resident size did not grow: {first} then {second}"
        );
        let bound = Duration::from_secs(limit / growth + 5);
        let status = converge("the OOM kill", bound, child.wait())
            .await?
            .map_err(proc_failure)?;
        ensure!(
            status.signal() == Some(9) && status.code().is_none(),
            "OOM-killed child reported {status}, not signal 9 without a code"
        );
        Ok(())
    })
}

pub static SEGV_ZOMBIE_REAPED: Scenario = Scenario {
    id: "sim.proc.segv-zombie-reaped",
    declared_at: crate::declared_here!(),
    title: "A crashed child stays a zombie until reaped, then is gone",
    proves: "A child dies of SIGSEGV at a seeded time. Until its parent waits for it, it must \
             remain in the process table as a zombie whose status is kept; waiting must report \
             signal 11 and no exit code; after the reap, signalling it must fail with ESRCH.",
    faults_expected: &["proc.crash_segv"],
    cores: &["sim/src/procs/process.rs", "sim/src/procs/child.rs"],
    sim_time_max: Duration::from_secs(600),
    body: segv_zombie_reaped,
    real: None,
    plan: None,
};

fn segv_zombie_reaped(world: World) -> BodyFuture {
    Box::pin(async move {
        let host = world.add_host("node");
        let mut rng = world.rng("scenario");
        let mut script = ScriptedBehaviour::exits(0);
        script.run_time = Duration::from_millis(1 + rng.below(5_000));
        script.ending = ScriptedEnding::Crash(Signal::Segv);
        host.procs()
            .install_script("/usr/bin/crashy", script.clone());
        let env = host.env();
        let mut child = env
            .procs()
            .spawn(&ProcSpec::new("/usr/bin/crashy"))
            .await
            .map_err(proc_failure)?;
        let pid = child.pid();
        tokio::time::sleep(script.run_time + Duration::from_millis(1 + rng.below(10_000))).await;
        ensure!(
            host.procs().zombie_pids().contains(&pid),
            "pid {pid} is not a zombie after it crashed and before it was reaped"
        );
        ensure!(
            child.signal(Signal::Term).is_ok(),
            "signalling a zombie must succeed"
        );
        let status = child.wait().await.map_err(proc_failure)?;
        ensure!(
            status.signal() == Some(11) && status.code().is_none(),
            "crashed child reported {status}, not signal 11"
        );
        ensure!(
            !host.procs().zombie_pids().contains(&pid),
            "pid {pid} still a zombie after reaping"
        );
        let gone = child.signal(Signal::Kill);
        ensure!(
            gone.as_ref().err().and_then(|e| e.raw_os_error()) == Some(3),
            "signal after reap gave {gone:?}, not ESRCH"
        );
        Ok(())
    })
}

pub static SIGTERM_GRACE_THEN_KILL: Scenario = Scenario {
    id: "sim.proc.sigterm-grace-then-kill",
    declared_at: crate::declared_here!(),
    title: "A hung child ignores SIGTERM; SIGKILL after the grace period ends it",
    proves: "A child hangs at a seeded time (it stops making progress). Its parent stops it the \
             careful way: SIGTERM, a grace period, then SIGKILL. The hung child must not exit on \
             SIGTERM, must exit by signal 9 right after the grace period, and the whole stop must \
             take the grace period and no more.",
    faults_expected: &["proc.hang"],
    cores: &["sim/src/procs/process.rs", "sim/src/procs/host.rs"],
    sim_time_max: Duration::from_secs(600),
    body: sigterm_grace_then_kill,
    real: None,
    plan: None,
};

fn sigterm_grace_then_kill(world: World) -> BodyFuture {
    Box::pin(async move {
        let host = world.add_host("node");
        let mut rng = world.rng("scenario");
        let mut script = ScriptedBehaviour::exits(0);
        script.stdout_lines = vec!["ready".to_string()];
        script.run_time = Duration::from_secs(3600);
        // It would shut down gracefully, if it were not hung.
        script.term_exit_delay = Some(Duration::from_millis(100));
        host.procs().install_script("/usr/bin/worker", script);
        let env = host.env();
        let mut child = env
            .procs()
            .spawn(&ProcSpec::new("/usr/bin/worker"))
            .await
            .map_err(proc_failure)?;
        tokio::time::sleep(Duration::from_millis(10 + rng.below(1_000))).await;
        ensure!(
            host.procs().hang(child.pid()),
            "could not hang pid {}",
            child.pid()
        );
        let grace = Duration::from_millis(500 + rng.below(5_000));
        let started = tokio::time::Instant::now();
        child.signal(Signal::Term).map_err(proc_failure)?;
        let early = tokio::time::timeout(grace, child.wait()).await;
        ensure!(early.is_err(), "a hung child exited on SIGTERM: {early:?}");
        child.signal(Signal::Kill).map_err(proc_failure)?;
        let status = converge("the kill", Duration::from_secs(1), child.wait())
            .await?
            .map_err(proc_failure)?;
        ensure!(status.signal() == Some(9), "killed child reported {status}");
        let took = started.elapsed();
        ensure!(
            took >= grace && took <= grace + Duration::from_millis(10),
            "stopping took {took:?} for a grace of {grace:?}"
        );
        Ok(())
    })
}
