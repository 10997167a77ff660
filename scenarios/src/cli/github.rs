//! GitHub Actions output: `::error` workflow commands that become annotations on the
//! scenario's declaration (file and line, with the repro command in the message), and
//! the job summary (`$GITHUB_STEP_SUMMARY`) the readiness report is appended to.
//!
//! Printed only when `GITHUB_ACTIONS=true`, so a terminal never sees them.

use crate::registry;
use std::io::Write;

/// Whether this process runs as a GitHub Actions step.
#[allow(
    clippy::disallowed_methods,
    reason = "the CI system tells the CLI how to annotate"
)]
pub fn on_github() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// The `::error` command for a finding about scenario `id`: at its declaration when
/// this build knows it, with `repro` on the annotation's second line.
pub fn error_line(id: &str, title: &str, message: &str, repro: Option<&str>) -> String {
    let mut properties = Vec::new();
    if let Some(s) = registry::find(id) {
        properties.push(format!("file={}", property(s.declared_at.file)));
        properties.push(format!("line={}", s.declared_at.line));
    }
    properties.push(format!("title={}", property(title)));
    let mut body = message.to_string();
    if let Some(repro) = repro {
        body.push_str("\nrepro: ");
        body.push_str(repro);
    }
    format!("::error {}::{}", properties.join(","), data(&body))
}

/// Writes [`error_line`] to `out` when running on GitHub Actions (`out` is stdout, or
/// stderr when stdout carries JSON: the runner reads workflow commands from both).
pub fn annotate(out: &mut dyn Write, id: &str, title: &str, message: &str, repro: Option<&str>) {
    if on_github() {
        let _ = writeln!(out, "{}", error_line(id, title, message, repro));
    }
}

/// Appends `markdown` to the job summary when GitHub Actions names one. A failure to
/// write is a warning: the report files are already written.
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the CI system names the job summary's file; the CLI appends to it"
)]
pub fn append_step_summary(markdown: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .and_then(|mut f| f.write_all(markdown.as_bytes()));
    match written {
        Ok(()) => println!("appended the report to the job summary"),
        Err(e) => eprintln!(
            "warning: cannot append to the job summary {}: {e}",
            std::path::Path::new(&path).display()
        ),
    }
}

/// A workflow command's message: `%`, CR and LF escaped.
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as [`data`], plus `:` and `,`.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_annotation_points_at_the_declaration_and_carries_the_repro() {
        let s = registry::find("core.EC-001").expect("core.EC-001 is a scenario");
        let line = error_line(
            "core.EC-001",
            "chaos gate: core.EC-001, seed 7",
            "expected pass, got fail: 50% of runs\nsecond line",
            Some("chaos repro core.EC-001 --seed 7"),
        );
        assert_eq!(
            line,
            format!(
                "::error file={},line={},title=chaos gate%3A core.EC-001%2C seed 7::\
                 expected pass, got fail: 50%25 of runs%0Asecond line%0A\
                 repro: chaos repro core.EC-001 --seed 7",
                s.declared_at.file, s.declared_at.line
            )
        );
        assert!(s.declared_at.file.starts_with("scenarios/src/"));
    }

    #[test]
    fn an_unknown_id_gets_an_annotation_without_a_place() {
        assert_eq!(
            error_line("core.EC-999", "t", "m", None),
            "::error title=t::m"
        );
    }
}
