use super::CliError;
use crate::catalog::Catalog;
use crate::registry;
use crate::runner::run_scenario_with_plan;
use crate::scenario::Scenario;
use clap::Args;
use sim::trace::format_sim_time;
use std::io::Write as _;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario id (see `chaos list --status implemented` and `chaos list --substrate`).
    id: String,
    /// The run seed (any unsigned 64-bit integer).
    #[arg(long, value_parser = super::seeds::parse_seed)]
    seed: u64,
    /// Print the trace in simulated time.
    #[arg(long)]
    trace: bool,
    /// Print the run record as JSON instead of text (with --trace, the trace is in it,
    /// as the `trace` array).
    #[arg(long)]
    json: bool,
    /// Also write the run record as JSON to FILE (with --trace, the trace is in it).
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<std::path::PathBuf>,
    /// Also write the trace as JSON lines to this file.
    #[arg(long, value_name = "FILE")]
    trace_jsonl: Option<std::path::PathBuf>,
    /// Run the scenario's reality check instead: this machine, real time, the real
    /// worker binary as a child process (only for scenarios that have one).
    #[arg(long)]
    real: bool,
    /// The worker binary for --real (default: `worker` next to this executable).
    #[arg(long, value_name = "PATH", requires = "real")]
    worker_bin: Option<std::path::PathBuf>,
    /// Run with this fault plan (a JSON file, as `--show-plan` prints it, or a shrunk
    /// record, whose plan is used) instead of the one the seed draws.
    #[arg(long, value_name = "FILE", conflicts_with = "real")]
    plan: Option<std::path::PathBuf>,
    /// Print the fault plan the seed draws, as JSON (edit it and give it to --plan),
    /// and do not run.
    #[arg(long, conflicts_with_all = ["real", "plan"])]
    show_plan: bool,
}

/// The plan in `path`: a `FaultPlan` JSON object, or a shrunk record's plan.
fn read_plan(path: &std::path::Path) -> Result<sim::FaultPlan, CliError> {
    let text = super::files::read_text_named(path)?;
    if let Ok(plan) = serde_json::from_str::<sim::FaultPlan>(&text) {
        return Ok(plan);
    }
    let name = path.display().to_string();
    if let Ok(record) = crate::shrink::ShrunkRecord::parse(&name, &text) {
        return Ok(record.plan);
    }
    let why = serde_json::from_str::<sim::FaultPlan>(&text)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    Err(CliError::new(format!("{name} is not a fault plan: {why}"))
        .hint("a plan file is what `chaos run ID --seed N --show-plan` prints, or a shrunk record"))
}

/// Finds a scenario by id, or explains why there is none.
pub fn resolve(id: &str) -> Result<&'static Scenario, CliError> {
    if let Some(s) = registry::find(id) {
        return Ok(s);
    }
    let catalog = Catalog::embedded();
    if let Some(entry) = catalog.get(id) {
        return Err(CliError::new(format!(
            "{id} is in the catalog ({}) but has no scenario yet: status {}",
            entry.title, entry.status
        ))
        .hint("`chaos list --status implemented` shows the entries that have one"));
    }
    let mut known: Vec<&str> = registry::all().iter().map(|s| s.id).collect();
    known.extend(catalog.ids());
    let near = super::suggest::closest(id, known.into_iter());
    let hint = if near.is_empty() {
        "`chaos list` shows the catalog; `chaos list --substrate` the simulator's self-checks"
            .to_string()
    } else {
        format!("did you mean {}?", near.join(", "))
    };
    Err(CliError::new(format!("no scenario has the id {id:?}")).hint(hint))
}

