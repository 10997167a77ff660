//! Named hold-offs the lock service keeps for its instances (a pure core that takes
//! `now`): `HOLD key ms` says no one should act on `key` for `ms` from now, `CHECK key`
//! says how much of it is left. The model API's 429 window is one: the instance that
//! read the 429 holds its account's key, and every instance checks it before a call.
//!
//! Like the leases, holds live in memory only: a service that starts again has
//! forgotten them, and the next 429 sets the hold again (one more call reaches the
//! limiting API, nothing worse). The table is bounded; expired holds are swept first.

use std::collections::BTreeMap;
use std::time::Duration;

/// Live holds kept at most: past it, `HOLD` of a new key is refused (`ERR`).
pub const HOLDS_MAX: usize = 4096;

/// What the holds have seen, since the service started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldStats {
    pub holds: u64,
    pub checks: u64,
    /// CHECKs answered `HELD`.
    pub held: u64,
}

#[derive(Debug, Default)]
pub struct HoldTable {
    /// key → until when it is held.
    until: BTreeMap<String, Duration>,
    stats: HoldStats,
}

impl HoldTable {
    pub fn stats(&self) -> &HoldStats {
        &self.stats
    }

    /// Holds `key` for `hold` from `now`; a longer hold already there stays.
    pub fn handle_hold(
        &mut self,
        key: String,
        hold: Duration,
        now: Duration,
    ) -> Result<(), String> {
        let until = now.saturating_add(hold);
        if !self.until.contains_key(&key) && self.until.len() >= HOLDS_MAX {
            self.until.retain(|_, &mut u| u > now);
            if self.until.len() >= HOLDS_MAX {
                return Err(format!("{HOLDS_MAX} holds are live: no room for {key:?}"));
            }
        }
        self.stats.holds += 1;
        let kept = self.until.entry(key).or_insert(until);
        *kept = (*kept).max(until);
        Ok(())
    }

    /// How much of `key`'s hold is left at `now` (`None`: none).
    pub fn handle_check(&mut self, key: &str, now: Duration) -> Option<Duration> {
        self.stats.checks += 1;
        let left = self
            .until
            .get(key)
            .and_then(|&until| until.checked_sub(now))
            .filter(|left| !left.is_zero());
        if left.is_some() {
            self.stats.held += 1;
        }
        left
    }

    /// How many holds are live at `now`.
    #[cfg(test)]
    fn live_count(&self, now: Duration) -> usize {
        self.until.values().filter(|&&u| u > now).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_hold_counts_down_and_a_shorter_one_does_not_shorten_it() {
        let mut t = HoldTable::default();
        assert_eq!(t.handle_check("k", ms(0)), None);
        t.handle_hold("k".into(), ms(20_000), ms(1_000)).unwrap();
        assert_eq!(t.handle_check("k", ms(5_000)), Some(ms(16_000)));
        t.handle_hold("k".into(), ms(1_000), ms(5_000)).unwrap();
        assert_eq!(t.handle_check("k", ms(5_000)), Some(ms(16_000)));
        t.handle_hold("k".into(), ms(30_000), ms(5_000)).unwrap();
        assert_eq!(t.handle_check("k", ms(5_000)), Some(ms(30_000)));
        assert_eq!(t.handle_check("k", ms(35_000)), None, "over at its end");
        assert_eq!(t.handle_check("other", ms(5_000)), None);
        assert_eq!(
            t.stats(),
            &HoldStats {
                holds: 3,
                checks: 6,
                held: 3
            }
        );
    }

    #[test]
    fn the_table_is_bounded_and_sweeps_expired_holds_first() {
        let mut t = HoldTable::default();
        for i in 0..HOLDS_MAX {
            t.handle_hold(format!("k{i}"), ms(10), ms(0)).unwrap();
        }
        let err = t.handle_hold("one-more".into(), ms(10), ms(5)).unwrap_err();
        assert!(err.contains("holds are live"), "{err}");
        t.handle_hold("k0".into(), ms(10), ms(5))
            .expect("a key already held may be held again");
        t.handle_hold("one-more".into(), ms(10), ms(10))
            .expect("expired holds make room");
        assert_eq!(t.live_count(ms(10)), 2);
    }
}
