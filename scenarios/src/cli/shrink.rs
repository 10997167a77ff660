//! `chaos shrink ID --seed N [--max-runs K] [--out FILE] [--plan FILE]`: reduces a
//! failing run to a minimal fault schedule that still fails the same oracle (same
//! failure class, same message up to its numbers), prints the original and the
//! minimal schedule, and saves the minimal run as a `chaos-shrunk/1` record that
//! `chaos repro FILE` replays. Exits with the failure's class (3 crash, 4 correctness,
//! 5 liveness); 2 when there is nothing to shrink (the run passes, or the scenario
//! declares no fault plan).

use super::CliError;
use super::files::{read_text_named, write_text};
use super::run::resolve;
use crate::shrink::{Refusal, ShrunkRecord, check_plan_fits, shrink_run};
use clap::Args;
use sim::FaultPlan;
use sim::faults::shrink::{Attempt, MAX_RUNS_DEFAULT, fault_count};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ShrinkArgs {
    /// Scenario id (one that declares a fault plan: see `chaos list --substrate`).
    id: String,
    /// The seed of the failing run.
    #[arg(long, value_parser = super::seeds::parse_seed)]
    seed: u64,
    /// At most this many runs for the whole shrink.
    #[arg(long, default_value_t = MAX_RUNS_DEFAULT as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_runs: u64,
    /// Where to save the minimal run (default `results/shrunk-ID-seedN.json`); `-o` and
    /// `--output`, as in the other commands, are the same.
    #[arg(long, short = 'o', visible_alias = "output", value_name = "FILE")]
    out: Option<PathBuf>,
    /// Start from this plan instead of the seed's own: a fault plan as JSON, or a
    /// `chaos-shrunk/1` record (its plan).
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
}

pub fn shrink(args: ShrinkArgs) -> Result<ExitCode, CliError> {
    let scenario = resolve(&args.id)?;
    if scenario.plan.is_none() {
        return Err(no_plan(scenario.id));
    }
    let given = match &args.plan {
        Some(path) => {
            let plan = plan_from_file(path, scenario.id)?;
            check_plan_fits(scenario, args.seed, &plan)
                .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
            Some(plan)
        }
        None => None,
    };
    let max_runs = args.max_runs as usize;
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "results/shrunk-{}-seed{}.json",
            scenario.id, args.seed
        ))
    });
    let mut progress = |attempt: &Attempt<'_>| {
        let width = attempt.max_runs.to_string().len();
        let verdict = if attempt.still_fails {
            format!("still fails → {}", count(attempt.faults, "fault"))
        } else {
            "does not fail the same way".to_string()
        };
        println!(
            "  [{:>width$}/{}] {}: {verdict}",
            attempt.run, attempt.max_runs, attempt.step
        );
    };
    let origin = if given.is_some() {
        "the given plan"
    } else {
        "its seed's plan"
    };
    println!(
        "running {} seed {} with {origin}, then shrinking it (at most {max_runs} runs)",
        scenario.id, args.seed
    );
    let run = match shrink_run(scenario, args.seed, given, max_runs, &mut progress) {
        Ok(run) => run,
        Err(Refusal::NoPlan) => return Err(no_plan(scenario.id)),
        Err(Refusal::Passes(result)) => {
            return Err(CliError::new(format!(
                "{} seed {} passes with {origin} (trace hash {}): there is no failure to shrink",
                scenario.id, args.seed, result.record.trace_hash
            ))
            .hint(format!(
                "find a failing seed first: `chaos sweep --prefix {}`",
                scenario.id
            )));
        }
        Err(Refusal::NotReproducible(why)) => {
            return Err(CliError::new(format!(
                "{} seed {}: {why}; the run is not deterministic",
                scenario.id, args.seed
            )));
        }
    };
    println!();
    println!(
        "original: FAIL ({}): {}",
        run.target.class,
        run.original.record.message.as_deref().unwrap_or("")
    );
    print_plan("original plan", &run.original_plan);
    println!(
        "same oracle: {} \"{}\" (digits normalized)",
        run.target.class, run.target.message
    );
    println!();
    let found = format!(
        "found in {}{}",
        reports::readiness::plural(run.shrunk.runs as u64, "run"),
        if run.shrunk.budget_exhausted {
            " (the budget ran out: a longer shrink may find a smaller plan)"
        } else {
            ""
        }
    );
    print_plan(&format!("minimal plan, {found}"), &run.shrunk.plan);
    let minimal = &run.minimal.record;
    println!(
        "minimal run: FAIL ({}): {}",
        run.target.class,
        minimal.message.as_deref().unwrap_or("")
    );
    println!("trace hash:  {}", minimal.trace_hash);
    let text = serde_json::to_string_pretty(&run.record)
        .map_err(|e| CliError::new(format!("cannot encode the record: {e}")))?;
    write_text(&out, &(text + "\n"))?;
    println!("saved:       {}", out.display());
    println!(
        "repro:       cargo run --release -p scenarios --bin chaos -- repro {}",
        out.display()
    );
    Ok(ExitCode::from(run.target.class.exit_code() as u8))
}

fn no_plan(id: &str) -> CliError {
    CliError::new(format!(
        "{id} declares no fault plan: it injects its faults imperatively, so shrink has \
         nothing to reduce (shrink applies to scenarios whose faults are a FaultPlan)"
    ))
    .hint("`chaos list --substrate` marks the scenarios that declare a plan with [plan]")
}

/// `title: K faults (A actions), swarm …`, then one line per action and the swarm.
fn print_plan(title: &str, plan: &FaultPlan) {
    println!(
        "{title}: {} ({}), {}",
        count(fault_count(plan), "fault"),
        count(plan.actions.len(), "action"),
        plan.swarm
    );
    for line in plan.describe() {
        println!("  {line}");
    }
}

/// `1 fault`, `3 faults`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A plan from `path`: a bare `FaultPlan` or a shrunk record of `id`.
fn plan_from_file(path: &Path, id: &str) -> Result<FaultPlan, CliError> {
    let name = path.display().to_string();
    let text = read_text_named(path)?;
    if ShrunkRecord::claims(&text) {
        let record = ShrunkRecord::parse(&name, &text).map_err(CliError::new)?;
        if record.id != id {
            return Err(CliError::new(format!(
                "{name} is a record of {}, not of {id}",
                record.id
            )));
        }
        return Ok(record.plan);
    }
    serde_json::from_str(&text).map_err(|e| {
        CliError::new(format!(
            "{name} is neither a fault plan nor a chaos-shrunk/1 record: {e}"
        ))
        .hint(r#"a plan looks like {"actions":[{"at_ms":500,"kind":"pause_host","host":"server"}],"swarm":{"rates":{}}}"#)
    })
}
