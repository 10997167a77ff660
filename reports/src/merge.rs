//! Merging any set of sweep files into one set of runs.
//!
//! Files are grouped by the sweep they belong to (prefix, seed range, shard count). In a
//! group, a shard index that no file holds is reported missing: the merge still happens,
//! but the result is **partial** and a readiness report built from it is not ready. A
//! run (id, seed) held by two files, or a shard given twice, is an error rather than a
//! silent double count: the totals of a merge must equal those of one unsharded sweep.
//! Files of two different builds (commit, dirty flag or version differ: see
//! [`Provenance::same_build`]) are refused: their runs judge different code. Files
//! written before provenance was kept merge with any build.

use crate::provenance::Provenance;
use crate::record::RunRecord;
use crate::shard::Shard;
use crate::sweep_file::{DeterminismFinding, LoadedSweep};
use std::collections::BTreeMap;
use std::fmt;

/// The runs of a set of sweep files, in (id, seed) order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The files merged, in the order given.
    pub inputs: Vec<InputFile>,
    pub records: Vec<RunRecord>,
    /// `None` when no file recorded a determinism check.
    pub determinism: Option<Vec<DeterminismFinding>>,
    /// Shards of a sweep that no input holds.
    pub missing: Vec<MissingShard>,
    /// The build that ran the merged files (the first input's that says; they all
    /// agree); `None` when no input records one.
    pub provenance: Option<Provenance>,
}

impl Merged {
    /// Some shard of some sweep is missing: the runs that would decide it are not here.
    pub fn partial(&self) -> bool {
        !self.missing.is_empty()
    }
}

/// One merged file, as the report lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputFile {
    pub name: String,
    pub shard: Shard,
    pub legacy: bool,
    pub runs: u64,
    /// The sweep it belongs to, in words (see [`SweepKey::describe`]).
    pub sweep: String,
}

/// A shard no input holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingShard {
    /// The sweep it belongs to, in words.
    pub sweep: String,
    pub shard: Shard,
}

/// Why files could not be merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeError {
    pub message: String,
    /// What to do about it, when the merge knows better than a generic hint.
    pub hint: Option<String>,
}

impl MergeError {
    fn new(message: String) -> MergeError {
        MergeError {
            message,
            hint: None,
        }
    }
}

impl fmt::Display for MergeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MergeError {}

/// What identifies one sweep among shard files.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SweepKey {
    prefix: Option<String>,
    filters: Vec<String>,
    seed_start: u64,
    seeds: u64,
    count: u64,
}

impl SweepKey {
    fn describe(&self) -> String {
        let mut scenarios = match &self.prefix {
            Some(p) => format!("scenarios {p}*"),
            None => "all scenarios".to_string(),
        };
        if !self.filters.is_empty() {
            scenarios = format!("{scenarios} matching {}", self.filters.join(", "));
        }
        let seeds = if self.seeds == 0 {
            "no seeds".to_string()
        } else {
            format!(
                "seeds {}..={}",
                self.seed_start,
                self.seed_start.saturating_add(self.seeds - 1)
            )
        };
        let shards = if self.count == 1 {
            "unsharded".to_string()
        } else {
            format!("{} shards", self.count)
        };
        format!("sweep of {scenarios}, {seeds}, {shards}")
    }
}

