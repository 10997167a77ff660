//! The catalog: every edge case of the five seed documents, as data
//! (`scenarios/catalog.toml`, embedded at build time), validated on load.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// The catalog file, embedded so the `chaos` binary works from anywhere.
pub const CATALOG_TOML: &str = include_str!("../../catalog.toml");

/// Documents and the id prefixes drawn from them, with their entry counts (BRIEF §5).
pub const SOURCES: [(&str, &str, usize); 5] = [
    ("core", "000_338ed706851a2ca5.txt", 141),
    ("enable", "001_ecc96e162557ab1e.txt", 39),
    ("cwm", "002_5789a8996a5b6c93.txt", 21),
    ("api", "003_b21b109604bba31c.txt", 12),
    ("pattern", "004_327fc7c032567eef.txt", 22),
];

/// The seed documents' titles (their first heading), by file name, so reports name a
/// document rather than its hashed file name.
pub const SOURCE_TITLES: [(&str, &str); 5] = [
    (
        "000_338ed706851a2ca5.txt",
        "Edge Case Matrix - claude_sdk_pattern Core Engine",
    ),
    ("001_ecc96e162557ab1e.txt", "Edge Cases and Failure Modes"),
    (
        "002_5789a8996a5b6c93.txt",
        "Context Window Manager - Edge Cases Documentation",
    ),
    ("003_b21b109604bba31c.txt", "Known Issues and Limitations"),
    (
        "004_327fc7c032567eef.txt",
        "MEMO-010: POC 1 Edge Case Analysis and Foundation Hardening",
    ),
];

pub const SUBSYSTEMS: [&str; 12] = [
    "gateway",
    "sessions",
    "workers",
    "upstream",
    "plugins",
    "permissions",
    "metering",
    "oversight",
    "messaging",
    "windows",
    "store",
    "deploy",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    High,
    Medium,
    Low,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A scenario exists and runs.
    Implemented,
    /// No scenario yet.
    Planned,
    /// Nothing a server-side simulation can exercise; `reason` says why.
    NotApplicable,
}

impl Status {
    pub const NAMES: [&str; 3] = ["implemented", "planned", "not-applicable"];

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "implemented" => Some(Status::Implemented),
            "planned" => Some(Status::Planned),
            "not-applicable" => Some(Status::NotApplicable),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Planned => "planned",
            Status::NotApplicable => "not-applicable",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One catalog entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub source: String,
    pub subsystem: String,
    pub category: String,
    pub risk: Risk,
    pub title: String,
    pub expected: String,
    pub status: Status,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    entry: Vec<Entry>,
}

/// The validated catalog, in file order.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub entries: Vec<Entry>,
}

impl Catalog {
    /// The embedded catalog. It is validated by the test suite, so failure here means a
    /// broken build, not bad input.
    pub fn embedded() -> Catalog {
        Catalog::parse(CATALOG_TOML).unwrap_or_else(|e| panic!("embedded catalog is invalid: {e}"))
    }

    /// Parses and validates catalog text.
    pub fn parse(text: &str) -> Result<Catalog, String> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| format!("catalog is not valid TOML: {e}"))?;
        let catalog = Catalog {
            entries: file.entry,
        };
        catalog.validate()?;
        Ok(catalog)
    }

    fn validate(&self) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for e in &self.entries {
            if !seen.insert(e.id.as_str()) {
                return Err(format!("catalog lists {} twice", e.id));
            }
            let Some((prefix, rest)) = e.id.split_once('.') else {
                return Err(format!("catalog id {:?} has no source prefix", e.id));
            };
            let Some((_, source, _)) = SOURCES.iter().find(|(p, _, _)| *p == prefix) else {
                return Err(format!(
                    "catalog id {:?} has an unknown prefix {prefix:?}",
                    e.id
                ));
            };
            if rest.is_empty() {
                return Err(format!("catalog id {:?} is only a prefix", e.id));
            }
            if e.source != *source {
                return Err(format!(
                    "{}: source {:?}, expected {source:?}",
                    e.id, e.source
                ));
            }
            if !SUBSYSTEMS.contains(&e.subsystem.as_str()) {
                return Err(format!("{}: unknown subsystem {:?}", e.id, e.subsystem));
            }
            for (field, value) in [
                ("title", &e.title),
                ("expected", &e.expected),
                ("category", &e.category),
            ] {
                if value.trim().is_empty() {
                    return Err(format!("{}: {field} is empty", e.id));
                }
            }
            match e.status {
                Status::NotApplicable if e.reason.trim().is_empty() => {
                    return Err(format!("{}: not-applicable needs a reason", e.id));
                }
                Status::Implemented | Status::Planned if !e.reason.trim().is_empty() => {
                    return Err(format!(
                        "{}: a reason is only for not-applicable entries",
                        e.id
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_has_exactly_the_brief_ids() {
        let catalog = Catalog::embedded();
        assert_eq!(catalog.entries.len(), 235);
        for (prefix, _, count) in SOURCES {
            let n = catalog
                .ids()
                .filter(|id| id.starts_with(&format!("{prefix}.")))
                .count();
            assert_eq!(n, count, "entries with prefix {prefix}");
        }
        for n in 1..=141 {
            let id = format!("core.EC-{n:03}");
            assert!(catalog.get(&id).is_some(), "{id} missing");
        }
        for id in [
            "api.SCALE-001",
            "api.PERF-001",
            "api.PERF-002",
            "api.PERF-003",
            "api.PERF-004",
            "api.PERF-005",
            "api.CODE-001",
            "api.CODE-002",
            "api.CONFIG-001",
            "api.SEC-008",
            "api.LIMIT-SSE",
            "api.LIMIT-FD",
            "enable.1.1.1",
            "enable.5.2.2",
            "enable.6.1.1",
            "enable.6.1.2",
            "enable.6.2.1",
            "enable.6.3.1",
            "enable.6.3.2",
            "pattern.1.1",
            "pattern.7.5",
            "cwm.EC-001",
            "cwm.EC-052",
        ] {
            assert!(catalog.get(id).is_some(), "{id} missing");
        }
    }

    #[test]
    fn validation_rejects_bad_catalogs_with_a_reason() {
        let good = r#"[[entry]]
id = "core.EC-001"
source = "000_338ed706851a2ca5.txt"
subsystem = "sessions"
category = "boundary"
risk = "high"
title = "t"
expected = "e"
status = "planned"
reason = ""
"#;
        assert!(Catalog::parse(good).is_ok());
        let twice = format!("{good}{good}");
        assert!(Catalog::parse(&twice).unwrap_err().contains("twice"));
        let bad_prefix = good.replace("core.EC-001", "nope.EC-001");
        assert!(
            Catalog::parse(&bad_prefix)
                .unwrap_err()
                .contains("unknown prefix")
        );
        let na = good.replace("\"planned\"", "\"not-applicable\"");
        assert!(Catalog::parse(&na).unwrap_err().contains("needs a reason"));
        let bad_risk = good.replace("\"high\"", "\"severe\"");
        assert!(Catalog::parse(&bad_risk).is_err());
        assert!(
            Catalog::parse("[[entry]\n")
                .unwrap_err()
                .contains("not valid TOML")
        );
    }
}
