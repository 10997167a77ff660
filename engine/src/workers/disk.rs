//! Disk watch: a worker's disk use sampled against its quota, an alert at 80 % with
//! the large files listed for an approved cleanup, and read-only mode at 95 % until use
//! falls back under the alert threshold (hysteresis, so the mode does not flap).

use std::time::Duration;

/// A worker's disk limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskPolicy {
    /// Bytes the worker may hold in its directory (cache and snapshot). The worker
    /// refuses a write past it.
    pub quota_bytes: u64,
    /// Bytes its cache may hold: least recently used cache files are evicted to stay
    /// under it. `None`: no cap (the quota still applies).
    pub cache_cap_bytes: Option<u64>,
    /// How often the supervisor measures the worker's directory.
    pub sample_interval: Duration,
    /// Percent of the quota that raises an alert (80).
    pub alert_percent: u64,
    /// Percent of the quota that puts the worker in read-only mode (95).
    pub critical_percent: u64,
    /// Files larger than this are proposed for cleanup (10 MiB).
    pub large_file_bytes: u64,
}

impl DiskPolicy {
    pub fn with_quota(quota_bytes: u64) -> Self {
        DiskPolicy {
            quota_bytes,
            cache_cap_bytes: None,
            sample_interval: Duration::from_secs(1),
            alert_percent: 80,
            critical_percent: 95,
            large_file_bytes: 10 * 1024 * 1024,
        }
    }

    pub fn check(&self) {
        assert!(self.quota_bytes > 0, "quota_bytes must be positive");
        assert!(
            self.cache_cap_bytes.is_none_or(|cap| cap > 0),
            "cache_cap_bytes must be positive"
        );
        assert!(
            self.alert_percent <= self.critical_percent && self.critical_percent <= 100,
            "need alert_percent <= critical_percent <= 100"
        );
        assert!(
            !self.sample_interval.is_zero(),
            "sample_interval must be positive"
        );
    }
}

/// What one sample calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskVerdict {
    Normal,
    /// Crossed the alert threshold (once per excursion): alert, list large files.
    Alert {
        percent: u64,
    },
    /// Crossed the critical threshold: enter read-only mode (and alert too, if this
    /// excursion had not yet alerted: a jump straight past both lines).
    ReadOnly {
        percent: u64,
        alert: bool,
    },
    /// Back under the alert threshold after read-only mode: writable again.
    Writable {
        percent: u64,
    },
}

/// The disk watch of one worker.
#[derive(Clone, Debug)]
pub struct DiskWatch {
    policy: DiskPolicy,
    alerted: bool,
    read_only: bool,
}

impl DiskWatch {
    pub fn new(policy: DiskPolicy) -> Self {
        policy.check();
        DiskWatch {
            policy,
            alerted: false,
            read_only: false,
        }
    }

    pub fn policy(&self) -> &DiskPolicy {
        &self.policy
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn percent(&self, used_bytes: u64) -> u64 {
        (used_bytes as u128 * 100 / self.policy.quota_bytes as u128) as u64
    }

    /// Judges a sample of `used_bytes`.
    pub fn sample(&mut self, used_bytes: u64) -> DiskVerdict {
        let percent = self.percent(used_bytes);
        if percent >= self.policy.critical_percent && !self.read_only {
            self.read_only = true;
            let alert = !self.alerted;
            self.alerted = true;
            return DiskVerdict::ReadOnly { percent, alert };
        }
        if percent < self.policy.alert_percent {
            self.alerted = false;
            if self.read_only {
                self.read_only = false;
                return DiskVerdict::Writable { percent };
            }
            return DiskVerdict::Normal;
        }
        if !self.alerted {
            self.alerted = true;
            return DiskVerdict::Alert { percent };
        }
        DiskVerdict::Normal
    }

    /// The worker could not be told to change mode: keep the old one, so the next
    /// sample asks again.
    pub fn undo_mode_change(&mut self) {
        self.read_only = !self.read_only;
    }

    /// A new process starts writable with a fresh excursion.
    pub fn reset(&mut self) {
        self.alerted = false;
        self.read_only = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_once_then_read_only_until_back_under_the_alert_line() {
        let mut watch = DiskWatch::new(DiskPolicy::with_quota(1000));
        assert_eq!(watch.sample(100), DiskVerdict::Normal);
        assert_eq!(watch.sample(800), DiskVerdict::Alert { percent: 80 });
        assert_eq!(watch.sample(900), DiskVerdict::Normal);
        assert_eq!(
            watch.sample(950),
            DiskVerdict::ReadOnly {
                percent: 95,
                alert: false
            }
        );
        assert!(watch.read_only());
        assert_eq!(watch.sample(990), DiskVerdict::Normal);
        // Between the lines: still read-only (hysteresis).
        assert_eq!(watch.sample(850), DiskVerdict::Normal);
        assert!(watch.read_only());
        assert_eq!(watch.sample(799), DiskVerdict::Writable { percent: 79 });
        assert!(!watch.read_only());
        assert_eq!(watch.sample(100), DiskVerdict::Normal);
        assert_eq!(watch.sample(820), DiskVerdict::Alert { percent: 82 });
    }

    #[test]
    fn a_jump_straight_past_critical_goes_read_only() {
        let mut watch = DiskWatch::new(DiskPolicy::with_quota(1000));
        assert_eq!(
            watch.sample(2000),
            DiskVerdict::ReadOnly {
                percent: 200,
                alert: true
            }
        );
        watch.undo_mode_change();
        assert!(!watch.read_only());
        assert!(matches!(
            watch.sample(2000),
            DiskVerdict::ReadOnly { alert: false, .. }
        ));
        watch.reset();
        assert!(!watch.read_only());
        assert_eq!(watch.sample(800), DiskVerdict::Alert { percent: 80 });
    }

    #[test]
    #[should_panic(expected = "quota_bytes must be positive")]
    fn a_zero_quota_is_refused() {
        DiskWatch::new(DiskPolicy::with_quota(0));
    }
}
