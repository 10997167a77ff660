//! The warm pool's decisions as a plain state machine: every input comes with `now`
//! (time since the pool started), every output is a decision for the shell to carry out.
//! No I/O, no clock, no randomness: unit tests drive it directly.

use super::{Backoff, Priority, WarmPoolConfig};

mod claims;
use std::collections::BTreeMap;
use std::time::Duration;

/// Whether a worker may be handed out, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Freshness {
    Fresh,
    /// Started with another configuration version than the pool's current one.
    ConfigMismatch {
        version: u64,
        current: u64,
    },
    /// Ready for longer than the maximum age.
    TooOld {
        age: Duration,
    },
    /// Not ready yet (still starting).
    NotReady,
}

impl Freshness {
    pub fn is_fresh(self) -> bool {
        self == Freshness::Fresh
    }
}

/// What a pool member is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum MemberState {
    /// A pre-warm or cold start in progress.
    Starting,
    Idle,
    Claimed {
        claim: u64,
        priority: Priority,
    },
    /// Checkpointing for a pre-emption: `victim` still holds it until the checkpoint is
    /// done, then `by` gets it.
    Preempting {
        victim: u64,
        victim_priority: Priority,
        by: u64,
        /// The victim released it during the checkpoint.
        victim_released: bool,
    },
    /// Being stopped and unregistered.
    Retiring,
}

/// One member, as oracles and operators see it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemberInfo {
    pub name: String,
    pub config_version: u64,
    /// Started by a claim (cold start), not by the filler.
    pub cold: bool,
    pub ready_at: Option<Duration>,
    pub state: MemberState,
    pub freshness: Freshness,
}

/// How a pre-warm attempt ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum AttemptOutcome {
    InProgress,
    Ready,
    Failed { reason: String },
}

/// One pre-warm attempt, for oracles: when it started and how and when it ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PrewarmAttempt {
    pub name: String,
    pub config_version: u64,
    pub started_at: Duration,
    pub ended_at: Option<Duration>,
    pub outcome: AttemptOutcome,
}

/// Counters of the pool's history.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    pub prewarm_started: u64,
    pub prewarm_failed: u64,
    pub prewarm_ready: u64,
    /// Every pre-warm attempt in start order (bounded: see [`ATTEMPTS_KEPT_MAX`]).
    pub prewarm_attempts: Vec<PrewarmAttempt>,
    /// Claims served by a fresh idle worker at once.
    pub claims_warm: u64,
    /// Queued claims served by a release or a newly warmed worker.
    pub claims_waited: u64,
    /// Queued claims that waited `wait_max` in vain.
    pub wait_timeouts: u64,
    pub cold_starts: u64,
    pub cold_start_failures: u64,
    pub sla_warnings: u64,
    pub preemptions: u64,
    pub preemptions_abandoned: u64,
    /// Workers retired because they were stale (config version or age).
    pub stale_retired: u64,
    /// Idle workers retired because the pool held more than `size_target`.
    pub surplus_retired: u64,
    /// Members found not ready when about to be handed out (crashed while idle).
    pub members_lost: u64,
    /// Claims that asked only for a warm worker and found none (each an operator alert:
    /// the pool ran dry).
    pub drained: u64,
    /// Idle workers retired at once because their version was invalidated.
    pub invalidated: u64,
    /// Pre-warms refused by the check because the upstream was rate limiting.
    pub rate_limited: u64,
    /// The latest refused pre-warms' names (at most [`REFUSED_KEPT`]), never handed out.
    pub refused: Vec<String>,
}

/// How many refused pre-warms' names [`PoolStats::refused`] keeps.
pub const REFUSED_KEPT: usize = 32;

/// Pre-warm attempts kept in [`PoolStats::prewarm_attempts`]; older ones are dropped.
pub(super) const ATTEMPTS_KEPT_MAX: usize = 4096;

