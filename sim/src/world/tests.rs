//! Unit tests of the world: host lifecycle, budgets, panics, determinism.

use super::{RunAbort, WorldOptions, run_world};
use engine::env::TaskGone;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[test]
fn a_crash_kills_the_hosts_tasks_and_a_restart_runs_its_boot_program() {
    let report = run_world(WorldOptions::new(1), |world| async move {
        let host = world.add_host("h");
        let env = host.env();
        let sleeper = env.spawn("sleeper", async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            7
        });
        let boots = Arc::new(AtomicU64::new(0));
        let counted = boots.clone();
        host.set_boot(Arc::new(move |_env| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {})
        }));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            boots.load(Ordering::SeqCst),
            1,
            "boot runs when set on a live host"
        );
        host.crash();
        assert_eq!(sleeper.await, Err(TaskGone));
        assert!(!host.is_up());
        let late = env.spawn("late", async { 1 });
        assert_eq!(late.await, Err(TaskGone), "a down host starts no task");
        host.restart();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(
            boots.load(Ordering::SeqCst),
            2,
            "boot runs again after restart"
        );
        assert_eq!(env.spawn("after", async { 2 }).await, Ok(2));
        world.faults().count("host.crash")
    });
    assert_eq!(report.value, Ok(1));
}

#[test]
fn a_paused_host_makes_no_progress_until_resumed() {
    let report = run_world(WorldOptions::new(2), |world| async move {
        let host = world.add_host("h");
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let _ticker = host.env().spawn("ticker", async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.fetch_add(1, Ordering::SeqCst);
            }
        });
        tokio::time::sleep(Duration::from_millis(105)).await;
        let before = ticks.load(Ordering::SeqCst);
        host.pause();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), before, "no tick while paused");
        host.resume();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(ticks.load(Ordering::SeqCst) > before, "ticks resume");
        before
    });
    assert_eq!(report.value, Ok(10));
    assert_eq!(report.faults.get("host.pause"), Some(&1));
}

#[test]
fn the_virtual_time_budget_ends_a_run_that_never_finishes() {
    let mut options = WorldOptions::new(3);
    options.sim_time_max = Duration::from_secs(3600);
    let report = run_world(options, |_world| async {
        std::future::pending::<()>().await;
    });
    assert_eq!(
        report.value,
        Err(RunAbort::SimTimeExceeded {
            budget_ns: 3_600_000_000_000
        })
    );
    assert_eq!(
        report.sim_time_ns, 3_600_000_000_000,
        "an idle hour passes instantly"
    );
}

