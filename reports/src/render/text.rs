//! Small text helpers shared by the renderings, so numbers read the same everywhere.

use crate::readiness::{FailedRun, Readiness};
use std::collections::BTreeMap;

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
