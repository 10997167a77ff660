//! Small text helpers shared by the renderings, so numbers read the same everywhere.

use crate::readiness::{
    FailedRun, FaultChange, Readiness, ScenarioChange, Totals, Trend, VerdictName, WaiverStatus,
    plural,
};
use std::collections::BTreeMap;

/// `regression: pass (0 blocking)` or `regression: FAIL (3 blocking)`: the line the CLI
/// prints and every rendering shows.
pub fn regression_line(r: &Readiness) -> String {
    let j = &r.verdict.regression;
    format!(
        "regression: {} ({} blocking)",
        if j.pass { "pass" } else { "FAIL" },
        j.blocking
    )
}

/// `coverage: ready (0 blocking, 53 waived)` or `coverage: NOT READY (…)`.
pub fn coverage_line(r: &Readiness) -> String {
    let j = &r.verdict.coverage;
    format!(
        "coverage: {} ({} blocking, {} waived)",
        if j.pass { "ready" } else { "NOT READY" },
        j.blocking,
        j.waived
    )
}

/// `policy: FILE (2 waivers: 1 used, 0 expired, 1 unused; judged on 2026-12-06)`.
pub fn policy_line(r: &Readiness) -> String {
    let p = &r.policy;
    let count = |s: WaiverStatus| p.waivers.iter().filter(|w| w.status == s).count();
    format!(
        "policy: {} ({}: {} used, {} expired, {} unused; judged on {})",
        p.source,
        plural(p.waivers.len() as u64, "waiver"),
        count(WaiverStatus::Used),
        count(WaiverStatus::Expired),
        count(WaiverStatus::Unused),
        p.today
    )
}

/// The run time in words: the summed run time, and the elapsed time beside it when an
/// input recorded it (runs ran in parallel, so the sum exceeds it).
pub fn run_time(t: &Totals) -> String {
    match t.elapsed_ms {
        Some(elapsed) => format!(
            "Run time {} summed over runs; {} elapsed (the longest input file)",
            seconds(t.wall_ms),
            seconds(elapsed)
        ),
        None => format!(
            "Run time {} summed over runs (no input recorded its elapsed time)",
            seconds(t.wall_ms)
        ),
    }
}

/// The build the report judged, in words: which commit ran the sweeps, with what, where.
pub fn build_line(r: &Readiness) -> String {
    match &r.build {
        Some(b) => format!("Judged build: {b}"),
        None => "Judged build: not recorded (the inputs predate provenance)".to_string(),
    }
}

/// The verdict's heading word for one of the two verdicts.
pub fn judgement_word(r: &Readiness, verdict: VerdictName) -> &'static str {
    match verdict {
        VerdictName::Regression if r.verdict.regression.pass => "pass",
        VerdictName::Regression => "FAIL",
        VerdictName::Coverage if r.verdict.coverage.pass => "ready",
        VerdictName::Coverage => "NOT READY",
    }
}

/// A trend's scenario lists as (heading, changes) pairs, empty lists left out.
pub fn trend_scenarios(t: &Trend) -> Vec<(&'static str, &[ScenarioChange])> {
    [
        ("newly failing", t.newly_failing.as_slice()),
        ("fixed", t.fixed.as_slice()),
        ("still failing", t.still_failing.as_slice()),
        ("failing before, not run now", t.no_longer_run.as_slice()),
    ]
    .into_iter()
    .filter(|(_, list)| !list.is_empty())
    .collect()
}

/// `id (passed → failed)`.
pub fn change_text(c: &ScenarioChange) -> String {
    format!("{} ({} → {})", c.id, c.before, c.after)
}

/// The trend in plain lines (CLI output, JUnit system-out).
pub fn trend_lines(t: &Trend) -> Vec<String> {
    let mut lines = vec![format!(
        "since {} ({}, {}):",
        t.previous_file,
        t.previous_generated_at,
        if t.previous_ready {
            "ready"
        } else {
            "not ready"
        }
    )];
    for (heading, list) in trend_scenarios(t) {
        let items: Vec<String> = list.iter().map(change_text).collect();
        lines.push(format!(
            "  {heading} ({}): {}",
            list.len(),
            items.join(", ")
        ));
    }
    if t.is_quiet() {
        lines.push("  no scenario changed sides; coverage unchanged".to_string());
    }
    for (heading, list) in [
        ("coverage gained", &t.coverage_gained),
        ("coverage lost", &t.coverage_lost),
    ] {
        if !list.is_empty() {
            lines.push(format!("  {heading} ({}): {}", list.len(), list.join(", ")));
        }
    }
    lines.push(format!(
        "  runs {} → {}, failed {} → {}; implemented entries {} → {}, planned {} → {}",
        t.runs.before,
        t.runs.after,
        t.runs_failed.before,
        t.runs_failed.after,
        t.implemented.before,
        t.implemented.after,
        t.planned.before,
        t.planned.after
    ));
    let changed = changed_faults(t);
    let faults: Vec<String> = changed
        .iter()
        .map(|f| format!("{} {} → {}", f.kind, f.before, f.after))
        .collect();
    let same = t.faults.len() - changed.len();
    match (faults.is_empty(), same) {
        (true, 0) => {}
        (true, _) => lines.push(format!(
            "  faults fired: the same counts ({})",
            plural(same as u64, "kind")
        )),
        (false, 0) => lines.push(format!("  faults fired: {}", faults.join(", "))),
        (false, _) => lines.push(format!(
            "  faults fired: {}; {} unchanged",
            faults.join(", "),
            plural(same as u64, "other kind")
        )),
    }
    lines
}

