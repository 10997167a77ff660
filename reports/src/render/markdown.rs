//! The Markdown rendering, for a pull request or a release page.

use super::text::{
    BLOCKERS_UNFOLDED_MAX, blocker_groups, build_line, change_text, changed_faults, coverage_line,
    failing_seeds, failure_line, faults_line, judgement_word, md_code, md_code_cell, md_inline,
    percent, policy_line, regression_line, run_time, trend_scenarios, verdict_word,
};
use crate::readiness::{CoverageRow, Outcome, Readiness, ScenarioReport, VerdictName, plural};
use std::fmt::Write as _;

/// Failing seeds listed per scenario before "… and N more".
const SEEDS_LISTED_MAX: usize = 10;

pub fn markdown(r: &Readiness) -> String {
    let mut out = String::new();
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let o = &mut out;
    let _ = writeln!(o, "# Release readiness: {}\n", verdict_word(r));
    let t = &r.totals;
    let _ = writeln!(
        o,
        "Generated {} from {}. {} of {}: {} passed, {} failed. \
         Scenarios: {} passed, {} failed, {} inert, {} not run, {} unknown to this build. {}. \
         {}.\n",
        md_inline(&r.generated_at),
        plural(r.inputs.files.len() as u64, "sweep file"),
        plural(t.runs, "run"),
        plural(t.scenarios_run, "scenario"),
        t.runs_passed,
        t.runs_failed,
        t.scenarios_passed,
        t.scenarios_failed,
        t.scenarios_inert,
        t.scenarios_not_run,
        t.scenarios_unknown,
        run_time(t),
        md_inline(&build_line(r))
    );
    let _ = writeln!(
        o,
        "- {}\n- {}\n- {}\n",
        md_inline(&regression_line(r)),
        md_inline(&coverage_line(r)),
        md_inline(&policy_line(r))
    );
    trend(o, r);
    verdict(o, r);
    failures(o, r);
    coverage(o, r);
    scenarios(o, r);
    determinism(o, r);
    faults(o, r);
    open_entries(o, r);
    inputs(o, r);
    out
}

fn trend(o: &mut String, r: &Readiness) {
    let Some(t) = &r.trend else {
        return;
    };
    let _ = writeln!(o, "## Since the previous report\n");
    let _ = writeln!(
        o,
        "Compared with {} (generated {}, {}).\n",
        md_code(&t.previous_file),
        md_inline(&t.previous_generated_at),
        if t.previous_ready {
            "ready"
        } else {
            "not ready"
        }
    );
    for (heading, list) in trend_scenarios(t) {
        let items: Vec<String> = list.iter().map(|c| md_inline(&change_text(c))).collect();
        let _ = writeln!(o, "- **{heading}** ({}): {}", list.len(), items.join(", "));
    }
    if t.is_quiet() {
        let _ = writeln!(o, "- no scenario changed sides; coverage unchanged");
    }
    for (heading, list) in [
        ("coverage gained", &t.coverage_gained),
        ("coverage lost", &t.coverage_lost),
    ] {
        if !list.is_empty() {
            let _ = writeln!(
                o,
                "- **{heading}** ({}): {}",
                list.len(),
                md_inline(&list.join(", "))
            );
        }
    }
    let _ = writeln!(o, "\n| | before | after |\n|---|--:|--:|");
    for (name, c) in [
        ("runs", t.runs),
        ("runs failed", t.runs_failed),
        ("implemented entries", t.implemented),
        ("planned entries", t.planned),
    ] {
        let _ = writeln!(o, "| {name} | {} | {} |", c.before, c.after);
    }
    let changed = changed_faults(t);
    for f in &changed {
        let _ = writeln!(
            o,
            "| faults fired: {} | {} | {} |",
            md_code_cell(&f.kind),
            f.before,
            f.after
        );
    }
    let _ = writeln!(o);
    let same = t.faults.len() - changed.len();
    if same > 0 {
        let _ = writeln!(
            o,
            "Faults fired: {} with the same count before and after.\n",
            plural(
                same as u64,
                if changed.is_empty() {
                    "kind"
                } else {
                    "other kind"
                }
            )
        );
    }
}

fn verdict(o: &mut String, r: &Readiness) {
    let _ = writeln!(o, "## Verdict: {}\n", verdict_word(r).to_lowercase());
    let groups = blocker_groups(r);
    for (name, title) in [
        (VerdictName::Regression, "Regression"),
        (VerdictName::Coverage, "Coverage"),
    ] {
        let _ = writeln!(o, "### {title}: {}\n", judgement_word(r, name));
        let mine: Vec<_> = groups.iter().filter(|g| g.verdict == name).collect();
        if mine.is_empty() {
            let _ = writeln!(o, "Nothing blocks.\n");
            continue;
        }
        let n: usize = mine.iter().map(|g| g.messages.len()).sum();
        let _ = writeln!(o, "Blocking ({n}):\n");
        for g in mine {
            if g.messages.len() <= BLOCKERS_UNFOLDED_MAX {
                for m in &g.messages {
                    let _ = writeln!(o, "- **{}**: {}", g.label, md_inline(m));
                }
                continue;
            }
            let _ = writeln!(
                o,
                "- **{}**: {}\n  <details><summary>show them</summary>\n",
                g.label,
                plural(g.messages.len() as u64, "entry")
            );
            for m in &g.messages {
                let _ = writeln!(o, "  - {}", md_inline(m));
            }
            let _ = writeln!(o, "\n  </details>");
        }
        let _ = writeln!(o);
    }
    waivers(o, r);
    let _ = writeln!(o, "How the verdicts are decided:\n");
    for (i, rule) in r.rules.iter().enumerate() {
        let _ = writeln!(o, "{}. {}", i + 1, md_inline(rule));
    }
    let _ = writeln!(o);
}

