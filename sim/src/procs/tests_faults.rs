//! Injected faults: OOM kills, crashes, hangs, garbled and truncated stdout, scripted
//! children, and determinism of the swarm draws.

use super::tests::{block_on, host, read_all};
use super::*;
use crate::seed::Ratio;
use engine::env::{ChildProc, Signal};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

const MIB: u64 = 1 << 20;

fn limited(limit: u64) -> ProcsOptions {
    ProcsOptions {
        memory_limit_bytes: limit,
        ..ProcsOptions::quiet()
    }
}

#[test]
fn going_over_the_memory_limit_is_an_oom_kill() {
    block_on(async {
        let h = host(limited(64 * MIB), 1);
        let hog: SimProgram = Arc::new(|ctx: ProgramCtx| {
            Box::pin(async move {
                ctx.memory.set(10 * MIB);
                tokio::time::sleep(Duration::from_secs(1)).await;
                ctx.memory.add(100 * MIB);
                tokio::time::sleep(Duration::from_secs(1)).await;
                0
            })
        });
        h.procs.install("/bin/hog", hog);
        let mut child = h.spawn("/bin/hog", &[]).await;
        let status = child.wait().await.unwrap();
        assert_eq!((status.code(), status.signal()), (None, Some(9)));
        assert_eq!(h.faults.count("proc.oom_kill"), 1);
    });
}

#[test]
fn a_scripted_leak_is_oom_killed_when_it_crosses_the_limit() {
    block_on(async {
        let h = host(limited(10 * MIB), 1);
        let leak = ScriptedBehaviour {
            memory_bytes_initial: 2 * MIB,
            memory_growth_bytes_per_s: 2 * MIB,
            ending: ScriptedEnding::Hang,
            ..ScriptedBehaviour::exits(0)
        };
        h.procs.install_script("/bin/leak", leak);
        let start = Instant::now();
        let mut child = h.spawn("/bin/leak", &[]).await;
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9));
        let elapsed = start.elapsed();
        // 2 MiB + 2 MiB/s passes 10 MiB just after 4 s (timers have 1 ms resolution).
        assert!(
            elapsed > Duration::from_secs(4) && elapsed <= Duration::from_millis(4_002),
            "{elapsed:?}"
        );
        assert_eq!(h.faults.count("proc.oom_kill"), 1);
    });
}

#[test]
fn a_leak_set_from_outside_grows_memory_until_the_oom_kill() {
    block_on(async {
        let h = host(limited(10 * MIB), 1);
        let mut child = h.spawn("/bin/sh", &["-c", "sleep 100"]).await;
        let pid = child.pid();
        let initial = h.procs.resident_bytes(pid).unwrap();
        let start = Instant::now();
        assert!(h.procs.leak(pid, MIB));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(h.procs.resident_bytes(pid), Some(initial + 2 * MIB));
        let status = child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(9));
        let elapsed = start.elapsed();
        let expected = Duration::from_secs((10 * MIB - initial) / MIB);
        assert!(
            elapsed > expected && elapsed <= expected + Duration::from_millis(2),
            "{elapsed:?}"
        );
        assert_eq!(h.faults.count("proc.leak"), 1);
        assert_eq!(h.faults.count("proc.oom_kill"), 1);
        assert!(!h.procs.leak(pid, MIB), "a dead child cannot leak");
        assert_eq!(h.procs.resident_bytes(pid), None);
    });
}

#[test]
fn lowering_the_limit_kills_a_child_already_over_it() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let mut child = h.spawn("/bin/sh", &["-c", "sleep 100"]).await;
        h.procs.set_options(ProcsOptions {
            resident_bytes_initial: MIB / 4,
            ..limited(MIB / 2)
        });
        assert_eq!(child.wait().await.unwrap().signal(), Some(9));
        assert_eq!(h.faults.count("proc.oom_kill"), 1);
    });
}

