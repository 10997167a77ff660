//! The steps of the lifecycle's property test and their strategies: what the shell
//! does in each state, weighted towards progress, with any step now and then.

use super::model::Model;
use crate::disk_watch::disk_policy;
use crate::memory_watch::memory_policy;
use crate::reference::{ms, restart_policy};
use engine::env::ExitStatus;
use engine::workers::WorkerStatus;
use engine::workers::disk::DiskPolicy;
use engine::workers::lifecycle::{Action, Event, LifecyclePolicy};
use engine::workers::memory::MemoryPolicy;
use proptest::prelude::*;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Step {
    /// Time moves on by `after`, then the shell reports `event`.
    Event {
        after: Duration,
        event: Event,
        random: u64,
    },
    /// Time moves on by `after`, then a heartbeat line arrives.
    Heartbeat {
        after: Duration,
    },
    /// Time moves to `poll_timeout()` (unless already past it), then `handle_timeout`.
    Timeout,
    /// Time moves on by `after`, then `handle_timeout`: nothing may be due (a spurious
    /// wake-up), or several deadlines (the shell was busy).
    Wake {
        after: Duration,
    },
    MemorySample {
        after: Duration,
        bytes: u64,
    },
    CheckpointDone {
        after: Duration,
    },
    DiskSample {
        used: u64,
    },
    ReadOnlyFailed {
        on: bool,
    },
}

pub(super) fn lifecycle_policy() -> impl Strategy<Value = LifecyclePolicy> {
    let interval = (1..=3_000u64).prop_map(ms);
    let memory = (memory_policy(), interval.clone(), prop::bool::weighted(0.3)).prop_map(
        |(policy, sample_interval, owner_restarts)| MemoryPolicy {
            sample_interval,
            owner_restarts,
            ..policy
        },
    );
    let disk = (disk_policy(), interval).prop_map(|(policy, sample_interval)| DiskPolicy {
        sample_interval,
        ..policy
    });
    (
        (1..=60_000u64, 0..=5_000u64, 1..=30_000u64, restart_policy()),
        prop::option::weighted(0.75, 1..=10_000u64),
        prop::option::weighted(0.6, memory),
        prop::option::weighted(0.6, disk),
    )
        .prop_map(
            |((init_ms, warn_ms, grace_ms, restart), heartbeat_ms, memory, disk)| LifecyclePolicy {
                init_timeout: ms(init_ms),
                startup_warn_after: ms(warn_ms),
                grace: ms(grace_ms),
                restart,
                heartbeat_timeout: heartbeat_ms.map(ms),
                memory,
                disk,
            },
        )
}

fn exit_status() -> impl Strategy<Value = ExitStatus> {
    prop_oneof![
        (0..=255i32).prop_map(ExitStatus::from_code),
        prop::sample::select(vec![6, 9, 11, 15]).prop_map(ExitStatus::from_signal),
    ]
}

fn exited() -> impl Strategy<Value = Event> {
    exit_status().prop_map(|status| Event::Exited { status })
}

fn start_failed() -> impl Strategy<Value = Event> {
    "[A-Z]{1,8}".prop_map(|reason| Event::StartFailed { reason })
}

fn spawned() -> impl Strategy<Value = Event> {
    (1..=50_000u32).prop_map(|pid| Event::Spawned { pid })
}

fn connected() -> impl Strategy<Value = Event> {
    (1..=u16::MAX, 0..=10_000u64).prop_map(|(port, startup_ms)| Event::Connected {
        port,
        startup: ms(startup_ms),
    })
}

fn any_event() -> BoxedStrategy<Event> {
    prop_oneof![
        Just(Event::StartRequested),
        Just(Event::StopRequested),
        spawned(),
        start_failed(),
        connected(),
        Just(Event::InitTimedOut),
        exited(),
    ]
    .boxed()
}

/// The events the shell sends in the model's state, weighted towards progress.
fn likely_event(model: &Model) -> BoxedStrategy<Event> {
    use WorkerStatus as S;
    let stop = Just(Event::StopRequested);
    match model.status {
        S::Uninitialized | S::Stopped | S::Failed { .. } | S::BreakerOpen { .. } => {
            prop_oneof![4 => Just(Event::StartRequested), 1 => stop].boxed()
        }
        S::Starting { .. } if model.pid.is_none() => {
            prop_oneof![6 => spawned(), 2 => start_failed(), 1 => stop].boxed()
        }
        S::Starting { .. } => prop_oneof![
            6 => connected(),
            1 => Just(Event::InitTimedOut),
            1 => exited(),
            1 => start_failed(),
            1 => stop,
        ]
        .boxed(),
        S::Ready { .. } => prop_oneof![
            3 => exited(),
            2 => stop,
            1 => Just(Event::StartRequested),
        ]
        .boxed(),
        S::Stopping => prop_oneof![4 => exited(), 2 => stop].boxed(),
        S::Restarting { .. } => prop_oneof![1 => stop, 1 => Just(Event::StartRequested)].boxed(),
    }
}

