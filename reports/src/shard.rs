//! Which slice of a sweep a machine runs: `--shard i/n`.
//!
//! A sweep is a list of jobs (scenario id, seed). Shard `i` of `n` takes the jobs whose
//! position in the list **ordered by (id, seed)** is `i - 1` modulo `n`. Ordering by the
//! job's own key (not by registry order) makes the assignment a function of the job set
//! alone; taking every n-th job (not contiguous blocks) spreads each scenario's seeds over
//! all shards, so a slow scenario does not land on one machine. The n slices are disjoint
//! and their union is the whole list (tested below and in the CLI tests).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Shard `index` of `count`, 1-based as people count (`--shard 1/4` … `--shard 4/4`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole sweep as one shard.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Checks `1 <= index <= count`.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1".to_string());
        }
        if index == 0 || index > count {
            return Err(format!(
                "shard index {index} is outside 1..={count} (shards are numbered from 1)"
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `i/n`, for example `2/8`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let Some((i, n)) = text.trim().split_once('/') else {
            return Err(format!(
                "shard {text:?} is not of the form i/n (for example 2/8)"
            ));
        };
        let parse = |what: &str, s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| format!("shard {text:?}: {what} {s:?} is not a whole number"))
        };
        Shard::new(parse("index", i)?, parse("count", n)?)
    }

    /// Parses nextest's spelling, `count:i/n` (`--partition count:2/8`): the same
    /// slices as `--shard i/n`. Other partition kinds (nextest's `hash:`) are refused:
    /// a shard here is a position in (id, seed) order, which keeps shards even.
    pub fn parse_partition(text: &str) -> Result<Shard, String> {
        match text.trim().split_once(':') {
            Some(("count", rest)) => Shard::parse(rest),
            Some((kind, _)) => Err(format!(
                "partition kind {kind:?} is not supported: chaos partitions by count only \
                 (count:i/n, the same as --shard i/n)"
            )),
            None => Err(format!(
                "partition {text:?} is not of the form count:i/n (for example count:2/8)"
            )),
        }
    }

    /// Whether the job at `position` (in (id, seed) order) belongs to this shard.
    pub fn contains(self, position: usize) -> bool {
        (position as u64) % self.count == self.index - 1
    }

    /// Orders `jobs` by `key` and keeps this shard's slice, in that order.
    pub fn select<T, K: Ord>(self, mut jobs: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
        jobs.sort_by_key(|j| key(j));
        jobs.into_iter()
            .enumerate()
            .filter(|(position, _)| self.contains(*position))
            .map(|(_, job)| job)
            .collect()
    }

    pub fn is_whole(self) -> bool {
        self.count == 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn jobs() -> Vec<(String, u64)> {
        // Deliberately not in (id, seed) order, as a registry lists them.
        let mut jobs = Vec::new();
        for id in ["sim.net.b", "core.EC-002", "sim.disk.a", "core.EC-001", "x"] {
            for seed in [3, 1, 2, 10, 7] {
                jobs.push((id.to_string(), seed));
            }
        }
        jobs
    }

    #[test]
    fn shards_are_disjoint_and_their_union_is_the_whole_sweep() {
        let all: BTreeSet<(String, u64)> = jobs().into_iter().collect();
        for count in 1..=30 {
            let mut union = BTreeSet::new();
            let mut total = 0;
            let mut sizes = Vec::new();
            for index in 1..=count {
                let shard = Shard::new(index, count).unwrap();
                let slice = shard.select(jobs(), |j| j.clone());
                total += slice.len();
                sizes.push(slice.len());
                for job in slice {
                    assert!(
                        union.insert(job.clone()),
                        "{job:?} in two shards of {count}"
                    );
                }
            }
            assert_eq!(union, all, "union of {count} shards");
            assert_eq!(total, all.len());
            let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(max - min <= 1, "uneven shards of {count}: {sizes:?}");
        }
    }

    #[test]
    fn the_assignment_depends_on_the_jobs_not_their_listing_order() {
        let shard = Shard::new(2, 3).unwrap();
        let mut reversed = jobs();
        reversed.reverse();
        assert_eq!(
            shard.select(jobs(), |j| j.clone()),
            shard.select(reversed, |j| j.clone())
        );
    }

    #[test]
    fn a_scenario_is_spread_over_shards_not_given_to_one() {
        let first = Shard::new(1, 5).unwrap().select(jobs(), |j| j.clone());
        let ids: BTreeSet<&str> = first.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids.len(),
            5,
            "every scenario has a seed in shard 1/5: {first:?}"
        );
    }

    #[test]
    fn parse_accepts_i_of_n_and_rejects_the_rest_with_a_reason() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, count: 8 }));
        assert_eq!(Shard::parse(" 1/1 "), Ok(Shard::WHOLE));
        assert_eq!(Shard::parse("2/8").unwrap().to_string(), "2/8");
        for (text, why) in [
            ("0/4", "outside 1..=4"),
            ("5/4", "outside 1..=4"),
            ("1/0", "at least 1"),
            ("3", "not of the form i/n"),
            ("a/4", "index \"a\" is not a whole number"),
            ("1/-4", "count \"-4\" is not a whole number"),
            ("", "not of the form"),
        ] {
            let err = Shard::parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn partitions_by_count_are_shards_and_other_kinds_are_refused() {
        assert_eq!(
            Shard::parse_partition("count:2/8"),
            Ok(Shard { index: 2, count: 8 })
        );
        for (text, why) in [
            ("hash:1/2", "partition kind \"hash\" is not supported"),
            ("2/8", "not of the form count:i/n"),
            ("count:9/8", "outside 1..=8"),
        ] {
            let err = Shard::parse_partition(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }
}
