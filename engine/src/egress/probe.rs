//! Whether egress is up, and when to probe while it is not (sans-IO).
//!
//! A request whose connect fails or times out marks egress down (`handle_unreachable`)
//! and names the probe target: that request's host and port. While down, the n-th probe
//! (a TCP connect with the connect timeout) is due `jittered(exponential_delay(first,
//! factor, cap, n))` after the previous one ended (or the outage began): the one
//! backoff rule of `workers::retry`, with the jitter drawn by the shell from the
//! environment's randomness. A probe that connects ends the outage.

use crate::env::NetAddr;
use crate::workers::retry::{exponential_delay, jittered};
use std::time::Duration;

/// The probe schedule's shape (from `EgressConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSchedule {
    pub first: Duration,
    pub factor: u32,
    pub cap: Duration,
    pub jitter_percent: u32,
}

/// One wait before a probe, as drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeDelay {
    /// Probes of this outage so far, this one included (from 1).
    pub attempt: u32,
    pub nominal: Duration,
    /// What was drawn: at most `nominal`.
    pub delay: Duration,
    /// When the delay began.
    pub from: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Up,
    Down {
        since: Duration,
        target: NetAddr,
        next: ProbeDelay,
    },
}

#[derive(Clone, Debug)]
pub struct ProbeCore {
    schedule: ProbeSchedule,
    state: State,
    outages: u64,
}

impl ProbeCore {
    pub fn new(schedule: ProbeSchedule) -> Self {
        ProbeCore {
            schedule,
            state: State::Up,
            outages: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// Outages begun so far (the current one's number while down).
    pub fn outages(&self) -> u64 {
        self.outages
    }

    fn draw(&self, attempt: u32, from: Duration, random: u64) -> ProbeDelay {
        let s = self.schedule;
        let nominal = exponential_delay(s.first, s.factor, s.cap, attempt);
        ProbeDelay {
            attempt,
            nominal,
            delay: jittered(nominal, s.jitter_percent, random),
            from,
        }
    }

    /// A request to `target` was not reached at `now`. True when this begins an outage
    /// (the first probe is then scheduled); already down, nothing changes.
    pub fn handle_unreachable(&mut self, now: Duration, target: &NetAddr, random: u64) -> bool {
        if !self.is_up() {
            return false;
        }
        self.outages += 1;
        self.state = State::Down {
            since: now,
            target: target.clone(),
            next: self.draw(1, now, random),
        };
        true
    }

    /// The probe due at `now`, if one is: its target and its drawn delay.
    pub fn poll_probe(&self, now: Duration) -> Option<(NetAddr, ProbeDelay)> {
        match &self.state {
            State::Down { target, next, .. } if now >= next.from + next.delay => {
                Some((target.clone(), *next))
            }
            _ => None,
        }
    }

    /// The probe failed (ended at `now`): the next one is drawn.
    pub fn handle_probe_failed(&mut self, now: Duration, random: u64) {
        if let State::Down { next, .. } = &self.state {
            let drawn = self.draw(next.attempt.saturating_add(1), now, random);
            if let State::Down { next, .. } = &mut self.state {
                *next = drawn;
            }
        }
    }

    /// The probe connected at `now`: egress is up; how long it was down.
    pub fn handle_probe_ok(&mut self, now: Duration) -> Option<Duration> {
        let State::Down { since, .. } = self.state else {
            return None;
        };
        self.state = State::Up;
        Some(now.saturating_sub(since))
    }

    /// When the next probe is due, while down.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match &self.state {
            State::Down { next, .. } => Some(next.from + next.delay),
            State::Up => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn schedule(jitter_percent: u32) -> ProbeSchedule {
        ProbeSchedule {
            first: s(1),
            factor: 2,
            cap: s(60),
            jitter_percent,
        }
    }

    fn target() -> NetAddr {
        NetAddr::new("outside-0", 80)
    }

    /// Fails every probe of one outage, with the draws `randoms`; the delays drawn.
    fn outage(core: &mut ProbeCore, randoms: &[u64]) -> Vec<ProbeDelay> {
        let mut now = s(10);
        assert!(core.handle_unreachable(now, &target(), randoms[0]));
        let mut delays = Vec::new();
        for &r in &randoms[1..] {
            let due = core.poll_timeout().expect("down: a probe is due");
            assert!(core.poll_probe(due - Duration::from_nanos(1)).is_none());
            let (t, d) = core.poll_probe(due).expect("due");
            assert_eq!(t, target());
            delays.push(d);
            now = due + s(5); // the probe's connect timed out
            core.handle_probe_failed(now, r);
        }
        delays
    }

    #[test]
    fn probes_back_off_exponentially_with_full_jitter_up_to_the_cap() {
        let mut core = ProbeCore::new(schedule(100));
        let randoms: Vec<u64> = (0..12u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        let delays = outage(&mut core, &randoms);
        let nominals: Vec<u64> = delays.iter().map(|d| d.nominal.as_secs()).collect();
        assert_eq!(nominals, vec![1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]);
        for d in &delays {
            assert!(d.delay <= d.nominal, "{d:?}");
        }
        // Jittered: not every delay is its nominal value (a fixed schedule would be).
        assert!(delays.iter().filter(|d| d.delay < d.nominal).count() >= delays.len() - 1);
    }

    #[test]
    fn without_jitter_every_delay_is_nominal() {
        let mut core = ProbeCore::new(schedule(0));
        let delays = outage(&mut core, &[7, 8, 9, 10]);
        assert!(delays.iter().all(|d| d.delay == d.nominal));
    }

    #[test]
    fn a_probe_that_connects_ends_the_outage_and_the_next_begins_afresh() {
        let mut core = ProbeCore::new(schedule(100));
        assert!(core.is_up());
        assert!(core.handle_unreachable(s(10), &target(), 1));
        assert!(
            !core.handle_unreachable(s(11), &target(), 1),
            "already down"
        );
        assert_eq!(core.outages(), 1);
        let due = core.poll_timeout().unwrap();
        core.handle_probe_failed(due + s(5), 3);
        assert_eq!(core.handle_probe_ok(s(40)), Some(s(30)));
        assert!(core.is_up());
        assert_eq!(core.poll_timeout(), None);
        assert!(core.handle_unreachable(s(50), &target(), 1));
        assert_eq!(core.outages(), 2);
        let (_, d) = core.poll_probe(s(52)).unwrap();
        assert_eq!(d.attempt, 1, "a new outage starts its backoff again");
    }
}