#[test]
fn external_sigsegv_is_a_counted_crash() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let mut child = h.spawn("/bin/cat", &[]).await;
        assert!(h.procs.kill_with(child.pid(), Signal::Segv));
        assert!(
            !h.procs.kill_with(child.pid(), Signal::Kill),
            "already dead"
        );
        assert!(!h.procs.kill_with(4242, Signal::Kill), "no such pid");
        let status = child.wait().await.unwrap();
        assert_eq!((status.code(), status.signal()), (None, Some(11)));
        assert_eq!(h.faults.count("proc.crash_segv"), 1);
        assert_eq!(h.faults.count("proc.kill"), 0);
    });
}

#[test]
fn a_hung_child_ignores_handled_sigterm_until_sigkill() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let graceful = ScriptedBehaviour {
            term_exit_delay: Some(Duration::from_millis(100)),
            run_time: Duration::from_secs(3600),
            ..ScriptedBehaviour::exits(0)
        };
        h.procs.install_script("/bin/worker", graceful);
        let mut child = h.spawn("/bin/worker", &[]).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(h.procs.hang(child.pid()));
        assert!(!h.procs.hang(child.pid()), "already hung");
        child.signal(Signal::Term).unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "the handler never runs"
        );
        child.signal(Signal::Kill).unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(9));
        assert_eq!(h.faults.count("proc.hang"), 1);
    });
}

#[test]
fn scripted_children_ignore_or_take_time_over_sigterm() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let stubborn = ScriptedBehaviour {
            ignore_sigterm: true,
            ending: ScriptedEnding::Hang,
            ..ScriptedBehaviour::exits(0)
        };
        h.procs.install_script("/bin/stubborn", stubborn);
        let mut child = h.spawn("/bin/stubborn", &[]).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        child.signal(Signal::Term).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(child.try_wait().unwrap().is_none(), "SIGTERM ignored");
        child.signal(Signal::Int).unwrap();
        assert_eq!(
            child.wait().await.unwrap().signal(),
            Some(2),
            "SIGINT keeps its default"
        );

        let slow = ScriptedBehaviour {
            term_exit_delay: Some(Duration::from_millis(1500)),
            run_time: Duration::from_secs(3600),
            ..ScriptedBehaviour::exits(5)
        };
        h.procs.install_script("/bin/slow", slow);
        let mut child = h.spawn("/bin/slow", &[]).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let sent = Instant::now();
        child.signal(Signal::Term).unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(0));
        assert_eq!(sent.elapsed(), Duration::from_millis(1500));
    });
}

#[test]
fn scripted_lines_come_at_intervals_then_the_ending() {
    block_on(async {
        let h = host(ProcsOptions::quiet(), 1);
        let script = ScriptedBehaviour {
            start_delay: Duration::from_secs(1),
            stdout_lines: vec!["a".into(), "b".into(), "c".into()],
            line_interval: Duration::from_secs(2),
            run_time: Duration::from_secs(1),
            ending: ScriptedEnding::Crash(Signal::Segv),
            ..ScriptedBehaviour::exits(0)
        };
        h.procs.install_script("/bin/lines", script);
        let start = Instant::now();
        let mut child = h.spawn("/bin/lines", &[]).await;
        assert_eq!(read_all(&mut *child).await, b"a\nb\nc\n");
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(6),
            "EOF comes with the crash"
        );
        assert_eq!(child.wait().await.unwrap().signal(), Some(11));
        assert_eq!(h.faults.count("proc.crash_segv"), 1);
    });
}