pub fn run(args: RunArgs) -> Result<ExitCode, CliError> {
    let scenario = resolve(&args.id)?;
    if args.real {
        return run_real(scenario, &args);
    }
    if args.show_plan || args.plan.is_some() {
        let Some(own) = scenario.plan else {
            return Err(CliError::new(format!(
                "{} declares no fault plan, so it has none to show or replace",
                scenario.id
            )));
        };
        if args.show_plan {
            let plan = own.draw(args.seed);
            let json =
                serde_json::to_string_pretty(&plan).map_err(|e| CliError::new(e.to_string()))?;
            println!("{json}");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let given = args.plan.as_deref().map(read_plan).transpose()?;
    if let (Some(plan), Some(crate::scenario::Plan::Body(_))) = (&given, scenario.plan) {
        crate::shrink::check_plan_fits(scenario, args.seed, plan)
            .map_err(|e| CliError::new(format!("the plan does not fit {}: {e}", scenario.id)))?;
    }
    let result = run_scenario_with_plan(scenario, args.seed, given);
    let record = &result.record;
    if let Some(path) = &args.trace_jsonl {
        let mut text = String::new();
        for line in &result.trace.lines {
            let json = serde_json::to_string(line).map_err(|e| CliError::new(e.to_string()))?;
            text.push_str(&json);
            text.push('\n');
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "the CLI writes the file the user asked for"
        )]
        std::fs::write(path, text).map_err(|e| {
            CliError::new(format!("cannot write the trace to {}: {e}", path.display()))
        })?;
    }
    let mut out = std::io::stdout().lock();
    if args.json || args.output.is_some() {
        let json = record_json(record, args.trace.then_some(&result.trace))?;
        if let Some(path) = &args.output {
            super::files::write_text(path, &json)?;
        }
        if args.json {
            let _ = write!(out, "{json}");
        }
    }
    if !args.json {
        if args.trace {
            for line in &result.trace.lines {
                let _ = writeln!(out, "{line}");
            }
            if result.trace.lines_dropped > 0 {
                let _ = writeln!(
                    out,
                    "… {} later events not kept (all are in the hash)",
                    result.trace.lines_dropped
                );
            }
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "scenario:    {} (seed {})", record.id, record.seed);
        let _ = writeln!(out, "cores:       {}", scenario.cores.join(", "));
        match (&record.failure_class, &record.message) {
            (Some(class), Some(message)) => {
                let _ = writeln!(out, "verdict:     FAIL ({class}): {message}");
            }
            _ => {
                let _ = writeln!(out, "verdict:     PASS");
            }
        }
        let _ = writeln!(
            out,
            "sim time:    {}   events: {}   trace hash: {}   wall: {} ms",
            format_sim_time(record.sim_time_ns),
            record.events,
            record.trace_hash,
            record.wall_ms
        );
        let fired: Vec<String> = record
            .faults
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let _ = writeln!(
            out,
            "faults:      {}   (this scenario exercises: {})",
            if fired.is_empty() {
                "none fired".to_string()
            } else {
                fired.join(" ")
            },
            record.faults_expected.join(", ")
        );
        if !record.faults_expected_fired {
            let _ = writeln!(
                out,
                "warning:     none of this scenario's own faults fired: this run tested nothing"
            );
        }
        let _ = writeln!(out, "repro:       {}", record.repro);
    }
    Ok(match record.failure_class {
        None => ExitCode::SUCCESS,
        Some(class) => ExitCode::from(class.exit_code() as u8),
    })
}

/// The run record as pretty JSON (ending in a newline), with this build's provenance
/// and, when given, the trace: `trace` (its kept lines, as `--trace-jsonl` writes them)
/// and `trace_lines_dropped` (later events only the hash covers).
fn record_json(
    record: &reports::RunRecord,
    trace: Option<&sim::trace::TraceSummary>,
) -> Result<String, CliError> {
    let encode = |e: serde_json::Error| CliError::new(format!("cannot encode the record: {e}"));
    let mut record = record.clone();
    record.provenance = Some(super::provenance::current());
    let mut value = serde_json::to_value(&record).map_err(encode)?;
    if let (Some(trace), Some(fields)) = (trace, value.as_object_mut()) {
        let lines = serde_json::to_value(&trace.lines).map_err(encode)?;
        fields.insert("trace".to_string(), lines);
        fields.insert(
            "trace_lines_dropped".to_string(),
            trace.lines_dropped.into(),
        );
    }
    Ok(serde_json::to_string_pretty(&value).map_err(encode)? + "\n")
}

fn run_real(scenario: &'static Scenario, args: &RunArgs) -> Result<ExitCode, CliError> {
    let program = args
        .worker_bin
        .clone()
        .or_else(crate::real::default_worker_program)
        .ok_or_else(|| {
            CliError::new("cannot locate this executable to find the worker binary")
                .hint("pass --worker-bin PATH")
        })?;
    let record = crate::real::run_real(scenario, args.seed, &program).map_err(|e| {
        CliError::new(e)
            .hint("`chaos list --json` shows which scenarios have a reality check (real: true)")
    })?;
    let mut out = std::io::stdout().lock();
    if args.json || args.output.is_some() {
        let json = record_json(&record, None)?;
        if let Some(path) = &args.output {
            super::files::write_text(path, &json)?;
        }
        if args.json {
            let _ = write!(out, "{json}");
        }
    }
    if !args.json {
        let _ = writeln!(
            out,
            "scenario:    {} (seed {}, real environment)",
            record.id, record.seed
        );
        let _ = writeln!(out, "cores:       {}", scenario.cores.join(", "));
        let verdict = match record.failure_class {
            None => "PASS".to_string(),
            Some(class) => format!("FAIL ({class})"),
        };
        let _ = writeln!(out, "verdict:     {verdict}");
        if let Some(message) = &record.message {
            let _ = writeln!(out, "failure:     {message}");
        }
        let faults: Vec<String> = record
            .faults
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(
            out,
            "faults:      {}",
            if faults.is_empty() {
                "none".to_string()
            } else {
                faults.join(" ")
            }
        );
        let _ = writeln!(out, "wall:        {} ms", record.wall_ms);
        let _ = writeln!(out, "repro:       {}", record.repro);
    }
    Ok(match record.failure_class {
        None => ExitCode::SUCCESS,
        Some(class) => ExitCode::from(class.exit_code() as u8),
    })
}
