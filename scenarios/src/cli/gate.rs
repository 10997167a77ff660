//! `chaos gate`: the CI regression gate. A fixed sweep of every scenario (the seed range
//! lives in the committed baseline, so a red gate reproduces from its log alone),
//! judged against the baseline's expected statuses, plus a sample of runs re-run with
//! the same seed that must give the same trace. `--accept` writes a new baseline: the
//! only way the expectations change.

use super::CliError;
use super::files::{read_text, write_text};
use crate::catalog::{Catalog, Status};
use crate::registry;
use crate::runner::{Job, run_scenario, sweep as run_sweep};
use clap::Args;
use reports::gate::{Baseline, Finding, judge, sample_indices};
use reports::shard::Shard;
use reports::summary::{render_table, summarize};
use reports::sweep_file::{DeterminismFinding, SWEEP_SCHEMA, SweepFile};
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the baseline lives unless `--baseline` says otherwise.
const BASELINE_DEFAULT: &str = "ci/gate-baseline.json";

#[derive(Args, Debug)]
pub struct GateArgs {
    /// The committed baseline (expected statuses and the fixed seed range).
    #[arg(long, value_name = "FILE", default_value = BASELINE_DEFAULT)]
    baseline: PathBuf,
    /// Run the sweep and write its statuses as the new baseline, instead of judging.
    #[arg(long)]
    accept: bool,
    /// With --accept: seeds per scenario of the fixed sweep (default: the old
    /// baseline's, else 10).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    seeds: Option<u64>,
    /// With --accept: runs re-run to check determinism (default: the old baseline's,
    /// else 25).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    determinism_sample: Option<u64>,
    /// Runs in parallel (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Also write the sweep file, determinism findings included, for `chaos report`.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Judge these sweep files (the shards of the fixed sweep, run elsewhere with
    /// `chaos sweep --shard I/N --seed-start S --seeds N --json FILE`) instead of running
    /// the sweep here. The determinism sample is still re-run here.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "accept")]
    from: Vec<PathBuf>,
    /// Only scenarios (and baseline and catalog entries) whose id starts with this.
    #[arg(long)]
    prefix: Option<String>,
}

pub fn gate(args: GateArgs) -> Result<ExitCode, CliError> {
    let stopwatch = super::elapsed::Stopwatch::start();
    let old = match read_text(&args.baseline) {
        Ok(text) => Some(Baseline::parse(&text).map_err(|e| {
            CliError::new(format!("{}: {e}", args.baseline.display()))
                .hint("fix the file, or write a new one with `chaos gate --accept`")
        })?),
        Err(e) if args.accept && e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(
                CliError::new(format!("cannot read {}: {e}", args.baseline.display()))
                    .hint("`chaos gate --accept` writes a baseline from the current scenarios"),
            );
        }
    };
    let (seed_start, seeds, sample) = match (&old, args.accept) {
        (Some(b), false) => (b.seed_start, b.seeds, b.determinism_sample),
        (old, _) => (
            old.as_ref().map_or(1, |b| b.seed_start),
            args.seeds.or(old.as_ref().map(|b| b.seeds)).unwrap_or(10),
            args.determinism_sample
                .or(old.as_ref().map(|b| b.determinism_sample))
                .unwrap_or(25),
        ),
    };
    let last = seed_start + (seeds - 1);
    let prefix = args.prefix.as_deref().unwrap_or("");
    let scenarios = registry::select(Some(prefix));
    if scenarios.is_empty() {
        return Err(CliError::new(format!(
            "no scenario id starts with {prefix:?}"
        )));
    }
    let jobs: Vec<Job> = super::sweep::shard_jobs(&scenarios, seed_start, last, Shard::WHOLE);
    let workers = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!(
        "gate: {} scenarios × seeds {seed_start}..={last} ({} runs), {} re-run for determinism",
        scenarios.len(),
        jobs.len(),
        (sample as usize).min(jobs.len())
    );
    let records = if args.from.is_empty() {
        run_sweep(&jobs, workers, &|_| {})
    } else {
        from_files(&args.from, &jobs)?
    };
    let picks: Vec<Job> = sample_indices(jobs.len(), sample as usize)
        .into_iter()
        .map(|i| jobs[i])
        .collect();
    let reruns = run_sweep(&picks, workers, &|_| {});
    let determinism: Vec<DeterminismFinding> = picks
        .iter()
        .zip(&reruns)
        .filter_map(|(job, again)| {
            let first = records
                .iter()
                .find(|r| r.id == job.scenario.id && r.seed == job.seed)?;
            (first.trace_hash != again.trace_hash).then(|| DeterminismFinding {
                id: first.id.clone(),
                seed: first.seed,
                first_hash: first.trace_hash.clone(),
                second_hash: again.trace_hash.clone(),
                first_difference: first_difference(*job),
            })
        })
        .collect();
    print!("{}", render_table(&summarize(&records)));
    if let Some(path) = &args.json {
        let mut ids: Vec<String> = scenarios.iter().map(|s| s.id.to_string()).collect();
        ids.sort();
        let file = SweepFile {
            schema: SWEEP_SCHEMA.to_string(),
            shard: Shard::WHOLE,
            seed_start,
            seeds,
            prefix: None,
            jobs_total: jobs.len() as u64,
            scenarios: ids,
            records: records.clone(),
            determinism: Some(determinism.clone()),
            elapsed_ms: args.from.is_empty().then(|| stopwatch.elapsed_ms()),
        };
        let json = file.to_json().map_err(|e| CliError::new(e.to_string()))?;
        write_text(path, &(json + "\n"))?;
        println!("sweep file: {}", path.display());
    }
    if args.accept {
        if !prefix.is_empty() {
            return Err(CliError::new(
                "--accept writes the whole baseline: run it without --prefix",
            ));
        }
        let new = Baseline::accept(&records, seed_start, seeds, sample);
        write_text(&args.baseline, &new.to_json())?;
        println!(
            "gate: baseline written to {} ({} scenarios)",
            args.baseline.display(),
            new.scenarios.len()
        );
        for d in &determinism {
            println!("warning: {} seed {} is not deterministic", d.id, d.seed);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut baseline = old.ok_or_else(|| CliError::new("no baseline"))?;
    baseline.scenarios.retain(|id, _| id.starts_with(prefix));
    let implemented: Vec<String> = Catalog::embedded()
        .entries
        .iter()
        .filter(|e| e.status == Status::Implemented && e.id.starts_with(prefix))
        .map(|e| e.id.clone())
        .collect();
    let outcome = judge(&baseline, &records, &implemented, &determinism);
    for note in &outcome.notes {
        println!("note: {note}");
    }
    #[allow(
        clippy::disallowed_methods,
        reason = "the CI system tells the CLI how to annotate, as the issue asks"
    )]
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    for finding in &outcome.findings {
        print_finding(finding, github);
    }
    if outcome.passed() {
        println!("gate: passed ({} runs)", records.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("gate: FAILED, {} findings", outcome.findings.len());
        Ok(ExitCode::from(1))
    }
}

