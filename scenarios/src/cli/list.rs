use super::CliError;
use crate::catalog::{Catalog, Status};
use crate::registry;
use clap::Args;
use serde::Serialize;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only entries with this status: implemented, planned or not-applicable.
    #[arg(long)]
    status: Option<String>,
    /// Which entries (default: all of them).
    #[command(flatten)]
    filter: super::select::Filter,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// List the simulator's own self-check scenarios (outside the catalog) instead.
    #[arg(long)]
    substrate: bool,
}

#[derive(Serialize)]
struct ListedEntry<'a> {
    id: &'a str,
    title: &'a str,
    subsystem: &'a str,
    category: &'a str,
    risk: &'static str,
    source: &'a str,
    status: &'static str,
    reason: &'a str,
    /// Whether `chaos run ID --real` can run it against this machine.
    real: bool,
    /// The engine files its scenario proves (`Scenario::cores`); empty without a scenario.
    cores: &'static [&'static str],
    /// Whether its scenario declares its fault plan (so `chaos shrink`, `chaos run
    /// --plan` and the fuzzer apply to it).
    plan: bool,
    /// The plan seed 1 draws, one line per action then the swarm (empty without a plan):
    /// what a plan file for `chaos run --plan` looks like, in words.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    plan_seed_1: Vec<String>,
}

#[derive(Serialize)]
struct ListedScenario<'a> {
    id: &'a str,
    title: &'a str,
    proves: &'a str,
    faults_expected: &'a [&'a str],
    /// Whether it declares its fault plan (so `chaos shrink` applies to it).
    plan: bool,
    /// The files it proves (`Scenario::cores`).
    cores: &'static [&'static str],
}

pub fn list(args: ListArgs) -> Result<ExitCode, CliError> {
    if args.substrate {
        return list_substrate(&args);
    }
    let status = match &args.status {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            CliError::new(format!("unknown status {s:?}"))
                .hint(format!("use one of: {}", Status::NAMES.join(", ")))
        })?),
    };
    let catalog = Catalog::embedded();
    check_names(
        &args.filter,
        &catalog.ids().collect::<Vec<_>>(),
        "catalog entry",
    )?;
    let entries: Vec<ListedEntry> = catalog
        .entries
        .iter()
        .filter(|e| status.is_none_or(|s| e.status == s))
        .filter(|e| args.filter.matches(&e.id))
        .map(|e| ListedEntry {
            id: &e.id,
            title: &e.title,
            subsystem: &e.subsystem,
            category: &e.category,
            risk: match e.risk {
                crate::catalog::Risk::High => "high",
                crate::catalog::Risk::Medium => "medium",
                crate::catalog::Risk::Low => "low",
            },
            source: &e.source,
            status: e.status.name(),
            reason: &e.reason,
            real: crate::registry::find(&e.id).is_some_and(|s| s.real.is_some()),
            cores: crate::registry::find(&e.id).map_or(&[], |s| s.cores),
            plan: crate::registry::find(&e.id).is_some_and(|s| s.plan.is_some()),
            plan_seed_1: crate::registry::find(&e.id)
                .and_then(|s| s.plan)
                .map(|p| p.draw(1).describe())
                .unwrap_or_default(),
        })
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).map_err(|e| CliError::new(e.to_string()))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        let selected: Vec<Status> = catalog
            .entries
            .iter()
            .filter(|e| args.filter.matches(&e.id))
            .map(|e| e.status)
            .collect();
        match (status, args.filter.is_set()) {
            (Some(wanted), true) if !selected.is_empty() => {
                eprintln!(
                    "{} match {} but none is {wanted} ({})",
                    count(selected.len(), "entry", "entries"),
                    args.filter.describe(),
                    statuses(&selected)
                );
            }
            _ => {
                let hint = if let Some(p) = &args.filter.prefix {
                    let known: Vec<&str> = catalog.ids().collect();
                    let near = super::suggest::closest(p, known.into_iter());
                    if near.is_empty() {
                        "prefixes are core., enable., cwm., api. and pattern.".to_string()
                    } else {
                        format!("did you mean {}?", near.join(", "))
                    }
                } else {
                    "no entry has that status yet".to_string()
                };
                eprintln!("no catalog entries match ({hint})");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    for e in &entries {
        println!(
            "{:<16} {:<14} {:<6} {:<11} {}",
            e.id, e.status, e.risk, e.subsystem, e.title
        );
        if !e.cores.is_empty() {
            println!("{:<16} cores: {}", "", e.cores.join(", "));
        }
    }
    let implemented = entries.iter().filter(|e| e.status == "implemented").count();
    let planned = entries.iter().filter(|e| e.status == "planned").count();
    let na = entries.len() - implemented - planned;
    println!(
        "\n{} entries: {implemented} implemented, {planned} planned, {na} not applicable",
        entries.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn list_substrate(args: &ListArgs) -> Result<ExitCode, CliError> {
    if args.status.is_some() {
        return Err(CliError::new(
            "--status applies to catalog entries, not to --substrate",
        ));
    }
    let known: Vec<&str> = registry::all()
        .into_iter()
        .map(|s| s.id)
        .filter(|id| registry::is_substrate(id))
        .collect();
    check_names(&args.filter, &known, "self-check")?;
    let scenarios: Vec<ListedScenario> = registry::all()
        .into_iter()
        .filter(|s| registry::is_substrate(s.id))
        .filter(|s| args.filter.matches(s.id))
        .map(|s| ListedScenario {
            id: s.id,
            title: s.title,
            proves: s.proves,
            faults_expected: s.faults_expected,
            plan: s.plan.is_some(),
            cores: s.cores,
        })
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&scenarios).map_err(|e| CliError::new(e.to_string()))?
        );
    } else {
        for s in &scenarios {
            let plan = if s.plan { "[plan]" } else { "" };
            println!("{:<40} {plan:<6} {}", s.id, s.title);
            println!("{:<40} cores: {}", "", s.cores.join(", "));
        }
        println!("\n[plan]: declares its fault plan, so `chaos shrink` can reduce a failing run");
    }
    Ok(ExitCode::SUCCESS)
}

/// Exact ids must exist and patterns must match something (a prefix that matches
/// nothing is answered with a suggestion, not an error).
fn check_names(filter: &super::select::Filter, known: &[&str], what: &str) -> Result<(), CliError> {
    if filter.ids.is_empty() && filter.patterns.is_empty() {
        return Ok(());
    }
    let names = super::select::Filter {
        prefix: None,
        ..filter.clone()
    };
    names.select(known, what).map(|_| ())
}

/// `1 entry`, `12 entries`.
fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// What statuses the entries have: `they are planned`, `5 planned, 2 not-applicable`.
fn statuses(found: &[Status]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for status in found {
        match counts.iter_mut().find(|(name, _)| *name == status.name()) {
            Some((_, n)) => *n += 1,
            None => counts.push((status.name(), 1)),
        }
    }
    match counts.as_slice() {
        [(name, _)] if found.len() == 1 => format!("it is {name}"),
        [(name, _)] => format!("they are {name}"),
        _ => counts
            .iter()
            .map(|(name, n)| format!("{n} {name}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
