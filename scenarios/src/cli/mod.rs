//! The `chaos` command line: list, run, sweep, report, repro, gate, shrink.
//!
//! Every bad input (unknown id, bad seed, bad flag, unwritable file) ends in a clear
//! message, a suggestion where one helps, and exit status 2; never a panic.

mod elapsed;
mod files;
mod gate;
mod github;
mod list;
mod output;
mod provenance;
mod report;
mod report_inputs;
mod repro;
mod run;
mod seeds;
mod select;
mod shrink;
mod suggest;
mod sweep;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Deterministic simulation and chaos tests for the agent platform engine.
#[derive(Parser, Debug)]
// `chaos --version` names the build, as the provenance in its files does.
#[command(
    name = "chaos",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("CHAOS_BUILD_COMMIT"),
        ", dirty: ",
        env!("CHAOS_BUILD_DIRTY"),
        ", ",
        env!("CHAOS_BUILD_TOOLCHAIN"),
        ")"
    ),
    about,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List catalog entries (or, with --substrate, the simulator's self-checks).
    List(list::ListArgs),
    /// Run one scenario with one seed: verdict, faults fired, trace, repro line.
    Run(run::RunArgs),
    /// Run scenarios × seeds across cores and summarize.
    Sweep(sweep::SweepArgs),
    /// Merge sweep files and write the release readiness report (md, html, json, junit).
    Report(report::ReportArgs),
    /// Replay a failing run bit for bit (from a failure record, or an id and a seed).
    Repro(repro::ReproArgs),
    /// The CI regression gate: a fixed sweep against the committed baseline.
    Gate(gate::GateArgs),
    /// Reduce a failing run to a minimal fault schedule that fails the same oracle.
    Shrink(shrink::ShrinkArgs),
}

impl Command {
    /// The subcommand as typed.
    fn name(&self) -> &'static str {
        match self {
            Command::List(_) => "list",
            Command::Run(_) => "run",
            Command::Sweep(_) => "sweep",
            Command::Report(_) => "report",
            Command::Repro(_) => "repro",
            Command::Gate(_) => "gate",
            Command::Shrink(_) => "shrink",
        }
    }
}

/// The hint of an error that has no hint of its own.
pub fn generic_hint(command: &str) -> String {
    format!("`chaos {command} --help` lists its options and what each expects")
}

/// Exit status for bad input.
pub const EXIT_USAGE: u8 = 2;

/// A failure of the command itself (not of a scenario): printed, exit status 2.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Entry point of the `chaos` binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout (exit 0) and errors to stderr (exit 2).
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let name = cli.command.name();
    let result = match cli.command {
        Command::List(args) => list::list(args),
        Command::Run(args) => run::run(args),
        Command::Sweep(args) => sweep::sweep(args),
        Command::Report(args) => report::report(args),
        Command::Repro(args) => repro::repro(args),
        Command::Gate(args) => gate::gate(args),
        Command::Shrink(args) => shrink::shrink(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.message);
            // Every error ends with a hint; the paths the CLI tests run each have their
            // own, and this one catches any path that has none yet.
            match e.hint {
                Some(hint) => eprintln!("hint: {hint}"),
                None => eprintln!("hint: {}", generic_hint(name)),
            }
            ExitCode::from(EXIT_USAGE)
        }
    }
}
