//! The pool core's claims: grants, pre-emption, the wait queue, cold starts, releases
//! and retirements (the filler's half is in the parent module).

use super::*;

impl PoolCore {
    /// Claim `id` of `priority` arrives.
    pub fn claim(&mut self, now: Duration, id: u64, priority: Priority) -> ClaimDecision {
        if let Some(grant) = self.grant_idle(now, id, priority) {
            return grant;
        }
        if priority == Priority::High
            && let Some(decision) = self.preempt(now, id)
        {
            return decision;
        }
        self.queue_or_cold(id, priority)
    }

    /// Claim `id` takes a fresh idle worker if there is one, and never waits or starts
    /// one: `None` counts as the pool running dry (`drained`).
    pub fn try_claim(&mut self, now: Duration, id: u64, priority: Priority) -> Option<String> {
        match self.grant_idle(now, id, priority) {
            Some(ClaimDecision::Grant { name }) => Some(name),
            _ => {
                self.stats.drained += 1;
                crate::met!(
                    "sessions.pool_drained",
                    "claim {id} found no fresh warm worker: the pool ran dry"
                );
                None
            }
        }
    }

    /// Claim `id` starts a worker of its own (a cold start, with an SLA warning): the
    /// name to register and start, then report `cold_ready` or `cold_failed`.
    pub fn cold_claim(&mut self) -> String {
        self.cold_member()
    }

    /// Claim `id` ends with its worker: the worker leaves the pool for good (a session's
    /// worker holds that session's state and never serves another). Returns its name for
    /// the shell to stop and unregister.
    pub fn retire_claim(&mut self, id: u64) -> Option<String> {
        let ordinal = self.members.iter().find_map(|(o, m)| match m.state {
            MemberState::Claimed { claim, .. } if claim == id => Some(*o),
            _ => None,
        })?;
        let member = self.members.get_mut(&ordinal).expect("member");
        member.state = MemberState::Retiring;
        Some(member.name.clone())
    }

    fn grant_idle(&mut self, now: Duration, id: u64, priority: Priority) -> Option<ClaimDecision> {
        let ordinal = self.best_idle(now)?;
        let member = self.members.get_mut(&ordinal).expect("member");
        member.state = MemberState::Claimed {
            claim: id,
            priority,
        };
        self.stats.claims_warm += 1;
        Some(ClaimDecision::Grant {
            name: member.name.clone(),
        })
    }

    /// The victim: a fresh worker held by the lowest-priority claim below High, the most
    /// recent such claim first (it has the least work to lose).
    fn preempt(&mut self, now: Duration, id: u64) -> Option<ClaimDecision> {
        let (ordinal, victim, victim_priority) = self
            .members
            .iter()
            .filter(|(_, m)| self.freshness_of(m, now).is_fresh())
            .filter_map(|(o, m)| match m.state {
                MemberState::Claimed { claim, priority } if priority < Priority::High => {
                    Some((*o, claim, priority))
                }
                _ => None,
            })
            .min_by_key(|(_, claim, priority)| (*priority, std::cmp::Reverse(*claim)))?;
        let member = self.members.get_mut(&ordinal).expect("member");
        member.state = MemberState::Preempting {
            victim,
            victim_priority,
            by: id,
            victim_released: false,
        };
        Some(ClaimDecision::Preempt {
            name: member.name.clone(),
            victim,
        })
    }

    fn queue_or_cold(&mut self, id: u64, priority: Priority) -> ClaimDecision {
        let position = self
            .waiting
            .iter()
            .take_while(|w| w.priority >= priority)
            .count();
        if position < self.wait_positions {
            self.waiting.insert(
                position,
                Waiter {
                    claim: id,
                    priority,
                },
            );
            return ClaimDecision::Wait { position };
        }
        ClaimDecision::ColdStart {
            name: self.cold_member(),
        }
    }

    fn cold_member(&mut self) -> String {
        self.stats.cold_starts += 1;
        self.stats.sla_warnings += 1;
        self.new_member(true)
    }

