use super::CliError;
use crate::registry;
use crate::runner::{Job, sweep as run_sweep};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reports::summary::{render_table, summarize};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Only scenarios whose id starts with this prefix (default: every scenario).
    #[arg(long)]
    prefix: Option<String>,
    /// Seeds per scenario.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    seeds: u64,
    /// First seed; runs use seeds `seed_start .. seed_start + seeds`.
    #[arg(long, default_value_t = 1)]
    seed_start: u64,
    /// Runs in parallel (default: the machine's cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
    jobs: Option<u64>,
    /// Write one JSON record per run (an array) to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn sweep(args: SweepArgs) -> Result<ExitCode, CliError> {
    let scenarios = registry::select(args.prefix.as_deref());
    if scenarios.is_empty() {
        let prefix = args.prefix.unwrap_or_default();
        let near = super::suggest::closest(&prefix, registry::all().iter().map(|s| s.id));
        let hint = if near.is_empty() {
            "`chaos list --status implemented` and `chaos list --substrate` show what exists"
                .to_string()
        } else {
            format!("did you mean {}?", near.join(", "))
        };
        return Err(CliError::new(format!("no scenario id starts with {prefix:?}")).hint(hint));
    }
    let last = args
        .seed_start
        .checked_add(args.seeds - 1)
        .ok_or_else(|| CliError::new("--seed-start plus --seeds overflows a 64-bit seed"))?;
    let jobs: Vec<Job> = scenarios
        .iter()
        .flat_map(|s| (args.seed_start..=last).map(move |seed| Job { scenario: s, seed }))
        .collect();
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
    if let Some(path) = &args.json {
        let json =
            serde_json::to_string_pretty(&records).map_err(|e| CliError::new(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            #[allow(
                clippy::disallowed_methods,
                reason = "the CLI writes where the user asked"
            )]
            std::fs::create_dir_all(dir)
                .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))?;
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "the CLI writes where the user asked"
        )]
        std::fs::write(path, json + "\n")
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    }
    let summaries = summarize(&records);
    print!("{}", render_table(&summaries));
    let failed: Vec<_> = records.iter().filter(|r| !r.passed()).collect();
    let inert: Vec<_> = summaries.iter().filter(|s| s.inert()).collect();
    for r in failed.iter().take(20) {
        println!(
            "FAIL {} seed {} ({}): {}\n  repro: {}",
            r.id,
            r.seed,
            r.failure_class.map_or("?", |c| c.name()),
            r.message.as_deref().unwrap_or(""),
            r.repro
        );
    }
    if failed.len() > 20 {
        println!("… and {} more failures", failed.len() - 20);
    }
    for s in &inert {
        println!(
            "INERT {}: none of its own faults fired in {} runs",
            s.id, s.runs
        );
    }
    if let Some(path) = &args.json {
        println!("records: {}", path.display());
    }
    println!(
        "\n{} runs of {} scenarios (seeds {}..={last}), {} inert scenarios",
        records.len(),
        summaries.len(),
        args.seed_start,
        inert.len()
    );
    // Last, in the plain form CI log readers understand.
    println!(
        "sweep: {} passed, {} failed",
        records.len() - failed.len(),
        failed.len()
    );
    Ok(if failed.is_empty() && inert.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
