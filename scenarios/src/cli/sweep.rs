use super::CliError;
use super::output::{JSON_TO_STDOUT, JsonTargets, say};
use super::select::Filter;
use crate::registry;
use crate::runner::{Job, sweep as run_sweep};
use crate::scenario::Scenario;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reports::readiness::plural;
use reports::shard::Shard;
use reports::summary::{render_table, summarize};
use reports::sweep_file::{SWEEP_SCHEMA, SweepFile};
use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Which scenarios (default: every scenario).
    #[command(flatten)]
    filter: Filter,
    /// Seeds per scenario.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    seeds: u64,
    /// First seed; runs use seeds `seed_start .. seed_start + seeds`.
    #[arg(long, default_value_t = 1, value_parser = super::seeds::parse_seed)]
    seed_start: u64,
    /// Runs in parallel (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Print the sweep file (schema chaos-sweep/1: the sweep, the shard, one record per
    /// run) to stdout; the summary goes to stderr. (`--json FILE`, the older spelling of
    /// `--output FILE`, still works.)
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = JSON_TO_STDOUT)]
    json: Option<PathBuf>,
    /// Write the sweep file to FILE; `chaos report` reads and merges such files.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Run only shard I of N (1-based): every N-th job of the sweep ordered by (scenario,
    /// seed). The N shards are disjoint and together are the whole sweep.
    #[arg(long, value_name = "I/N", value_parser = Shard::parse)]
    shard: Option<Shard>,
    /// nextest's spelling of --shard: `count:I/N` is `--shard I/N`.
    #[arg(long, value_name = "count:I/N", value_parser = Shard::parse_partition,
          conflicts_with = "shard")]
    partition: Option<Shard>,
}