/// What the filler does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fill {
    /// Register and start this worker, then report `prewarm_ready` or `prewarm_failed`.
    Start { name: String, config_version: u64 },
    /// Stop and unregister this worker, then report `retired`.
    Retire { name: String, reason: RetireReason },
    /// Nothing to do before this time (or before the shell is woken).
    WaitUntil(Duration),
    /// Nothing to do until the shell is woken by a claim, release or config change.
    Idle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetireReason {
    Stale(Freshness),
    Surplus,
}

/// What a claim gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimDecision {
    /// This fresh idle worker, now.
    Grant { name: String },
    /// Checkpoint this worker's session, then report `preempt_done` or `preempt_failed`.
    Preempt { name: String, victim: u64 },
    /// Queued at this position (0 = next served); wait for a handoff up to `wait_max`.
    Wait { position: usize },
    /// Register and start this worker (an SLA warning was counted), then report
    /// `cold_ready` or `cold_failed`.
    ColdStart { name: String },
}

/// A queued claim gets a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub claim: u64,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseDecision {
    /// Back in the pool.
    Idle,
    /// Stale: stop and unregister it, then report `retired`.
    Retire { name: String, freshness: Freshness },
    /// Straight to a queued claim.
    HandOver(Handoff),
    /// Not a claim the pool knows (already released, or pre-empted).
    Ignored,
}

/// What happens to a queued claim whose wait ran out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitExpiry {
    /// Still queued: it leaves the queue and cold-starts this worker (SLA warning counted).
    ColdStart { name: String },
    /// It was handed a worker in the meantime: take the handoff.
    AlreadyServed,
}

#[derive(Clone, Debug)]
struct Member {
    name: String,
    version: u64,
    cold: bool,
    ready_at: Option<Duration>,
    state: MemberState,
}

#[derive(Clone, Copy, Debug)]
struct Waiter {
    claim: u64,
    priority: Priority,
}

/// The pool's state and decisions.
#[derive(Clone, Debug)]
pub struct PoolCore {
    prefix: String,
    size_target: usize,
    stagger: Duration,
    max_age: Duration,
    wait_positions: usize,
    backoff: Backoff,
    version: u64,
    /// By ordinal (the `n` of `{prefix}-{n}`), so iteration follows creation order.
    members: BTreeMap<u64, Member>,
    ordinal_next: u64,
    /// The pre-warm attempt in progress (one at a time).
    prewarm: Option<u64>,
    prewarm_next_at: Duration,
    failures_in_a_row: u32,
    /// A stale worker was retired and its replacement is not ready yet: the next stale
    /// one waits (a rolling refresh replaces one worker at a time).
    replacement_owed: bool,
    /// Queued claims, highest priority first, then by arrival.
    waiting: Vec<Waiter>,
    claim_next: u64,
    /// After a rate-limited check, pre-warming pauses this long.
    rate_limit_pause: Duration,
    /// Shutting down: nothing starts, every idle member goes.
    draining: bool,
    stats: PoolStats,
}

impl PoolCore {
    pub fn new(config: &WarmPoolConfig) -> Self {
        PoolCore {
            prefix: config.name_prefix.clone(),
            size_target: config.size_target,
            stagger: config.stagger,
            max_age: config.max_age,
            wait_positions: config.wait_positions,
            backoff: config.prewarm_backoff.clone(),
            version: config.config_version,
            members: BTreeMap::new(),
            ordinal_next: 1,
            prewarm: None,
            prewarm_next_at: Duration::ZERO,
            failures_in_a_row: 0,
            replacement_owed: false,
            waiting: Vec::new(),
            claim_next: 1,
            rate_limit_pause: config.rate_limit_pause,
            draining: false,
            stats: PoolStats::default(),
        }
    }

    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    pub fn config_version(&self) -> u64 {
        self.version
    }

