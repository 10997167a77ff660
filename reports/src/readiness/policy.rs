//! The readiness policy: which planned catalog entries block the coverage verdict, and
//! the waivers that accept a known gap until a date (a committed TOML file, by default
//! `ci/readiness-policy.toml`; the format is in `reports/SCHEMA.md`).
//!
//! ```toml
//! [coverage]
//! block_planned = ["high"]      # risks whose planned entries block
//!
//! [[waiver]]
//! entry = "core.EC-09*"         # an id, or a pattern where * stands for any text
//! reason = "plugins subsystem not built yet"
//! owner = "engine team"
//! expires = "2027-03-31"        # the last day it holds
//! ```
//!
//! Parsing never panics: every problem is a [`PolicyError`] naming the file and, where
//! the TOML parser or a field can tell, the line.

use super::date::Date;
use crate::catalog::Risk;
use serde::Deserialize;
use std::fmt;
use toml::Spanned;

/// What the policy says, read from a file or the built-in default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The file it was read from, or [`Policy::BUILTIN`].
    pub source: String,
    /// Planned entries of these risks block the coverage verdict unless waived.
    pub blocking_risks: Vec<Risk>,
    /// In file order.
    pub waivers: Vec<Waiver>,
}

/// An accepted gap: a planned entry (or a pattern of them) that does not block until
/// `expires` has passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiver {
    /// A catalog id, or a pattern in which `*` stands for any text (`core.EC-09*`).
    pub entry: String,
    pub reason: String,
    pub owner: String,
    /// The last day the waiver holds; from the day after, it blocks.
    pub expires: Date,
    /// Line of the waiver in its file, for messages (0 for waivers built in code).
    pub line: usize,
}

impl Waiver {
    /// Whether `id` is the waiver's entry or matches its pattern.
    pub fn matches(&self, id: &str) -> bool {
        glob(self.entry.as_bytes(), id.as_bytes())
    }

    /// Expired on `today`: its last day is behind.
    pub fn expired(&self, today: Date) -> bool {
        self.expires < today
    }
}

/// `*` matches any run of bytes; everything else matches itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