/// The fault kinds whose count changed: the ones worth a line (the JSON keeps them all).
pub fn changed_faults(t: &Trend) -> Vec<&FaultChange> {
    t.faults.iter().filter(|f| f.before != f.after).collect()
}

/// Wall milliseconds as seconds with a unit (`12.345 s`).
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// `passed / runs` as a whole percentage, rounded down so 99.9 % never shows as 100 %.
pub fn percent(part: u64, whole: u64) -> String {
    part.saturating_mul(100)
        .checked_div(whole)
        .map_or_else(|| "–".to_string(), |p| format!("{p} %"))
}

/// The failing seeds of scenario `id`, the first `listed_max` of them, then `… and N
/// more` when there are more.
pub fn failing_seeds(report: &Readiness, id: &str, listed_max: usize) -> String {
    let seeds: Vec<String> = report
        .failures
        .iter()
        .filter(|f| f.id == id)
        .map(|f| f.seed.to_string())
        .collect();
    let mut listed = seeds[..seeds.len().min(listed_max)].join(", ");
    if seeds.len() > listed_max {
        listed += &format!(" … and {} more", seeds.len() - listed_max);
    }
    listed
}

/// `kind=n kind=n`, or `none`.
pub fn faults_line(faults: &BTreeMap<String, u64>) -> String {
    let fired: Vec<String> = faults
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if fired.is_empty() {
        "none".to_string()
    } else {
        fired.join(" ")
    }
}

/// The verdict as a headline word.
pub fn verdict_word(report: &Readiness) -> &'static str {
    if report.verdict.ready {
        "READY"
    } else {
        "NOT READY"
    }
}

/// `seed 7 (correctness): message`.
pub fn failure_line(f: &FailedRun) -> String {
    format!(
        "seed {} ({}): {}",
        f.seed,
        f.class.map_or("unclassified", |c| c.name()),
        f.message.as_deref().unwrap_or("no message")
    )
}

/// Blockers of one kind, for renderings that show them grouped.
pub struct BlockerGroup<'a> {
    pub verdict: VerdictName,
    pub label: &'static str,
    pub messages: Vec<&'a str>,
}

/// More blockers of one kind than this are folded (`<details>`), so a long list of
/// planned entries does not bury the rest of the report.
pub const BLOCKERS_UNFOLDED_MAX: usize = 5;

/// The verdict's blockers grouped by kind, in the verdict's order.
pub fn blocker_groups(report: &Readiness) -> Vec<BlockerGroup<'_>> {
    let mut groups: Vec<BlockerGroup<'_>> = Vec::new();
    for b in &report.verdict.blocking {
        match groups.last_mut() {
            Some(g) if g.label == b.kind.label() => g.messages.push(&b.message),
            _ => groups.push(BlockerGroup {
                verdict: b.verdict,
                label: b.kind.label(),
                messages: vec![&b.message],
            }),
        }
    }
    groups
}

/// Text made safe for one Markdown table cell or list item: no line breaks, no pipes,
/// no raw HTML.
pub fn md_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\\' | '*' | '_' | '`' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// `text` as a Markdown code span, fenced with more backticks than it contains, on one
/// line. Inside a table cell a pipe still ends the cell, so callers in tables escape it.
pub fn md_code(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut longest = 0;
    let mut run = 0;
    for c in one_line.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{one_line}{pad}{fence}")
}

/// [`md_code`] for a table cell: a pipe would end the cell even inside a code span, so
/// it is escaped (GitHub removes the backslash before rendering the span).
pub fn md_code_cell(text: &str) -> String {
    md_code(text).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_format_numbers_and_escape_markdown() {
        assert_eq!(seconds(12_345), "12.345 s");
        assert_eq!(seconds(7), "0.007 s");
        assert_eq!(percent(999, 1000), "99 %");
        assert_eq!(percent(0, 0), "–");
        assert_eq!(
            faults_line(&BTreeMap::from([("a".into(), 0), ("b".into(), 2)])),
            "b=2"
        );
        assert_eq!(faults_line(&BTreeMap::new()), "none");
        assert_eq!(md_inline("a|b\n<script>*x*"), "a\\|b &lt;script&gt;\\*x\\*");
        assert_eq!(md_code("run x"), "`run x`");
        assert_eq!(md_code("a `b` c"), "``a `b` c``");
        assert_eq!(md_code("`x"), "`` `x ``");
        assert_eq!(md_code_cell("a|b"), "`a\\|b`");
    }
}