/// Resident sizes around the memory watch's lines, flat, growing and jumping.
fn memory_bytes(model: &Model) -> BoxedStrategy<u64> {
    let Some(watch) = &model.memory else {
        return (0..=1_000_000u64).boxed();
    };
    let limit = watch.policy.limit_bytes;
    let last = watch.last().unwrap_or(limit / 2);
    let line = |percent: u64| limit * percent / 100;
    let near = |bytes: u64| bytes.saturating_sub(2)..=bytes + 2;
    prop_oneof![
        2 => 0..=limit + limit / 5,
        2 => Just(last),
        3 => (0..=limit / 10).prop_map(move |step| last.saturating_add(step)),
        1 => near(line(watch.policy.warn_percent)),
        1 => near(line(watch.policy.critical_percent)),
    ]
    .boxed()
}

/// Directory sizes clustered around the disk watch's lines.
fn disk_bytes(model: &Model) -> BoxedStrategy<u64> {
    let Some(watch) = &model.disk else {
        return (0..=10_000u64).boxed();
    };
    let quota = watch.policy.quota_bytes;
    let at = |percent: u64| quota * percent / 100;
    let near = |line: u64| line.saturating_sub(2)..=line + 2;
    prop_oneof![
        2 => 0..=quota * 2,
        2 => near(at(watch.policy.alert_percent)),
        2 => near(at(watch.policy.critical_percent)),
        1 => Just(0),
    ]
    .boxed()
}

/// The next step: what the shell owes the core first, then events, deadlines,
/// heartbeats and stray inputs.
pub(super) fn next(model: &Model) -> BoxedStrategy<Step> {
    let restart = &model.policy.restart;
    let window_ms = restart.window.as_millis() as u64;
    let long_ms = window_ms.max(restart.stable_after.as_millis() as u64) * 2;
    // Gaps from "at once" to "past the window and the stable time", so failures both
    // pile up in one window and slide out of it, and runs are both short and stable.
    let after = prop_oneof![Just(0), 0..=window_ms / 2, 0..=long_ms].prop_map(ms);
    let short = prop_oneof![Just(0), 0..=6_000u64].prop_map(ms);
    let event = prop_oneof![6 => likely_event(model), 1 => any_event()];
    let event = (after, event, any::<u64>())
        .prop_map(|(after, event, random)| Step::Event {
            after,
            event,
            random,
        })
        .boxed();
    let heartbeat = short.clone().prop_map(|after| Step::Heartbeat { after });
    let wake = short.clone().prop_map(|after| Step::Wake { after });
    let memory = (short.clone(), memory_bytes(model))
        .prop_map(|(after, bytes)| Step::MemorySample { after, bytes });
    let disk = disk_bytes(model).prop_map(|used| Step::DiskSample { used });
    let done = short.prop_map(|after| Step::CheckpointDone { after });
    let failed = any::<bool>().prop_map(|on| Step::ReadOnlyFailed { on });
    // What the shell owes the core after the last step comes first: the figure it
    // was asked to measure (at once), the checkpoint's end, a failed mode change.
    if model.effects.contains(&Action::SampleMemory) {
        return prop_oneof![
            8 => (memory_bytes(model)).prop_map(|bytes| Step::MemorySample { after: Duration::ZERO, bytes }),
            1 => event,
        ]
        .boxed();
    }
    if model.effects.contains(&Action::SampleDisk) {
        return prop_oneof![8 => disk, 1 => event].boxed();
    }
    if model.memory_stop_pending {
        return prop_oneof![6 => done, 1 => event, 1 => heartbeat].boxed();
    }
    if let Some(on) = model.read_only_asked() {
        return prop_oneof![
            2 => Just(Step::ReadOnlyFailed { on }),
            2 => Just(Step::Timeout),
            1 => event,
        ]
        .boxed();
    }
    // Without a deadline there is no timeout to wait for: the shell waits for events.
    let timeout = if model.deadlines.earliest().is_some() {
        Just(Step::Timeout).boxed()
    } else {
        event.clone()
    };
    if matches!(model.status, WorkerStatus::Ready { .. }) {
        prop_oneof![
            3 => event,
            6 => timeout,
            3 => heartbeat,
            1 => wake,
            1 => memory,
            1 => disk,
            1 => done,
            1 => failed,
        ]
        .boxed()
    } else {
        // Restarting and Stopping wait mostly for their deadline.
        let waits = matches!(
            model.status,
            WorkerStatus::Restarting { .. } | WorkerStatus::Stopping
        );
        prop_oneof![
            6 => event,
            if waits { 6 } else { 3 } => timeout,
            1 => wake,
            1 => heartbeat,
            1 => memory,
            1 => disk,
            1 => done,
        ]
        .boxed()
    }
}
