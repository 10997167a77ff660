//! Linux semantics of simulated children: pipes, exit statuses, zombies, signals, spawn
//! errors, slow starts. Every test runs on a paused current-thread runtime.

use super::*;
use crate::faults::FaultCounters;
use crate::seed::SimRng;
use engine::env::{ChildProc, Env, ProcSpec, Signal};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("test runtime")
        .block_on(future)
}

pub(super) struct TestHost {
    pub(super) procs: Arc<SimProcs>,
    pub(super) env: Env,
    pub(super) faults: FaultCounters,
}

/// A host with the coreutils installed. Call inside the runtime.
pub(super) fn host(options: ProcsOptions, seed: u64) -> TestHost {
    let faults = FaultCounters::default();
    let procs = Arc::new(SimProcs::new(
        "proc-host",
        options,
        SimRng::new(seed, "procs.test"),
        faults.clone(),
        None,
    ));
    install_coreutils(&procs);
    let env = standalone_env(procs.clone(), seed);
    TestHost { procs, env, faults }
}

impl TestHost {
    pub(super) async fn spawn(&self, program: &str, args: &[&str]) -> Box<dyn ChildProc> {
        let mut spec = ProcSpec::new(program);
        for arg in args {
            spec = spec.arg(*arg);
        }
        self.env.procs().spawn(&spec).await.expect("spawn")
    }

    pub(super) async fn spawn_err(&self, program: &str) -> io::Error {
        match self.env.procs().spawn(&ProcSpec::new(program)).await {
            Ok(child) => panic!(
                "spawn of {program} gave pid {}, expected an error",
                child.pid()
            ),
            Err(e) => e,
        }
    }
}

pub(super) async fn read_all(child: &mut dyn ChildProc) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stdout = child.take_stdout().expect("stdout");
    stdout.read_to_end(&mut out).await.expect("read stdout");
    out
}

fn raw(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

#[test]
fn cat_echoes_over_pipes_and_exits_0_after_stdin_closes() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let mut child = h.spawn("/bin/cat", &[]).await;
        let mut stdin = child.take_stdin().unwrap();
        stdin.write_all(b"hello\nworld\n").await.unwrap();
        drop(stdin);
        assert_eq!(read_all(&mut *child).await, b"hello\nworld\n");
        let status = child.wait().await.unwrap();
        assert_eq!((status.code(), status.signal()), (Some(0), None));
    });
}

#[test]
fn exit_codes_are_reported_modulo_256() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        h.procs.install("/bin/exit263", exits(263));
        let status = h
            .spawn("/bin/sh", &["-c", "exit 3"])
            .await
            .wait()
            .await
            .unwrap();
        assert_eq!((status.code(), status.signal()), (Some(3), None));
        let status = h.spawn("/bin/exit263", &[]).await.wait().await.unwrap();
        assert_eq!(status.code(), Some(7));
        let status = h
            .spawn("/bin/sh", &["-c", "frobnicate"])
            .await
            .wait()
            .await
            .unwrap();
        assert_eq!(
            status.code(),
            Some(127),
            "unknown commands are 'not found' like dash"
        );
    });
}

#[test]
fn sigkill_gives_signal_9_and_self_sigsegv_gives_signal_11() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let mut child = h.spawn("/bin/sh", &["-c", "sleep 100"]).await;
        child.signal(Signal::Kill).unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!((status.code(), status.signal()), (None, Some(9)));

        let mut child = h.spawn("/bin/sh", &["-c", "kill -SEGV $$; exit 4"]).await;
        let status = child.wait().await.unwrap();
        assert_eq!((status.code(), status.signal()), (None, Some(11)));
        assert_eq!(
            h.faults.count("proc.crash_segv"),
            0,
            "a program's own raise is no fault"
        );
    });
}

#[test]
fn zombie_keeps_its_status_until_reaped_then_esrch() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let mut child = h.spawn("/bin/true", &[]).await;
        let pid = child.pid();
        assert_eq!(h.procs.live_pids(), vec![pid]);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(h.procs.live_pids(), Vec::<u32>::new());
        assert_eq!(h.procs.zombie_pids(), vec![pid]);
        child
            .signal(Signal::Term)
            .expect("a zombie takes signals without effect");
        assert_eq!(raw(&child.resident_bytes().unwrap_err()), Some(3));
        let status = child.try_wait().unwrap().expect("exited");
        assert_eq!(
            status.code(),
            Some(0),
            "the zombie kept its status, not SIGTERM"
        );
        assert_eq!(h.procs.zombie_pids(), Vec::<u32>::new());
        assert_eq!(raw(&child.signal(Signal::Kill).unwrap_err()), Some(3));
        assert_eq!(
            child.wait().await.unwrap().code(),
            Some(0),
            "reaped status is kept"
        );
    });
}

#[test]
fn sigterm_kills_by_default_but_a_handler_exits_gracefully() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let mut child = h.spawn("/bin/sh", &["-c", "sleep 100"]).await;
        child.signal(Signal::Term).unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(15));

        let graceful: SimProgram = Arc::new(|mut ctx: ProgramCtx| {
            Box::pin(async move {
                ctx.handle_signals();
                let signal = ctx.signals.recv().await;
                assert_eq!(signal, Some(Signal::Term));
                tokio::time::sleep(Duration::from_secs(2)).await;
                0
            })
        });
        h.procs.install("/usr/bin/graceful", graceful);
        let mut child = h.spawn("/usr/bin/graceful", &[]).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let sent = Instant::now();
        child.signal(Signal::Term).unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!((status.code(), status.signal()), (Some(0), None));
        assert_eq!(sent.elapsed(), Duration::from_secs(2));
    });
}