#[test]
fn garbled_stdout_differs_from_what_was_written() {
    block_on(async {
        let options = ProcsOptions {
            garble_rate: Ratio::ONE,
            ..ProcsOptions::quiet()
        };
        let h = host(options, 1);
        let mut child = h.spawn("/bin/cat", &[]).await;
        let mut stdin = child.take_stdin().unwrap();
        let input = vec![b'x'; 300];
        stdin.write_all(&input).await.unwrap();
        drop(stdin);
        let out = read_all(&mut *child).await;
        assert_eq!(out.len(), input.len());
        assert_ne!(out, input);
        let changed = out.iter().zip(&input).filter(|(a, b)| a != b).count() as u64;
        assert_eq!(changed, h.faults.count("proc.garble"), "one byte per write");
        assert_eq!(child.wait().await.unwrap().code(), Some(0));
    });
}

#[test]
fn truncated_stdout_ends_early_while_the_child_runs_on() {
    block_on(async {
        let options = ProcsOptions {
            truncate_rate: Ratio::ONE,
            truncate_after_bytes_max: 100,
            ..ProcsOptions::quiet()
        };
        let h = host(options, 1);
        let mut child = h.spawn("/bin/cat", &[]).await;
        let mut stdin = child.take_stdin().unwrap();
        stdin.write_all(&[b'y'; 500]).await.unwrap();
        let out = read_all(&mut *child).await;
        assert!(out.len() <= 100, "{} bytes came through", out.len());
        assert_eq!(h.faults.count("proc.truncate"), 1);
        assert!(child.try_wait().unwrap().is_none(), "EOF is not an exit");
        drop(stdin);
        assert_eq!(child.wait().await.unwrap().code(), Some(0));
    });
}

#[test]
fn swarm_crash_fires_within_fault_after_max() {
    block_on(async {
        let options = ProcsOptions {
            crash_rate: Ratio::ONE,
            fault_after_max: Duration::from_secs(1),
            ..ProcsOptions::quiet()
        };
        let h = host(options, 1);
        let start = Instant::now();
        let mut child = h.spawn("/bin/sh", &["-c", "sleep 100"]).await;
        assert_eq!(child.wait().await.unwrap().signal(), Some(11));
        assert!(start.elapsed() <= Duration::from_secs(1));
        assert_eq!(h.faults.count("proc.crash_segv"), 1);
    });
}

/// Everything observable about a swarm run of a few children.
async fn swarm_outcome(seed: u64) -> Vec<String> {
    let options = ProcsOptions {
        start_delay_max: Duration::from_millis(500),
        spawn_fail_rate: Ratio::new(1, 5),
        crash_rate: Ratio::new(1, 4),
        hang_rate: Ratio::new(1, 4),
        garble_rate: Ratio::new(1, 4),
        truncate_rate: Ratio::new(1, 4),
        fault_after_max: Duration::from_millis(300),
        ..ProcsOptions::quiet()
    };
    let h = host(options, seed);
    let start = Instant::now();
    let mut outcome = Vec::new();
    for i in 0..12 {
        let spec = engine::env::ProcSpec::new("/bin/cat");
        let mut child: Box<dyn ChildProc> = match h.env.procs().spawn(&spec).await {
            Ok(child) => child,
            Err(e) => {
                outcome.push(format!("{i}: spawn {e}"));
                continue;
            }
        };
        let mut stdin = child.take_stdin().unwrap();
        let _ = stdin.write_all(format!("message {i}\n").as_bytes()).await;
        drop(stdin);
        let read = tokio::time::timeout(Duration::from_secs(2), read_all(&mut *child)).await;
        if read.is_err() {
            child.signal(Signal::Kill).unwrap();
        }
        let status = child.wait().await.unwrap();
        let at = start.elapsed();
        outcome.push(format!(
            "{i}: pid {} {read:?} {status} at {at:?}",
            child.pid()
        ));
    }
    outcome.push(format!("{:?}", h.faults.snapshot()));
    outcome
}

#[test]
fn same_seed_same_outcomes() {
    let first = block_on(swarm_outcome(7));
    let again = block_on(swarm_outcome(7));
    assert_eq!(first, again);
    let other = block_on(swarm_outcome(8));
    assert_ne!(first, other, "the seed must matter");
}
