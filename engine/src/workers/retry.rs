//! Exponential backoff with jitter, bounded in attempts and in total time.
//!
//! A pure schedule: it takes the attempt number and a random draw and returns the delay
//! before that attempt, so tests, proptest and the supervisor all drive the same code.

use std::time::Duration;

/// How to retry an operation (connecting to a worker's endpoint, restarting a worker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra wait before the first attempt (a freshly spawned server needs a moment).
    pub initial_wait: Duration,
    /// Delay before the first attempt (after `initial_wait`); each later delay is
    /// `factor` times the previous.
    pub delay_first: Duration,
    pub factor: u32,
    /// No single delay is longer than this.
    pub delay_max: Duration,
    /// Attempts in all, the first included.
    pub attempts_max: u32,
    /// The whole schedule (initial wait plus every delay) stays within this bound.
    pub total_max: Duration,
    /// Jitter in percent of each delay: the delay is drawn uniformly from
    /// `[d * (100 - jitter) / 100, d]`, so retries of many clients spread out and the
    /// bound on total time still holds. 0 turns jitter off.
    pub jitter_percent: u32,
}

impl RetryPolicy {
    /// The connection schedule of the worker POC: wait 0.5 s, then up to 5 attempts,
    /// each after a delay doubling from 100 ms (100, 200, 400, 800, 1600; capped at
    /// 2 s): 3.1 s of delays, 3.6 s with the initial wait.
    pub fn endpoint_connect() -> Self {
        RetryPolicy {
            initial_wait: Duration::from_millis(500),
            delay_first: Duration::from_millis(100),
            factor: 2,
            delay_max: Duration::from_secs(2),
            attempts_max: 5,
            total_max: Duration::from_millis(3_600),
            jitter_percent: 0,
        }
    }

    /// Panics with the offending field when the policy contradicts itself (it is
    /// configuration written by people).
    pub fn check(&self) {
        assert!(self.attempts_max >= 1, "attempts_max must be at least 1");
        assert!(self.factor >= 1, "factor must be at least 1");
        assert!(self.jitter_percent <= 100, "jitter_percent is a percentage");
        assert!(
            self.delay_first <= self.delay_max,
            "delay_first {:?} exceeds delay_max {:?}",
            self.delay_first,
            self.delay_max
        );
        assert!(
            self.initial_wait <= self.total_max,
            "initial_wait {:?} exceeds total_max {:?}",
            self.initial_wait,
            self.total_max
        );
    }

    /// The backoff delay before attempt `attempt` (1-based) without jitter and without
    /// the initial wait, or `None` when no such attempt is allowed.
    pub fn nominal_delay(&self, attempt: u32) -> Option<Duration> {
        if attempt == 0 || attempt > self.attempts_max {
            return None;
        }
        Some(exponential_delay(
            self.delay_first,
            self.factor,
            self.delay_max,
            attempt,
        ))
    }
}

/// `first × factor^(n−1)` (`n` counted from 1; 0 counts as 1), at most `cap`: the
/// nominal delay of every exponential backoff here (endpoint retries, pre-warm
/// failures, the session lock). It stops multiplying at the cap (or when the delay no
/// longer grows), so `n` may be any number.
pub fn exponential_delay(first: Duration, factor: u32, cap: Duration, n: u32) -> Duration {
    let mut delay = first;
    for _ in 1..n.max(1) {
        let next = delay.saturating_mul(factor);
        if delay >= cap || next == delay {
            break;
        }
        delay = next;
    }
    delay.min(cap)
}

/// Where one retried operation stands: attempts made and time spent waiting.
#[derive(Clone, Debug)]
pub struct RetrySchedule {
    policy: RetryPolicy,
    attempts: u32,
    waited: Duration,
}

impl RetrySchedule {
    pub fn new(policy: RetryPolicy) -> Self {
        policy.check();
        RetrySchedule {
            policy,
            attempts: 0,
            waited: Duration::ZERO,
        }
    }

    /// Attempts handed out so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Total delay handed out so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The delay to wait before the next attempt, given a random draw for jitter, or
    /// `None` when attempts or total time are exhausted (return the last error then).
    pub fn next_delay(&mut self, random: u64) -> Option<Duration> {
        let nominal = self.policy.nominal_delay(self.attempts + 1)?;
        let mut delay = jittered(nominal, self.policy.jitter_percent, random);
        if self.attempts == 0 {
            delay += self.policy.initial_wait;
        }
        let waited = self.waited + delay;
        if waited > self.policy.total_max {
            return None;
        }
        self.attempts += 1;
        self.waited = waited;
        debug_assert!(self.attempts <= self.policy.attempts_max);
        Some(delay)
    }
}

/// `nominal` reduced by up to `percent` percent, uniformly by `random`.
pub fn jittered(nominal: Duration, percent: u32, random: u64) -> Duration {
    if percent == 0 || nominal.is_zero() {
        return nominal;
    }
    let nanos = nominal.as_nanos() as u64;
    let spread = nanos / 100 * u64::from(percent);
    if spread == 0 {
        return nominal;
    }
    Duration::from_nanos(nanos - random % (spread + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_connect_schedule_is_the_documented_one() {
        let mut schedule = RetrySchedule::new(RetryPolicy::endpoint_connect());
        let delays: Vec<Duration> = std::iter::from_fn(|| schedule.next_delay(0)).collect();
        assert_eq!(delays, vec![ms(600), ms(200), ms(400), ms(800), ms(1600)]);
        assert_eq!(schedule.waited(), ms(3_600));
        assert_eq!(schedule.attempts(), 5);
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts_max: 8,
            total_max: Duration::from_secs(60),
            ..RetryPolicy::endpoint_connect()
        };
        let nominal: Vec<u64> = (1..=8)
            .map(|a| policy.nominal_delay(a).unwrap().as_millis() as u64)
            .collect();
        assert_eq!(nominal, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(policy.nominal_delay(9), None);
        assert_eq!(policy.nominal_delay(0), None);
    }

    #[test]
    fn the_total_bound_stops_the_schedule_early() {
        let policy = RetryPolicy {
            total_max: ms(1_300),
            ..RetryPolicy::endpoint_connect()
        };
        let mut schedule = RetrySchedule::new(policy);
        let delays: Vec<Duration> = std::iter::from_fn(|| schedule.next_delay(0)).collect();
        assert_eq!(delays, vec![ms(600), ms(200), ms(400)]);
    }

    #[test]
    fn jitter_stays_within_its_band_and_varies() {
        let seen: Vec<Duration> = (0..50u64)
            .map(|r| jittered(ms(1000), 50, r.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        assert!(seen.iter().all(|d| *d >= ms(500) && *d <= ms(1000)));
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert!(distinct.len() > 10, "jitter does not spread: {distinct:?}");
        assert_eq!(jittered(ms(1000), 0, 12345), ms(1000));
    }
}