fn print_finding(finding: &Finding, github: bool) {
    if github {
        // GitHub Actions turns this into an annotation; newlines must be escaped.
        let message = finding
            .to_string()
            .replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        println!(
            "::error title=chaos gate: {} {}::{message}",
            finding.kind.name(),
            finding.id
        );
    }
    println!("FAIL {finding}");
    if let Some(repro) = &finding.repro {
        println!("  repro: {repro}");
    }
}

/// The records of the fixed sweep from shard files run elsewhere: they must be exactly
/// the jobs of the fixed sweep (every shard present, nothing else).
fn from_files(files: &[PathBuf], jobs: &[Job]) -> Result<Vec<reports::RunRecord>, CliError> {
    let merged = super::report::load_merged(files)?;
    if !merged.missing.is_empty() {
        return Err(CliError::new(format!(
            "the sweep files lack {} shard(s); the gate judges the whole fixed sweep",
            merged.missing.len()
        )));
    }
    let want: Vec<(&str, u64)> = jobs.iter().map(|j| (j.scenario.id, j.seed)).collect();
    let mut got: Vec<(&str, u64)> = merged
        .records
        .iter()
        .map(|r| (r.id.as_str(), r.seed))
        .collect();
    got.sort_unstable();
    let mut want_sorted = want.clone();
    want_sorted.sort_unstable();
    if got != want_sorted {
        let extra = got.iter().filter(|j| !want_sorted.contains(j)).count();
        let lacking = want_sorted.iter().filter(|j| !got.contains(j)).count();
        return Err(CliError::new(format!(
            "the sweep files are not the baseline's fixed sweep: {lacking} runs missing, \
             {extra} runs not in it"
        ))
        .hint("run the shards with the baseline's --seed-start and --seeds, and no --prefix"));
    }
    Ok(merged.records)
}

/// Runs `job` twice more, keeping the traces, and names the first event that differs.
fn first_difference(job: Job) -> Option<String> {
    let a = run_scenario(job.scenario, job.seed).trace;
    let b = run_scenario(job.scenario, job.seed).trace;
    let at = a.lines.iter().zip(&b.lines).position(|(x, y)| x != y);
    match at {
        Some(i) => Some(format!(
            "event {}: {:?} vs {:?}",
            i + 1,
            a.lines[i].to_string(),
            b.lines[i].to_string()
        )),
        None if a.lines.len() != b.lines.len() => Some(format!(
            "event {}: one trace ends there",
            a.lines.len().min(b.lines.len()) + 1
        )),
        None => None,
    }
}
