//! `chaos gate`: the CI regression gate. A fixed sweep of every scenario (the seed range
//! lives in the committed baseline, so a red gate reproduces from its log alone),
//! judged against the baseline's expected statuses, plus a sample of runs re-run with
//! the same seed that must give the same trace. `--accept` writes a new baseline: the
//! only way the expectations change.

mod accept;

use super::CliError;
use super::files::read_text;
use super::output::{JSON_TO_STDOUT, JsonTargets, say};
use super::select::Filter;
use crate::catalog::{Catalog, Status};
use crate::registry;
use crate::runner::{Job, run_scenario, sweep as run_sweep};
use crate::scenario::Scenario;
use clap::Args;
use reports::gate::{Baseline, Finding, judge, sample_indices};
use reports::readiness::plural;
use reports::shard::Shard;
use reports::summary::{render_table, summarize};
use reports::sweep_file::{DeterminismFinding, SWEEP_SCHEMA, SweepFile};
use std::io::Write;
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
    /// Prints what changes against the old baseline, and refuses to record a scenario
    /// that now fails unless it is named with --accept-failure.
    #[arg(long)]
    accept: bool,
    /// With --accept: record this failing scenario as a known failure (repeatable; each
    /// needs a --reason, kept in the baseline and printed by later gates).
    #[arg(long, value_name = "ID", requires = "accept")]
    accept_failure: Vec<String>,
    /// Why the failure named by --accept-failure is accepted: one per --accept-failure,
    /// in the same order, or one for all of them.
    #[arg(long, value_name = "TEXT", requires = "accept_failure")]
    reason: Vec<String>,
    /// With --accept: first seed of the fixed sweep (default: the old baseline's, else 1).
    #[arg(long, requires = "accept", value_parser = super::seeds::parse_seed)]
    seed_start: Option<u64>,
    /// With --accept: seeds per scenario of the fixed sweep (default: the old
    /// baseline's, else 10).
    #[arg(long, requires = "accept", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    seeds: Option<u64>,
    /// With --accept: runs re-run to check determinism (default: the old baseline's,
    /// else 25).
    #[arg(long, requires = "accept", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    determinism_sample: Option<u64>,
    /// Runs in parallel (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Print the sweep file, determinism findings included, to stdout (the verdict goes
    /// to stderr). (`--json FILE`, the older spelling of `--output FILE`, still works.)
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = JSON_TO_STDOUT)]
    json: Option<PathBuf>,
    /// Write the sweep file, determinism findings included, to FILE for `chaos report`.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Judge these sweep files (the shards of the fixed sweep, run elsewhere with
    /// `chaos sweep --shard I/N --seed-start S --seeds N --output FILE`) instead of
    /// running the sweep here. The determinism sample is still re-run here.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    from: Vec<PathBuf>,
    /// Judge only these scenarios (and baseline and catalog entries).
    #[command(flatten)]
    filter: Filter,
}

