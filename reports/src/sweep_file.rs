//! The results file of one sweep, or of one shard of a sweep: what `chaos sweep -o
//! FILE` writes and what `chaos report` reads back (schema `chaos-sweep/1`).
//!
//! It is a versioned object rather than a bare array of records so that a set of shard
//! files can be checked when merged: which sweep each belongs to (seed range, prefix,
//! shard count), which shards are missing, whether two files hold the same run. The
//! bare array that sweeps wrote before the schema existed is still read, as one
//! unsharded file. Parsing never panics: every problem is a [`SweepFileError`] naming
//! the file.

use crate::provenance::Provenance;
use crate::record::RunRecord;
use crate::shard::Shard;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The `schema` value this build writes and reads.
pub const SWEEP_SCHEMA: &str = "chaos-sweep/1";

/// One sweep file, as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepFile {
    /// Always [`SWEEP_SCHEMA`]; a reader refuses other values.
    pub schema: String,
    /// Which slice of the sweep this file holds (`1/1` for an unsharded sweep).
    pub shard: Shard,
    /// First seed of the whole sweep.
    pub seed_start: u64,
    /// Seeds per scenario in the whole sweep (`seed_start .. seed_start + seeds`).
    pub seeds: u64,
    /// The `--prefix` the sweep selected scenarios with, if any.
    pub prefix: Option<String>,
    /// The `--id`s and `--filter` patterns the sweep selected scenarios with, sorted;
    /// empty when it took every scenario (under `prefix`). Absent in older files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<String>,
    /// Jobs (scenario × seed) in the whole, unsharded sweep: shards of one sweep agree on
    /// it, which catches shards built from different scenario sets.
    pub jobs_total: u64,
    /// Ids of the scenarios with at least one run in this file, in id order.
    pub scenarios: Vec<String>,
    /// One record per run of this shard, in (id, seed) order.
    pub records: Vec<RunRecord>,
    /// Same-seed re-runs whose trace hashes differed. `None` when nobody checked (a plain
    /// sweep); `Some(vec![])` when a check ran and found nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub determinism: Option<Vec<DeterminismFinding>>,
    /// The build and machine that ran this file's records. `None` in files written
    /// before it was kept (and in the legacy form): such files merge with any build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
    /// Elapsed wall time of the whole command that wrote the file, ms (its runs ran in
    /// parallel, so it is less than the sum of their `wall_ms`). `None` in files written
    /// before it was recorded. Wall clock: for people, never compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
}

/// A scenario and seed that gave two different traces when run twice.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeterminismFinding {
    pub id: String,
    pub seed: u64,
    pub first_hash: String,
    pub second_hash: String,
    /// The first trace event that differed, when the checker could tell.
    pub first_difference: Option<String>,
}

/// A sweep file read back, with the name it was read from (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedSweep {
    pub name: String,
    /// Read from the bare record array of sweeps older than the schema; its seed range
    /// is inferred from its records and it takes no part in shard bookkeeping.
    pub legacy: bool,
    pub file: SweepFile,
}

/// Why a sweep file could not be used. Its display names the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepFileError {
    pub file: String,
    pub message: String,
}

impl fmt::Display for SweepFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.message)
    }
}

impl std::error::Error for SweepFileError {}

/// Only the `schema` field, read first so a file of another kind or version gets a
/// message about that rather than about whichever field it lacks.
#[derive(Deserialize)]
struct Probe {
    schema: Option<serde_json::Value>,
}

