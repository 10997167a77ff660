//! The pool's core, driven directly: no runtime, no processes.

use super::*;
use crate::workers::WorkerConfig;
use std::time::Duration;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn config(size_target: usize) -> WarmPoolConfig {
    let mut config = WarmPoolConfig::new("p", WorkerConfig::new("/usr/bin/worker", "pool"));
    config.size_target = size_target;
    config.max_age = s(600);
    config
}

fn start(core: &mut PoolCore, now: Duration) -> String {
    match core.next_fill(now) {
        Fill::Start { name, .. } => name,
        other => panic!("expected a start at {now:?}, got {other:?}"),
    }
}

/// Warms `n` workers, each ready `took` after its start; returns the time it is done.
fn warm(core: &mut PoolCore, n: usize, mut now: Duration, took: Duration) -> Duration {
    for _ in 0..n {
        let name = match core.next_fill(now) {
            Fill::Start { name, .. } => name,
            Fill::WaitUntil(at) => {
                now = at;
                start(core, now)
            }
            other => panic!("expected a start or a wait, got {other:?}"),
        };
        now += took;
        assert_eq!(core.prewarm_ready(now, &name), None);
    }
    now
}

#[test]
fn prewarming_is_one_at_a_time_and_staggered() {
    let mut core = PoolCore::new(&config(3));
    let first = start(&mut core, s(0));
    assert_eq!(first, "p-1");
    // Nothing else starts while the first one is starting.
    assert_eq!(core.next_fill(s(1)), Fill::Idle);
    assert_eq!(core.prewarm_ready(s(2), &first), None);
    // The next one only a stagger after the previous attempt ended.
    assert_eq!(core.next_fill(s(3)), Fill::WaitUntil(s(7)));
    assert_eq!(start(&mut core, s(7)), "p-2");
    core.prewarm_ready(s(8), "p-2");
    assert_eq!(start(&mut core, s(13)), "p-3");
    core.prewarm_ready(s(13), "p-3");
    // Full: only the first worker's age expiry is left to wait for.
    assert_eq!(
        core.next_fill(s(20)),
        Fill::WaitUntil(s(2) + s(600) + Duration::from_nanos(1))
    );
    let starts: Vec<Duration> = core
        .stats()
        .prewarm_attempts
        .iter()
        .map(|a| a.started_at)
        .collect();
    assert_eq!(starts, vec![s(0), s(7), s(13)]);
    assert_eq!(core.stats().prewarm_ready, 3);
}

