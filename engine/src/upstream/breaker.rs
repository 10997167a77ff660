//! The circuit breaker as a pure core: closed while calls succeed, open after a run of
//! failures (calls are refused without trying), then one trial call after the open
//! period; its result closes the breaker or opens it again.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub failures_to_open: u32,
    /// How long it stays open before a trial call.
    pub open_for: Duration,
}

impl BreakerPolicy {
    pub const DEFAULT: BreakerPolicy = BreakerPolicy {
        failures_to_open: 3,
        open_for: Duration::from_secs(30),
    };

    pub fn check(&self) {
        assert!(
            self.failures_to_open >= 1,
            "failures_to_open must be at least 1"
        );
        assert!(!self.open_for.is_zero(), "open_for must be positive");
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Duration,
    },
    /// One trial call is out since `since`. A trial whose caller gave up (its future
    /// dropped) must not hold the breaker forever: another is allowed an open period
    /// later.
    Trial {
        since: Duration,
    },
}

#[derive(Clone, Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: State,
    /// Times it opened, and times a trial closed it again.
    pub opened: u64,
    pub closed: u64,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        policy.check();
        Breaker {
            policy,
            state: State::Closed { failures: 0 },
            opened: 0,
            closed: 0,
        }
    }

    /// May a call go out at `now`? `Err(retry_in)` when not.
    pub fn admit(&mut self, now: Duration) -> Result<(), Duration> {
        match self.state {
            State::Closed { .. } => Ok(()),
            State::Open { until } | State::Trial { since: until } if now < until => {
                Err(until - now)
            }
            State::Open { .. } => {
                self.state = State::Trial {
                    since: now + self.policy.open_for,
                };
                Ok(())
            }
            State::Trial { .. } => {
                self.state = State::Trial {
                    since: now + self.policy.open_for,
                };
                Ok(())
            }
        }
    }

    /// A call answered. True when this closed an open breaker (the upstream is back).
    pub fn succeeded(&mut self) -> bool {
        let was_open = !matches!(self.state, State::Closed { .. });
        self.state = State::Closed { failures: 0 };
        if was_open {
            self.closed += 1;
        }
        was_open
    }

    /// A call failed at `now`. True when this opened the breaker.
    pub fn failed(&mut self, now: Duration) -> bool {
        let open = State::Open {
            until: now + self.policy.open_for,
        };
        match self.state {
            State::Closed { failures } if failures + 1 < self.policy.failures_to_open => {
                self.state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            State::Closed { .. } => {
                self.state = open;
                self.opened += 1;
                true
            }
            // A failed trial (or a late failure of a call admitted before it opened)
            // keeps it open for another period.
            State::Open { .. } | State::Trial { .. } => {
                self.state = open;
                false
            }
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(self.state, State::Closed { .. })
    }

    /// How long until a call may be tried (zero when closed).
    pub fn retry_in(&self, now: Duration) -> Duration {
        match self.state {
            State::Closed { .. } => Duration::ZERO,
            State::Open { until } | State::Trial { since: until } => until.saturating_sub(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn opens_after_a_run_of_failures_and_a_good_trial_closes_it() {
        let mut b = Breaker::new(BreakerPolicy::DEFAULT);
        assert!(!b.failed(S(0)));
        assert!(!b.succeeded(), "a success while closed is no recovery");
        assert!(!b.failed(S(1)));
        assert!(!b.failed(S(2)));
        assert!(b.failed(S(3)), "the third failure in a row opens it");
        assert_eq!(b.admit(S(10)), Err(S(23)));
        assert_eq!(b.admit(S(33)), Ok(()), "one trial after the open period");
        assert_eq!(b.admit(S(34)), Err(S(29)), "only one trial at a time");
        assert!(b.succeeded());
        assert_eq!((b.opened, b.closed), (1, 1));
        assert_eq!(b.admit(S(35)), Ok(()));
    }

    #[test]
    fn a_failed_or_abandoned_trial_keeps_it_open() {
        let mut b = Breaker::new(BreakerPolicy {
            failures_to_open: 1,
            open_for: S(10),
        });
        assert!(b.failed(S(0)));
        assert_eq!(b.admit(S(10)), Ok(()));
        assert!(!b.failed(S(11)), "already open: not opened again");
        assert_eq!(b.retry_in(S(11)), S(10));
        assert_eq!(b.admit(S(21)), Ok(()));
        // That trial's caller vanished: an open period later another may try.
        assert!(b.admit(S(25)).is_err());
        assert_eq!(b.admit(S(31)), Ok(()));
        assert!(b.is_open());
        assert!(b.succeeded());
        assert!(!b.is_open());
    }
}
