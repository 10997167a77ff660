//! Ready or not, and why: two named verdicts, their rules stated once here and printed in
//! every report.
//!
//! - The **regression** verdict asks whether this build is worse: it blocks on a partial
//!   merge, a failing run, an inert scenario, a determinism finding, or runs of an id this
//!   build does not know. Nothing waives it.
//! - The **coverage** verdict asks whether enough of the catalog is tested: a planned
//!   entry of a risk the policy blocks blocks it, unless a waiver in force accepts it; a
//!   waiver past its date that still covers an entry blocks it.

use super::policy::Policy;
use super::{
    Blocker, BlockerKind, Date, Determinism, Judgement, Outcome, ScenarioReport, Verdict,
    WaiverReport, WaiverStatus,
};
use crate::catalog::{CatalogEntry, EntryStatus, Risk};
use crate::merge::Merged;

/// The rules, in the words every rendering prints. `verdict` implements exactly these;
/// change both together. The coverage rules name the policy's blocking risks.
pub fn rules(policy: &Policy) -> Vec<String> {
    let risks = risk_words(&policy.blocking_risks);
    vec![
        "Regression: a partial merge blocks: a shard of a sweep is missing, so the runs \
         that would decide readiness are not in the input."
            .to_string(),
        "Regression: any failing run of any scenario blocks (crash, correctness or \
         liveness); a failing high-risk entry is named as such."
            .to_string(),
        "Regression: an inert scenario blocks: none of its own faults fired in any of its \
         runs, so it tested nothing. It is reported as INERT, never as passed."
            .to_string(),
        "Regression: a determinism finding blocks: a scenario and seed that gave two \
         different traces cannot be reproduced from its seed."
            .to_string(),
        "Regression: runs of a scenario this build does not know block: they come from \
         another build or a renamed scenario, and are never counted as passed."
            .to_string(),
        if risks.is_empty() {
            "Coverage: the policy blocks no planned entry.".to_string()
        } else {
            format!(
                "Coverage: a {risks} catalog entry that is merely planned (no scenario yet) \
                 blocks, unless a waiver of the policy accepts it until its expiry date."
            )
        },
        "Coverage: a waiver past its expiry date that still covers a planned entry blocks; \
         a waiver that covers nothing is listed as unused."
            .to_string(),
        "Not blocking, but counted: planned entries of other risks, not-applicable entries \
         (each with its reason), and implemented scenarios with no run in the input \
         (listed as not run)."
            .to_string(),
    ]
}

/// `high-risk`, `high- or medium-risk`, …
fn risk_words(risks: &[Risk]) -> String {
    let names: Vec<&str> = risks.iter().map(|r| r.name()).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => format!("{one}-risk"),
        [rest @ .., last] => format!("{}- or {last}-risk", rest.join("-, ")),
    }
}

pub(super) struct Judged {
    pub verdict: Verdict,
    pub waivers: Vec<WaiverReport>,
}

pub(super) fn verdict(
    merged: &Merged,
    scenarios: &[ScenarioReport],
    determinism: &Determinism,
    catalog: &[CatalogEntry],
    policy: &Policy,
    today: Date,
) -> Judged {
    let mut blocking = regression(merged, scenarios, determinism);
    let regression_blocking = blocking.len() as u64;
    let (coverage, waivers, waived) = coverage(catalog, policy, today);
    let coverage_blocking = coverage.len() as u64;
    blocking.extend(coverage);
    Judged {
        verdict: Verdict {
            ready: blocking.is_empty(),
            regression: Judgement {
                pass: regression_blocking == 0,
                blocking: regression_blocking,
                waived: 0,
            },
            coverage: Judgement {
                pass: coverage_blocking == 0,
                blocking: coverage_blocking,
                waived,
            },
            blocking,
        },
        waivers,
    }
}

fn blocker(kind: BlockerKind, id: Option<&str>, message: String) -> Blocker {
    Blocker {
        kind,
        verdict: kind.verdict(),
        id: id.map(str::to_string),
        message,
    }
}