/// The jobs of shard `shard` of scenarios × seeds `seed_start..=last`, in (id, seed)
/// order (`reports::shard` says why that order and every N-th job).
pub fn shard_jobs(
    scenarios: &[&'static Scenario],
    seed_start: u64,
    last: u64,
    shard: Shard,
) -> Vec<Job> {
    let all: Vec<Job> = scenarios
        .iter()
        .flat_map(|s| (seed_start..=last).map(move |seed| Job { scenario: s, seed }))
        .collect();
    shard.select(all, |j| (j.scenario.id, j.seed))
}

pub fn sweep(args: SweepArgs) -> Result<ExitCode, CliError> {
    let stopwatch = super::elapsed::Stopwatch::start();
    let targets = JsonTargets::new(args.json.clone(), args.output.clone())?;
    let known: Vec<&'static str> = registry::all().iter().map(|s| s.id).collect();
    let taken = args.filter.select(&known, "scenario")?;
    let scenarios: Vec<&'static Scenario> = registry::all()
        .into_iter()
        .filter(|s| taken.contains(&s.id))
        .collect();
    let last = super::seeds::last_seed(args.seed_start, args.seeds)?;
    let shard = args.shard.or(args.partition).unwrap_or(Shard::WHOLE);
    let jobs = shard_jobs(&scenarios, args.seed_start, last, shard);
    // Same product as the job list before sharding; a u64 cannot overflow here because
    // `--seeds` is at most 1,000,000 and the registry is small.
    let jobs_total = scenarios.len() as u64 * args.seeds;
    let workers = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    let bar = if interactive {
        let bar = ProgressBar::new(jobs.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} runs  {msg}  eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let failures = std::sync::atomic::AtomicU64::new(0);
    let records = run_sweep(&jobs, workers, &|record| {
        if !record.passed() {
            let n = failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed"));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    if targets.stdout || targets.file.is_some() {
        let mut ids: Vec<String> = jobs.iter().map(|j| j.scenario.id.to_string()).collect();
        ids.sort();
        ids.dedup();
        let file = SweepFile {
            schema: SWEEP_SCHEMA.to_string(),
            shard,
            seed_start: args.seed_start,
            seeds: args.seeds,
            prefix: args.filter.prefix.clone(),
            filters: args.filter.names(),
            jobs_total,
            scenarios: ids,
            records: records.clone(),
            determinism: None,
            provenance: Some(super::provenance::current()),
            elapsed_ms: Some(stopwatch.elapsed_ms()),
        };
        let json = file.to_json().map_err(|e| CliError::new(e.to_string()))?;
        targets.write(&json)?;
    }
    let mut out = targets.human();
    let summaries = summarize(&records);
    let _ = write!(out, "{}", render_table(&summaries));
    let failed: Vec<_> = records.iter().filter(|r| !r.passed()).collect();
    let inert: Vec<_> = summaries.iter().filter(|s| s.inert()).collect();
    // A shard holds only some of a scenario's seeds: its faults may well fire in another
    // shard's runs, so inertness is judged on the merge (`chaos report`), not here.
    let inert_decides = shard.is_whole();
    for r in failed.iter().take(20) {
        say!(
            out,
            "FAIL {} seed {} ({}): {}\n  repro: {}",
            r.id,
            r.seed,
            r.failure_class.map_or("?", |c| c.name()),
            r.message.as_deref().unwrap_or(""),
            r.repro
        );
    }
    if failed.len() > 20 {
        say!(out, "… and {} more failures", failed.len() - 20);
    }
    // One annotation per failing scenario, at its first failing seed: GitHub shows a
    // handful per step, so one per run would hide the other scenarios.
    for (s, r) in summaries
        .iter()
        .filter_map(|s| Some((s, failed.iter().find(|r| r.id == s.id)?)))
    {
        super::github::annotate(
            &mut out,
            &r.id,
            &format!("chaos sweep: {} failed", r.id),
            &format!(
                "{} failed ({}); first at seed {}: {}",
                r.id,
                plural(s.failed, "run"),
                r.seed,
                r.message.as_deref().unwrap_or("")
            ),
            Some(&r.repro),
        );
    }
    for s in &inert {
        if inert_decides {
            super::github::annotate(
                &mut out,
                &s.id,
                &format!("chaos sweep: {} inert", s.id),
                &format!(
                    "none of {}'s own faults fired in {}: it tested nothing",
                    s.id,
                    plural(s.runs, "run")
                ),
                None,
            );
            say!(
                out,
                "INERT {}: none of its own faults fired in {}",
                s.id,
                plural(s.runs, "run")
            );
        } else {
            say!(
                out,
                "no own fault of {} fired in this shard's {} (judged over all shards by \
                 `chaos report`)",
                s.id,
                plural(s.runs, "run")
            );
        }
    }
    if let Some(path) = &targets.file {
        say!(out, "records: {}", path.display());
    }
    let of_shard = if shard.is_whole() {
        String::new()
    } else {
        format!(", shard {shard} of {jobs_total} jobs")
    };
    let inert_count = if inert_decides {
        format!("{} inert", plural(inert.len() as u64, "scenario"))
    } else {
        "inert scenarios are judged on the merged shards".to_string()
    };
    say!(
        out,
        "\n{} of {} (seeds {}..={last}{of_shard}), {inert_count}",
        plural(records.len() as u64, "run"),
        plural(summaries.len() as u64, "scenario"),
        args.seed_start,
    );
    say!(
        out,
        "verdict: regression (failing runs{}; coverage of the catalog is `chaos report`'s)",
        if inert_decides {
            ", inert scenarios"
        } else {
            ""
        }
    );
    // Last, in the plain form CI log readers understand.
    say!(
        out,
        "sweep: {} passed, {} failed",
        records.len() - failed.len(),
        failed.len()
    );
    Ok(
        if failed.is_empty() && (inert.is_empty() || !inert_decides) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn key(j: &Job) -> (&'static str, u64) {
        (j.scenario.id, j.seed)
    }

    #[test]
    fn shards_of_the_real_registry_are_disjoint_and_cover_the_sweep() {
        let scenarios = registry::select(None);
        let whole: Vec<_> = shard_jobs(&scenarios, 5, 11, Shard::WHOLE)
            .iter()
            .map(key)
            .collect();
        assert_eq!(whole.len(), scenarios.len() * 7);
        let whole_set: BTreeSet<_> = whole.iter().copied().collect();
        assert_eq!(whole_set.len(), whole.len(), "no job twice");
        for count in [2, 3, 7, 64] {
            let mut union = BTreeSet::new();
            for index in 1..=count {
                let shard = Shard::new(index, count).unwrap();
                for job in shard_jobs(&scenarios, 5, 11, shard) {
                    assert!(
                        union.insert(key(&job)),
                        "{:?} in two of {count} shards",
                        key(&job)
                    );
                }
            }
            assert_eq!(union, whole_set, "{count} shards");
        }
    }
}