fn waivers(o: &mut String, r: &Readiness) {
    let p = &r.policy;
    let _ = writeln!(
        o,
        "Policy: {}; planned entries of risk {} block unless waived; waivers judged on {}.\n",
        md_code(&p.source),
        if p.blocking_risks.is_empty() {
            "none".to_string()
        } else {
            p.blocking_risks
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
                .join(", ")
        },
        p.today
    );
    if p.waivers.is_empty() {
        let _ = writeln!(o, "No waivers.\n");
        return;
    }
    let _ = writeln!(
        o,
        "<details><summary>{}</summary>\n\n| waiver | status | covers | owner | expires | reason |\n|---|---|---|---|---|---|",
        plural(p.waivers.len() as u64, "waiver")
    );
    for w in &p.waivers {
        let status = match w.status {
            crate::readiness::WaiverStatus::Used => "used".to_string(),
            crate::readiness::WaiverStatus::Expired => "**EXPIRED**".to_string(),
            crate::readiness::WaiverStatus::Unused => "unused: remove it?".to_string(),
        };
        let _ = writeln!(
            o,
            "| {} | {status} | {} | {} | {} | {} |",
            md_code_cell(&w.entry),
            md_inline(&w.covers.join(", ")),
            md_inline(&w.owner),
            w.expires,
            md_inline(&w.reason)
        );
    }
    let _ = writeln!(o, "\n</details>\n");
}

fn coverage(o: &mut String, r: &Readiness) {
    let _ = writeln!(o, "## Catalog coverage\n");
    let c = &r.coverage;
    let _ = writeln!(
        o,
        "{}: {} implemented, {} planned, {} not applicable.\n",
        plural(c.total.total, "entry"),
        c.total.implemented,
        c.total.planned,
        c.total.not_applicable
    );
    let _ = writeln!(
        o,
        "| source | document | implemented | planned | not-applicable | total |\n|---|---|--:|--:|--:|--:|"
    );
    for row in &c.by_source {
        let doc = row
            .document_title
            .as_deref()
            .or(row.document.as_deref())
            .unwrap_or("");
        let _ = writeln!(
            o,
            "| {} | {} | {} |",
            md_inline(&row.key),
            md_inline(doc),
            counts(row)
        );
    }
    let _ = writeln!(o, "| **all** |  | {} |\n", counts(&c.total));
    let _ = writeln!(
        o,
        "| risk | implemented | planned | not-applicable | total |\n|---|--:|--:|--:|--:|"
    );
    for row in &c.by_risk {
        let _ = writeln!(o, "| {} | {} |", row.key, counts(row));
    }
    let _ = writeln!(o);
}

fn counts(row: &CoverageRow) -> String {
    format!(
        "{} | {} | {} | {}",
        row.implemented, row.planned, row.not_applicable, row.total
    )
}

fn scenarios(o: &mut String, r: &Readiness) {
    let _ = writeln!(o, "## Scenarios\n");
    if r.scenarios.is_empty() {
        let _ = writeln!(o, "No scenario ran and none is implemented.\n");
        return;
    }
    let _ = writeln!(
        o,
        "| scenario | source / subsystem | risk | runs | passed | failed | own faults fired | result |\n\
         |---|---|---|--:|--:|--:|--:|---|"
    );
    for s in &r.scenarios {
        let result = match s.outcome {
            Outcome::Passed => "passed".to_string(),
            Outcome::Failed if s.inert => "**FAILED**, INERT".to_string(),
            Outcome::Failed => "**FAILED**".to_string(),
            Outcome::Inert => "**INERT**".to_string(),
            Outcome::NotRun => "not run".to_string(),
            Outcome::Unknown => "**UNKNOWN** to this build".to_string(),
        };
        let _ = writeln!(
            o,
            "| {} | {} / {} | {} | {} | {} | {} | {} | {result} |",
            md_code_cell(&s.id),
            md_inline(&s.source),
            md_inline(&s.subsystem),
            s.risk.map_or("–", |r| r.name()),
            s.runs,
            s.passed,
            s.failed,
            fired_cell(s),
        );
    }
    let _ = writeln!(o);
}

