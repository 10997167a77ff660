//! What `chaos report` feeds the pure report builder besides the sweep files: the policy
//! (`--policy`, or `ci/readiness-policy.toml` when it exists), an earlier report
//! (`--previous`), what this build knows of its scenarios, the documents' titles, and
//! today's date.

use super::CliError;
use super::files::{read_text, read_text_named};
use crate::catalog::SOURCE_TITLES;
use crate::registry;
use reports::readiness::{Date, KnownScenario, Policy, PreviousReport};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The policy file used when `--policy` is not given, if it exists (relative to the
/// working directory: CI runs from the repository's root).
pub const DEFAULT_POLICY: &str = "ci/readiness-policy.toml";

/// The policy: the file named, else the default file if present, else the built-in one.
pub fn policy(given: Option<&Path>) -> Result<Policy, CliError> {
    let (path, text) = match given {
        Some(path) => (
            path.to_path_buf(),
            read_text_named(path).map_err(|e| {
                e.hint(format!(
                    "--policy names a TOML policy file, like {DEFAULT_POLICY} in this repository"
                ))
            })?,
        ),
        None => match read_text(Path::new(DEFAULT_POLICY)) {
            Ok(text) => (PathBuf::from(DEFAULT_POLICY), text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Policy::builtin()),
            Err(e) => {
                return Err(CliError::new(format!("cannot read {DEFAULT_POLICY}: {e}"))
                    .hint("pass another policy file with --policy FILE"));
            }
        },
    };
    Policy::parse(&path.display().to_string(), &text).map_err(|e| {
        CliError::new(e.to_string()).hint(
            "a policy file holds [coverage] block_planned = [\"high\"] and [[waiver]] tables \
             with entry, reason, owner and expires = \"YYYY-MM-DD\" (reports/SCHEMA.md)",
        )
    })
}

/// The earlier report `--previous` names: a `readiness.json`, or a directory holding one.
pub fn previous(given: &Path) -> Result<PreviousReport, CliError> {
    let hint = "--previous takes a readiness.json written by `chaos report --formats json`, \
                or the directory it was written to";
    let path = if given.is_dir() {
        given.join("readiness.json")
    } else {
        given.to_path_buf()
    };
    let text = read_text(&path).map_err(|e| {
        let what = if given.is_dir() {
            format!("no readiness.json in {}: {e}", given.display())
        } else {
            format!("cannot read the previous report {}: {e}", path.display())
        };
        CliError::new(what).hint(hint)
    })?;
    PreviousReport::parse(&path.display().to_string(), &text)
        .map_err(|e| CliError::new(e.to_string()).hint(hint))
}

/// Every scenario this build knows: its title and whether it declares a fault plan.
pub fn known_scenarios() -> BTreeMap<String, KnownScenario> {
    registry::all()
        .into_iter()
        .map(|s| {
            (
                s.id.to_string(),
                KnownScenario {
                    title: s.title.to_string(),
                    has_plan: s.plan.is_some(),
                },
            )
        })
        .collect()
}

/// The seed documents' titles, by file name.
pub fn documents() -> BTreeMap<String, String> {
    SOURCE_TITLES
        .iter()
        .map(|(file, title)| (file.to_string(), title.to_string()))
        .collect()
}

/// Today (UTC) from a `YYYY-MM-DDThh:mm:ssZ` time.
pub fn today_of(generated_at: &str) -> Result<Date, CliError> {
    Date::parse(generated_at.get(..10).unwrap_or(generated_at))
        .map_err(|e| CliError::new(format!("the system clock gives no usable date: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, SOURCES};

    #[test]
    fn every_seed_document_has_a_title() {
        let titles = documents();
        for (_, file, _) in SOURCES {
            assert!(titles.contains_key(file), "{file} has no title");
        }
        for e in &Catalog::embedded().entries {
            assert!(titles.contains_key(&e.source), "{}: {}", e.id, e.source);
        }
    }

    #[test]
    fn today_is_the_date_of_the_generation_time() {
        assert_eq!(
            today_of("2026-12-06T09:10:11Z").unwrap().to_string(),
            "2026-12-06"
        );
        assert!(today_of("garbage").is_err());
    }
}