pub fn gate(args: GateArgs) -> Result<ExitCode, CliError> {
    // Every check of the options comes before the sweep, which can take minutes.
    let accepted = accept::accepted_failures(&args)?;
    let known: Vec<&'static str> = registry::all().iter().map(|s| s.id).collect();
    let taken = args.filter.select(&known, "scenario")?;
    let targets = JsonTargets::new(args.json.clone(), args.output.clone())?;
    let stopwatch = super::elapsed::Stopwatch::start();
    let old = match read_text(&args.baseline) {
        Ok(text) => Some(Baseline::parse(&text).map_err(|e| {
            CliError::new(format!("{}: {e}", args.baseline.display()))
                .hint("fix the file, or write a new one with `chaos gate --accept`")
        })?),
        Err(e) if args.accept && e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(
                CliError::new(format!("cannot read {}: {e}", args.baseline.display()))
                    .hint("`chaos gate --accept` writes a baseline from the current scenarios"),
            );
        }
        // A directory, a binary file: the shared reader says what is wrong.
        Err(e) => {
            return Err(super::files::read_text_named(&args.baseline)
                .err()
                .unwrap_or_else(|| {
                    CliError::new(format!("cannot read {}: {e}", args.baseline.display()))
                }));
        }
    };
    let (seed_start, seeds, sample) = match (&old, args.accept) {
        (Some(b), false) => (b.seed_start, b.seeds, b.determinism_sample),
        (old, _) => (
            args.seed_start
                .or(old.as_ref().map(|b| b.seed_start))
                .unwrap_or(1),
            args.seeds.or(old.as_ref().map(|b| b.seeds)).unwrap_or(10),
            args.determinism_sample
                .or(old.as_ref().map(|b| b.determinism_sample))
                .unwrap_or(25),
        ),
    };
    let last = super::seeds::last_seed(seed_start, seeds)?;
    let scenarios: Vec<&'static Scenario> = registry::all()
        .into_iter()
        .filter(|s| taken.contains(&s.id))
        .collect();
    let jobs: Vec<Job> = super::sweep::shard_jobs(&scenarios, seed_start, last, Shard::WHOLE);
    let workers = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut out = targets.human();
    say!(
        out,
        "gate: {} × seeds {seed_start}..={last} ({}), {} re-run for determinism",
        plural(scenarios.len() as u64, "scenario"),
        plural(jobs.len() as u64, "run"),
        (sample as usize).min(jobs.len())
    );
    say!(out, "build: {}", super::provenance::current());
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
    let _ = write!(out, "{}", render_table(&summarize(&records)));
    if targets.stdout || targets.file.is_some() {
        let mut ids: Vec<String> = scenarios.iter().map(|s| s.id.to_string()).collect();
        ids.sort();
        let file = SweepFile {
            schema: SWEEP_SCHEMA.to_string(),
            shard: Shard::WHOLE,
            seed_start,
            seeds,
            prefix: args.filter.prefix.clone(),
            filters: args.filter.names(),
            jobs_total: jobs.len() as u64,
            scenarios: ids,
            records: records.clone(),
            determinism: Some(determinism.clone()),
            provenance: Some(super::provenance::current()),
            elapsed_ms: args.from.is_empty().then(|| stopwatch.elapsed_ms()),
        };
        let json = file.to_json().map_err(|e| CliError::new(e.to_string()))?;
        targets.write(&json)?;
        if let Some(path) = &targets.file {
            say!(out, "sweep file: {}", path.display());
        }
    }
    if args.accept {
        let mut new = Baseline::accept(&records, seed_start, seeds, sample);
        new.provenance = Some(super::provenance::current());
        return accept::accept(
            &mut out,
            &args,
            old.as_ref(),
            new,
            &accepted,
            &records,
            &determinism,
        );
    }
    let mut baseline = old.ok_or_else(|| CliError::new("no baseline"))?;
    baseline.scenarios.retain(|id, _| args.filter.matches(id));
    let implemented: Vec<String> = Catalog::embedded()
        .entries
        .iter()
        .filter(|e| e.status == Status::Implemented && args.filter.matches(&e.id))
        .map(|e| e.id.clone())
        .collect();
    let outcome = judge(&baseline, &records, &implemented, &determinism);
    for note in &outcome.notes {
        say!(out, "note: {note}");
    }
    for finding in &outcome.findings {
        print_finding(&mut out, finding);
    }
    say!(
        out,
        "verdict: regression, against {} (coverage of the catalog is `chaos report`'s)",
        args.baseline.display()
    );
    if outcome.passed() {
        say!(
            out,
            "gate: passed ({})",
            plural(records.len() as u64, "run")
        );
        Ok(ExitCode::SUCCESS)
    } else {
        say!(
            out,
            "gate: FAILED, {}",
            plural(outcome.findings.len() as u64, "finding")
        );
        Ok(ExitCode::from(1))
    }
}

fn print_finding(out: &mut dyn Write, finding: &Finding) {
    super::github::annotate(
        out,
        &finding.id,
        &format!("chaos gate: {} {}", finding.kind.name(), finding.id),
        &finding.to_string(),
        finding.repro.as_deref(),
    );
    say!(out, "FAIL {finding}");
    if let Some(repro) = &finding.repro {
        say!(out, "  repro: {repro}");
    }
}

/// The records of the fixed sweep from shard files run elsewhere: they must be exactly
/// the jobs of the fixed sweep (every shard present, nothing else).
fn from_files(files: &[PathBuf], jobs: &[Job]) -> Result<Vec<reports::RunRecord>, CliError> {
    let merged = super::report::load_merged(files)?;
    if !merged.missing.is_empty() {
        return Err(CliError::new(format!(
            "the sweep files lack {}; the gate judges the whole fixed sweep",
            plural(merged.missing.len() as u64, "shard")
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
    // The determinism re-runs compare the files' traces with this build's.
    let here = super::provenance::current();
    if let Some(theirs) = merged.provenance.as_ref().filter(|p| !p.same_build(&here)) {
        return Err(CliError::new(format!(
            "the sweep files come from another build ({}) than this gate ({})",
            theirs.build(),
            here.build()
        ))
        .hint("run the shards and the gate with one build (one commit, a clean checkout)"));
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
