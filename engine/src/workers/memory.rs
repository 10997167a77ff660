//! Memory watch: resident size sampled, growth rate tracked, and a restart scheduled
//! before the limit is reached (the OOM killer gives no warning and loses the query).

use std::collections::VecDeque;
use std::time::Duration;

/// Thresholds of one worker's memory watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPolicy {
    /// How often resident memory is sampled.
    pub sample_interval: Duration,
    /// The limit the worker runs under (the container's or the sandbox's), in bytes.
    pub limit_bytes: u64,
    /// Percent of the limit that raises a warning (80).
    pub warn_percent: u64,
    /// Percent of the limit that is critical: restart now (95).
    pub critical_percent: u64,
    /// Restart when the growth rate would reach the limit within this horizon.
    pub horizon: Duration,
    /// Samples kept to estimate the growth rate.
    pub samples_kept: usize,
    /// The owner restarts, not the supervisor: a restart verdict only raises
    /// `WorkerStats::memory_restart_due`, and the owner (a session) restarts the worker
    /// once the answer in flight is finished.
    pub owner_restarts: bool,
}

impl MemoryPolicy {
    pub fn with_limit(limit_bytes: u64) -> Self {
        MemoryPolicy {
            sample_interval: Duration::from_secs(1),
            limit_bytes,
            warn_percent: 80,
            critical_percent: 95,
            horizon: Duration::from_secs(5),
            samples_kept: 5,
            owner_restarts: false,
        }
    }

    pub fn check(&self) {
        assert!(self.limit_bytes > 0, "limit_bytes must be positive");
        assert!(
            self.warn_percent <= self.critical_percent && self.critical_percent <= 100,
            "need warn_percent <= critical_percent <= 100"
        );
        assert!(self.samples_kept >= 2, "a growth rate needs two samples");
        assert!(
            !self.sample_interval.is_zero(),
            "sample_interval must be positive"
        );
    }
}

/// What one sample says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryVerdict {
    Normal,
    /// Over the warning threshold: alert, keep running.
    Warn {
        percent: u64,
    },
    /// Over the critical threshold, or growing into the limit within the horizon:
    /// restart the worker before the OOM killer does.
    Restart {
        percent: u64,
        growth_bytes_per_s: u64,
    },
}

/// The memory watch of one worker.
#[derive(Clone, Debug)]
pub struct MemoryWatch {
    policy: MemoryPolicy,
    /// (time, resident bytes), oldest first.
    samples: VecDeque<(Duration, u64)>,
    warned: bool,
}

impl MemoryWatch {
    pub fn new(policy: MemoryPolicy) -> Self {
        policy.check();
        MemoryWatch {
            policy,
            samples: VecDeque::new(),
            warned: false,
        }
    }

    pub fn policy(&self) -> &MemoryPolicy {
        &self.policy
    }

    /// Growth in bytes per second over the samples kept (0 if shrinking or too few).
    pub fn growth_bytes_per_s(&self) -> u64 {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return 0;
        };
        let span = last.0.saturating_sub(first.0);
        if span.is_zero() || last.1 <= first.1 {
            return 0;
        }
        ((last.1 - first.1) as u128 * 1_000_000_000 / span.as_nanos()) as u64
    }

    /// Records a sample taken at `now` and judges it. A warning is reported once per
    /// excursion above the threshold.
    pub fn sample(&mut self, now: Duration, bytes: u64) -> MemoryVerdict {
        if self.samples.len() == self.policy.samples_kept {
            self.samples.pop_front();
        }
        self.samples.push_back((now, bytes));
        debug_assert!(self.samples.len() <= self.policy.samples_kept);
        let limit = self.policy.limit_bytes;
        let percent = (bytes as u128 * 100 / limit as u128) as u64;
        let growth = self.growth_bytes_per_s();
        let room = limit.saturating_sub(bytes);
        let horizon_growth =
            (growth as u128 * self.policy.horizon.as_nanos() / 1_000_000_000) as u64;
        if percent >= self.policy.critical_percent || (growth > 0 && horizon_growth >= room) {
            return MemoryVerdict::Restart {
                percent,
                growth_bytes_per_s: growth,
            };
        }
        if percent >= self.policy.warn_percent {
            if !self.warned {
                self.warned = true;
                return MemoryVerdict::Warn { percent };
            }
        } else {
            self.warned = false;
        }
        MemoryVerdict::Normal
    }

    /// A fresh process: forget the old one's samples.
    pub fn reset(&mut self) {
        self.samples.clear();
        self.warned = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn flat_memory_is_normal_and_thresholds_warn_then_restart() {
        let mut watch = MemoryWatch::new(MemoryPolicy::with_limit(100 * MB));
        assert_eq!(watch.sample(s(0), 50 * MB), MemoryVerdict::Normal);
        assert_eq!(watch.sample(s(1), 50 * MB), MemoryVerdict::Normal);
        // A jump of 31 MB in a second would reach the limit within the horizon.
        assert!(matches!(
            watch.sample(s(2), 81 * MB),
            MemoryVerdict::Restart { percent: 81, .. }
        ));
        let mut high = MemoryWatch::new(MemoryPolicy::with_limit(100 * MB));
        assert_eq!(
            high.sample(s(0), 81 * MB),
            MemoryVerdict::Warn { percent: 81 }
        );
        // Once per excursion.
        let mut flat = MemoryWatch::new(MemoryPolicy::with_limit(100 * MB));
        flat.sample(s(0), 85 * MB);
        assert_eq!(flat.sample(s(1), 85 * MB), MemoryVerdict::Normal);
        assert!(matches!(
            flat.sample(s(2), 96 * MB),
            MemoryVerdict::Restart { percent: 96, .. }
        ));
    }

    #[test]
    fn steady_growth_schedules_a_restart_before_the_limit() {
        let mut watch = MemoryWatch::new(MemoryPolicy::with_limit(100 * MB));
        let mut restarted_at = None;
        for t in 0..100 {
            let bytes = 10 * MB + t * 2 * MB;
            if let MemoryVerdict::Restart {
                growth_bytes_per_s, ..
            } = watch.sample(s(t), bytes)
            {
                assert_eq!(growth_bytes_per_s, 2 * MB);
                restarted_at = Some(bytes);
                break;
            }
        }
        let bytes = restarted_at.expect("growth never triggered a restart");
        assert!(bytes < 95 * MB, "restart only at {bytes}: too late");
        assert!(
            bytes + 2 * MB * 5 >= 100 * MB,
            "restart at {bytes}: too early"
        );
    }
}
