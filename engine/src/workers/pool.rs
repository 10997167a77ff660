//! A warm pool of pre-started workers on top of the [`WorkerManager`].
//!
//! Sessions want a worker now, and a cold start costs seconds (catalog enable.1.3.x,
//! core.EC-117, core.EC-126). The pool keeps `size_target` workers ready, idle and
//! fresh, and hands them out to claims:
//!
//! - **Pre-warming is staggered**: one worker is started at a time, and the next one only
//!   `stagger` (5 s) after the previous attempt ended, so warming a pool never starts a
//!   burst of processes competing for CPU and memory. A failed attempt (a spawn refused
//!   with `EAGAIN`, an init that exceeded the worker's `init_timeout`, after which the
//!   supervisor killed it) is logged and retried with a fresh worker after a backoff
//!   that doubles per consecutive failure (1 s, 2 s, … 60 s; never below the stagger),
//!   reset by a success.
//! - **Freshness**: a worker is fresh iff it was started with the pool's current
//!   `config_version` and has been ready for at most `max_age`. Stale workers are never
//!   handed out; idle ones are retired (stopped, unregistered) and replaced one at a
//!   time on the stagger (a rolling refresh); claimed ones are retired when released.
//! - **Claims** ([`Priority`] Low, Normal, High): a fresh idle worker if there is one.
//!   Otherwise a High claim pre-empts the worker of a lower-priority claim after asking
//!   that worker to checkpoint its session (`Request::Snapshot`); the pre-empted
//!   [`Claim`] learns it through its revocation watch. Otherwise a claim among the first
//!   `wait_positions` (3) of the queue waits up to `wait_max` (30 s) for a release or a
//!   newly warmed worker; the others, and a wait that times out, cold-start a worker of
//!   their own and emit an SLA warning.
//! - **Sessions** take a worker with [`WarmPool::try_claim`] (a fresh idle one or none,
//!   counted as the pool running dry) and otherwise [`WarmPool::claim_cold`]; their
//!   worker never comes back to the pool ([`Claim::retire`]: it holds their state).
//! - **A check before keeping a pre-warm** ([`WarmCheck`], the engine's: the model API
//!   answers): a refused pre-warm is discarded like a failed one; refused because the
//!   upstream rate limits, pre-warming pauses for `rate_limit_pause` (5 min).
//! - **Invalidation** ([`WarmPool::invalidate`], a plugin set changed): every idle worker
//!   of an older version is retired at once, not on the rolling refresh. **Drain**
//!   ([`WarmPool::drain`], shutdown): nothing more starts, every idle worker goes.
//! - Readiness ([`WarmPool::is_ready`]): at least one pre-warm ever succeeded.
//!
//! The decisions are a plain core ([`PoolCore`]: `now` and inputs in, decisions out, no
//! I/O, unit-tested without a runtime); [`WarmPool`] is the thin async shell that
//! carries them out through the manager and runs the filler task.

mod decisions;
mod shell;
#[cfg(test)]
mod tests;

pub use decisions::{
    AttemptOutcome, ClaimDecision, Fill, Freshness, Handoff, MemberInfo, MemberState, PoolCore,
    PoolStats, PrewarmAttempt, REFUSED_KEPT, ReleaseDecision, RetireReason, WaitExpiry,
};
pub use shell::{CheckRefusal, Claim, ClaimPath, Revocation, WarmCheck, WarmPool};

#[cfg(doc)]
use super::WorkerManager;
use super::config::WorkerConfig;
use std::time::Duration;

/// How urgent a claim is. A High claim may pre-empt a Low or Normal one; waiting claims
/// are served highest priority first, then in arrival order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Priority {
    Low,
    Normal,
    High,
}

/// Exponential backoff between failed pre-warm attempts (no jitter: one pool, one
/// filler, nothing to spread out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// After the first failure in a row.
    pub delay_first: Duration,
    /// Each further failure in a row multiplies the delay by this.
    pub factor: u32,
    pub delay_max: Duration,
}