fn regression(
    merged: &Merged,
    scenarios: &[ScenarioReport],
    determinism: &Determinism,
) -> Vec<Blocker> {
    let mut blocking = Vec::new();
    for m in &merged.missing {
        blocking.push(blocker(
            BlockerKind::PartialMerge,
            None,
            format!("shard {} of the {} is missing", m.shard, m.sweep),
        ));
    }
    for s in scenarios.iter().filter(|s| s.outcome == Outcome::Failed) {
        let high = if s.risk == Some(Risk::High) {
            "high-risk "
        } else {
            ""
        };
        let first = s.first_failure.as_ref().map_or(String::new(), |f| {
            format!(
                "; first at seed {} ({})",
                f.seed,
                f.class.map_or("unclassified", |c| c.name())
            )
        });
        blocking.push(blocker(
            BlockerKind::Failing,
            Some(&s.id),
            format!(
                "{high}scenario {} failed {} of {}{first}",
                s.id,
                s.failed,
                super::plural(s.runs, "run")
            ),
        ));
    }
    for s in scenarios.iter().filter(|s| s.inert) {
        blocking.push(blocker(
            BlockerKind::Inert,
            Some(&s.id),
            format!(
                "scenario {} is inert: none of its own faults ({}) fired in any of its {}",
                s.id,
                s.faults_expected.join(", "),
                super::plural(s.runs, "run")
            ),
        ));
    }
    for f in &determinism.findings {
        blocking.push(blocker(
            BlockerKind::Nondeterministic,
            Some(&f.id),
            format!(
                "scenario {} seed {} gave two different traces ({} then {})",
                f.id, f.seed, f.first_hash, f.second_hash
            ),
        ));
    }
    for s in scenarios.iter().filter(|s| s.unknown) {
        blocking.push(blocker(
            BlockerKind::Unknown,
            Some(&s.id),
            format!(
                "scenario {} is unknown to this build: {} in the input, not counted as \
                 passed (a record of another build, or a renamed scenario)",
                s.id,
                super::plural(s.runs, "run")
            ),
        ));
    }
    blocking
}

/// The coverage blockers, every waiver's report, and how many entries waivers accepted.
fn coverage(
    catalog: &[CatalogEntry],
    policy: &Policy,
    today: Date,
) -> (Vec<Blocker>, Vec<WaiverReport>, u64) {
    let gaps: Vec<&CatalogEntry> = catalog
        .iter()
        .filter(|e| e.status == EntryStatus::Planned && policy.blocking_risks.contains(&e.risk))
        .collect();
    let mut waivers: Vec<WaiverReport> = policy
        .waivers
        .iter()
        .map(|w| WaiverReport {
            entry: w.entry.clone(),
            reason: w.reason.clone(),
            owner: w.owner.clone(),
            expires: w.expires.to_string(),
            status: WaiverStatus::Unused,
            covers: gaps
                .iter()
                .filter(|e| w.matches(&e.id))
                .map(|e| e.id.clone())
                .collect(),
        })
        .collect();
    let mut planned = Vec::new();
    // Entries whose only waivers have expired, per (first) expired waiver.
    let mut lapsed: Vec<Vec<&str>> = vec![Vec::new(); waivers.len()];
    let mut waived = 0;
    for e in &gaps {
        let matching: Vec<usize> = (0..policy.waivers.len())
            .filter(|i| policy.waivers[*i].matches(&e.id))
            .collect();
        if let Some(&i) = matching
            .iter()
            .find(|i| !policy.waivers[**i].expired(today))
        {
            waivers[i].status = WaiverStatus::Used;
            waived += 1;
        } else if let Some(&i) = matching.first() {
            lapsed[i].push(&e.id);
        } else {
            planned.push(blocker(
                BlockerKind::Planned,
                Some(&e.id),
                format!(
                    "{}-risk entry {} is planned, not tested, and no waiver covers it: {}",
                    e.risk.name(),
                    e.id,
                    e.title
                ),
            ));
        }
    }
    let mut blocking = Vec::new();
    for (i, entries) in lapsed.iter().enumerate() {
        if entries.is_empty() {
            continue;
        }
        let w = &policy.waivers[i];
        waivers[i].status = WaiverStatus::Expired;
        blocking.push(blocker(
            BlockerKind::ExpiredWaiver,
            Some(&w.entry),
            format!(
                "the waiver for {} (owner {}) expired on {}; it still covers {}: {}",
                w.entry,
                w.owner,
                w.expires,
                super::plural(entries.len() as u64, "planned entry"),
                entries.join(", ")
            ),
        ));
    }
    blocking.extend(planned);
    (blocking, waivers, waived)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risks_read_as_words() {
        assert_eq!(risk_words(&[]), "");
        assert_eq!(risk_words(&[Risk::High]), "high-risk");
        assert_eq!(
            risk_words(&[Risk::High, Risk::Medium]),
            "high- or medium-risk"
        );
        assert_eq!(risk_words(&Risk::ALL), "high-, medium- or low-risk");
    }
}
