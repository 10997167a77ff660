//! Which build made a file, where and when: carried by run records (`chaos run --json`),
//! sweep files and gate baselines, so a report can say what it judged and shards of
//! two different builds are never merged as one sweep.
//!
//! The CLI fills it (the commit, dirty flag and toolchain come from its build script, the
//! host name and date at run time); this module only holds and compares it. Files older
//! than provenance read as `None`: unknown, never assumed to match.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What "unknown" looks like in a field the build could not learn (no git, no rustc -V).
pub const UNKNOWN: &str = "unknown";

/// The build and machine that produced a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `git rev-parse HEAD` when the binary was built, or `unknown` outside git.
    pub commit: String,
    /// Uncommitted changes in the checkout when the binary was built (`git status
    /// --porcelain` not empty): the commit alone does not name the code that ran.
    pub dirty: bool,
    /// The `scenarios` crate's version.
    pub version: String,
    /// `rustc -V` of the compiler that built the binary.
    pub toolchain: String,
    /// The target triple the binary was built for.
    pub target: String,
    /// The machine's host name at run time.
    pub host: String,
    /// When the file was made, UTC, `YYYY-MM-DDThh:mm:ssZ` (wall clock, for people).
    pub date: String,
}

impl Provenance {
    /// Whether `self` and `other` were made by the same build: same commit, same dirty
    /// flag, same version. Host, date and toolchain may differ: shards of one build run
    /// on many machines. (Two dirty checkouts of one commit pass: the flag cannot tell
    /// their changes apart, and shards of one local dirty build must still merge.)
    pub fn same_build(&self, other: &Provenance) -> bool {
        self.commit == other.commit && self.dirty == other.dirty && self.version == other.version
    }

    /// The build in words: `commit 1a2b3c4d5e6f (dirty), version 0.1.0`.
    pub fn build(&self) -> String {
        let commit: String = self.commit.chars().take(12).collect();
        let dirty = if self.dirty { " (dirty)" } else { "" };
        format!("commit {commit}{dirty}, version {}", self.version)
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {}, {} on {}, {}",
            self.build(),
            self.toolchain,
            self.target,
            self.host,
            self.date
        )
    }
}

/// A stable digest of a plan's JSON text (FNV-1a 64, 16 hex digits): equal digests, equal
/// plans, whatever the process or machine. `std`'s hasher is not stable across builds.
pub fn digest(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in text.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Seconds since the Unix epoch as `YYYY-MM-DDThh:mm:ssZ` (proleptic Gregorian).
pub fn format_utc(secs: u64) -> String {
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
pub(crate) fn sample(commit: &str, dirty: bool) -> Provenance {
    Provenance {
        commit: commit.to_string(),
        dirty,
        version: "0.1.0".to_string(),
        toolchain: "rustc 1.90.0".to_string(),
        target: "x86_64-unknown-linux-gnu".to_string(),
        host: "builder-1".to_string(),
        date: "2026-12-06T08:00:00Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_build_is_same_commit_version_and_clean_whatever_the_host() {
        let a = sample("abc", false);
        let mut b = sample("abc", false);
        b.host = "builder-2".to_string();
        b.date = "2026-12-07T00:00:00Z".to_string();
        assert!(a.same_build(&b));
        assert!(!a.same_build(&sample("def", false)));
        let mut newer = sample("abc", false);
        newer.version = "0.2.0".to_string();
        assert!(!a.same_build(&newer));
        assert!(!sample("abc", true).same_build(&sample("abc", false)));
        assert_eq!(
            sample("0123456789abcdef", true).build(),
            "commit 0123456789ab (dirty), version 0.1.0"
        );
    }

    #[test]
    fn digests_are_stable_and_dates_are_utc() {
        assert_eq!(digest(""), "cbf29ce484222325");
        assert_ne!(digest("{\"a\":1}"), digest("{\"a\":2}"));
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(format_utc(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(format_utc(1_796_546_498), "2026-12-06T08:41:38Z");
    }
}
