//! `RetryPolicy`, `RetrySchedule` and `jittered` against what `retry.rs` promises: the
//! nominal delay before attempt `n` is `delay_first * factor^(n-1)` capped at
//! `delay_max` and exists only for `1..=attempts_max`; each delay handed out is the
//! nominal one reduced by at most `jitter_percent` percent (plus the initial wait before
//! the first attempt); the schedule stops after `attempts_max` attempts and never hands
//! out more than `total_max` in all; `waited` is the sum of what it handed out.

use crate::reference::{ms, within_jitter_band};
use engine::workers::retry::{RetryPolicy, RetrySchedule, jittered};
use proptest::prelude::*;
use std::time::Duration;

/// Policies across the range `RetryPolicy::check` accepts, with totals both tight
/// enough to cut a schedule short and loose enough to let it run to `attempts_max`.
fn retry_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        0..=2_000u64,
        0..=1_000u64,
        1..=4u32,
        0..=5_000u64,
        1..=10u32,
        0..=20_000u64,
        prop_oneof![Just(0u32), 0..=100u32],
    )
        .prop_map(
            |(initial_ms, first_ms, factor, headroom_ms, attempts_max, slack_ms, jitter)| {
                RetryPolicy {
                    initial_wait: ms(initial_ms),
                    delay_first: ms(first_ms),
                    factor,
                    delay_max: ms(first_ms + headroom_ms),
                    attempts_max,
                    total_max: ms(initial_ms + slack_ms),
                    jitter_percent: jitter,
                }
            },
        )
}

/// `delay_first * factor^(attempt-1)` capped at `delay_max`, in a wide integer.
fn documented_nominal(policy: &RetryPolicy, attempt: u32) -> Duration {
    let growth = u128::from(policy.factor).saturating_pow(attempt - 1);
    let nanos = policy.delay_first.as_nanos().saturating_mul(growth);
    Duration::from_nanos(nanos.min(policy.delay_max.as_nanos()) as u64)
}

/// Runs a schedule to its first `None`, one random draw per call (draws cycle).
fn run(policy: &RetryPolicy, draws: &[u64]) -> (RetrySchedule, Vec<Duration>) {
    let mut schedule = RetrySchedule::new(policy.clone());
    let mut delays = Vec::new();
    for draw in draws.iter().cycle() {
        match schedule.next_delay(*draw) {
            Some(delay) => delays.push(delay),
            None => break,
        }
        assert!(
            delays.len() <= policy.attempts_max as usize,
            "more delays than attempts_max: {delays:?}"
        );
    }
    (schedule, delays)
}

proptest! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn nominal_delays_grow_by_the_factor_up_to_the_cap_for_allowed_attempts_only(
        policy in retry_policy(),
    ) {
        prop_assert_eq!(policy.nominal_delay(0), None);
        prop_assert_eq!(policy.nominal_delay(policy.attempts_max + 1), None);
        let mut previous = Duration::ZERO;
        for attempt in 1..=policy.attempts_max {
            let nominal = policy.nominal_delay(attempt);
            prop_assert_eq!(nominal, Some(documented_nominal(&policy, attempt)), "attempt {}", attempt);
            let nominal = nominal.unwrap();
            prop_assert!(nominal >= previous, "attempt {} shrank: {:?} < {:?}", attempt, nominal, previous);
            prop_assert!(nominal <= policy.delay_max);
            previous = nominal;
        }
    }

    #[test]
    fn a_schedule_stays_in_its_bounds_and_accounts_for_every_delay(
        policy in retry_policy(),
        draws in prop::collection::vec(any::<u64>(), 1..12),
    ) {
        let (mut schedule, delays) = run(&policy, &draws);
        prop_assert_eq!(schedule.attempts() as usize, delays.len(), "attempts");
        prop_assert_eq!(schedule.waited(), delays.iter().sum::<Duration>(), "waited");
        prop_assert!(schedule.waited() <= policy.total_max, "waited {:?}", schedule.waited());
        for (index, delay) in delays.iter().enumerate() {
            let attempt = index as u32 + 1;
            let nominal = policy.nominal_delay(attempt).unwrap();
            let backoff = if attempt == 1 {
                prop_assert!(*delay >= policy.initial_wait, "the first delay lacks the initial wait");
                *delay - policy.initial_wait
            } else {
                *delay
            };
            prop_assert!(
                within_jitter_band(backoff, nominal, policy.jitter_percent),
                "attempt {}: backoff {:?} outside the band of {:?} at {}%",
                attempt, backoff, nominal, policy.jitter_percent
            );
        }
        // It stopped for a reason: attempts are used up, or even the longest delay the
        // next attempt could draw (its nominal one) would overrun the total.
        let next = delays.len() as u32 + 1;
        if let Some(nominal) = policy.nominal_delay(next) {
            let initial = if next == 1 { policy.initial_wait } else { Duration::ZERO };
            prop_assert!(
                schedule.waited() + initial + nominal > policy.total_max,
                "stopped after {} attempts with room left: waited {:?}, next nominal {:?}",
                delays.len(), schedule.waited(), nominal
            );
        } else {
            // Used up: no draw brings another attempt.
            for draw in &draws {
                prop_assert_eq!(schedule.next_delay(*draw), None);
            }
        }
    }

    #[test]
    fn without_jitter_the_schedule_is_the_nominal_one_cut_at_the_total(
        policy in retry_policy().prop_map(|p| RetryPolicy { jitter_percent: 0, ..p }),
        draw in any::<u64>(),
    ) {
        let (_, delays) = run(&policy, &[draw]);
        let mut expected = Vec::new();
        let mut total = Duration::ZERO;
        for attempt in 1..=policy.attempts_max {
            let mut delay = documented_nominal(&policy, attempt);
            if attempt == 1 {
                delay += policy.initial_wait;
            }
            if total + delay > policy.total_max {
                break;
            }
            total += delay;
            expected.push(delay);
        }
        prop_assert_eq!(delays, expected, "delays");
    }

    #[test]
    fn jitter_stays_in_its_band(
        nominal_ns in prop_oneof![0..=1_000u64, 0..=60_000_000_000u64],
        percent in 0..=100u32,
        draw in any::<u64>(),
    ) {
        let nominal = Duration::from_nanos(nominal_ns);
        let delay = jittered(nominal, percent, draw);
        prop_assert!(
            within_jitter_band(delay, nominal, percent),
            "{:?} at {}% gave {:?}", nominal, percent, delay
        );
        prop_assert_eq!(jittered(nominal, 0, draw), nominal);
    }
}
