//! The pre-warm pool as a pure core: which warm workers exist, when to start more,
//! when to stop (rate limited upstream), which are stale (plugin or config version
//! changed), and whether the server may call itself ready.

use std::collections::VecDeque;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrewarmPolicy {
    /// How many warm workers the pool aims to hold.
    pub target: usize,
    /// Refill starts when fewer than this many are warm (or warming).
    pub refill_below: usize,
    /// How long pre-warming pauses after the upstream said "rate limited".
    pub rate_limit_pause: Duration,
}

impl PrewarmPolicy {
    pub const DEFAULT: PrewarmPolicy = PrewarmPolicy {
        target: 3,
        refill_below: 2,
        rate_limit_pause: Duration::from_secs(300),
    };

    pub fn check(&self) {
        assert!(
            self.refill_below <= self.target,
            "refill threshold above the pool's target"
        );
    }
}

/// A warm worker: its name and the plugin/config version it was built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warm {
    pub name: String,
    pub version: u64,
}

#[derive(Clone, Debug)]
pub struct PrewarmPool {
    policy: PrewarmPolicy,
    warm: VecDeque<Warm>,
    starting: usize,
    version: u64,
    paused_until: Option<Duration>,
    ever_succeeded: bool,
    /// Failed starts in a row: the next start waits `Backoff::prewarm` for them.
    failures_in_row: u32,
    /// Times a session found the pool empty (an operator alert each).
    pub drained: u64,
    pub invalidated: u64,
    pub failures: u64,
    /// Starts refused because the upstream was rate limiting them.
    pub rate_limited: u64,
    /// The latest such workers' names (at most `REFUSED_KEPT`).
    pub refused: VecDeque<String>,
}

/// How many refused workers' names the pool remembers.
const REFUSED_KEPT: usize = 32;

impl PrewarmPool {
    pub fn new(policy: PrewarmPolicy, version: u64) -> Self {
        policy.check();
        PrewarmPool {
            policy,
            warm: VecDeque::new(),
            starting: 0,
            version,
            paused_until: None,
            ever_succeeded: false,
            failures_in_row: 0,
            drained: 0,
            invalidated: 0,
            failures: 0,
            rate_limited: 0,
            refused: VecDeque::new(),
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn depth(&self) -> usize {
        self.warm.len()
    }

    /// Readiness: at least one pre-warm ever succeeded.
    pub fn is_ready(&self) -> bool {
        self.ever_succeeded
    }

    pub fn paused_until(&self) -> Option<Duration> {
        self.paused_until
    }

    /// How many starts to begin now (they are counted as starting).
    pub fn starts_due(&mut self, now: Duration) -> usize {
        if self.paused_until.is_some_and(|t| now < t) {
            return 0;
        }
        self.paused_until = None;
        let have = self.warm.len() + self.starting;
        if have >= self.policy.refill_below.max(1) && have > 0 {
            return 0;
        }
        let due = self.policy.target.saturating_sub(have);
        self.starting += due;
        due
    }

    /// A start finished. A worker built for an older version is not kept: its name is
    /// returned for disposal.
    pub fn started(&mut self, warm: Warm) -> Option<String> {
        self.starting = self.starting.saturating_sub(1);
        self.ever_succeeded = true;
        self.failures_in_row = 0;
        if warm.version != self.version {
            self.invalidated += 1;
            return Some(warm.name);
        }
        self.warm.push_back(warm);
        None
    }

    /// A start failed; `rate_limited`: the upstream refused, so pre-warming pauses for
    /// the policy's pause; otherwise it backs off (1 s doubling to 60 s).
    pub fn start_failed(&mut self, now: Duration, rate_limited: bool) {
        self.starting = self.starting.saturating_sub(1);
        self.failures += 1;
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        let pause = if rate_limited {
            self.policy.rate_limit_pause
        } else {
            crate::workers::pool::Backoff::prewarm().delay(self.failures_in_row)
        };
        let until = now + pause;
        self.paused_until = Some(self.paused_until.map_or(until, |t| t.max(until)));
    }

    /// Worker `name` started, but the upstream rate limits it: it is not kept (the
    /// caller disposes of it) and pre-warming pauses.
    pub fn start_rate_limited(&mut self, now: Duration, name: String) {
        self.start_failed(now, true);
        self.rate_limited += 1;
        if self.refused.len() == REFUSED_KEPT {
            self.refused.pop_front();
        }
        self.refused.push_back(name);
    }

    /// A warm worker for a new session, or `None` (a cold start; counted as drained).
    pub fn take(&mut self) -> Option<Warm> {
        let taken = self.warm.pop_front();
        if taken.is_none() {
            self.drained += 1;
        }
        taken
    }

    /// The plugin or config version changed: every warm worker is stale. Returns the
    /// names to dispose of.
    pub fn invalidate(&mut self, version: u64) -> Vec<String> {
        self.version = version;
        let stale: Vec<String> = self.warm.drain(..).map(|w| w.name).collect();
        self.invalidated += stale.len() as u64;
        stale
    }

    /// Shutdown: every warm worker goes, with nobody to tell.
    pub fn drain(&mut self) -> Vec<String> {
        self.warm.drain(..).map(|w| w.name).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warm(name: &str, version: u64) -> Warm {
        Warm {
            name: name.into(),
            version,
        }
    }

    #[test]
    fn refills_below_the_threshold_to_the_target() {
        let mut p = PrewarmPool::new(PrewarmPolicy::DEFAULT, 1);
        assert!(!p.is_ready());
        assert_eq!(p.starts_due(Duration::ZERO), 3);
        assert_eq!(p.starts_due(Duration::ZERO), 0, "starts in flight count");
        for n in ["a", "b", "c"] {
            assert_eq!(p.started(warm(n, 1)), None);
        }
        assert!(p.is_ready());
        assert_eq!(p.take().unwrap().name, "a");
        assert_eq!(
            p.starts_due(Duration::ZERO),
            0,
            "two left: at the threshold"
        );
        p.take();
        assert_eq!(p.starts_due(Duration::ZERO), 2);
    }

    #[test]
    fn a_rate_limit_pauses_and_stale_versions_are_dropped() {
        let mut p = PrewarmPool::new(PrewarmPolicy::DEFAULT, 1);
        let s = Duration::from_secs;
        p.starts_due(s(0));
        p.start_failed(s(1), true);
        p.start_failed(s(1), false);
        p.start_failed(s(1), false);
        assert_eq!(p.paused_until(), Some(s(301)), "the longest pause holds");
        assert_eq!(p.starts_due(s(100)), 0);
        assert_eq!(p.starts_due(s(301)), 3);
        p.started(warm("a", 1));
        assert_eq!(p.invalidate(2), vec!["a".to_string()]);
        assert_eq!(p.started(warm("b", 1)), Some("b".to_string()));
        assert!(p.take().is_none());
        assert_eq!(p.drained, 1);
    }
}