    /// A new claim id (ids are never reused).
    pub fn next_claim_id(&mut self) -> u64 {
        let id = self.claim_next;
        self.claim_next += 1;
        id
    }

    /// Queued claims, in the order they will be served.
    pub fn waiting(&self) -> Vec<(u64, Priority)> {
        self.waiting.iter().map(|w| (w.claim, w.priority)).collect()
    }

    fn freshness_of(&self, member: &Member, now: Duration) -> Freshness {
        let Some(ready_at) = member.ready_at else {
            return Freshness::NotReady;
        };
        if member.version != self.version {
            return Freshness::ConfigMismatch {
                version: member.version,
                current: self.version,
            };
        }
        let age = now.saturating_sub(ready_at);
        if age > self.max_age {
            return Freshness::TooOld { age };
        }
        Freshness::Fresh
    }

    /// Every member, in creation order.
    pub fn members(&self, now: Duration) -> Vec<MemberInfo> {
        self.members
            .values()
            .map(|m| MemberInfo {
                name: m.name.clone(),
                config_version: m.version,
                cold: m.cold,
                ready_at: m.ready_at,
                state: m.state,
                freshness: self.freshness_of(m, now),
            })
            .collect()
    }

    /// Whether the member `name` may be handed out now (`None`: no such member).
    pub fn freshness(&self, name: &str, now: Duration) -> Option<Freshness> {
        self.find(name)
            .map(|o| self.freshness_of(&self.members[&o], now))
    }

    fn find(&self, name: &str) -> Option<u64> {
        self.members
            .iter()
            .find(|(_, m)| m.name == name)
            .map(|(o, _)| *o)
    }

    fn new_member(&mut self, cold: bool) -> String {
        let ordinal = self.ordinal_next;
        self.ordinal_next += 1;
        let name = format!("{}-{ordinal}", self.prefix);
        self.members.insert(
            ordinal,
            Member {
                name: name.clone(),
                version: self.version,
                cold,
                ready_at: None,
                state: MemberState::Starting,
            },
        );
        name
    }

    fn idle_fresh(&self, now: Duration) -> impl Iterator<Item = (u64, &Member)> {
        self.members
            .iter()
            .filter(move |(_, m)| {
                m.state == MemberState::Idle && self.freshness_of(m, now).is_fresh()
            })
            .map(|(o, m)| (*o, m))
    }

    /// The fresh idle member handed out first: the one ready longest (it would go stale
    /// first), then the oldest.
    fn best_idle(&self, now: Duration) -> Option<u64> {
        self.idle_fresh(now)
            .min_by_key(|(o, m)| (m.ready_at, *o))
            .map(|(o, _)| o)
    }

    // ---- the filler ----

