//! `chaos repro FILE|ID [--seed N]`: replays a failing run bit for bit, from a failure
//! record (the JSON of `chaos run --json`, or a sweep file, whose first failing run —
//! or the run with `--seed` — is taken) or from an id and a seed. Prints the trace in
//! simulated time around the failure (the run's last events), says whether the replay
//! matches the record's trace hash, and exits with the failure's class: 3 crash,
//! 4 correctness, 5 liveness; 0 if the run passed.

use super::CliError;
use super::run::resolve;
use crate::runner::run_scenario;
use clap::Args;
use reports::RunRecord;
use reports::sweep_file::SweepFile;
use sim::trace::format_sim_time;
use std::path::Path;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ReproArgs {
    /// A failure record or sweep file, or a scenario id.
    target: String,
    /// The seed (required with an id; with a sweep file, picks that run).
    #[arg(long)]
    seed: Option<u64>,
    /// Trace events shown before the end of the run.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=200))]
    around: u64,
}

pub fn repro(args: ReproArgs) -> Result<ExitCode, CliError> {
    let (id, seed, recorded) = if Path::new(&args.target).is_file() {
        let record = record_from_file(Path::new(&args.target), args.seed)?;
        (record.id.clone(), record.seed, Some(record))
    } else {
        let seed = args.seed.ok_or_else(|| {
            CliError::new(format!(
                "{:?} is not a file, so it is taken as a scenario id, which needs --seed N",
                args.target
            ))
        })?;
        (args.target.clone(), seed, None)
    };
    let scenario = resolve(&id)?;
    let result = run_scenario(scenario, seed);
    let record = &result.record;
    let trace = &result.trace;
    let shown = trace.tail.len().min(args.around as usize);
    println!(
        "trace of {id} seed {seed}: last {shown} of {} events (simulated time)",
        trace.events
    );
    for (number, event) in &trace.tail[trace.tail.len() - shown..] {
        println!("#{number:<7} {event}");
    }
    println!();
    println!(
        "sim time {}   events {}   trace hash {}",
        format_sim_time(record.sim_time_ns),
        record.events,
        record.trace_hash
    );
    if let Some(old) = &recorded {
        if old.trace_hash == record.trace_hash && old.verdict == record.verdict {
            println!(
                "replay: identical to the record (trace hash {})",
                old.trace_hash
            );
        } else {
            println!(
                "replay: DIFFERS from the record: trace hash {} then, {} now; verdict {:?} then, \
                 {:?} now (the code changed since, or the run is not deterministic)",
                old.trace_hash, record.trace_hash, old.verdict, record.verdict
            );
        }
    }
    match (record.failure_class, &record.message) {
        (Some(class), message) => {
            println!(
                "verdict: FAIL ({class}): {}",
                message.as_deref().unwrap_or("")
            );
            println!("repro: {}", record.repro);
            Ok(ExitCode::from(class.exit_code() as u8))
        }
        (None, _) => {
            println!("verdict: PASS (the run did not fail)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The record to replay from `path`: a run record, or a sweep file's failing run.
fn record_from_file(path: &Path, seed: Option<u64>) -> Result<RunRecord, CliError> {
    #[allow(
        clippy::disallowed_methods,
        reason = "the CLI reads the file the user named"
    )]
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
    if let Ok(record) = serde_json::from_str::<RunRecord>(&text) {
        return Ok(record);
    }
    let name = path.display().to_string();
    let sweep: SweepFile = reports::sweep_file::SweepFile::parse(&name, &text)
        .map_err(|e| {
            CliError::new(format!(
                "{name} is neither a run record (`chaos run --json`) nor a sweep file: {}",
                e.message
            ))
        })?
        .file;
    let pick = sweep
        .records
        .into_iter()
        .filter(|r| seed.is_none_or(|s| r.seed == s))
        .find(|r| !r.passed() || seed.is_some());
    pick.ok_or_else(|| match seed {
        Some(s) => CliError::new(format!("{name} has no run with seed {s}")),
        None => CliError::new(format!("{name} has no failing run"))
            .hint("name a run with --seed N to replay a passing one"),
    })
}
