//! `chaos report FILE... --out DIR`: merge sweep files (one, or every shard of a sweep)
//! and write the release readiness report: `readiness.md`, `readiness.html`,
//! `readiness.json`, `junit.xml`.
//!
//! The work is in `reports` (pure: text in, strings out); this file reads the inputs,
//! joins the embedded catalog, the policy and an earlier report (`report_inputs.rs`),
//! and writes the files. It prints both verdicts on their own lines, then the overall
//! `readiness:` line last.

use super::CliError;
use super::files::{create_dir, read_text_named, write_text};
use super::report_inputs;
use crate::catalog::{self, Catalog};
use clap::Args;
use reports::catalog::{CatalogEntry, EntryStatus, Risk};
use reports::merge::merge;
use reports::readiness::{ReportInput, WaiverStatus, build, elapsed_of, plural};
use reports::render::{
    BLOCKERS_UNFOLDED_MAX, Format, blocker_groups, coverage_line, policy_line, regression_line,
    trend_lines,
};
use reports::sweep_file::{LoadedSweep, SweepFile};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep files written by `chaos sweep -o FILE` (any number of shards; they are
    /// merged, and missing shards make the report partial).
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Directory to write the report files into (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Which renderings to write, comma-separated: md, html, json, junit.
    #[arg(long, value_name = "LIST", default_value = "md,html,json,junit")]
    formats: String,
    /// Exit with status 1 when either verdict blocks, regression or coverage (the files
    /// are written anyway).
    #[arg(long)]
    require_ready: bool,
    /// The readiness policy: which planned entries block coverage, and the waivers.
    /// Default: ci/readiness-policy.toml when it exists, else high-risk planned entries
    /// block and nothing is waived.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// An earlier report to compare with: its readiness.json, or the directory holding it.
    #[arg(long, value_name = "FILE|DIR")]
    previous: Option<PathBuf>,
}

pub fn report(args: ReportArgs) -> Result<ExitCode, CliError> {
    let formats = parse_formats(&args.formats)?;
    let policy = report_inputs::policy(args.policy.as_deref())?;
    let previous = args
        .previous
        .as_deref()
        .map(report_inputs::previous)
        .transpose()?;
    let loaded = load_sweeps(&args.files)?;
    let elapsed_ms = elapsed_of(&loaded);
    let merged = merge_loaded(loaded)?;
    let catalog = catalog_view(&Catalog::embedded());
    let generated_at = super::provenance::now_utc();
    let readiness = build(&ReportInput {
        merged: &merged,
        catalog: &catalog,
        known: &report_inputs::known_scenarios(),
        documents: &report_inputs::documents(),
        policy: &policy,
        today: report_inputs::today_of(&generated_at)?,
        generated_at,
        elapsed_ms,
        previous: previous.as_ref(),
    });
    create_dir(&args.out)?;
    let mut written = Vec::new();
    for format in formats {
        let text = format
            .render(&readiness)
            .map_err(|e| CliError::new(e.to_string()))?;
        let path = args.out.join(format.file_name());
        write_text(&path, &text)?;
        written.push(path);
    }
    let v = &readiness.verdict;
    let t = &readiness.totals;
    println!(
        "{} of {} from {}: {} failed; {} failed, {} inert, {} not run, {} unknown to this build",
        plural(t.runs, "run"),
        plural(t.scenarios_run, "scenario"),
        plural(readiness.inputs.files.len() as u64, "file"),
        t.runs_failed,
        plural(t.scenarios_failed, "scenario"),
        t.scenarios_inert,
        t.scenarios_not_run,
        t.scenarios_unknown
    );
    for m in &readiness.inputs.missing_shards {
        println!("missing shard {} of the {}", m.shard, m.sweep);
    }
    for group in blocker_groups(&readiness) {
        if group.messages.len() > BLOCKERS_UNFOLDED_MAX {
            println!(
                "blocking: {}: {} (listed in the report)",
                group.label,
                plural(group.messages.len() as u64, "entry")
            );
        } else {
            for message in group.messages {
                println!("blocking: {}: {message}", group.label);
            }
        }
    }
    for f in readiness
        .scenarios
        .iter()
        .filter_map(|s| s.first_failure.as_ref())
    {
        println!("repro: {}", f.repro);
        if let Some(shrink) = &f.shrink {
            println!("shrink: {shrink}");
        }
    }
    for w in &readiness.policy.waivers {
        if w.status == WaiverStatus::Unused {
            println!(
                "note: the waiver for {} ({}) covers no planned entry that would block; remove it?",
                w.entry, readiness.policy.source
            );
        }
    }
    if let Some(t) = &readiness.trend {
        for line in trend_lines(t) {
            println!("{line}");
        }
    }
    annotate_blockers(&readiness);
    for path in &written {
        println!("wrote {}", path.display());
    }
    super::github::append_step_summary(&reports::render::markdown(&readiness));
    // Last, in a plain form CI log readers can grep: each verdict, then both together.
    println!("{}", reports::render::build_line(&readiness));
    println!("{}", policy_line(&readiness));
    println!("{}", regression_line(&readiness));
    println!("{}", coverage_line(&readiness));
    println!(
        "readiness: {} ({} blocking)",
        if v.ready { "ready" } else { "NOT READY" },
        v.blocking.len()
    );
    Ok(if v.ready || !args.require_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// On GitHub Actions, one `::error` annotation per blocker: at the scenario's
/// declaration when it is one of this build's, with the repro line of a failure.
fn annotate_blockers(readiness: &reports::readiness::Readiness) {
    let mut out = std::io::stdout();
    for b in &readiness.verdict.blocking {
        let id = b.id.as_deref().unwrap_or("");
        let repro = readiness
            .scenarios
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.first_failure.as_ref())
            .map(|f| f.repro.as_str());
        let title = match &b.id {
            Some(id) => format!("chaos report: {} {id}", b.kind.label()),
            None => format!("chaos report: {}", b.kind.label()),
        };
        super::github::annotate(&mut out, id, &title, &b.message, repro);
    }
}

/// Reads sweep files and merges them (shards of one sweep, or one whole sweep).
pub(super) fn load_merged(
    files: &[std::path::PathBuf],
) -> Result<reports::merge::Merged, CliError> {
    merge_loaded(load_sweeps(files)?)
}

/// Reads sweep files.
fn load_sweeps(files: &[std::path::PathBuf]) -> Result<Vec<LoadedSweep>, CliError> {
    let mut loaded = Vec::new();
    for path in files {
        let text = read_text_named(path)?;
        let file = SweepFile::parse(&path.display().to_string(), &text).map_err(|e| {
            CliError::new(e.to_string()).hint("sweep files are written by `chaos sweep -o FILE`")
        })?;
        loaded.push(file);
    }
    Ok(loaded)
}

/// Merges sweep files read by [`load_sweeps`].
fn merge_loaded(loaded: Vec<LoadedSweep>) -> Result<reports::merge::Merged, CliError> {
    merge(loaded).map_err(|e| {
        CliError::new(e.message).hint(e.hint.unwrap_or_else(|| {
            "give each shard of a sweep once; shards of one sweep share seeds and prefix".into()
        }))
    })
}

fn parse_formats(list: &str) -> Result<Vec<Format>, CliError> {
    let names = || {
        Format::ALL
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut formats = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let format = Format::parse(name).ok_or_else(|| {
            CliError::new(format!("unknown report format {name:?}")).hint(format!(
                "--formats takes a comma-separated list of: {}",
                names()
            ))
        })?;
        if !formats.contains(&format) {
            formats.push(format);
        }
    }
    if formats.is_empty() {
        return Err(
            CliError::new("--formats names no format").hint(format!("use any of: {}", names()))
        );
    }
    Ok(formats)
}

/// The catalog as `reports` sees it (it cannot depend on this crate).
fn catalog_view(catalog: &Catalog) -> Vec<CatalogEntry> {
    catalog
        .entries
        .iter()
        .map(|e| CatalogEntry {
            id: e.id.clone(),
            source: e.source.clone(),
            subsystem: e.subsystem.clone(),
            category: e.category.clone(),
            risk: match e.risk {
                catalog::Risk::High => Risk::High,
                catalog::Risk::Medium => Risk::Medium,
                catalog::Risk::Low => Risk::Low,
            },
            status: match e.status {
                catalog::Status::Implemented => EntryStatus::Implemented,
                catalog::Status::Planned => EntryStatus::Planned,
                catalog::Status::NotApplicable => EntryStatus::NotApplicable,
            },
            title: e.title.clone(),
            reason: e.reason.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_view_keeps_every_entry_and_its_status() {
        let catalog = Catalog::embedded();
        let view = catalog_view(&catalog);
        assert_eq!(view.len(), catalog.entries.len());
        for (e, v) in catalog.entries.iter().zip(&view) {
            assert_eq!(e.id, v.id);
            assert_eq!(e.status.name(), v.status.name());
            assert_eq!(format!("{:?}", e.risk), format!("{:?}", v.risk));
        }
    }

    #[test]
    fn formats_parse_or_fail_with_the_list() {
        assert_eq!(
            parse_formats("md, json,md").unwrap(),
            vec![Format::Markdown, Format::Json]
        );
        assert_eq!(
            parse_formats("md,html,json,junit").unwrap(),
            Format::ALL.to_vec()
        );
        let err = parse_formats("md,pdf").unwrap_err();
        assert!(err.message.contains("\"pdf\""), "{}", err.message);
        assert!(err.hint.unwrap().contains("md, html, json, junit"));
        assert!(
            parse_formats(" , ")
                .unwrap_err()
                .message
                .contains("no format")
        );
    }
}