impl Backoff {
    /// 1 s, doubling, at most 60 s.
    pub fn prewarm() -> Self {
        Backoff {
            delay_first: Duration::from_secs(1),
            factor: 2,
            delay_max: Duration::from_secs(60),
        }
    }

    pub fn check(&self) {
        assert!(self.factor >= 1, "backoff factor must be at least 1");
        assert!(
            self.delay_first <= self.delay_max,
            "backoff delay_first {:?} exceeds delay_max {:?}",
            self.delay_first,
            self.delay_max
        );
    }

    /// The delay after `failures` failures in a row (`failures` ≥ 1; 0 gives zero).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        super::retry::exponential_delay(self.delay_first, self.factor, self.delay_max, failures)
    }
}

/// The pool's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmPoolConfig {
    /// Workers are registered as `{name_prefix}-{n}`, n counting from 1.
    pub name_prefix: String,
    /// Ready, idle, fresh workers the filler keeps.
    pub size_target: usize,
    /// Least pause between the end of one pre-warm attempt and the start of the next (5 s).
    pub stagger: Duration,
    /// A worker ready for longer than this is stale.
    pub max_age: Duration,
    /// The configuration version workers must have been started with to be fresh.
    pub config_version: u64,
    /// Longest a queued claim waits for a worker before it cold-starts one (30 s).
    pub wait_max: Duration,
    /// Claims at queue positions below this wait; the others cold-start at once (3).
    pub wait_positions: usize,
    /// Pause after failed pre-warm attempts (never below `stagger`).
    pub prewarm_backoff: Backoff,
    /// Longest a pre-empted worker may take to checkpoint its session (10 s); past it the
    /// pre-emption is abandoned and the claim proceeds as if there were no victim.
    pub checkpoint_timeout: Duration,
    /// After a pre-warm's check is refused because the upstream rate limits, no
    /// pre-warm starts for this long (5 min), however soon the upstream recovers.
    pub rate_limit_pause: Duration,
    /// What every worker runs. Each worker gets its own directory under `template.dir`
    /// (`{template.dir}/{name}`) and the pool's config version.
    pub template: WorkerConfig,
}

impl WarmPoolConfig {
    /// The documented defaults: 2 workers, 5 s stagger, 30 min maximum age, waits of
    /// up to 30 s for the first 3 queued claims, backoff 1 s doubling to 60 s.
    pub fn new(name_prefix: impl Into<String>, template: WorkerConfig) -> Self {
        WarmPoolConfig {
            name_prefix: name_prefix.into(),
            size_target: 2,
            stagger: Duration::from_secs(5),
            max_age: Duration::from_secs(30 * 60),
            config_version: template.config_version,
            wait_max: Duration::from_secs(30),
            wait_positions: 3,
            prewarm_backoff: Backoff::prewarm(),
            checkpoint_timeout: Duration::from_secs(10),
            rate_limit_pause: Duration::from_secs(300),
            template,
        }
    }

    /// Panics with the offending field when the configuration contradicts itself.
    pub fn check(&self) {
        assert!(
            self.size_target <= SIZE_TARGET_MAX,
            "size_target above {SIZE_TARGET_MAX}"
        );
        assert!(!self.max_age.is_zero(), "max_age must be positive");
        assert!(
            self.wait_positions <= WAITING_MAX,
            "wait_positions above {WAITING_MAX}"
        );
        assert!(
            !self.checkpoint_timeout.is_zero(),
            "checkpoint_timeout must be positive"
        );
        self.prewarm_backoff.check();
        self.template.check();
    }
}

/// Bound on the pool's size (a pool is a handful of processes, not a fleet).
pub const SIZE_TARGET_MAX: usize = 1024;
/// Bound on the wait queue: positions at or past `wait_positions` never queue.
pub const WAITING_MAX: usize = 1024;