/// Why a policy file could not be used. Its display names the file and the line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    /// 1-based, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}: line {line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    coverage: Option<RawCoverage>,
    #[serde(default)]
    waiver: Vec<RawWaiver>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoverage {
    block_planned: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaiver {
    entry: Spanned<String>,
    reason: Spanned<String>,
    owner: Spanned<String>,
    /// A string `"2027-03-31"` or a TOML date `2027-03-31`.
    expires: Spanned<toml::Value>,
}

impl Policy {
    /// The name a report shows when no policy file was given or found.
    pub const BUILTIN: &'static str = "built-in default";

    /// Without a file: high-risk planned entries block, nothing is waived.
    pub fn builtin() -> Policy {
        Policy {
            source: Policy::BUILTIN.to_string(),
            blocking_risks: vec![Risk::High],
            waivers: Vec::new(),
        }
    }

    /// Parses the text of the policy file `name`.
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let error = |span: Option<std::ops::Range<usize>>, message: String| PolicyError {
            file: name.to_string(),
            line: span.map(|s| line_of(s.start)),
            message,
        };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            error(
                e.span(),
                format!("not a valid policy file: {}", e.message().trim()),
            )
        })?;
        let blocking_risks = match raw.coverage {
            None => vec![Risk::High],
            Some(c) => {
                let mut risks = Vec::new();
                for name in c.block_planned.get_ref() {
                    let risk = Risk::ALL
                        .into_iter()
                        .find(|r| r.name() == name.get_ref())
                        .ok_or_else(|| {
                            error(
                                Some(name.span()),
                                format!(
                                    "block_planned: unknown risk {:?} (use high, medium or low)",
                                    name.get_ref()
                                ),
                            )
                        })?;
                    if !risks.contains(&risk) {
                        risks.push(risk);
                    }
                }
                risks.sort();
                risks
            }
        };
        let mut waivers: Vec<Waiver> = Vec::new();
        for w in raw.waiver {
            let line = line_of(w.entry.span().start);
            for (field, value) in [
                ("entry", &w.entry),
                ("reason", &w.reason),
                ("owner", &w.owner),
            ] {
                if value.get_ref().trim().is_empty() {
                    return Err(error(
                        Some(value.span()),
                        format!("a waiver's {field} must not be empty"),
                    ));
                }
            }
            let entry = w.entry.get_ref().trim().to_string();
            if let Some(c) = entry
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "._-*".contains(*c)))
            {
                return Err(error(
                    Some(w.entry.span()),
                    format!(
                        "waiver entry {entry:?} holds {c:?}: use a catalog id, or * for any text"
                    ),
                ));
            }
            if let Some(first) = waivers.iter().find(|x| x.entry == entry) {
                return Err(error(
                    Some(w.entry.span()),
                    format!(
                        "waiver for {entry:?} is given twice (first on line {})",
                        first.line
                    ),
                ));
            }
            let expires_text = match w.expires.get_ref() {
                toml::Value::String(s) => s.clone(),
                toml::Value::Datetime(d) => d.to_string(),
                other => other.to_string(),
            };
            let expires = Date::parse(&expires_text).map_err(|e| {
                error(
                    Some(w.expires.span()),
                    format!("waiver for {entry:?}: expires: {e}"),
                )
            })?;
            waivers.push(Waiver {
                entry,
                reason: w.reason.get_ref().trim().to_string(),
                owner: w.owner.get_ref().trim().to_string(),
                expires,
                line,
            });
        }
        Ok(Policy {
            source: name.to_string(),
            blocking_risks,
            waivers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[coverage]
block_planned = ["high", "medium"]

[[waiver]]
entry = "core.EC-09*"
reason = "plugins subsystem not built yet"
owner = "engine team"
expires = "2027-03-31"

[[waiver]]
entry = "api.SCALE-001"
reason = "not built yet: issue 21"
owner = "engine team"
expires = 2026-12-01
"#;

    #[test]
    fn a_policy_file_reads_with_its_waivers_and_lines() {
        let p = Policy::parse("ci/p.toml", GOOD).unwrap();
        assert_eq!(p.source, "ci/p.toml");
        assert_eq!(p.blocking_risks, vec![Risk::High, Risk::Medium]);
        assert_eq!(p.waivers.len(), 2);
        assert_eq!(p.waivers[0].line, 6);
        assert_eq!(p.waivers[1].expires.to_string(), "2026-12-01");
        assert!(p.waivers[0].matches("core.EC-090"));
        assert!(p.waivers[0].matches("core.EC-09"));
        assert!(!p.waivers[0].matches("core.EC-009"));
        assert!(p.waivers[1].matches("api.SCALE-001"));
        assert!(!p.waivers[1].matches("api.SCALE-0010"));
        let day = |s| Date::parse(s).unwrap();
        assert!(
            !p.waivers[1].expired(day("2026-12-01")),
            "holds on its last day"
        );
        assert!(p.waivers[1].expired(day("2026-12-02")));
        // No [coverage] table: high-risk entries block, as without a file.
        let empty = Policy::parse("p.toml", "").unwrap();
        assert_eq!(empty.blocking_risks, Policy::builtin().blocking_risks);
    }

    #[test]
    fn bad_policy_files_name_the_line_and_the_problem() {
        let waiver = |fields: &str| format!("\n\n[[waiver]]\n{fields}\n");
        let ok = "entry = \"core.EC-001\"\nreason = \"r\"\nowner = \"o\"\nexpires = \"2027-01-01\"";
        let cases: Vec<(String, Option<usize>, &str)> = vec![
            ("[coverage\n".into(), Some(1), "not a valid policy file"),
            (
                "[coverage]\nblock_planned = [\"huge\"]".into(),
                Some(2),
                "unknown risk \"huge\"",
            ),
            ("[[waivers]]\n".into(), Some(1), "unknown field"),
            (
                waiver(&ok.replace("\"2027-01-01\"", "\"2027-02-30\"")),
                Some(7),
                "month 2 of 2027 has no day 30",
            ),
            (
                waiver(&ok.replace("\"2027-01-01\"", "\"next year\"")),
                Some(7),
                "not a date of the form YYYY-MM-DD",
            ),
            (
                waiver(&ok.replace("owner = \"o\"", "owner = \" \"")),
                Some(6),
                "owner must not be empty",
            ),
            (
                waiver(&ok.replace("owner = \"o\"\n", "")),
                Some(3),
                "missing field `owner`",
            ),
            (
                waiver(&ok.replace("core.EC-001", "core EC")),
                Some(4),
                "holds ' '",
            ),
            (
                format!("{}{}", waiver(ok), waiver(ok)),
                Some(11),
                "given twice (first on line 4)",
            ),
        ];
        for (text, line, why) in cases {
            let err = Policy::parse("ci/p.toml", &text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            let shown = err.to_string();
            assert!(shown.starts_with("ci/p.toml: line "), "{shown}");
            assert!(shown.contains(why), "{text:?}: {shown}");
        }
    }
}
