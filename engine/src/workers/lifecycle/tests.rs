use super::*;

fn policy() -> LifecyclePolicy {
    LifecyclePolicy {
        init_timeout: Duration::from_secs(60),
        startup_warn_after: Duration::from_secs(2),
        grace: Duration::from_secs(30),
        restart: RestartPolicy {
            jitter_percent: 0,
            failures_max: 3,
            ..RestartPolicy::default_policy()
        },
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ready(core: &mut Lifecycle, at: Duration) {
    core.on(at, Event::StartRequested, 0);
    core.on(at, Event::Spawned { pid: 7 }, 0);
    core.on(
        at,
        Event::Connected {
            port: 9,
            startup: Duration::ZERO,
        },
        0,
    );
    assert_eq!(core.status(), &WorkerStatus::Ready { pid: 7, port: 9 });
}

#[test]
fn a_failed_user_start_reports_failed_with_the_reason_and_does_not_retry() {
    let mut core = Lifecycle::new(policy());
    let actions = core.on(s(0), Event::StartRequested, 0);
    assert!(actions.contains(&Action::Spawn));
    let actions = core.on(
        s(0),
        Event::StartFailed {
            reason: "ENOENT".into(),
        },
        0,
    );
    assert_eq!(
        core.status(),
        &WorkerStatus::Failed {
            reason: "ENOENT".into()
        }
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::ArmRestartTimer(_) | Action::Spawn))
    );
    // Each later start is handled on its own; the status reflects the latest.
    core.on(s(1), Event::StartRequested, 0);
    core.on(
        s(1),
        Event::StartFailed {
            reason: "EACCES".into(),
        },
        0,
    );
    assert_eq!(
        core.status(),
        &WorkerStatus::Failed {
            reason: "EACCES".into()
        }
    );
}

#[test]
fn stop_on_a_never_started_worker_is_a_no_op() {
    let mut core = Lifecycle::new(policy());
    let actions = core.on(s(0), Event::StopRequested, 0);
    assert_eq!(core.status(), &WorkerStatus::Uninitialized);
    assert!(actions.iter().all(|a| matches!(a, Action::Info(_))));
}

#[test]
fn crashes_restart_with_backoff_until_the_breaker_opens() {
    let mut core = Lifecycle::new(policy());
    ready(&mut core, s(0));
    let segv = ExitStatus::from_signal(11);
    let actions = core.on(s(1), Event::Exited { status: segv }, 0);
    assert!(actions.contains(&Action::ArmRestartTimer(Duration::from_millis(500))));
    assert!(matches!(
        core.status(),
        WorkerStatus::Restarting { failures: 1 }
    ));
    core.on(s(2), Event::RestartDue, 0);
    core.on(s(2), Event::Spawned { pid: 8 }, 0);
    core.on(
        s(2),
        Event::Connected {
            port: 9,
            startup: Duration::ZERO,
        },
        0,
    );
    let actions = core.on(s(3), Event::Exited { status: segv }, 0);
    assert!(actions.contains(&Action::ArmRestartTimer(Duration::from_millis(1000))));
    core.on(s(4), Event::RestartDue, 0);
    core.on(
        s(4),
        Event::StartFailed {
            reason: "EAGAIN".into(),
        },
        0,
    );
    assert_eq!(core.status(), &WorkerStatus::BreakerOpen { failures: 3 });
    // A start by hand closes the breaker.
    core.on(s(5), Event::StartRequested, 0);
    assert!(matches!(core.status(), WorkerStatus::Starting { .. }));
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_the_grace_period() {
    let mut core = Lifecycle::new(policy());
    ready(&mut core, s(0));
    let actions = core.on(s(1), Event::StopRequested, 0);
    assert!(actions.contains(&Action::Signal(Signal::Term)));
    assert!(actions.contains(&Action::ArmGraceTimer(s(30))));
    let actions = core.on(s(31), Event::GraceElapsed, 0);
    assert!(actions.contains(&Action::Signal(Signal::Kill)));
    core.on(
        s(31),
        Event::Exited {
            status: ExitStatus::from_signal(9),
        },
        0,
    );
    assert_eq!(core.status(), &WorkerStatus::Stopped);
}

#[test]
fn a_memory_restart_is_planned_and_not_counted_as_a_failure() {
    let mut core = Lifecycle::new(policy());
    ready(&mut core, s(0));
    for i in 0..5 {
        core.on(s(10 * i + 1), Event::MemoryRestart, 0);
        let actions = core.on(
            s(10 * i + 2),
            Event::Exited {
                status: ExitStatus::from_code(0),
            },
            0,
        );
        assert!(
            actions.contains(&Action::Spawn),
            "planned restart {i} did not respawn"
        );
        core.on(s(10 * i + 2), Event::Spawned { pid: 8 }, 0);
        core.on(
            s(10 * i + 2),
            Event::Connected {
                port: 9,
                startup: Duration::ZERO,
            },
            0,
        );
    }
    assert!(matches!(core.status(), WorkerStatus::Ready { .. }));
}

#[test]
fn init_timeout_abandons_the_process() {
    let mut core = Lifecycle::new(policy());
    core.on(s(0), Event::StartRequested, 0);
    core.on(s(0), Event::Spawned { pid: 7 }, 0);
    let actions = core.on(s(60), Event::InitTimedOut, 0);
    assert!(actions.contains(&Action::Abandon));
    assert!(
        matches!(core.status(), WorkerStatus::Failed { reason } if reason.contains("init timeout"))
    );
}

#[test]
fn a_slow_startup_is_warned_about() {
    let mut core = Lifecycle::new(policy());
    core.on(s(0), Event::StartRequested, 0);
    core.on(s(0), Event::Spawned { pid: 7 }, 0);
    let actions = core.on(
        s(3),
        Event::Connected {
            port: 9,
            startup: s(3),
        },
        0,
    );
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Warn(w) if w.contains("slow startup")))
    );
}