    /// The pre-empted worker checkpointed its session: it now belongs to claim `id`.
    /// Returns the claim to revoke (`None` if the victim released it meanwhile).
    pub fn preempt_done(&mut self, name: &str, id: u64) -> Option<u64> {
        let ordinal = self.find(name)?;
        let member = self.members.get_mut(&ordinal).expect("member");
        let MemberState::Preempting {
            victim,
            by,
            victim_released,
            ..
        } = member.state
        else {
            return None;
        };
        debug_assert_eq!(by, id);
        member.state = MemberState::Claimed {
            claim: id,
            priority: Priority::High,
        };
        self.stats.preemptions += 1;
        (!victim_released).then_some(victim)
    }

    /// The checkpoint failed: the victim keeps its worker, and claim `id` is decided
    /// again without pre-emption.
    pub fn preempt_failed(
        &mut self,
        now: Duration,
        name: &str,
        id: u64,
        priority: Priority,
    ) -> ClaimDecision {
        self.stats.preemptions_abandoned += 1;
        if let Some(ordinal) = self.find(name) {
            let member = self.members.get_mut(&ordinal).expect("member");
            if let MemberState::Preempting {
                victim,
                victim_priority,
                victim_released,
                ..
            } = member.state
            {
                member.state = if victim_released {
                    MemberState::Idle
                } else {
                    MemberState::Claimed {
                        claim: victim,
                        priority: victim_priority,
                    }
                };
            }
        }
        if let Some(grant) = self.grant_idle(now, id, priority) {
            return grant;
        }
        self.queue_or_cold(id, priority)
    }

    /// The wait of queued claim `id` ran out.
    pub fn wait_expired(&mut self, id: u64) -> WaitExpiry {
        let Some(index) = self.waiting.iter().position(|w| w.claim == id) else {
            return WaitExpiry::AlreadyServed;
        };
        self.waiting.remove(index);
        self.stats.wait_timeouts += 1;
        WaitExpiry::ColdStart {
            name: self.cold_member(),
        }
    }

    /// Queued claim `id` gave up (its caller went away).
    pub fn cancel_wait(&mut self, id: u64) {
        self.waiting.retain(|w| w.claim != id);
    }

    /// The cold start `name` for claim `id` is ready: the claim holds it.
    pub fn cold_ready(&mut self, now: Duration, name: &str, id: u64, priority: Priority) {
        if let Some(ordinal) = self.find(name) {
            let member = self.members.get_mut(&ordinal).expect("member");
            member.ready_at = Some(now);
            member.state = MemberState::Claimed {
                claim: id,
                priority,
            };
        }
    }

    /// The cold start `name` failed (the shell unregistered it).
    pub fn cold_failed(&mut self, name: &str) {
        if let Some(ordinal) = self.find(name) {
            self.members.remove(&ordinal);
        }
        self.stats.cold_start_failures += 1;
    }

    /// Claim `id` gives its worker back.
    pub fn release(&mut self, now: Duration, id: u64) -> ReleaseDecision {
        let Some((ordinal, state)) = self
            .members
            .iter()
            .find(|(_, m)| match m.state {
                MemberState::Claimed { claim, .. } => claim == id,
                MemberState::Preempting { victim, .. } => victim == id,
                _ => false,
            })
            .map(|(o, m)| (*o, m.state))
        else {
            return ReleaseDecision::Ignored;
        };
        let member = self.members.get(&ordinal).expect("member");
        if let MemberState::Preempting {
            victim,
            victim_priority,
            by,
            ..
        } = state
        {
            // The pre-emption goes on; the victim simply has nothing left to lose.
            let member = self.members.get_mut(&ordinal).expect("member");
            member.state = MemberState::Preempting {
                victim,
                victim_priority,
                by,
                victim_released: true,
            };
            return ReleaseDecision::Ignored;
        }
        let freshness = self.freshness_of(member, now);
        let member = self.members.get_mut(&ordinal).expect("member");
        if !freshness.is_fresh() {
            member.state = MemberState::Retiring;
            self.stats.stale_retired += 1;
            return ReleaseDecision::Retire {
                name: member.name.clone(),
                freshness,
            };
        }
        member.state = MemberState::Idle;
        match self.serve_queue(now, ordinal) {
            Some(handoff) => ReleaseDecision::HandOver(handoff),
            None => ReleaseDecision::Idle,
        }
    }

    /// From now on only workers started with `version` are fresh.
    pub fn set_config_version(&mut self, version: u64) {
        self.version = version;
    }
}