impl SweepFile {
    /// Serializes the file (pretty JSON, trailing newline).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self).map(|s| s + "\n")
    }

    /// Parses the text of the file `name`: a `chaos-sweep/1` object, or the legacy bare
    /// array of records.
    pub fn parse(name: &str, text: &str) -> Result<LoadedSweep, SweepFileError> {
        let error = |message: String| SweepFileError {
            file: name.to_string(),
            message,
        };
        match text.trim_start().chars().next() {
            None => Err(error("the file is empty, not a sweep file".to_string())),
            Some('[') => {
                let records: Vec<RunRecord> = serde_json::from_str(text).map_err(|e| {
                    error(format!(
                        "not a valid list of run records (legacy form): {e}"
                    ))
                })?;
                Ok(LoadedSweep {
                    name: name.to_string(),
                    legacy: true,
                    file: SweepFile::from_legacy(records),
                })
            }
            Some('{') => {
                let probe: Probe = serde_json::from_str(text)
                    .map_err(|e| error(format!("not valid JSON: {e}")))?;
                match probe.schema {
                    Some(serde_json::Value::String(s)) if s == SWEEP_SCHEMA => {}
                    Some(other) => {
                        return Err(error(format!(
                            "schema {other}, but this build reads {SWEEP_SCHEMA:?}"
                        )));
                    }
                    None => {
                        return Err(error(format!(
                            "no \"schema\" field: not a sweep file ({SWEEP_SCHEMA})"
                        )));
                    }
                }
                let file: SweepFile = serde_json::from_str(text)
                    .map_err(|e| error(format!("malformed {SWEEP_SCHEMA} file: {e}")))?;
                file.validate().map_err(error)?;
                Ok(LoadedSweep {
                    name: name.to_string(),
                    legacy: false,
                    file,
                })
            }
            Some(_) => Err(error(format!(
                "not JSON (a sweep file is a {SWEEP_SCHEMA} object written by `chaos sweep -o FILE`)"
            ))),
        }
    }

    /// The legacy form as one unsharded file: the seed range spans its records.
    fn from_legacy(records: Vec<RunRecord>) -> SweepFile {
        let seed_min = records.iter().map(|r| r.seed).min().unwrap_or(0);
        let seed_max = records.iter().map(|r| r.seed).max().unwrap_or(0);
        let mut scenarios: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        scenarios.sort();
        scenarios.dedup();
        SweepFile {
            schema: SWEEP_SCHEMA.to_string(),
            shard: Shard::WHOLE,
            seed_start: seed_min,
            seeds: if records.is_empty() {
                0
            } else {
                (seed_max - seed_min).saturating_add(1)
            },
            prefix: None,
            filters: Vec::new(),
            jobs_total: records.len() as u64,
            scenarios,
            records,
            determinism: None,
            provenance: None,
            elapsed_ms: None,
        }
    }

    /// Checks what serde cannot: a valid shard, and runs within the declared seed range.
    fn validate(&self) -> Result<(), String> {
        Shard::new(self.shard.index, self.shard.count).map_err(|e| format!("bad shard: {e}"))?;
        let in_range = |seed: u64| seed >= self.seed_start && seed - self.seed_start < self.seeds;
        if let Some(r) = self.records.iter().find(|r| !in_range(r.seed)) {
            return Err(format!(
                "run {} seed {} is outside the file's seed range {}..{}",
                r.id,
                r.seed,
                self.seed_start,
                self.seed_start.saturating_add(self.seeds)
            ));
        }
        if self.records.len() as u64 > self.jobs_total {
            return Err(format!(
                "{} runs, more than the sweep's {} jobs",
                self.records.len(),
                self.jobs_total
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Verdict;
    use std::collections::BTreeMap;

    fn record(id: &str, seed: u64) -> RunRecord {
        RunRecord {
            id: id.to_string(),
            seed,
            verdict: Verdict::Pass,
            failure_class: None,
            message: None,
            trace_hash: "0123456789abcdef".to_string(),
            sim_time_ns: 5,
            events: 3,
            faults: BTreeMap::from([("net.reset".to_string(), 1)]),
            swarm_faults: Default::default(),
            faults_expected: vec!["net.reset".to_string()],
            faults_expected_fired: true,
            wall_ms: 2,
            repro: format!("chaos run {id} --seed {seed}"),
            plan_digest: None,
            provenance: None,
        }
    }

    fn file() -> SweepFile {
        SweepFile {
            schema: SWEEP_SCHEMA.to_string(),
            shard: Shard::new(2, 3).unwrap(),
            seed_start: 1,
            seeds: 4,
            prefix: Some("sim.".to_string()),
            filters: vec!["sim.a".to_string()],
            jobs_total: 8,
            scenarios: vec!["sim.a".to_string()],
            records: vec![record("sim.a", 2), record("sim.a", 4)],
            determinism: None,
            provenance: Some(crate::provenance::sample("abc", false)),
            elapsed_ms: None,
        }
    }

    #[test]
    fn a_file_round_trips_and_omits_an_absent_determinism_check() {
        let json = file().to_json().unwrap();
        assert!(json.contains("\"schema\": \"chaos-sweep/1\""), "{json}");
        assert!(!json.contains("determinism"), "{json}");
        let loaded = SweepFile::parse("a.json", &json).unwrap();
        assert!(!loaded.legacy);
        assert_eq!(loaded.file, file());
        let mut checked = file();
        checked.determinism = Some(vec![DeterminismFinding {
            id: "sim.a".to_string(),
            seed: 2,
            first_hash: "1".repeat(16),
            second_hash: "2".repeat(16),
            first_difference: None,
        }]);
        let back = SweepFile::parse("a.json", &checked.to_json().unwrap()).unwrap();
        assert_eq!(back.file, checked);
    }

    #[test]
    fn the_legacy_bare_array_reads_as_one_unsharded_file() {
        let records = vec![record("b", 7), record("a", 3), record("a", 5)];
        let text = serde_json::to_string(&records).unwrap();
        let loaded = SweepFile::parse("old.json", &text).unwrap();
        assert!(loaded.legacy);
        assert_eq!(loaded.file.shard, Shard::WHOLE);
        assert_eq!((loaded.file.seed_start, loaded.file.seeds), (3, 5));
        assert_eq!(loaded.file.scenarios, vec!["a", "b"]);
        assert_eq!(loaded.file.records, records);
        let empty = SweepFile::parse("empty.json", "[]").unwrap();
        assert_eq!((empty.file.seeds, empty.file.records.len()), (0, 0));
    }

    #[test]
    fn bad_files_get_an_error_naming_the_file_and_the_problem() {
        let good = serde_json::to_value(file()).unwrap();
        let with = |key: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[key] = value;
            v.to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("   \n".to_string(), "empty"),
            ("hello".to_string(), "not JSON"),
            (
                "{\"schema\": \"chaos-sweep/1\"".to_string(),
                "not valid JSON",
            ),
            ("{}".to_string(), "no \"schema\" field"),
            (with("schema", "chaos-sweep/2".into()), "\"chaos-sweep/2\""),
            (with("schema", 1.into()), "schema 1"),
            (with("records", "nope".into()), "malformed chaos-sweep/1"),
            (with("seeds", (-1).into()), "malformed"),
            (
                with("shard", serde_json::json!({"index": 4, "count": 3})),
                "bad shard",
            ),
            (
                with("shard", serde_json::json!({"index": 0, "count": 3})),
                "bad shard",
            ),
            (with("seeds", 3.into()), "seed 4 is outside"),
            (with("jobs_total", 1.into()), "more than the sweep's 1 jobs"),
            ("[{\"id\": 3}]".to_string(), "legacy form"),
        ];
        for (text, why) in cases {
            let err = SweepFile::parse("dir/shard-2.json", &text).unwrap_err();
            let shown = err.to_string();
            assert!(shown.starts_with("dir/shard-2.json: "), "{shown}");
            assert!(shown.contains(why), "{text:?}: {shown}");
        }
    }
}
