//! Ready or not, and why: the rules, stated once here and printed in every report.

use super::{Blocker, BlockerKind, Determinism, Outcome, ScenarioReport, Verdict};
use crate::catalog::{CatalogEntry, EntryStatus, Risk};
use crate::merge::Merged;

/// The verdict rules, in the words every rendering prints. `verdict` implements exactly
/// these; change both together.
pub const RULES: [&str; 6] = [
    "A partial merge blocks: a shard of a sweep is missing, so the runs that would decide \
     readiness are not in the input.",
    "Any failing run of any scenario blocks (crash, correctness or liveness); a failing \
     high-risk entry is named as such.",
    "An inert scenario blocks: none of its own faults fired in any of its runs, so it \
     tested nothing. It is reported as INERT, never as passed.",
    "A determinism finding blocks: a scenario and seed that gave two different traces \
     cannot be reproduced from its seed.",
    "A high-risk catalog entry that is merely planned (no scenario yet) blocks.",
    "Not blocking, but counted: medium- and low-risk planned entries, not-applicable \
     entries (each with its reason), and implemented scenarios with no run in the input \
     (listed as not run).",
];

pub(super) fn verdict(
    merged: &Merged,
    scenarios: &[ScenarioReport],
    determinism: &Determinism,
    catalog: &[CatalogEntry],
) -> Verdict {
    let mut blocking = Vec::new();
    for m in &merged.missing {
        blocking.push(Blocker {
            kind: BlockerKind::PartialMerge,
            id: None,
            message: format!("shard {} of the {} is missing", m.shard, m.sweep),
        });
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
        blocking.push(Blocker {
            kind: BlockerKind::Failing,
            id: Some(s.id.clone()),
            message: format!(
                "{high}scenario {} failed {} of {} runs{first}",
                s.id, s.failed, s.runs
            ),
        });
    }
    for s in scenarios.iter().filter(|s| s.inert) {
        blocking.push(Blocker {
            kind: BlockerKind::Inert,
            id: Some(s.id.clone()),
            message: format!(
                "scenario {} is inert: none of its own faults ({}) fired in any of its {} runs",
                s.id,
                s.faults_expected.join(", "),
                s.runs
            ),
        });
    }
    for f in &determinism.findings {
        blocking.push(Blocker {
            kind: BlockerKind::Nondeterministic,
            id: Some(f.id.clone()),
            message: format!(
                "scenario {} seed {} gave two different traces ({} then {})",
                f.id, f.seed, f.first_hash, f.second_hash
            ),
        });
    }
    for e in catalog
        .iter()
        .filter(|e| e.risk == Risk::High && e.status == EntryStatus::Planned)
    {
        blocking.push(Blocker {
            kind: BlockerKind::HighRiskPlanned,
            id: Some(e.id.clone()),
            message: format!(
                "high-risk entry {} is planned, not tested: {}",
                e.id, e.title
            ),
        });
    }
    Verdict {
        ready: blocking.is_empty(),
        blocking,
    }
}