#[test]
fn a_panic_in_a_host_task_aborts_the_run_as_a_crash_with_its_message() {
    let report = run_world(WorldOptions::new(4), |world| async move {
        let env = world.add_host("h").env();
        let _doomed = env.spawn("doomed", async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            panic!("engine invariant broken");
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    match report.value {
        Err(RunAbort::Panic(message)) => {
            assert!(message.contains("engine invariant broken"), "{message}")
        }
        other => panic!("expected a panic abort, got {other:?}"),
    }
}

#[test]
fn host_names_are_checked_and_hosts_get_addresses() {
    let report = run_world(WorldOptions::new(5), |world| async move {
        let a = world.add_host("a");
        let b = world.add_host("b");
        assert_eq!((a.ip(), b.ip()), ("10.0.0.1", "10.0.0.2"));
        assert_eq!(world.host_names(), vec!["a", "b"]);
        assert!(world.host("c").is_none());
        let dup = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| world.add_host("a")));
        dup.is_err()
    });
    assert_eq!(report.value, Ok(true), "a duplicate host name is refused");
}

#[test]
fn wall_clocks_of_hosts_can_differ() {
    let report = run_world(WorldOptions::new(6), |world| async move {
        let a = world.add_host("a");
        let b = world.add_host_with(
            "b",
            crate::clock::ClockOptions {
                offset_ns: -5_000_000_000,
                drift_ppm: 0,
            },
        );
        a.env().wall_unix_ms() - b.env().wall_unix_ms()
    });
    assert_eq!(report.value, Ok(5_000));
}

#[test]
fn a_run_that_spins_without_advancing_time_hits_the_wall_budget() {
    let mut options = WorldOptions::new(7);
    options.wall_time_max = Some(Duration::from_millis(300));
    let report = run_world(options, |_world| async {
        // Yields forever: always runnable, so virtual time never moves. Bounded by a
        // real-time guard so the detached thread does not outlive the test process
        // for long.
        #[allow(
            clippy::disallowed_methods,
            clippy::disallowed_types,
            reason = "test bound"
        )]
        let start = std::time::Instant::now();
        #[allow(clippy::disallowed_methods, reason = "test bound")]
        while start.elapsed() < Duration::from_secs(5) {
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(
        report.value,
        Err(RunAbort::WallTimeExceeded { budget_ms: 300 })
    );
}

#[test]
fn a_given_fault_plan_replaces_the_seed_drawn_one_and_a_bad_one_names_the_host() {
    use crate::faults::{Fault, FaultPlan};
    fn drawn(seed: u64) -> FaultPlan {
        FaultPlan::default().at(seed, Fault::HealAll)
    }
    let run = |given: Option<FaultPlan>| {
        let mut options = WorldOptions::new(7);
        options.fault_plan = given;
        run_world(options, |world| async move {
            world.add_host("h");
            world.fault_plan(drawn)
        })
    };
    assert_eq!(
        run(None).value,
        Ok(drawn(7)),
        "no plan given: the body's own"
    );
    let given = FaultPlan::default().at(1, Fault::PauseHost { host: "h".into() });
    assert_eq!(run(Some(given.clone())).value, Ok(given));
    let wrong = FaultPlan::default().at(1, Fault::PauseHost { host: "x".into() });
    match run(Some(wrong)).value {
        Err(RunAbort::Panic(message)) => assert!(message.contains("\"x\""), "{message}"),
        other => panic!("a plan naming an unknown host ran: {other:?}"),
    }
}

#[test]
fn edge_cases_the_engine_met_count_as_faults_with_or_without_a_trace() {
    for trace in [true, false] {
        let mut options = WorldOptions::new(3);
        options.trace = trace;
        let report = run_world(options, |_world| async move {
            engine::met!("client.malformed_json", "frame {} rejected", 1);
            engine::met!("client.malformed_json", "frame {} rejected", 2);
            tracing::info!(target: "engine::gateway", kind = "client.other", "not a met event");
        });
        assert_eq!(
            report.faults.get("client.malformed_json"),
            Some(&2),
            "trace {trace}"
        );
        assert_eq!(report.faults.get("client.other"), None, "trace {trace}");
        if trace {
            let met: Vec<&str> = report
                .trace
                .lines
                .iter()
                .filter(|l| l.target == "engine::met")
                .map(|l| l.message.as_str())
                .collect();
            assert_eq!(met.len(), 2, "{met:?}");
            assert!(met[0].contains("frame 1 rejected"), "{met:?}");
        }
    }
    // Outside a world the event is an ordinary log line and counts nowhere.
    engine::met!("client.malformed_json", "outside");
}

#[test]
fn a_started_plan_swarms_late_hosts_and_applies_triggered_actions_after_their_mark() {
    use crate::faults::{Fault, FaultPlan, SwarmKind};
    let mut plan = FaultPlan::default()
        .at(
            5,
            Fault::ClockJump {
                host: "a".into(),
                delta_ms: 1_000,
            },
        )
        .after(
            "mid-answer",
            10,
            Fault::ClockDrift {
                host: "a".into(),
                ppm: 50,
            },
        );
    plan.swarm
        .rates
        .insert(SwarmKind::ProcSlowStart, crate::Ratio::new(1, 5));
    let report = run_world(WorldOptions::new(9), |world| async move {
        world.start_plan(plan);
        let a = world.add_host("a");
        assert_eq!(
            a.procs().options().slow_start_rate,
            crate::Ratio::new(1, 5),
            "a host added after the start gets the swarm"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(world.faults().count("clock.drift"), 0, "not marked yet");
        assert_eq!(world.mark("mid-answer").len(), 1);
        assert!(
            world.mark("mid-answer").is_empty(),
            "an event's actions apply once"
        );
        tokio::time::sleep(Duration::from_millis(9)).await;
        assert_eq!(
            world.faults().count("clock.drift"),
            0,
            "10 ms after the mark"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
        world.quiet("judging");
        let b = world.add_host("b");
        assert!(
            b.procs().options().slow_start_rate.is_zero(),
            "quiet holds for new hosts"
        );
    });
    assert_eq!(report.value, Ok(()));
    assert_eq!(report.faults.get("clock.jump"), Some(&1));
    assert_eq!(report.faults.get("clock.drift"), Some(&1));
}

#[test]
fn a_task_panicking_while_a_child_runs_ends_the_run_as_a_panic_not_a_process_abort() {
    // A panicking task used to make the runtime drop every task from inside its
    // scheduler; a child whose drop woke another task then aborted the whole process.
    let report = run_world(WorldOptions::new(5), |world| async move {
        let host = world.add_host("h");
        let env = host.env();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u8>(1);
        env.spawn("waiter", async move { rx.recv().await });
        env.spawn("holder", async move {
            let _keep = tx; // dropped with the task: wakes the waiter
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        env.spawn("panicker", async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            panic!("engine invariant broken");
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
    });
    match report.value {
        Err(RunAbort::Panic(message)) => {
            assert!(message.contains("engine invariant broken"), "{message}")
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(
        report.sim_time_ns, 5_000_000,
        "the run ends at the panic's instant"
    );
}

#[test]
fn a_run_ended_by_a_panic_has_the_same_trace_every_time() {
    let run = || {
        run_world(WorldOptions::new(6), |world| async move {
            let env = world.add_host("h").env();
            env.spawn("panicker", async {
                tokio::time::sleep(Duration::from_millis(7)).await;
                panic!("boom");
            });
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
    };
    let (a, b) = (run(), run());
    assert!(matches!(a.value, Err(RunAbort::Panic(_))));
    assert_eq!(
        a.trace.hash, b.trace.hash,
        "the abort line is stamped in virtual time"
    );
    let last = a.trace.lines.last().expect("the abort line");
    assert_eq!(last.t_ns, 7_000_000, "{last:?}");
}