/// Merges `files` (at least one).
pub fn merge(files: Vec<LoadedSweep>) -> Result<Merged, MergeError> {
    if files.is_empty() {
        return Err(MergeError::new("no sweep files to merge".to_string()));
    }
    // Sweep → shard index → (file name, jobs_total).
    let mut groups: BTreeMap<SweepKey, BTreeMap<u64, (String, u64)>> = BTreeMap::new();
    let mut inputs = Vec::new();
    let mut owner: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut records = Vec::new();
    let mut findings: Option<Vec<DeterminismFinding>> = None;
    // The first input that names its build, and that build.
    let mut build: Option<(String, Provenance)> = None;
    for loaded in files {
        let file = loaded.file;
        if let Some(mine) = &file.provenance {
            match &build {
                Some((first, theirs)) if !theirs.same_build(mine) => {
                    return Err(MergeError {
                        message: format!(
                            "{first} and {} come from two different builds ({} against {}): \
                             their runs judge different code",
                            loaded.name,
                            theirs.build(),
                            mine.build()
                        ),
                        hint: Some(
                            "run every shard with one build (one commit, a clean checkout), \
                             or report each build's files separately"
                                .to_string(),
                        ),
                    });
                }
                Some(_) => {}
                None => build = Some((loaded.name.clone(), mine.clone())),
            }
        }
        let key = SweepKey {
            prefix: file.prefix.clone(),
            filters: file.filters.clone(),
            seed_start: file.seed_start,
            seeds: file.seeds,
            count: file.shard.count,
        };
        let sweep = if loaded.legacy {
            "legacy sweep file (a bare list of runs)".to_string()
        } else {
            key.describe()
        };
        if !loaded.legacy {
            let shards = groups.entry(key).or_default();
            if let Some((first, total)) =
                shards.values().find(|(_, total)| *total != file.jobs_total)
            {
                return Err(MergeError::new(format!(
                    "{} and {first} are shards of one {sweep} but disagree on its size \
                         ({} jobs against {total}): were they built from different scenario sets?",
                    loaded.name, file.jobs_total
                )));
            }
            if let Some((first, _)) = shards.get(&file.shard.index) {
                return Err(MergeError::new(format!(
                    "shard {} of the {sweep} is given twice: {first} and {}",
                    file.shard, loaded.name
                )));
            }
            shards.insert(file.shard.index, (loaded.name.clone(), file.jobs_total));
        }
        inputs.push(InputFile {
            name: loaded.name.clone(),
            shard: file.shard,
            legacy: loaded.legacy,
            runs: file.records.len() as u64,
            sweep,
        });
        for record in file.records {
            let run = (record.id.clone(), record.seed);
            if let Some(first) = owner.insert(run.clone(), loaded.name.clone()) {
                let place = if first == loaded.name {
                    format!("twice in {first}")
                } else {
                    format!("in both {first} and {}", loaded.name)
                };
                return Err(MergeError::new(format!(
                    "run {} seed {} appears {place}: overlapping files would count it twice",
                    run.0, run.1
                )));
            }
            records.push(record);
        }
        if let Some(found) = file.determinism {
            findings.get_or_insert_with(Vec::new).extend(found);
        }
    }
    records.sort_by(|a, b| (&a.id, a.seed).cmp(&(&b.id, b.seed)));
    if let Some(f) = findings.as_mut() {
        f.sort();
        f.dedup();
    }
    let missing = groups
        .iter()
        .flat_map(|(key, shards)| {
            (1..=key.count)
                .filter(|i| !shards.contains_key(i))
                .map(|index| MissingShard {
                    sweep: key.describe(),
                    shard: Shard {
                        index,
                        count: key.count,
                    },
                })
        })
        .collect();
    Ok(Merged {
        inputs,
        records,
        determinism: findings,
        missing,
        provenance: build.map(|(_, p)| p),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Verdict;
    use crate::sweep_file::{SWEEP_SCHEMA, SweepFile};

    fn record(id: &str, seed: u64) -> RunRecord {
        RunRecord {
            id: id.to_string(),
            seed,
            verdict: Verdict::Pass,
            failure_class: None,
            message: None,
            trace_hash: "0".repeat(16),
            sim_time_ns: 1,
            events: 1,
            faults: BTreeMap::new(),
            swarm_faults: Default::default(),
            faults_expected: vec![],
            faults_expected_fired: false,
            wall_ms: 1,
            repro: String::new(),
            plan_digest: None,
            provenance: None,
        }
    }

    /// Shard `index` of `count` of a sweep of ids × seeds 1..=seeds.
    fn shard(name: &str, index: u64, count: u64, ids: &[&str], seeds: u64) -> LoadedSweep {
        let jobs: Vec<(String, u64)> = ids
            .iter()
            .flat_map(|id| (1..=seeds).map(move |s| (id.to_string(), s)))
            .collect();
        let jobs_total = jobs.len() as u64;
        let shard = Shard::new(index, count).unwrap();
        let mine = shard.select(jobs, |j| j.clone());
        let mut scenarios: Vec<String> = mine.iter().map(|(id, _)| id.clone()).collect();
        scenarios.dedup();
        LoadedSweep {
            name: name.to_string(),
            legacy: false,
            file: SweepFile {
                schema: SWEEP_SCHEMA.to_string(),
                shard,
                seed_start: 1,
                seeds,
                prefix: None,
                filters: Vec::new(),
                jobs_total,
                scenarios,
                records: mine.iter().map(|(id, s)| record(id, *s)).collect(),
                determinism: None,
                provenance: None,
                elapsed_ms: None,
            },
        }
    }

    #[test]
    fn all_shards_merge_to_the_unsharded_runs_whatever_the_file_order() {
        let whole = merge(vec![shard("w", 1, 1, &["b", "a"], 5)]).unwrap();
        let parts = merge(vec![
            shard("3", 3, 3, &["b", "a"], 5),
            shard("1", 1, 3, &["b", "a"], 5),
            shard("2", 2, 3, &["b", "a"], 5),
        ])
        .unwrap();
        assert_eq!(parts.records, whole.records);
        assert_eq!(parts.records.len(), 10);
        assert!(!parts.partial() && !whole.partial());
        assert_eq!(parts.inputs[0].name, "3", "inputs keep the order given");
        assert_eq!(
            parts.inputs[0].sweep,
            "sweep of all scenarios, seeds 1..=5, 3 shards"
        );
        assert_eq!(parts.determinism, None);
    }

    #[test]
    fn missing_shards_are_named_and_the_merge_is_partial() {
        let merged = merge(vec![
            shard("s1", 1, 4, &["a"], 8),
            shard("s3", 3, 4, &["a"], 8),
        ])
        .unwrap();
        assert!(merged.partial());
        let missing: Vec<String> = merged.missing.iter().map(|m| m.shard.to_string()).collect();
        assert_eq!(missing, vec!["2/4", "4/4"]);
        assert_eq!(merged.records.len(), 4, "what was given is still merged");
    }

    #[test]
    fn overlapping_files_are_refused_with_both_names() {
        let err = merge(vec![
            shard("one.json", 1, 1, &["a"], 3),
            shard("two.json", 1, 2, &["a"], 3),
        ])
        .unwrap_err();
        assert!(
            err.message
                .contains("run a seed 1 appears in both one.json and two.json"),
            "{err}"
        );
        let mut twice = shard("dup.json", 1, 1, &["a"], 2);
        twice.file.records.push(record("a", 1));
        twice.file.jobs_total = 3;
        let err = merge(vec![twice]).unwrap_err();
        assert!(err.message.contains("twice in dup.json"), "{err}");
        let err = merge(vec![
            shard("x.json", 2, 3, &["a"], 1),
            shard("y.json", 2, 3, &["a"], 1),
        ])
        .unwrap_err();
        assert!(err.message.contains("shard 2/3"), "{err}");
        assert!(err.message.contains("x.json and y.json"), "{err}");
    }

    #[test]
    fn shards_of_two_builds_are_refused_naming_both() {
        use crate::provenance::sample;
        let built = |name, index, commit, dirty| {
            let mut s = shard(name, index, 2, &["a"], 4);
            s.file.provenance = Some(sample(commit, dirty));
            s
        };
        // One build on two hosts merges, and the merge says which build it was.
        let mut other_host = built("2.json", 2, "abc", false);
        other_host.file.provenance.as_mut().unwrap().host = "elsewhere".to_string();
        let merged = merge(vec![built("1.json", 1, "abc", false), other_host]).unwrap();
        assert_eq!(merged.provenance.unwrap().commit, "abc");
        // An old file without provenance merges with any build.
        let merged = merge(vec![
            shard("old.json", 1, 2, &["a"], 4),
            built("2.json", 2, "abc", false),
        ]);
        assert!(merged.is_ok());
        for (commit, dirty, why) in [("def", false, "commit def"), ("abc", true, "(dirty)")] {
            let err = merge(vec![
                built("1.json", 1, "abc", false),
                built("2.json", 2, commit, dirty),
            ])
            .unwrap_err();
            assert!(
                err.message
                    .contains("1.json and 2.json come from two different builds"),
                "{err}"
            );
            assert!(
                err.message.contains("commit abc, version 0.1.0 against"),
                "{err}"
            );
            assert!(err.message.contains(why), "{err}");
            assert!(err.hint.as_deref().unwrap().contains("one build"));
        }
        let mut newer = built("2.json", 2, "abc", false);
        newer.file.provenance.as_mut().unwrap().version = "0.2.0".to_string();
        let err = merge(vec![built("1.json", 1, "abc", false), newer]).unwrap_err();
        assert!(err.message.contains("version 0.2.0"), "{err}");
    }

    #[test]
    fn shards_of_different_sizes_are_refused() {
        let err = merge(vec![
            shard("old.json", 1, 2, &["a"], 4),
            shard("new.json", 2, 2, &["a", "b"], 4),
        ])
        .unwrap_err();
        assert!(err.message.contains("disagree on its size"), "{err}");
        assert!(err.message.contains("(8 jobs against 4)"), "{err}");
    }

    #[test]
    fn separate_sweeps_are_tracked_separately_and_findings_are_joined() {
        let mut a = shard("a.json", 1, 2, &["a"], 2);
        a.file.prefix = Some("a".to_string());
        a.file.determinism = Some(vec![]);
        let mut b = shard("b.json", 1, 1, &["b"], 2);
        b.file.prefix = Some("b".to_string());
        let finding = DeterminismFinding {
            id: "b".to_string(),
            seed: 1,
            first_hash: "1".to_string(),
            second_hash: "2".to_string(),
            first_difference: Some("event 4".to_string()),
        };
        b.file.determinism = Some(vec![finding.clone()]);
        let merged = merge(vec![a, b]).unwrap();
        assert_eq!(merged.missing.len(), 1);
        assert_eq!(merged.missing[0].shard.to_string(), "2/2");
        assert!(
            merged.missing[0].sweep.contains("scenarios a*"),
            "{:?}",
            merged.missing
        );
        assert_eq!(merged.determinism, Some(vec![finding]));
        assert!(
            merge(vec![])
                .unwrap_err()
                .message
                .contains("no sweep files")
        );
    }
}
