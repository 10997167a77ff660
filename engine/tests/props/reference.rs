//! Reference models shared by more than one property test, written from the documented
//! rules rather than from the code: the restart breaker and the memory and disk watches
//! (each used by its own test and by the lifecycle's) and the jitter band.

use engine::workers::breaker::{RestartDecision, RestartPolicy};
use engine::workers::disk::{DiskPolicy, DiskVerdict};
use engine::workers::memory::{MemoryPolicy, MemoryVerdict};
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

const NANOS_PER_S: u128 = 1_000_000_000;

/// The memory watch as `workers/memory.rs` documents it: every sample since the last
/// reset (the growth rate is taken over the last `samples_kept`), a warning once per
/// excursion. Samples are put against the lines and the horizon by exact integer
/// comparison, not by the watch's rounded percentages.
#[derive(Clone, Debug)]
pub struct ReferenceMemoryWatch {
    pub policy: MemoryPolicy,
    samples: Vec<(Duration, u64)>,
    warned: bool,
}

impl ReferenceMemoryWatch {
    pub fn new(policy: MemoryPolicy) -> Self {
        ReferenceMemoryWatch {
            policy,
            samples: Vec::new(),
            warned: false,
        }
    }

    pub fn at_or_above(&self, bytes: u64, percent: u64) -> bool {
        u128::from(bytes) * 100 >= u128::from(percent) * u128::from(self.policy.limit_bytes)
    }

    /// The latest sample's bytes.
    pub fn last(&self) -> Option<u64> {
        self.samples.last().map(|s| s.1)
    }

    /// Whole bytes per second from the oldest to the newest of the samples kept.
    pub fn growth(&self) -> u64 {
        let kept = &self.samples[self.samples.len().saturating_sub(self.policy.samples_kept)..];
        let (Some(first), Some(last)) = (kept.first(), kept.last()) else {
            return 0;
        };
        let span = (last.0 - first.0).as_nanos();
        if span == 0 || last.1 <= first.1 {
            return 0;
        }
        (u128::from(last.1 - first.1) * NANOS_PER_S / span) as u64
    }

    pub fn sample(&mut self, now: Duration, bytes: u64) -> MemoryVerdict {
        self.samples.push((now, bytes));
        let percent = (u128::from(bytes) * 100 / u128::from(self.policy.limit_bytes)) as u64;
        let growth = self.growth();
        let room = self.policy.limit_bytes.saturating_sub(bytes);
        // growth * horizon >= room, in nanoseconds so nothing is rounded away.
        let reaches_the_limit = growth > 0
            && u128::from(growth) * self.policy.horizon.as_nanos()
                >= u128::from(room) * NANOS_PER_S;
        if self.at_or_above(bytes, self.policy.critical_percent) || reaches_the_limit {
            return MemoryVerdict::Restart {
                percent,
                growth_bytes_per_s: growth,
            };
        }
        if !self.at_or_above(bytes, self.policy.warn_percent) {
            self.warned = false;
            return MemoryVerdict::Normal;
        }
        if std::mem::replace(&mut self.warned, true) {
            MemoryVerdict::Normal
        } else {
            MemoryVerdict::Warn { percent }
        }
    }

    /// A new process.
    pub fn reset(&mut self) {
        self.samples.clear();
        self.warned = false;
    }
}

/// Where a disk sample lies against the two lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    UnderAlert,
    Between,
    Critical,
}

/// The disk watch as `workers/disk.rs` documents it: an alert once per excursion at the
/// alert line, read-only mode at the critical line, writable again only once use is
/// back under the alert line. A sample is placed against a line by exact integer
/// comparison (`used * 100 >= line * quota`), not by the watch's rounded percentage.
#[derive(Clone, Debug)]
pub struct ReferenceDiskWatch {
    pub policy: DiskPolicy,
    pub read_only: bool,
    alerted: bool,
}

impl ReferenceDiskWatch {
    pub fn new(policy: DiskPolicy) -> Self {
        ReferenceDiskWatch {
            policy,
            read_only: false,
            alerted: false,
        }
    }

    pub fn zone(&self, used: u64) -> Zone {
        let scaled = u128::from(used) * 100;
        let line = |percent: u64| u128::from(percent) * u128::from(self.policy.quota_bytes);
        if scaled >= line(self.policy.critical_percent) {
            Zone::Critical
        } else if scaled >= line(self.policy.alert_percent) {
            Zone::Between
        } else {
            Zone::UnderAlert
        }
    }

    pub fn percent(&self, used: u64) -> u64 {
        (u128::from(used) * 100 / u128::from(self.policy.quota_bytes)) as u64
    }

    pub fn sample(&mut self, used: u64) -> DiskVerdict {
        let percent = self.percent(used);
        match self.zone(used) {
            Zone::Critical if !self.read_only => {
                let alert = !self.alerted;
                self.read_only = true;
                self.alerted = true;
                DiskVerdict::ReadOnly { percent, alert }
            }
            Zone::UnderAlert => {
                self.alerted = false;
                if std::mem::take(&mut self.read_only) {
                    DiskVerdict::Writable { percent }
                } else {
                    DiskVerdict::Normal
                }
            }
            Zone::Between | Zone::Critical if !self.alerted => {
                self.alerted = true;
                DiskVerdict::Alert { percent }
            }
            Zone::Between | Zone::Critical => DiskVerdict::Normal,
        }
    }

    /// The worker could not be told about the last mode change.
    pub fn undo(&mut self) {
        self.read_only = !self.read_only;
    }

    /// A new process.
    pub fn reset(&mut self) {
        self.read_only = false;
        self.alerted = false;
    }
}