    /// What the filler does next. Starts and stale retirements are one at a time: a
    /// start only when no attempt is in progress and the pause since the last attempt
    /// (stagger, or backoff after failures) is over.
    pub fn next_fill(&mut self, now: Duration) -> Fill {
        if self.prewarm.is_some() || self.draining {
            return Fill::Idle;
        }
        let due = now >= self.prewarm_next_at;
        let stale_idle = self
            .members
            .iter()
            .find(|(_, m)| m.state == MemberState::Idle && !self.freshness_of(m, now).is_fresh())
            .map(|(o, m)| (*o, self.freshness_of(m, now)));
        let idle_fresh = self.idle_fresh(now).count();
        if due {
            if self.replacement_owed && idle_fresh >= self.size_target {
                self.replacement_owed = false;
            }
            if let Some((ordinal, freshness)) = stale_idle.filter(|_| !self.replacement_owed) {
                let member = self.members.get_mut(&ordinal).expect("member");
                member.state = MemberState::Retiring;
                self.stats.stale_retired += 1;
                self.replacement_owed = true;
                return Fill::Retire {
                    name: member.name.clone(),
                    reason: RetireReason::Stale(freshness),
                };
            }
            if idle_fresh > self.size_target && self.waiting.is_empty() {
                let ordinal = self.best_idle(now).expect("an idle member");
                let member = self.members.get_mut(&ordinal).expect("member");
                member.state = MemberState::Retiring;
                self.stats.surplus_retired += 1;
                return Fill::Retire {
                    name: member.name.clone(),
                    reason: RetireReason::Surplus,
                };
            }
            if idle_fresh < self.size_target {
                let name = self.new_member(false);
                let ordinal = self.ordinal_next - 1;
                self.prewarm = Some(ordinal);
                self.stats.prewarm_started += 1;
                if self.stats.prewarm_attempts.len() == ATTEMPTS_KEPT_MAX {
                    self.stats.prewarm_attempts.remove(0);
                }
                self.stats.prewarm_attempts.push(PrewarmAttempt {
                    name: name.clone(),
                    config_version: self.version,
                    started_at: now,
                    ended_at: None,
                    outcome: AttemptOutcome::InProgress,
                });
                return Fill::Start {
                    name,
                    config_version: self.version,
                };
            }
        }
        let work_pending = stale_idle.is_some() || idle_fresh != self.size_target;
        let mut wake = (!due && work_pending).then_some(self.prewarm_next_at);
        // An idle worker turns stale by age at a known time: wake then to replace it.
        for (_, member) in self.idle_fresh(now) {
            let ready_at = member.ready_at.expect("a fresh member is ready");
            let stale_at = ready_at + self.max_age + Duration::from_nanos(1);
            wake = Some(wake.map_or(stale_at, |w: Duration| w.min(stale_at)));
        }
        match wake {
            Some(at) => Fill::WaitUntil(at),
            None => Fill::Idle,
        }
    }

    fn end_attempt(&mut self, name: &str, now: Duration, outcome: AttemptOutcome) {
        if let Some(attempt) = self
            .stats
            .prewarm_attempts
            .iter_mut()
            .rev()
            .find(|a| a.name == name)
        {
            attempt.ended_at = Some(now);
            attempt.outcome = outcome;
        }
    }

    /// The pre-warm of `name` is ready. Returns the handoff if a queued claim takes it.
    pub fn prewarm_ready(&mut self, now: Duration, name: &str) -> Option<Handoff> {
        let ordinal = self.find(name)?;
        if self.prewarm == Some(ordinal) {
            self.prewarm = None;
        }
        self.failures_in_a_row = 0;
        self.replacement_owed = false;
        self.prewarm_next_at = now + self.stagger;
        self.stats.prewarm_ready += 1;
        self.end_attempt(name, now, AttemptOutcome::Ready);
        let member = self.members.get_mut(&ordinal).expect("member");
        member.ready_at = Some(now);
        member.state = MemberState::Idle;
        self.serve_queue(now, ordinal)
    }

    /// The pre-warm of `name` failed (the shell unregistered it).
    pub fn prewarm_failed(&mut self, now: Duration, name: &str, reason: &str) {
        if let Some(ordinal) = self.find(name) {
            if self.prewarm == Some(ordinal) {
                self.prewarm = None;
            }
            self.members.remove(&ordinal);
        }
        self.failures_in_a_row = self.failures_in_a_row.saturating_add(1);
        let pause = self.backoff.delay(self.failures_in_a_row).max(self.stagger);
        self.prewarm_next_at = now + pause;
        self.stats.prewarm_failed += 1;
        self.end_attempt(
            name,
            now,
            AttemptOutcome::Failed {
                reason: reason.to_string(),
            },
        );
    }

    /// The pre-warm of `name` started, but its check refused it (the shell unregistered
    /// it): a failure like any other, except that a refusal because the upstream is rate
    /// limiting pauses pre-warming for `rate_limit_pause` (however soon it recovers), and
    /// the name is remembered.
    pub fn prewarm_refused(&mut self, now: Duration, name: &str, reason: &str, rate_limited: bool) {
        self.prewarm_failed(now, name, reason);
        if rate_limited {
            self.prewarm_next_at = self.prewarm_next_at.max(now + self.rate_limit_pause);
            self.stats.rate_limited += 1;
            if self.stats.refused.len() == REFUSED_KEPT {
                self.stats.refused.remove(0);
            }
            self.stats.refused.push(name.to_string());
        }
    }

