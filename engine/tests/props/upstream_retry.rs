//! `upstream::retry::CallRetry` against what it promises, over any sequence of failed
//! attempts: nothing is retried once a byte of the answer was streamed; only transient
//! failures (unreachable, timed out, 5xx) are retried, never a 429, an open breaker or an
//! unusable answer; at most `attempts_max` retries, within `total_max` in all and never
//! one that could not start before the call's deadline; each delay is full jitter,
//! between zero and the nominal exponential delay of its retry.

use crate::reference::ms;
use engine::upstream::UpstreamError;
use engine::upstream::retry::{CallRetry, GiveUpReason, RetryVerdict, upstream_retry_policy};
use engine::workers::retry::exponential_delay;
use proptest::prelude::*;
use std::time::Duration;

fn failure() -> impl Strategy<Value = UpstreamError> {
    prop_oneof![
        4 => Just(UpstreamError::Unavailable { detail: "HTTP 503".to_string() }),
        1 => (0..60_000u64).prop_map(|t| UpstreamError::RateLimited { retry_after: ms(t) }),
        1 => (0..60_000u64).prop_map(|t| UpstreamError::CircuitOpen { retry_in: ms(t) }),
        1 => Just(UpstreamError::Malformed { detail: "bad JSON".to_string() }),
    ]
}

/// One failed attempt: its error, the bytes it had streamed, the jitter draw, what was
/// left of the call's deadline.
fn attempt() -> impl Strategy<Value = (UpstreamError, usize, u64, Duration)> {
    (
        failure(),
        prop_oneof![4 => Just(0usize), 1 => 1..10_000usize],
        any::<u64>(),
        prop_oneof![3 => Just(Duration::from_secs(60)), 1 => (0..3_000u64).prop_map(ms)],
    )
}

proptest! {
    #[test]
    fn retries_follow_the_rule(attempts in prop::collection::vec(attempt(), 1..12)) {
        let policy = upstream_retry_policy();
        let mut retry = CallRetry::new(policy.clone());
        let mut waited = Duration::ZERO;
        for (error, streamed, random, remaining) in attempts {
            let before = retry.retries();
            let verdict = retry.handle_failure(&error, streamed, random, remaining);
            match verdict {
                RetryVerdict::After(delay) => {
                    prop_assert_eq!(streamed, 0, "retried after {} streamed bytes", streamed);
                    prop_assert!(error.is_transient(), "retried a {:?}", error);
                    let nominal = exponential_delay(policy.delay_first, policy.factor, policy.delay_max, before + 1);
                    prop_assert!(delay <= nominal, "delay {:?} above the nominal {:?}", delay, nominal);
                    prop_assert!(delay < remaining, "a retry after the call's deadline");
                    waited += delay;
                    prop_assert_eq!(retry.retries(), before + 1);
                }
                RetryVerdict::GiveUp(reason) => {
                    let expected = if streamed > 0 {
                        GiveUpReason::Streamed
                    } else if !error.is_transient() {
                        GiveUpReason::NotTransient
                    } else {
                        GiveUpReason::Exhausted
                    };
                    prop_assert_eq!(reason, expected);
                    prop_assert_eq!(retry.retries(), before);
                    // What a caller does on giving up: the call ends.
                    break;
                }
            }
            prop_assert!(retry.retries() <= policy.attempts_max);
            prop_assert!(waited <= policy.total_max);
        }
    }

    /// Full jitter: draws spread over the whole band, not a fixed delay.
    #[test]
    fn the_first_delay_spreads_over_its_whole_band(draws in prop::collection::vec(any::<u64>(), 64)) {
        let delays: Vec<Duration> = draws
            .iter()
            .filter_map(|&r| match CallRetry::new(upstream_retry_policy()).handle_failure(
                &UpstreamError::Unavailable { detail: "reset".to_string() }, 0, r, Duration::from_secs(60))
            {
                RetryVerdict::After(d) => Some(d),
                RetryVerdict::GiveUp(_) => None,
            })
            .collect();
        prop_assert_eq!(delays.len(), 64);
        let low = delays.iter().filter(|d| **d < ms(250)).count();
        let high = delays.len() - low;
        prop_assert!(low > 8 && high > 8, "{} below 250 ms, {} above: not full jitter", low, high);
    }
}
