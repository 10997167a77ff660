//! The review of a new baseline (`chaos gate --accept`): what changes against the old
//! one, and the refusal to turn a failure into an expectation without being told.
//!
//! A baseline is the gate's memory of what is allowed to fail. Accepting a sweep that
//! fails would silently make that failure "known", and every later gate green with it;
//! so a scenario expected to fail that was not before (it passed, or it is new) needs an
//! explicit acceptance with a reason, which the baseline keeps and later gates print.

use super::{Baseline, Expected};
use std::collections::BTreeMap;

/// What a new baseline changes against the old one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BaselineDiff {
    /// Expected to pass before, to fail now.
    pub pass_to_fail: Vec<String>,
    /// Expected to fail before, to pass now.
    pub fail_to_pass: Vec<String>,
    /// Not in the old baseline, with what the new one expects.
    pub added: Vec<(String, Expected)>,
    /// In the old baseline, not in the new one.
    pub removed: Vec<String>,
    /// The fixed sweep's seeds, `(start, last)`, before and after, when they differ.
    pub seed_range: Option<((u64, u64), (u64, u64))>,
    /// The determinism sample before and after, when it differs.
    pub determinism_sample: Option<(u64, u64)>,
}

impl BaselineDiff {
    /// `old` (none: no baseline yet) against `new`.
    pub fn between(old: Option<&Baseline>, new: &Baseline) -> BaselineDiff {
        let empty = BTreeMap::new();
        let before = old.map_or(&empty, |b| &b.scenarios);
        let mut diff = BaselineDiff::default();
        for (id, now) in &new.scenarios {
            match (before.get(id), now) {
                (None, _) => diff.added.push((id.clone(), *now)),
                (Some(Expected::Pass), Expected::Fail) => diff.pass_to_fail.push(id.clone()),
                (Some(Expected::Fail), Expected::Pass) => diff.fail_to_pass.push(id.clone()),
                _ => {}
            }
        }
        diff.removed = before
            .keys()
            .filter(|id| !new.scenarios.contains_key(*id))
            .cloned()
            .collect();
        if let Some(old) = old {
            let range = |b: &Baseline| (b.seed_start, b.seed_start.saturating_add(b.seeds - 1));
            if range(old) != range(new) {
                diff.seed_range = Some((range(old), range(new)));
            }
            if old.determinism_sample != new.determinism_sample {
                diff.determinism_sample = Some((old.determinism_sample, new.determinism_sample));
            }
        }
        diff
    }

    pub fn is_empty(&self) -> bool {
        *self == BaselineDiff::default()
    }

    /// Scenarios the new baseline expects to fail that the old one did not: they need
    /// an explicit acceptance.
    pub fn new_failures(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.pass_to_fail.iter().map(String::as_str).collect();
        ids.extend(
            self.added
                .iter()
                .filter(|(_, e)| *e == Expected::Fail)
                .map(|(id, _)| id.as_str()),
        );
        ids.sort_unstable();
        ids
    }

    /// One line per change, for people (`pass → fail  core.EC-001`).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for id in &self.pass_to_fail {
            lines.push(format!("pass → fail  {id}"));
        }
        for id in &self.fail_to_pass {
            lines.push(format!("fail → pass  {id}"));
        }
        for (id, expected) in &self.added {
            let expected = match expected {
                Expected::Pass => "passes",
                Expected::Fail => "FAILS",
            };
            lines.push(format!("added        {id} ({expected})"));
        }
        for id in &self.removed {
            lines.push(format!("removed      {id}"));
        }
        if let Some(((a, b), (c, d))) = self.seed_range {
            lines.push(format!("seeds        {a}..={b} → {c}..={d}"));
        }
        if let Some((a, b)) = self.determinism_sample {
            lines.push(format!("re-runs      {a} → {b} (determinism sample)"));
        }
        lines
    }
}

/// Why a new baseline is not written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// New failures nobody accepted, in id order.
    pub unaccepted: Vec<String>,
}

