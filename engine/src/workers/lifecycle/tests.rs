use super::*;

const MB: u64 = 1 << 20;

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
        heartbeat_timeout: None,
        memory: None,
        disk: None,
    }
}

/// Heartbeats every second with a 5 s timeout, and memory and disk sampled each second.
fn watched() -> LifecyclePolicy {
    LifecyclePolicy {
        heartbeat_timeout: Some(s(5)),
        memory: Some(MemoryPolicy::with_limit(100 * MB)),
        disk: Some(DiskPolicy::with_quota(1000)),
        ..policy()
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ready(core: &mut Lifecycle, at: Duration) {
    core.handle_event(at, Event::StartRequested, 0);
    core.handle_event(at, Event::Spawned { pid: 7 }, 0);
    core.handle_event(
        at,
        Event::Connected {
            port: 9,
            startup: Duration::ZERO,
        },
        0,
    );
    assert_eq!(core.status(), &WorkerStatus::Ready { pid: 7, port: 9 });
}

fn exited(code: i32) -> Event {
    Event::Exited {
        status: ExitStatus::from_code(code),
    }
}

#[test]
fn a_failed_user_start_reports_failed_with_the_reason_and_does_not_retry() {
    let mut core = Lifecycle::new(policy());
    let actions = core.handle_event(s(0), Event::StartRequested, 0);
    assert!(actions.contains(&Action::Spawn));
    let actions = core.handle_event(
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
    assert!(!actions.contains(&Action::Spawn));
    assert_eq!(core.poll_timeout(), None, "no restart is scheduled");
    // Each later start is handled on its own; the status reflects the latest.
    core.handle_event(s(1), Event::StartRequested, 0);
    core.handle_event(
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
    let actions = core.handle_event(s(0), Event::StopRequested, 0);
    assert_eq!(core.status(), &WorkerStatus::Uninitialized);
    assert!(actions.iter().all(|a| matches!(a, Action::Info(_))));
}

#[test]
fn crashes_restart_with_backoff_until_the_breaker_opens() {
    let mut core = Lifecycle::new(policy());
    ready(&mut core, s(0));
    let segv = ExitStatus::from_signal(11);
    let actions = core.handle_event(s(1), Event::Exited { status: segv }, 0);
    assert!(actions.contains(&Action::Note(Note::Crash)));
    assert_eq!(core.deadlines().restart, Some(Duration::from_millis(1500)));
    assert!(matches!(
        core.status(),
        WorkerStatus::Restarting { failures: 1 }
    ));
    assert!(core.handle_timeout(Duration::from_millis(1499)).is_empty());
    let actions = core.handle_timeout(s(2));
    assert_eq!(
        actions[..2],
        [
            Action::Note(Note::Restart),
            Action::Publish(WorkerStatus::Starting { attempt: 2 })
        ]
    );
    assert!(actions.contains(&Action::Spawn));
    core.handle_event(s(2), Event::Spawned { pid: 8 }, 0);
    core.handle_event(
        s(2),
        Event::Connected {
            port: 9,
            startup: Duration::ZERO,
        },
        0,
    );
    core.handle_event(s(3), Event::Exited { status: segv }, 0);
    assert_eq!(core.poll_timeout(), Some(s(4)), "the backoff doubles");
    core.handle_timeout(s(4));
    core.handle_event(
        s(4),
        Event::StartFailed {
            reason: "EAGAIN".into(),
        },
        0,
    );
    assert_eq!(core.status(), &WorkerStatus::BreakerOpen { failures: 3 });
    assert_eq!(core.poll_timeout(), None);
    // A start by hand closes the breaker.
    core.handle_event(s(5), Event::StartRequested, 0);
    assert!(matches!(core.status(), WorkerStatus::Starting { .. }));
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_the_grace_period() {
    let mut core = Lifecycle::new(policy());
    ready(&mut core, s(0));
    let actions = core.handle_event(s(1), Event::StopRequested, 0);
    assert!(actions.contains(&Action::Signal(Signal::Term)));
    assert_eq!(core.poll_timeout(), Some(s(31)));
    let actions = core.handle_timeout(s(31));
    assert_eq!(actions[0], Action::Note(Note::ForcedKill));
    assert!(actions.contains(&Action::Signal(Signal::Kill)));
    assert_eq!(core.poll_timeout(), None, "the grace period fires once");
    core.handle_event(
        s(31),
        Event::Exited {
            status: ExitStatus::from_signal(9),
        },
        0,
    );
    assert_eq!(core.status(), &WorkerStatus::Stopped);
}

#[test]
fn an_exit_within_the_grace_period_clears_it() {
    let mut core = Lifecycle::new(policy());
    ready(&mut core, s(0));
    core.handle_event(s(1), Event::StopRequested, 0);
    core.handle_event(s(2), exited(0), 0);
    assert_eq!(core.status(), &WorkerStatus::Stopped);
    assert_eq!(core.deadlines(), Deadlines::default());
    assert!(core.handle_timeout(s(31)).is_empty());
}

#[test]
fn heartbeats_push_the_hang_deadline_and_silence_kills_once() {
    let mut core = Lifecycle::new(LifecyclePolicy {
        heartbeat_timeout: Some(s(5)),
        ..policy()
    });
    assert_eq!(core.poll_timeout(), None, "no deadline before ready");
    ready(&mut core, s(0));
    assert_eq!(core.deadlines().heartbeat, Some(s(5)));
    core.handle_heartbeat(s(3));
    assert_eq!(core.poll_timeout(), Some(s(8)));
    assert!(core.handle_timeout(s(7)).is_empty(), "nothing due yet");
    let actions = core.handle_timeout(s(8));
    assert_eq!(actions[0], Action::Note(Note::HangDetected));
    assert!(actions.contains(&Action::Signal(Signal::Kill)));
    assert!(matches!(core.status(), WorkerStatus::Ready { .. }));
    // Declared hung: a late heartbeat does not re-arm the watch.
    core.handle_heartbeat(s(9));
    assert_eq!(core.poll_timeout(), None);
    core.handle_event(
        s(9),
        Event::Exited {
            status: ExitStatus::from_signal(9),
        },
        0,
    );
    assert!(matches!(core.status(), WorkerStatus::Restarting { .. }));
    assert_eq!(core.deadlines().heartbeat, None);
}

#[test]
fn a_worker_without_heartbeats_is_not_watched_for_them() {
    let mut core = Lifecycle::new(policy());
    ready(&mut core, s(0));
    core.handle_heartbeat(s(1));
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn due_deadlines_fire_one_per_call_in_their_order() {
    let mut core = Lifecycle::new(watched());
    ready(&mut core, s(0));
    let d = core.deadlines();
    assert_eq!(
        (d.heartbeat, d.memory_sample, d.disk_sample),
        (Some(s(5)), Some(s(1)), Some(s(1)))
    );
    // Overdue after a busy spell: the hang first, then memory, then disk.
    assert_eq!(
        core.handle_timeout(s(6))[0],
        Action::Note(Note::HangDetected)
    );
    assert_eq!(core.handle_timeout(s(6)), [Action::SampleMemory]);
    assert_eq!(core.handle_timeout(s(6)), [Action::SampleDisk]);
    assert!(core.handle_timeout(s(6)).is_empty());
    assert_eq!(core.poll_timeout(), Some(s(7)), "both samples re-armed");
}

#[test]
fn a_memory_restart_checkpoints_files_a_request_then_stops_and_starts() {
    let mut core = Lifecycle::new(watched());
    ready(&mut core, s(0));
    assert_eq!(core.handle_timeout(s(1)), [Action::SampleMemory]);
    assert!(core.handle_memory_sample(s(1), 50 * MB).is_empty());
    assert_eq!(
        core.handle_memory_sample(s(2), 81 * MB)[..2],
        [
            Action::Note(Note::MemoryRestart {
                bytes: 81 * MB,
                percent: 81,
                growth_bytes_per_s: 31 * MB
            }),
            Action::Checkpoint { port: 9 }
        ]
    );
    // Still ready while the checkpoint runs; no more memory samples.
    assert!(matches!(core.status(), WorkerStatus::Ready { .. }));
    assert_eq!(core.deadlines().memory_sample, None);
    let actions = core.handle_checkpoint_done(s(7));
    assert_eq!(
        actions[..2],
        [
            Action::FileOversight(OversightRequest::RaiseMemoryLimit {
                current_bytes: 100 * MB,
                proposed_bytes: 200 * MB
            }),
            Action::Publish(WorkerStatus::Stopping)
        ]
    );
    assert!(actions.contains(&Action::Signal(Signal::Term)));
    let d = core.deadlines();
    assert_eq!(
        d.grace,
        Some(s(37)),
        "the grace period counts from the stop"
    );
    assert_eq!(
        (d.heartbeat, d.memory_sample, d.disk_sample),
        (None, None, None)
    );
    let actions = core.handle_event(s(8), exited(0), 0);
    assert!(
        actions.contains(&Action::Spawn),
        "a planned restart respawns"
    );
    assert_eq!(core.deadlines(), Deadlines::default());
}

#[test]
fn planned_restarts_are_not_counted_as_failures() {
    let mut core = Lifecycle::new(watched());
    ready(&mut core, s(0));
    for i in 0..5 {
        let t = s(10 * i + 1);
        core.handle_memory_sample(t, 99 * MB);
        core.handle_checkpoint_done(t);
        let actions = core.handle_event(t, exited(0), 0);
        assert!(actions.contains(&Action::Spawn), "planned restart {i}");
        core.handle_event(t, Event::Spawned { pid: 8 }, 0);
        core.handle_event(
            t,
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
fn an_owner_restart_only_notes_the_verdict() {
    let mut memory = MemoryPolicy::with_limit(100 * MB);
    memory.owner_restarts = true;
    let mut core = Lifecycle::new(LifecyclePolicy {
        memory: Some(memory),
        ..policy()
    });
    ready(&mut core, s(0));
    let actions = core.handle_memory_sample(s(1), 99 * MB);
    assert!(matches!(
        actions[..],
        [Action::Note(Note::MemoryRestartDue { percent: 99, .. })]
    ));
    assert_eq!(
        core.deadlines().memory_sample,
        Some(s(1)),
        "sampling goes on"
    );
}

#[test]
fn a_checkpoint_done_after_the_process_exited_stops_nothing() {
    let mut core = Lifecycle::new(watched());
    ready(&mut core, s(0));
    core.handle_memory_sample(s(1), 99 * MB);
    core.handle_event(s(2), exited(1), 0);
    let actions = core.handle_checkpoint_done(s(3));
    assert!(actions.iter().all(|a| matches!(a, Action::Info(_))));
    assert!(matches!(core.status(), WorkerStatus::Restarting { .. }));
}

#[test]
fn disk_alerts_propose_a_cleanup_and_read_only_mode_is_asked_again_after_a_failure() {
    let mut core = Lifecycle::new(watched());
    ready(&mut core, s(0));
    assert!(core.handle_disk_sample(100).is_empty());
    assert_eq!(
        core.handle_disk_sample(800),
        [
            Action::Note(Note::DiskAlert {
                used_bytes: 800,
                quota_bytes: 1000,
                percent: 80
            }),
            Action::ProposeCleanup {
                used_bytes: 800,
                quota_bytes: 1000,
                large_file_bytes: 10 * MB
            }
        ]
    );
    let read_only = Action::SetReadOnly {
        port: 9,
        on: true,
        used_bytes: 960,
        percent: 96,
    };
    assert_eq!(
        core.handle_disk_sample(960),
        std::slice::from_ref(&read_only)
    );
    core.handle_read_only_failed(true);
    assert_eq!(core.handle_disk_sample(960), [read_only], "asked again");
    assert!(
        core.handle_disk_sample(960).is_empty(),
        "taken: not asked again"
    );
    assert!(matches!(
        core.handle_disk_sample(100)[..],
        [Action::SetReadOnly { on: false, .. }]
    ));
}

#[test]
fn samples_outside_ready_are_ignored() {
    let mut core = Lifecycle::new(watched());
    for actions in [
        core.handle_memory_sample(s(0), 99 * MB),
        core.handle_disk_sample(2000),
    ] {
        assert!(actions.iter().all(|a| matches!(a, Action::Info(_))));
    }
}

#[test]
fn a_stop_while_restarting_clears_the_restart_deadline() {
    let mut core = Lifecycle::new(policy());
    ready(&mut core, s(0));
    core.handle_event(s(1), exited(1), 0);
    assert!(core.poll_timeout().is_some());
    core.handle_event(s(1), Event::StopRequested, 0);
    assert_eq!(core.status(), &WorkerStatus::Stopped);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn init_timeout_abandons_the_process() {
    let mut core = Lifecycle::new(policy());
    core.handle_event(s(0), Event::StartRequested, 0);
    core.handle_event(s(0), Event::Spawned { pid: 7 }, 0);
    let actions = core.handle_event(s(60), Event::InitTimedOut, 0);
    assert!(actions.contains(&Action::Abandon));
    assert!(
        matches!(core.status(), WorkerStatus::Failed { reason } if reason.contains("init timeout"))
    );
}

#[test]
fn a_slow_startup_is_warned_about_and_noted() {
    let mut core = Lifecycle::new(policy());
    core.handle_event(s(0), Event::StartRequested, 0);
    core.handle_event(s(0), Event::Spawned { pid: 7 }, 0);
    let actions = core.handle_event(
        s(3),
        Event::Connected {
            port: 9,
            startup: s(3),
        },
        0,
    );
    assert!(actions.contains(&Action::Note(Note::SlowStartup)));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Warn(w) if w.contains("slow startup")))
    );
}