#[test]
fn failed_prewarms_back_off_doubling_and_a_success_resets_it() {
    let mut config = config(1);
    config.stagger = s(1);
    let mut core = PoolCore::new(&config);
    let mut now = s(0);
    let mut pauses = Vec::new();
    for _ in 0..8 {
        let name = start(&mut core, now);
        core.prewarm_failed(now, &name, "EAGAIN");
        let Fill::WaitUntil(at) = core.next_fill(now) else {
            panic!("a failed attempt must be retried");
        };
        pauses.push((at - now).as_secs());
        now = at;
    }
    assert_eq!(pauses, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(core.stats().prewarm_failed, 8);
    let name = start(&mut core, now);
    core.prewarm_ready(now + s(1), &name);
    assert_eq!(core.stats().prewarm_ready, 1);
    // Fresh attempts get fresh names.
    assert_eq!(name, "p-9");
    core.set_config_version(2);
    // The stale one is retired first (after the stagger), then replaced.
    let at = now + s(2);
    assert!(matches!(core.next_fill(at), Fill::Retire { .. }));
    core.retired("p-9");
    let replacement = start(&mut core, at);
    core.prewarm_failed(at, &replacement, "EAGAIN");
    // After a success the backoff starts over.
    assert_eq!(core.next_fill(at), Fill::WaitUntil(at + s(1)));
}

#[test]
fn the_backoff_never_goes_below_the_stagger() {
    let mut core = PoolCore::new(&config(1));
    let name = start(&mut core, s(0));
    core.prewarm_failed(s(60), &name, "init timeout");
    assert_eq!(core.next_fill(s(60)), Fill::WaitUntil(s(65)));
}

#[test]
fn stale_workers_are_never_handed_out_and_are_replaced_one_at_a_time() {
    let mut core = PoolCore::new(&config(2));
    let now = warm(&mut core, 2, s(0), s(1));
    core.set_config_version(2);
    for member in core.members(now) {
        assert_eq!(
            member.freshness,
            Freshness::ConfigMismatch {
                version: 1,
                current: 2
            }
        );
    }
    // A claim now finds no fresh worker: it queues instead of taking a stale one.
    let claim = core.next_claim_id();
    assert_eq!(
        core.claim(now, claim, Priority::Normal),
        ClaimDecision::Wait { position: 0 }
    );
    let mut now = now + s(5);
    let Fill::Retire { name, reason } = core.next_fill(now) else {
        panic!("the stale idle worker is retired first");
    };
    assert_eq!(name, "p-1");
    assert!(matches!(
        reason,
        RetireReason::Stale(Freshness::ConfigMismatch { .. })
    ));
    core.retired(&name);
    let fresh = start(&mut core, now);
    // The second stale one waits for the replacement of the first.
    assert_eq!(core.next_fill(now), Fill::Idle);
    now += s(3);
    // The replacement goes straight to the queued claim.
    assert_eq!(
        core.prewarm_ready(now, &fresh),
        Some(Handoff {
            claim,
            name: fresh.clone()
        })
    );
    assert!(matches!(core.next_fill(now), Fill::WaitUntil(at) if at == now + s(5)));
    let Fill::Retire { name, .. } = core.next_fill(now + s(5)) else {
        panic!("then the second stale worker");
    };
    assert_eq!(name, "p-2");
    assert_eq!(core.stats().stale_retired, 2);
}

#[test]
fn a_worker_past_its_maximum_age_is_stale() {
    let mut core = PoolCore::new(&config(1));
    warm(&mut core, 1, s(0), s(1));
    assert_eq!(core.freshness("p-1", s(601)), Some(Freshness::Fresh));
    assert_eq!(
        core.freshness("p-1", s(602)),
        Some(Freshness::TooOld { age: s(601) })
    );
    let id = core.next_claim_id();
    assert_eq!(
        core.claim(s(602), id, Priority::High),
        ClaimDecision::Wait { position: 0 }
    );
    assert!(matches!(
        core.next_fill(s(602)),
        Fill::Retire {
            reason: RetireReason::Stale(Freshness::TooOld { .. }),
            ..
        }
    ));
}

#[test]
fn the_first_three_queue_positions_wait_and_the_rest_cold_start_with_a_warning() {
    let mut core = PoolCore::new(&config(1));
    let now = warm(&mut core, 1, s(0), s(1));
    let first = core.next_claim_id();
    assert_eq!(
        core.claim(now, first, Priority::Low),
        ClaimDecision::Grant { name: "p-1".into() }
    );
    let mut decisions = Vec::new();
    for _ in 0..5 {
        let id = core.next_claim_id();
        decisions.push(core.claim(now, id, Priority::Normal));
    }
    assert_eq!(
        decisions,
        vec![
            ClaimDecision::Wait { position: 0 },
            ClaimDecision::Wait { position: 1 },
            ClaimDecision::Wait { position: 2 },
            ClaimDecision::ColdStart { name: "p-2".into() },
            ClaimDecision::ColdStart { name: "p-3".into() },
        ]
    );
    assert_eq!(core.stats().sla_warnings, 2);
    // A release goes to the head of the queue.
    assert_eq!(
        core.release(now + s(3), first),
        ReleaseDecision::HandOver(Handoff {
            claim: 2,
            name: "p-1".into()
        })
    );
    // A wait that runs out becomes a cold start, with a warning.
    assert_eq!(
        core.wait_expired(3),
        WaitExpiry::ColdStart { name: "p-4".into() }
    );
    assert_eq!(core.wait_expired(2), WaitExpiry::AlreadyServed);
    assert_eq!(core.stats().sla_warnings, 3);
    assert_eq!(core.stats().wait_timeouts, 1);
    assert_eq!(core.waiting(), vec![(4, Priority::Normal)]);
}

#[test]
fn higher_priority_claims_queue_ahead() {
    let mut core = PoolCore::new(&config(0));
    for priority in [Priority::Low, Priority::Normal, Priority::Normal] {
        let id = core.next_claim_id();
        assert!(matches!(
            core.claim(s(0), id, priority),
            ClaimDecision::Wait { .. }
        ));
    }
    // A High claim with nothing to pre-empt goes to the front of the queue.
    let id = core.next_claim_id();
    assert_eq!(
        core.claim(s(0), id, Priority::High),
        ClaimDecision::Wait { position: 0 }
    );
    assert_eq!(
        core.waiting(),
        vec![
            (4, Priority::High),
            (2, Priority::Normal),
            (3, Priority::Normal),
            (1, Priority::Low)
        ]
    );
    // The queue is now 4 long: a Normal claim lands at position 3 and cold-starts.
    let id = core.next_claim_id();
    assert!(matches!(
        core.claim(s(0), id, Priority::Normal),
        ClaimDecision::ColdStart { .. }
    ));
}

#[test]
fn a_high_claim_preempts_the_newest_lowest_priority_claim_after_its_checkpoint() {
    let mut core = PoolCore::new(&config(3));
    let now = warm(&mut core, 3, s(0), s(1));
    let mut ids = Vec::new();
    for priority in [Priority::Low, Priority::Normal, Priority::Low] {
        let id = core.next_claim_id();
        assert!(matches!(
            core.claim(now, id, priority),
            ClaimDecision::Grant { .. }
        ));
        ids.push(id);
    }
    let high = core.next_claim_id();
    let ClaimDecision::Preempt { name, victim } = core.claim(now, high, Priority::High) else {
        panic!("a High claim pre-empts when every worker is claimed by lower priorities");
    };
    assert_eq!(victim, ids[2]);
    // Until the checkpoint is done, nobody else can take it.
    let other = core.next_claim_id();
    assert!(
        matches!(core.claim(now, other, Priority::High), ClaimDecision::Preempt { victim, .. } if victim == ids[0])
    );
    assert_eq!(core.preempt_done(&name, high), Some(victim));
    assert_eq!(core.stats().preemptions, 1);
    // The victim's late release is ignored: the worker is the High claim's now.
    assert_eq!(core.release(now, victim), ReleaseDecision::Ignored);
    // A High claim never pre-empts another High claim.
    let third = core.next_claim_id();
    let decision = core.preempt_failed(now, "p-1", other, Priority::High);
    assert_eq!(decision, ClaimDecision::Wait { position: 0 });
    assert!(
        matches!(core.claim(now, third, Priority::High), ClaimDecision::Preempt { victim, .. } if victim == ids[0])
    );
}

#[test]
fn a_failed_checkpoint_leaves_the_victim_its_worker() {
    let mut core = PoolCore::new(&config(1));
    let now = warm(&mut core, 1, s(0), s(1));
    let low = core.next_claim_id();
    core.claim(now, low, Priority::Low);
    let high = core.next_claim_id();
    let ClaimDecision::Preempt { name, .. } = core.claim(now, high, Priority::High) else {
        panic!("expected a pre-emption");
    };
    assert_eq!(
        core.preempt_failed(now, &name, high, Priority::High),
        ClaimDecision::Wait { position: 0 }
    );
    assert_eq!(core.stats().preemptions_abandoned, 1);
    let member = &core.members(now)[0];
    assert_eq!(
        member.state,
        MemberState::Claimed {
            claim: low,
            priority: Priority::Low
        }
    );
    // When the victim releases it, the waiting High claim gets it.
    assert_eq!(
        core.release(now, low),
        ReleaseDecision::HandOver(Handoff { claim: high, name })
    );
}

#[test]
fn a_stale_worker_released_is_retired_not_returned() {
    let mut core = PoolCore::new(&config(1));
    let now = warm(&mut core, 1, s(0), s(1));
    let id = core.next_claim_id();
    core.claim(now, id, Priority::Normal);
    core.set_config_version(7);
    assert!(matches!(
        core.release(now, id),
        ReleaseDecision::Retire {
            freshness: Freshness::ConfigMismatch {
                version: 1,
                current: 7
            },
            ..
        }
    ));
    assert_eq!(core.release(now, id), ReleaseDecision::Ignored);
    assert_eq!(core.stats().stale_retired, 1);
}

#[test]
fn surplus_idle_workers_are_retired_down_to_the_target() {
    let mut core = PoolCore::new(&config(1));
    let now = warm(&mut core, 1, s(0), s(1));
    let a = core.next_claim_id();
    core.claim(now, a, Priority::Normal);
    let b = core.next_claim_id();
    let ClaimDecision::Wait { .. } = core.claim(now, b, Priority::Normal) else {
        panic!("expected a wait");
    };
    assert_eq!(
        core.wait_expired(b),
        WaitExpiry::ColdStart { name: "p-2".into() }
    );
    core.cold_ready(now + s(2), "p-2", b, Priority::Normal);
    core.release(now + s(3), a);
    core.release(now + s(3), b);
    let Fill::Retire { name, reason } = core.next_fill(now + s(10)) else {
        panic!("one of two idle workers is surplus");
    };
    assert_eq!((name.as_str(), reason), ("p-1", RetireReason::Surplus));
}

#[test]
fn backoff_delays_double_to_the_cap() {
    let backoff = Backoff::prewarm();
    let delays: Vec<u64> = (0..9).map(|n| backoff.delay(n).as_secs()).collect();
    assert_eq!(delays, vec![0, 1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(backoff.delay(u32::MAX), s(60));
}

#[test]
fn sessions_take_warm_workers_or_none_and_retire_them() {
    let mut core = PoolCore::new(&config(1));
    let now = warm(&mut core, 1, s(0), s(1));
    assert!(core.is_ready());
    assert_eq!(core.depth(now), 1);
    let first = core.next_claim_id();
    assert_eq!(
        core.try_claim(now, first, Priority::Normal),
        Some("p-1".to_string())
    );
    // Dry: no wait and no start behind the caller's back, only the count.
    let second = core.next_claim_id();
    assert_eq!(core.try_claim(now, second, Priority::Normal), None);
    assert_eq!(core.stats().drained, 1);
    assert!(core.waiting().is_empty());
    assert_eq!(core.cold_claim(), "p-2");
    assert_eq!(
        (core.stats().cold_starts, core.stats().sla_warnings),
        (1, 1)
    );
    // A session's worker leaves the pool for good.
    assert_eq!(core.retire_claim(first), Some("p-1".to_string()));
    assert_eq!(core.retire_claim(first), None, "retired once");
    core.retired("p-1");
    assert!(core.members(now).iter().all(|m| m.name != "p-1"));
}

#[test]
fn a_rate_limited_check_pauses_prewarming_for_the_whole_pause() {
    let mut config = config(2);
    config.rate_limit_pause = s(300);
    let mut core = PoolCore::new(&config);
    let name = start(&mut core, s(0));
    core.prewarm_refused(s(1), &name, "429", true);
    assert_eq!(core.next_fill(s(2)), Fill::WaitUntil(s(301)));
    assert_eq!(core.stats().rate_limited, 1);
    assert_eq!(core.stats().refused, vec![name]);
    assert!(!core.is_ready(), "a refused pre-warm is not a success");
    // A refusal for another reason only backs off.
    let name = start(&mut core, s(301));
    core.prewarm_refused(s(302), &name, "503", false);
    assert_eq!(core.next_fill(s(302)), Fill::WaitUntil(s(307)));
    assert_eq!(core.stats().rate_limited, 1);
    assert_eq!(core.stats().prewarm_failed, 2);
}

#[test]
fn invalidation_retires_idle_workers_at_once_and_drain_stops_everything() {
    let mut core = PoolCore::new(&config(3));
    let now = warm(&mut core, 3, s(0), s(1));
    let claim = core.next_claim_id();
    core.try_claim(now, claim, Priority::Normal);
    let stale = core.invalidate(2);
    assert_eq!(stale.len(), 2, "the two idle ones, not the claimed one");
    assert_eq!(core.stats().invalidated, 2);
    assert_eq!(core.depth(now), 0);
    for name in &stale {
        core.retired(name);
    }
    // Refilled with the new version.
    match core.next_fill(now + s(10)) {
        Fill::Start { config_version, .. } => assert_eq!(config_version, 2),
        other => panic!("expected a start, got {other:?}"),
    }
    let mut core = PoolCore::new(&config(2));
    let now = warm(&mut core, 1, s(0), s(1));
    let starting = start(&mut core, now + s(5));
    assert_eq!(core.drain(), vec!["p-1".to_string()]);
    assert_eq!(core.next_fill(now + s(100)), Fill::Idle, "nothing starts");
    assert!(core.retire_if_draining(&starting));
    assert_eq!(core.next_fill(now + s(200)), Fill::Idle);
}
