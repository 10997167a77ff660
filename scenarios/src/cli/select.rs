//! Choosing scenarios (or catalog entries) by id: `--prefix`, exact `--id`s and glob
//! `--filter`s, shared by `sweep`, `gate` and `list`.
//!
//! `--id` and `--filter` name what to take (their union; either may be a comma list or
//! repeated); `--prefix` narrows whatever is taken. With none of them, everything is
//! taken. Every exact id must exist and every pattern must match something, checked
//! before anything runs: a typo is an error with a suggestion, never an empty sweep.

use super::CliError;
use super::suggest::closest;
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// Only ids starting with this prefix (for example `core.` or `sim.net.`).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only these exact ids: repeat the flag or give a comma list
    /// (`--id core.EC-001,core.EC-002`).
    #[arg(long = "id", value_name = "ID", value_delimiter = ',')]
    pub ids: Vec<String>,
    /// Only ids matching these glob patterns (`*` any text, `?` one character): repeat
    /// the flag or give a comma list (`--filter 'core.EC-0*'`).
    #[arg(long = "filter", value_name = "PATTERN", value_delimiter = ',')]
    pub patterns: Vec<String>,
}

impl Filter {
    /// Whether any selector was given.
    pub fn is_set(&self) -> bool {
        self.prefix.is_some() || !self.ids.is_empty() || !self.patterns.is_empty()
    }

    /// Whether `id` is taken.
    pub fn matches(&self, id: &str) -> bool {
        let named = (self.ids.is_empty() && self.patterns.is_empty())
            || self.ids.iter().any(|wanted| wanted == id)
            || self.patterns.iter().any(|p| glob(p, id));
        named && self.prefix.as_deref().is_none_or(|p| id.starts_with(p))
    }

    /// The selectors as flags, for messages and sweep files: `--prefix core. --id a`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(p) = &self.prefix {
            parts.push(format!("--prefix {p}"));
        }
        if !self.ids.is_empty() {
            parts.push(format!("--id {}", self.ids.join(",")));
        }
        if !self.patterns.is_empty() {
            parts.push(format!("--filter '{}'", self.patterns.join(",")));
        }
        parts.join(" ")
    }

    /// The ids and patterns in a canonical order, as a sweep file records them.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.ids.iter().chain(&self.patterns).cloned().collect();
        names.sort();
        names.dedup();
        names
    }

    /// The `known` ids this filter takes, in the order given; an error naming the first
    /// unknown id, pattern that matches nothing, or an empty selection.
    pub fn select<'a>(&self, known: &[&'a str], what: &str) -> Result<Vec<&'a str>, CliError> {
        for id in &self.ids {
            if id.contains(['*', '?']) {
                return Err(
                    CliError::new(format!("--id {id:?} is a pattern, not an id"))
                        .hint(format!("use --filter '{id}' for patterns")),
                );
            }
            if !known.contains(&id.as_str()) {
                let near = closest(id, known.iter().copied());
                let hint = if near.is_empty() {
                    "`chaos list` shows the catalog; `chaos list --substrate` the simulator's \
                     self-checks"
                        .to_string()
                } else {
                    format!("did you mean {}?", near.join(", "))
                };
                return Err(CliError::new(format!("no {what} has the id {id:?}")).hint(hint));
            }
        }
        for pattern in &self.patterns {
            if !known.iter().any(|id| glob(pattern, id)) {
                return Err(
                    CliError::new(format!("the pattern {pattern:?} matches no {what}")).hint(
                        "patterns match whole ids: `core.EC-0*` or `*partition*`, not `EC-0*`",
                    ),
                );
            }
        }
        let taken: Vec<&str> = known
            .iter()
            .copied()
            .filter(|id| self.matches(id))
            .collect();
        if taken.is_empty() {
            let message = match &self.prefix {
                Some(p) if self.ids.is_empty() && self.patterns.is_empty() => {
                    format!("no {what} id starts with {p:?}")
                }
                _ => format!("no {what} matches {}", self.describe()),
            };
            let near = self
                .prefix
                .as_deref()
                .map(|p| closest(p, known.iter().copied()))
                .unwrap_or_default();
            let hint = if near.is_empty() {
                "`chaos list --status implemented` and `chaos list --substrate` show what exists"
                    .to_string()
            } else {
                format!("did you mean {}?", near.join(", "))
            };
            return Err(CliError::new(message).hint(hint));
        }
        Ok(taken)
    }
}

/// Whether `text` matches the glob `pattern` (`*` any run of characters, `?` one).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point: the last `*` seen.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: [&str; 5] = [
        "core.EC-001",
        "core.EC-002",
        "core.EC-010",
        "sim.net.partition-heal-no-loss",
        "api.SCALE-001",
    ];

    fn filter(prefix: Option<&str>, ids: &[&str], patterns: &[&str]) -> Filter {
        Filter {
            prefix: prefix.map(str::to_string),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            patterns: patterns.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn globs_match_whole_ids() {
        assert!(glob("core.EC-0*", "core.EC-010"));
        assert!(glob("*partition*", "sim.net.partition-heal-no-loss"));
        assert!(glob("core.EC-00?", "core.EC-002"));
        assert!(glob("*", ""));
        assert!(!glob("EC-0*", "core.EC-010"));
        assert!(!glob("core.EC-00?", "core.EC-0010"));
        assert!(glob("a*b*c", "axxbyybc"));
        assert!(!glob("a*b*c", "axxbyyb"));
    }

    #[test]
    fn ids_and_patterns_add_up_and_a_prefix_narrows() {
        let take = |f: Filter| f.select(&KNOWN, "scenario").unwrap();
        assert_eq!(take(Filter::default()).len(), 5);
        assert_eq!(
            take(filter(None, &["core.EC-002", "api.SCALE-001"], &[])),
            ["core.EC-002", "api.SCALE-001"]
        );
        assert_eq!(
            take(filter(None, &["api.SCALE-001"], &["core.EC-00*"])),
            ["core.EC-001", "core.EC-002", "api.SCALE-001"]
        );
        assert_eq!(
            take(filter(Some("core."), &[], &["*-0?0", "*SCALE*"])),
            ["core.EC-010"]
        );
    }

    #[test]
    fn unknown_ids_empty_patterns_and_empty_selections_are_errors_with_hints() {
        let err = |f: Filter| f.select(&KNOWN, "scenario").unwrap_err();
        let e = err(filter(None, &["core.EC-01"], &[]));
        assert!(e.message.contains("no scenario has the id \"core.EC-01\""));
        assert!(e.hint.unwrap().starts_with("did you mean core.EC-010"));
        let e = err(filter(None, &[], &["EC-0*"]));
        assert!(e.message.contains("matches no scenario"), "{}", e.message);
        let e = err(filter(None, &["core.*"], &[]));
        assert!(e.hint.unwrap().contains("--filter 'core.*'"));
        let e = err(filter(Some("zzz"), &[], &[]));
        assert!(e.message.contains("no scenario id starts with \"zzz\""));
        let e = err(filter(Some("sim."), &["core.EC-001"], &[]));
        assert!(
            e.message.contains("matches --prefix sim. --id core.EC-001"),
            "{}",
            e.message
        );
    }
}
