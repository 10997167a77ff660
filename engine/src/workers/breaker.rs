//! Restart policy: exponential backoff between restarts, and a circuit breaker that
//! stops restarting a worker that keeps failing.

use super::retry::jittered;
use std::collections::VecDeque;
use std::time::Duration;

/// How a crashed worker is restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restart crashed workers at all.
    pub enabled: bool,
    /// Delay before the first restart after a failure; doubles per consecutive failure.
    pub backoff_first: Duration,
    pub backoff_max: Duration,
    pub jitter_percent: u32,
    /// The breaker opens after this many failures within `window`.
    pub failures_max: u32,
    pub window: Duration,
    /// A worker that stays up this long is healthy again: consecutive failures reset.
    pub stable_after: Duration,
}

impl RestartPolicy {
    pub fn default_policy() -> Self {
        RestartPolicy {
            enabled: true,
            backoff_first: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            jitter_percent: 20,
            failures_max: 5,
            window: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
        }
    }

    pub fn check(&self) {
        assert!(self.failures_max >= 1, "failures_max must be at least 1");
        assert!(self.jitter_percent <= 100, "jitter_percent is a percentage");
        assert!(
            self.backoff_first <= self.backoff_max,
            "backoff_first {:?} exceeds backoff_max {:?}",
            self.backoff_first,
            self.backoff_max
        );
        assert!(!self.window.is_zero(), "window must be positive");
    }
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// Too many failures in the window: stop restarting (the breaker is open).
    BreakerOpen { failures: u32 },
    /// Restarts are disabled by policy.
    Disabled,
}

/// The breaker's memory: failure instants within the window and the current streak.
#[derive(Clone, Debug)]
pub struct RestartBreaker {
    policy: RestartPolicy,
    /// Failure instants (virtual time since an arbitrary origin), oldest first.
    failures: VecDeque<Duration>,
    consecutive: u32,
    open: bool,
}

impl RestartBreaker {
    pub fn new(policy: RestartPolicy) -> Self {
        policy.check();
        RestartBreaker {
            policy,
            failures: VecDeque::new(),
            consecutive: 0,
            open: false,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Failures counted in the window as of the last decision.
    pub fn failures_in_window(&self) -> u32 {
        self.failures.len() as u32
    }

    /// The worker has been up for `uptime`: a long enough run resets the streak.
    pub fn on_uptime(&mut self, uptime: Duration) {
        if uptime >= self.policy.stable_after {
            self.consecutive = 0;
        }
    }

    /// Records a failure at `now` and decides.
    pub fn on_failure(&mut self, now: Duration, random: u64) -> RestartDecision {
        if !self.policy.enabled {
            return RestartDecision::Disabled;
        }
        while let Some(first) = self.failures.front() {
            if now.saturating_sub(*first) >= self.policy.window {
                self.failures.pop_front();
            } else {
                break;
            }
        }
        self.failures.push_back(now);
        self.consecutive = self.consecutive.saturating_add(1);
        // The window never holds more entries than it takes to open the breaker.
        debug_assert!(self.failures.len() as u32 <= self.policy.failures_max);
        if self.failures.len() as u32 >= self.policy.failures_max {
            self.open = true;
            return RestartDecision::BreakerOpen {
                failures: self.failures.len() as u32,
            };
        }
        let mut delay = self.policy.backoff_first;
        for _ in 1..self.consecutive {
            delay = delay.saturating_mul(2).min(self.policy.backoff_max);
        }
        RestartDecision::RestartAfter(jittered(delay, self.policy.jitter_percent, random))
    }

    /// An operator reset (a manual start): the breaker closes and the history is cleared.
    pub fn reset(&mut self) {
        self.failures.clear();
        self.consecutive = 0;
        self.open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy {
            jitter_percent: 0,
            failures_max: 3,
            window: Duration::from_secs(10),
            ..RestartPolicy::default_policy()
        }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn backoff_doubles_per_consecutive_failure() {
        let mut breaker = RestartBreaker::new(RestartPolicy {
            failures_max: 10,
            ..policy()
        });
        let delays: Vec<RestartDecision> =
            (0..4).map(|i| breaker.on_failure(s(100 * i), 0)).collect();
        let ms = |n| RestartDecision::RestartAfter(Duration::from_millis(n));
        assert_eq!(delays, vec![ms(500), ms(1000), ms(2000), ms(4000)]);
    }

    #[test]
    fn breaker_opens_after_n_failures_in_the_window() {
        let mut breaker = RestartBreaker::new(policy());
        assert!(matches!(
            breaker.on_failure(s(0), 0),
            RestartDecision::RestartAfter(_)
        ));
        assert!(matches!(
            breaker.on_failure(s(1), 0),
            RestartDecision::RestartAfter(_)
        ));
        assert_eq!(
            breaker.on_failure(s(2), 0),
            RestartDecision::BreakerOpen { failures: 3 }
        );
        assert!(breaker.is_open());
        breaker.reset();
        assert!(!breaker.is_open());
    }

    #[test]
    fn failures_spread_beyond_the_window_keep_the_breaker_closed() {
        let mut breaker = RestartBreaker::new(policy());
        for i in 0..10 {
            let decision = breaker.on_failure(s(6 * i), 0);
            assert!(
                matches!(decision, RestartDecision::RestartAfter(_)),
                "{i}: {decision:?}"
            );
        }
        assert!(breaker.failures_in_window() <= 2);
    }

    #[test]
    fn a_stable_run_resets_the_backoff() {
        let mut breaker = RestartBreaker::new(RestartPolicy {
            failures_max: 10,
            ..policy()
        });
        breaker.on_failure(s(0), 0);
        breaker.on_failure(s(100), 0);
        breaker.on_uptime(s(61));
        assert_eq!(
            breaker.on_failure(s(200), 0),
            RestartDecision::RestartAfter(Duration::from_millis(500))
        );
    }
}