fn fired_cell(s: &ScenarioReport) -> String {
    if s.runs == 0 {
        "–".to_string()
    } else {
        format!("{} of {}", s.runs_faults_fired, s.runs)
    }
}

fn failures(o: &mut String, r: &Readiness) {
    let _ = writeln!(o, "## Failing scenarios\n");
    let failing: Vec<&ScenarioReport> = r
        .scenarios
        .iter()
        .filter(|s| s.outcome == Outcome::Failed)
        .collect();
    if failing.is_empty() {
        let _ = writeln!(o, "None.\n");
        return;
    }
    for s in failing {
        let _ = writeln!(
            o,
            "### {}\n\n{} of {} failed ({} pass rate).\n",
            md_code(&s.id),
            s.failed,
            plural(s.runs, "run"),
            percent(s.passed, s.runs)
        );
        if let Some(f) = &s.first_failure {
            let _ = writeln!(o, "- first failure: {}", md_inline(&failure_line(f)));
            let _ = writeln!(o, "- reproduce: {}", md_code(&f.repro));
            if let Some(shrink) = &f.shrink {
                let _ = writeln!(
                    o,
                    "- shrink to a minimal fault schedule: {}",
                    md_code(shrink)
                );
            }
        }
        let listed = failing_seeds(r, &s.id, SEEDS_LISTED_MAX);
        let _ = writeln!(o, "- failing seeds: {listed}\n");
    }
}

fn determinism(o: &mut String, r: &Readiness) {
    let _ = writeln!(o, "## Flaky determinism\n");
    let d = &r.determinism;
    if !d.recorded {
        let _ = writeln!(o, "None recorded: no input holds a determinism check.\n");
        return;
    }
    if d.findings.is_empty() {
        let _ = writeln!(
            o,
            "Checked; no scenario gave two different traces for one seed.\n"
        );
        return;
    }
    let _ = writeln!(
        o,
        "| scenario | seed | first hash | second hash | first difference |\n|---|--:|---|---|---|"
    );
    for f in &d.findings {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} |",
            md_code_cell(&f.id),
            f.seed,
            md_code_cell(&f.first_hash),
            md_code_cell(&f.second_hash),
            md_inline(f.first_difference.as_deref().unwrap_or("unknown"))
        );
    }
    let _ = writeln!(o);
}

fn faults(o: &mut String, r: &Readiness) {
    let _ = writeln!(o, "## Faults fired\n");
    if r.faults.is_empty() {
        let _ = writeln!(o, "No fault fired in any run.\n");
        return;
    }
    let _ = writeln!(o, "| kind | fired | runs | scenarios |\n|---|--:|--:|--:|");
    for f in &r.faults {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            md_code_cell(&f.kind),
            f.fired,
            f.runs,
            f.scenarios
        );
    }
    let _ = writeln!(o);
    let inert: Vec<&ScenarioReport> = r.scenarios.iter().filter(|s| s.inert).collect();
    if inert.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "Inert scenarios: their own faults, and what fired instead:\n"
    );
    for s in inert {
        let _ = writeln!(
            o,
            "- {}: own {}; fired {}",
            md_code(&s.id),
            md_inline(&s.faults_expected.join(", ")),
            md_inline(&faults_line(&s.faults))
        );
    }
    let _ = writeln!(o);
}

fn open_entries(o: &mut String, r: &Readiness) {
    let _ = writeln!(o, "## Not yet covered\n");
    let _ = writeln!(
        o,
        "<details><summary>{}</summary>\n",
        plural(r.planned.len() as u64, "planned entry")
    );
    for e in &r.planned {
        let _ = writeln!(
            o,
            "- {} ({}, {}): {}",
            md_code(&e.id),
            e.risk.name(),
            md_inline(&e.subsystem),
            md_inline(&e.title)
        );
    }
    let _ = writeln!(o, "\n</details>\n");
    let _ = writeln!(
        o,
        "<details><summary>{}</summary>\n",
        plural(r.not_applicable.len() as u64, "not-applicable entry")
    );
    for e in &r.not_applicable {
        let _ = writeln!(
            o,
            "- {}: {} (why: {})",
            md_code(&e.id),
            md_inline(&e.title),
            md_inline(&e.reason)
        );
    }
    let _ = writeln!(o, "\n</details>\n");
}

fn inputs(o: &mut String, r: &Readiness) {
    let _ = writeln!(o, "## Inputs\n");
    let _ = writeln!(o, "| file | shard | runs | sweep |\n|---|---|--:|---|");
    for f in &r.inputs.files {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            md_code_cell(&f.name),
            f.shard,
            f.runs,
            md_inline(&f.sweep)
        );
    }
    let _ = writeln!(o);
    if r.inputs.partial {
        let missing: Vec<String> = r
            .inputs
            .missing_shards
            .iter()
            .map(|m| format!("{} of the {}", m.shard, md_inline(&m.sweep)))
            .collect();
        let _ = writeln!(o, "**Partial**: missing shard {}.", missing.join("; "));
    } else {
        let _ = writeln!(o, "Complete: no shard is missing.");
    }
}