/// Reviews `new` against `old`: every new failure must be in `accepted` (id → reason).
/// On success the baseline to write: `new` with the reasons of the failures it expects
/// (the given ones, and the old baseline's for failures it already knew).
pub fn review(
    old: Option<&Baseline>,
    mut new: Baseline,
    accepted: &BTreeMap<String, String>,
) -> Result<Baseline, Refusal> {
    let diff = BaselineDiff::between(old, &new);
    let unaccepted: Vec<String> = diff
        .new_failures()
        .into_iter()
        .filter(|id| !accepted.contains_key(*id))
        .map(str::to_string)
        .collect();
    if !unaccepted.is_empty() {
        return Err(Refusal { unaccepted });
    }
    let failing = |id: &String| new.scenarios.get(id) == Some(&Expected::Fail);
    let mut reasons: BTreeMap<String, String> = old
        .map(|b| b.reasons.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(id, _)| failing(id))
        .collect();
    for (id, reason) in accepted {
        if failing(id) {
            reasons.insert(id.clone(), reason.clone());
        }
    }
    new.reasons = reasons;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::BASELINE_SCHEMA;

    fn baseline(seeds: u64, entries: &[(&str, Expected)]) -> Baseline {
        Baseline {
            schema: BASELINE_SCHEMA.to_string(),
            seed_start: 1,
            seeds,
            determinism_sample: 5,
            scenarios: entries.iter().map(|(id, e)| (id.to_string(), *e)).collect(),
            reasons: BTreeMap::new(),
            provenance: None,
        }
    }

    use Expected::{Fail, Pass};

    #[test]
    fn the_diff_names_every_kind_of_change() {
        let old = baseline(10, &[("a", Pass), ("b", Fail), ("c", Pass), ("gone", Pass)]);
        let new = baseline(20, &[("a", Fail), ("b", Pass), ("c", Pass), ("d", Fail)]);
        let diff = BaselineDiff::between(Some(&old), &new);
        assert_eq!(diff.pass_to_fail, ["a"]);
        assert_eq!(diff.fail_to_pass, ["b"]);
        assert_eq!(diff.added, [("d".to_string(), Fail)]);
        assert_eq!(diff.removed, ["gone"]);
        assert_eq!(diff.seed_range, Some(((1, 10), (1, 20))));
        assert_eq!(diff.new_failures(), ["a", "d"]);
        assert_eq!(
            diff.lines(),
            [
                "pass → fail  a",
                "fail → pass  b",
                "added        d (FAILS)",
                "removed      gone",
                "seeds        1..=10 → 1..=20",
            ]
        );
        assert!(BaselineDiff::between(Some(&old), &old).is_empty());
        let first = BaselineDiff::between(None, &old);
        assert_eq!(first.added.len(), 4);
        assert_eq!(
            first.new_failures(),
            ["b"],
            "no baseline yet: b is a new failure"
        );
    }

    #[test]
    fn a_new_failure_is_refused_unless_accepted_with_a_reason_that_is_kept() {
        let old = baseline(10, &[("a", Pass), ("known", Fail)]);
        let mut old_with_reason = old.clone();
        old_with_reason
            .reasons
            .insert("known".to_string(), "upstream bug #7".to_string());
        let new = baseline(10, &[("a", Fail), ("known", Fail), ("new", Fail)]);
        let refused = review(Some(&old_with_reason), new.clone(), &BTreeMap::new()).unwrap_err();
        assert_eq!(refused.unaccepted, ["a", "new"]);
        let only_a = BTreeMap::from([("a".to_string(), "flaky host".to_string())]);
        let refused = review(Some(&old_with_reason), new.clone(), &only_a).unwrap_err();
        assert_eq!(refused.unaccepted, ["new"]);
        let both = BTreeMap::from([
            ("a".to_string(), "flaky host".to_string()),
            ("new".to_string(), "known since day one".to_string()),
        ]);
        let written = review(Some(&old_with_reason), new, &both).unwrap();
        assert_eq!(written.reasons["a"], "flaky host");
        assert_eq!(
            written.reasons["known"], "upstream bug #7",
            "old reasons stay"
        );
        assert_eq!(written.reasons.len(), 3);
        // A fixed failure drops its reason; an unchanged baseline needs no acceptance.
        let fixed = baseline(10, &[("a", Pass), ("known", Pass)]);
        let written = review(Some(&old_with_reason), fixed, &BTreeMap::new()).unwrap();
        assert!(written.reasons.is_empty());
        assert!(review(Some(&old), old.clone(), &BTreeMap::new()).is_ok());
    }
}