    /// Whether a pre-warm may be called ready: pre-warming has succeeded at least once.
    pub fn is_ready(&self) -> bool {
        self.stats.prewarm_ready > 0
    }

    /// Fresh idle workers now.
    pub fn depth(&self, now: Duration) -> usize {
        self.idle_fresh(now).count()
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Shutdown: nothing more starts, and every idle member is retired now. Returns
    /// their names (the shell unregisters each, then reports `retired`).
    pub fn drain(&mut self) -> Vec<String> {
        self.draining = true;
        let mut names = Vec::new();
        for member in self.members.values_mut() {
            if member.state == MemberState::Idle {
                member.state = MemberState::Retiring;
                names.push(member.name.clone());
            }
        }
        names
    }

    /// The version changed in a way that makes every older worker unusable at once (a
    /// plugin set changed): idle members of another version are retired now, not on
    /// the rolling refresh. Returns their names; claimed ones go when released, starts
    /// in flight when they are ready (as in a rolling refresh).
    pub fn invalidate(&mut self, version: u64) -> Vec<String> {
        let old = std::mem::replace(&mut self.version, version);
        let mut names = Vec::new();
        for member in self.members.values_mut() {
            if member.state == MemberState::Idle && member.version != version {
                member.state = MemberState::Retiring;
                names.push(member.name.clone());
            }
        }
        self.stats.invalidated += names.len() as u64;
        if old != version {
            crate::met!(
                "plugins.registry_changed",
                "version {old} -> {version}: {} idle warm workers retired at once",
                names.len()
            );
        }
        names
    }

    /// A pre-warm became ready while the pool drains: it is retired, not kept. Returns
    /// whether it was.
    pub fn retire_if_draining(&mut self, name: &str) -> bool {
        if !self.draining {
            return false;
        }
        if let Some(ordinal) = self.find(name) {
            if self.prewarm == Some(ordinal) {
                self.prewarm = None;
            }
            let member = self.members.get_mut(&ordinal).expect("member");
            member.state = MemberState::Retiring;
        }
        true
    }

    /// The pause after the latest attempt ends at this time.
    pub fn prewarm_next_at(&self) -> Duration {
        self.prewarm_next_at
    }

    /// `name` was stopped and unregistered.
    pub fn retired(&mut self, name: &str) {
        if let Some(ordinal) = self.find(name) {
            self.members.remove(&ordinal);
        }
    }

    /// `name` is not ready although the pool thought so (it crashed while idle): it
    /// leaves the pool (the shell retires it), and its claim, if any, is decided afresh.
    pub fn member_lost(&mut self, name: &str) {
        if let Some(ordinal) = self.find(name) {
            self.members.remove(&ordinal);
            self.stats.members_lost += 1;
        }
    }

    /// A fresh idle member `ordinal` goes to the head of the queue, if anyone waits.
    fn serve_queue(&mut self, now: Duration, ordinal: u64) -> Option<Handoff> {
        if self.waiting.is_empty() {
            return None;
        }
        let member = self.members.get(&ordinal)?;
        if member.state != MemberState::Idle || !self.freshness_of(member, now).is_fresh() {
            return None;
        }
        let waiter = self.waiting.remove(0);
        let member = self.members.get_mut(&ordinal).expect("member");
        member.state = MemberState::Claimed {
            claim: waiter.claim,
            priority: waiter.priority,
        };
        self.stats.claims_waited += 1;
        Some(Handoff {
            claim: waiter.claim,
            name: member.name.clone(),
        })
    }
}