#[test]
fn full_stdout_blocks_the_child_until_the_parent_reads() {
    block_on(async {
        let options = ProcsOptions {
            pipe_bytes_max: 1024,
            ..ProcsOptions::quiet()
        };
        let h = host(options, 1);
        let writer: SimProgram = Arc::new(|mut ctx: ProgramCtx| {
            Box::pin(async move {
                ctx.stdout.write_all(&[7u8; 10_000]).await.unwrap();
                0
            })
        });
        h.procs.install("/bin/writer", writer);
        let mut child = h.spawn("/bin/writer", &[]).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            h.procs.live_pids(),
            vec![child.pid()],
            "blocked on a full pipe"
        );
        assert_eq!(
            h.faults.count("proc.pipe_full"),
            1,
            "one episode, counted once"
        );
        let out = read_all(&mut *child).await;
        assert_eq!(out.len(), 10_000);
        assert_eq!(child.wait().await.unwrap().code(), Some(0));
    });
}

#[test]
fn spawn_errors_use_the_os_errno() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        assert_eq!(raw(&h.spawn_err("/bin/missing").await), Some(2));
        assert_eq!(
            h.faults.count("proc.spawn_fail"),
            0,
            "a missing binary is no fault"
        );
        h.procs.fail_next_spawn(13, 1);
        h.procs.fail_next_spawn(11, 2);
        h.procs.fail_next_spawn(2, 1);
        assert_eq!(raw(&h.spawn_err("/bin/true").await), Some(13));
        assert_eq!(raw(&h.spawn_err("/bin/true").await), Some(11));
        assert_eq!(raw(&h.spawn_err("/bin/true").await), Some(11));
        assert_eq!(raw(&h.spawn_err("/bin/true").await), Some(2));
        assert_eq!(
            h.spawn("/bin/true", &[]).await.wait().await.unwrap().code(),
            Some(0)
        );
        assert_eq!(h.faults.count("proc.spawn_fail"), 4);
    });
}

#[test]
fn slow_start_delays_output_in_virtual_time() {
    block_on(async {
        let options = ProcsOptions {
            start_delay_min: Duration::from_secs(5),
            start_delay_max: Duration::from_secs(5),
            ..ProcsOptions::quiet()
        };
        let h = host(options, 1);
        let start = Instant::now();
        let mut child = h.spawn("/bin/sh", &["-c", "echo ready"]).await;
        assert_eq!(read_all(&mut *child).await, b"ready\n");
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(h.faults.count("proc.slow_start"), 1);
    });
}

#[test]
fn pids_increase_and_a_host_crash_leaves_no_status() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let mut first = h.spawn("/bin/cat", &[]).await;
        let mut zombie = h.spawn("/bin/true", &[]).await;
        assert_eq!((first.pid(), zombie.pid()), (1000, 1001));
        let mut stdout = first.take_stdout().unwrap();
        let mut stdin = first.take_stdin().unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        h.procs.crash();
        assert!(h.procs.live_pids().is_empty() && h.procs.zombie_pids().is_empty());
        assert_eq!(raw(&first.wait().await.unwrap_err()), Some(10), "ECHILD");
        assert_eq!(raw(&zombie.try_wait().unwrap_err()), Some(10));
        assert_eq!(raw(&first.signal(Signal::Kill).unwrap_err()), Some(3));
        let mut buf = Vec::new();
        assert_eq!(stdout.read_to_end(&mut buf).await.unwrap(), 0, "EOF");
        assert_eq!(
            stdin.write(b"x").await.unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
        assert_eq!(
            h.spawn("/bin/true", &[]).await.pid(),
            1002,
            "pids are not reused"
        );
    });
}

#[test]
fn dropping_the_handle_kills_and_reaps_the_child() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let child = h.spawn("/bin/sh", &["-c", "sleep 100"]).await;
        drop(child);
        assert!(h.procs.live_pids().is_empty() && h.procs.zombie_pids().is_empty());
    });
}

#[test]
fn memory_gauge_is_what_resident_bytes_reports() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let program: SimProgram = Arc::new(|ctx: ProgramCtx| {
            Box::pin(async move {
                ctx.memory.set(5 << 20);
                ctx.memory.set_growth(1 << 20);
                std::future::pending::<i32>().await
            })
        });
        h.procs.install("/bin/mem", program);
        let child = h.spawn("/bin/mem", &[]).await;
        assert_eq!(
            child.resident_bytes().unwrap(),
            1 << 20,
            "the host's initial bytes"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(child.resident_bytes().unwrap(), 8 << 20);
    });
}

#[test]
fn output_outlives_the_child_and_stdin_breaks_after_exit() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let mut child = h.spawn("/bin/sh", &["-c", "echo bye; exit 1"]).await;
        let mut stdin = child.take_stdin().unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(1));
        assert_eq!(
            read_all(&mut *child).await,
            b"bye\n",
            "buffered bytes, then EOF"
        );
        let err = stdin.write_all(b"late").await.unwrap_err();
        assert_eq!(raw(&err), Some(32), "EPIPE");
    });
}
