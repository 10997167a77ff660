//! Reference models shared by more than one property test, written from the documented
//! rules rather than from the code: the restart breaker (used by its own test and by the
//! lifecycle's) and the jitter band.

use engine::workers::breaker::{RestartDecision, RestartPolicy};
use proptest::prelude::*;
use std::time::Duration;

/// Restart policies across the whole range `RestartPolicy::check` accepts, small enough
/// that a sequence of a few dozen events crosses the window, the cap and the stable time.
pub fn restart_policy() -> impl Strategy<Value = RestartPolicy> {
    (
        prop::bool::weighted(0.9),
        1..=2_000u64,
        0..=20_000u64,
        prop_oneof![Just(0u32), 0..=100u32],
        1..=6u32,
        1..=20_000u64,
        0..=30_000u64,
    )
        .prop_map(
            |(
                enabled,
                first_ms,
                headroom_ms,
                jitter_percent,
                failures_max,
                window_ms,
                stable_ms,
            )| {
                RestartPolicy {
                    enabled,
                    backoff_first: ms(first_ms),
                    backoff_max: ms(first_ms + headroom_ms),
                    jitter_percent,
                    failures_max,
                    window: ms(window_ms),
                    stable_after: ms(stable_ms),
                }
            },
        )
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Whether `delay` lies in the documented jitter band of `nominal`:
/// `[nominal * (100 - percent) / 100, nominal]`.
pub fn within_jitter_band(delay: Duration, nominal: Duration, percent: u32) -> bool {
    let nominal_ns = nominal.as_nanos();
    let low = nominal_ns * u128::from(100 - percent) / 100;
    (low..=nominal_ns).contains(&delay.as_nanos())
}

/// `first * 2^(streak - 1)`, capped at `max`: the documented backoff, computed in a wide
/// integer so no doubling can overflow.
pub fn capped_backoff(first: Duration, max: Duration, streak: u32) -> Duration {
    let doublings = streak.saturating_sub(1).min(64);
    let uncapped = first.as_nanos().saturating_mul(1u128 << doublings);
    if uncapped >= max.as_nanos() {
        max
    } else {
        Duration::from_nanos(u64::try_from(uncapped).expect("below the cap, so it fits"))
    }
}

/// What the breaker must decide, as the reference model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A restart after a delay in the jitter band of this nominal delay.
    RestartAround(Duration),
    Open {
        failures: u32,
    },
    Disabled,
}

/// The breaker as its documentation states it: every failure instant since the last
/// reset (no pruning: the window is a filter applied when deciding), and a streak of
/// consecutive failures that a stable run or a reset clears.
#[derive(Clone, Debug)]
pub struct ReferenceBreaker {
    pub policy: RestartPolicy,
    failures: Vec<Duration>,
    streak: u32,
    open: bool,
    in_window: u32,
}

impl ReferenceBreaker {
    pub fn new(policy: RestartPolicy) -> Self {
        ReferenceBreaker {
            policy,
            failures: Vec::new(),
            streak: 0,
            open: false,
            in_window: 0,
        }
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Failures within the window as of the last decision.
    pub fn in_window(&self) -> u32 {
        self.in_window
    }

    pub fn on_failure(&mut self, now: Duration) -> Expected {
        if !self.policy.enabled {
            return Expected::Disabled;
        }
        self.failures.push(now);
        self.streak += 1;
        let window = self.policy.window;
        self.in_window = self
            .failures
            .iter()
            .filter(|at| now - **at < window)
            .count() as u32;
        if self.in_window >= self.policy.failures_max {
            self.open = true;
            return Expected::Open {
                failures: self.in_window,
            };
        }
        Expected::RestartAround(capped_backoff(
            self.policy.backoff_first,
            self.policy.backoff_max,
            self.streak,
        ))
    }

    pub fn on_uptime(&mut self, uptime: Duration) {
        if uptime >= self.policy.stable_after {
            self.streak = 0;
        }
    }

    pub fn reset(&mut self) {
        self.failures.clear();
        self.streak = 0;
        self.open = false;
        self.in_window = 0;
    }

    /// Whether the real breaker's `decision` is the one this model expected.
    pub fn agrees(&self, expected: &Expected, decision: &RestartDecision) -> bool {
        match (expected, decision) {
            (Expected::RestartAround(nominal), RestartDecision::RestartAfter(delay)) => {
                within_jitter_band(*delay, *nominal, self.policy.jitter_percent)
            }
            (Expected::Open { failures }, RestartDecision::BreakerOpen { failures: real }) => {
                failures == real
            }
            (Expected::Disabled, RestartDecision::Disabled) => true,
            _ => false,
        }
    }
}
