//! `chaos report FILE... --out DIR`: merge sweep files (one, or every shard of a sweep)
//! and write the release readiness report: `readiness.md`, `readiness.html`,
//! `readiness.json`, `junit.xml`.
//!
//! The work is in `reports` (pure: text in, strings out); this file reads the inputs,
//! joins the embedded catalog, and writes the files.

use super::CliError;
use super::files::{create_dir, read_text_named, write_text};
use crate::catalog::{self, Catalog};
use crate::registry;
use clap::Args;
use reports::catalog::{CatalogEntry, EntryStatus, Risk};
use reports::merge::merge;
use reports::readiness::{ReportInput, build};
use reports::render::{BLOCKERS_UNFOLDED_MAX, Format, blocker_groups};
use reports::sweep_file::SweepFile;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Sweep files written by `chaos sweep --json` (any number of shards; they are
    /// merged, and missing shards make the report partial).
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// Directory to write the report files into (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Which renderings to write, comma-separated: md, html, json, junit.
    #[arg(long, value_name = "LIST", default_value = "md,html,json,junit")]
    formats: String,
    /// Exit with status 1 when the verdict is not ready (the files are written anyway).
    #[arg(long)]
    require_ready: bool,
}

pub fn report(args: ReportArgs) -> Result<ExitCode, CliError> {
    let formats = parse_formats(&args.formats)?;
    let merged = load_merged(&args.files)?;
    let catalog = catalog_view(&Catalog::embedded());
    let titles: BTreeMap<String, String> = registry::all()
        .into_iter()
        .map(|s| (s.id.to_string(), s.title.to_string()))
        .collect();
    let readiness = build(&ReportInput {
        merged: &merged,
        catalog: &catalog,
        titles: &titles,
        generated_at: now_utc(),
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
        "{} runs of {} scenarios from {} file(s): {} failed; {} scenarios failed, {} inert, {} not run",
        t.runs,
        t.scenarios_run,
        readiness.inputs.files.len(),
        t.runs_failed,
        t.scenarios_failed,
        t.scenarios_inert,
        t.scenarios_not_run
    );
    for m in &readiness.inputs.missing_shards {
        println!("missing shard {} of the {}", m.shard, m.sweep);
    }
    for group in blocker_groups(&readiness) {
        if group.messages.len() > BLOCKERS_UNFOLDED_MAX {
            println!(
                "blocking: {}: {} entries (listed in the report)",
                group.label,
                group.messages.len()
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
    }
    for path in &written {
        println!("wrote {}", path.display());
    }
    super::github::append_step_summary(&reports::render::markdown(&readiness));
    // Last, in a plain form CI log readers can grep.
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

/// Reads sweep files and merges them (shards of one sweep, or one whole sweep).
pub(super) fn load_merged(
    files: &[std::path::PathBuf],
) -> Result<reports::merge::Merged, CliError> {
    let mut loaded = Vec::new();
    for path in files {
        let text = read_text_named(path)?;
        let file = SweepFile::parse(&path.display().to_string(), &text).map_err(|e| {
            CliError::new(e.to_string())
                .hint("sweep files are written by `chaos sweep --json FILE`")
        })?;
        loaded.push(file);
    }
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

/// The current time, UTC, RFC 3339 to the second: when the report was made, for people.
fn now_utc() -> String {
    #[allow(
        clippy::disallowed_methods,
        reason = "a report states when it was made; never compared or hashed"
    )]
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian).
fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(format_utc(1_767_225_600), "2026-01-01T00:00:00Z");
    }

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
