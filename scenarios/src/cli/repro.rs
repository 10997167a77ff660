//! `chaos repro FILE|ID [--seed N]`: replays a failing run bit for bit, from a failure
//! record (the JSON of `chaos run --json`, or a sweep file, whose first failing run —
//! or the run with `--seed` — is taken), a shrunk record (`chaos shrink`'s
//! `chaos-shrunk/1`, replayed with its plan) or from an id and a seed. Prints the trace in
//! simulated time around the failure (the run's last events), says whether the replay
//! matches the record's trace hash, and exits with the failure's class: 3 crash,
//! 4 correctness, 5 liveness; 0 if the run passed.

use super::CliError;
use super::run::resolve;
use crate::runner::run_scenario_with_plan;
use crate::shrink::{ShrunkRecord, check_plan_fits};
use clap::Args;
use reports::RunRecord;
use reports::sweep_file::SweepFile;
use sim::faults::shrink::fault_count;
use sim::trace::format_sim_time;
use std::path::Path;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ReproArgs {
    /// A failure record or sweep file, or a scenario id.
    target: String,
    /// The seed (required with an id; with a sweep file, picks that run).
    #[arg(long, value_parser = super::seeds::parse_seed)]
    seed: Option<u64>,
    /// Trace events shown before the end of the run.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=200))]
    around: u64,
}

/// What a replay compares against: a run record, or a shrunk record (with its plan).
enum Recorded {
    Run(RunRecord),
    Shrunk(ShrunkRecord),
}

pub fn repro(args: ReproArgs) -> Result<ExitCode, CliError> {
    // Anything on disk by that name is a file to read (a directory gets a clear error
    // there), not an id.
    let (id, seed, recorded) = if Path::new(&args.target).exists() {
        let recorded = record_from_file(Path::new(&args.target), args.seed)?;
        let (id, seed) = match &recorded {
            Recorded::Run(r) => (r.id.clone(), r.seed),
            Recorded::Shrunk(r) => (r.id.clone(), r.seed),
        };
        (id, seed, Some(recorded))
    } else {
        let seed = args.seed.ok_or_else(|| {
            CliError::new(format!(
                "{:?} is not a file, so it is taken as a scenario id, which needs --seed N",
                args.target
            ))
            .hint(format!(
                "`chaos repro {} --seed N` replays seed N; give a file to replay a record",
                args.target
            ))
        })?;
        (args.target.clone(), seed, None)
    };
    let scenario = resolve(&id)?;
    let plan = match &recorded {
        Some(Recorded::Shrunk(r)) => {
            check_plan_fits(scenario, seed, &r.plan)
                .map_err(|e| CliError::new(format!("{}: {e}", args.target)))?;
            println!(
                "plan given to the run ({}, {}):",
                reports::readiness::plural(fault_count(&r.plan) as u64, "fault"),
                reports::readiness::plural(r.plan.actions.len() as u64, "action")
            );
            for line in r.plan.describe() {
                println!("  {line}");
            }
            println!();
            Some(r.plan.clone())
        }
        _ => None,
    };
    let result = run_scenario_with_plan(scenario, seed, plan);
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
    if let Some(recorded) = &recorded {
        let (hash, verdict, class) = match recorded {
            Recorded::Run(r) => (&r.trace_hash, r.verdict, r.failure_class),
            Recorded::Shrunk(r) => (&r.trace_hash, r.verdict, r.failure_class),
        };
        if *hash == record.trace_hash && verdict == record.verdict && class == record.failure_class
        {
            println!("replay: identical to the record (trace hash {hash})");
        } else {
            println!(
                "replay: DIFFERS from the record: trace hash {hash} then, {} now; verdict {} \
                 then, {} now (the code changed since, or the run is not deterministic)",
                record.trace_hash,
                verdict_name(verdict),
                verdict_name(record.verdict)
            );
        }
        // A record made by another build may replay differently for that reason alone.
        let here = super::provenance::current();
        if let Recorded::Run(r) = recorded
            && let Some(then) = r.provenance.as_ref().filter(|p| !p.same_build(&here))
        {
            println!(
                "note: recorded by {} ({}), replayed by {}",
                then.build(),
                then.date,
                here.build()
            );
        }
    }
    match (record.failure_class, &record.message) {
        (Some(class), message) => {
            println!(
                "verdict: FAIL ({class}): {}",
                message.as_deref().unwrap_or("")
            );
            match &recorded {
                // The run needs its plan: only the record replays it.
                Some(Recorded::Shrunk(_)) => println!(
                    "repro: cargo run --release -p scenarios --bin chaos -- repro {}",
                    args.target
                ),
                _ => println!("repro: {}", record.repro),
            }
            Ok(ExitCode::from(class.exit_code() as u8))
        }
        (None, _) => {
            println!("verdict: PASS (the run did not fail)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `pass` or `fail`, as records spell it.
fn verdict_name(verdict: reports::Verdict) -> &'static str {
    match verdict {
        reports::Verdict::Pass => "pass",
        reports::Verdict::Fail => "fail",
    }
}

/// The record to replay from `path`: a run record, a shrunk record, or a sweep file's
/// failing run.
fn record_from_file(path: &Path, seed: Option<u64>) -> Result<Recorded, CliError> {
    let text = super::files::read_text_named(path)?;
    let name = path.display().to_string();
    if ShrunkRecord::claims(&text) {
        let record = ShrunkRecord::parse(&name, &text).map_err(CliError::new)?;
        if let Some(s) = seed.filter(|s| *s != record.seed) {
            return Err(CliError::new(format!(
                "{name} is a run with seed {}, not {s}",
                record.seed
            ))
            .hint("drop --seed: a shrunk record replays its own seed and plan"));
        }
        return Ok(Recorded::Shrunk(record));
    }
    if let Ok(record) = serde_json::from_str::<RunRecord>(&text) {
        return Ok(Recorded::Run(record));
    }
    let sweep: SweepFile = reports::sweep_file::SweepFile::parse(&name, &text)
        .map_err(|e| {
            CliError::new(format!(
                "{name} is neither a run record (`chaos run --json`), a shrunk record \
                 (`chaos shrink`) nor a sweep file: {}",
                e.message
            ))
            .hint("give the file `chaos run --json`, `chaos shrink` or `chaos sweep -o` wrote")
        })?
        .file;
    let built_by = sweep.provenance;
    let pick = sweep
        .records
        .into_iter()
        .filter(|r| seed.is_none_or(|s| r.seed == s))
        .find(|r| !r.passed() || seed.is_some())
        // The file names the build once for all its records.
        .map(|r| reports::RunRecord {
            provenance: r.provenance.or(built_by),
            ..r
        });
    pick.map(Recorded::Run).ok_or_else(|| match seed {
        Some(s) => CliError::new(format!("{name} has no run with seed {s}")),
        None => CliError::new(format!("{name} has no failing run"))
            .hint("name a run with --seed N to replay a passing one"),
    })
}
