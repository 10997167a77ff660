//! `chaos gate --accept`: the reviewed baseline. Checks what may be accepted before the
//! sweep runs, prints what the new baseline changes against the old one, and writes it
//! only when every new failure was accepted by name with a reason
//! (`reports::gate::review` decides).

use super::super::CliError;
use super::super::files::write_text;
use super::super::output::say;
use super::super::select::Filter;
use super::GateArgs;
use crate::registry;
use reports::gate::Baseline;
use reports::gate::review::{BaselineDiff, review};
use reports::sweep_file::DeterminismFinding;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

/// What `--accept` may record: failures named with a reason (id → reason).
pub(super) fn accepted_failures(args: &GateArgs) -> Result<BTreeMap<String, String>, CliError> {
    if args.accept && args.filter.is_set() {
        return Err(CliError::new(format!(
            "--accept writes the whole baseline, so it cannot take {}",
            args.filter.describe()
        ))
        .hint("run `chaos gate --accept` without a selection; judge a part with `chaos gate --prefix P`"));
    }
    let ids = &args.accept_failure;
    if !args.reason.is_empty() && args.reason.len() != 1 && args.reason.len() != ids.len() {
        return Err(CliError::new(format!(
            "{} --accept-failure and {} --reason: give one reason per failure, or one for all",
            ids.len(),
            args.reason.len()
        )));
    }
    if !ids.is_empty() && args.reason.is_empty() {
        return Err(CliError::new("--accept-failure needs a --reason")
            .hint("say why the failure is accepted: --accept-failure ID --reason \"…\""));
    }
    if args.reason.iter().any(|r| r.trim().is_empty()) {
        return Err(CliError::new("a --reason is empty").hint("say why the failure is accepted"));
    }
    let known: Vec<&str> = registry::all().iter().map(|s| s.id).collect();
    let exact = Filter {
        ids: ids.clone(),
        ..Filter::default()
    };
    if !ids.is_empty() {
        exact.select(&known, "scenario")?;
    }
    Ok(ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let reason = args.reason.get(i).unwrap_or(&args.reason[0]);
            (id.clone(), reason.trim().to_string())
        })
        .collect())
}

/// `--accept`: prints what changes against `old`, and writes `new` unless it records a
/// failure nobody accepted.
pub(super) fn accept(
    out: &mut dyn Write,
    args: &GateArgs,
    old: Option<&Baseline>,
    new: Baseline,
    accepted: &BTreeMap<String, String>,
    records: &[reports::RunRecord],
    determinism: &[DeterminismFinding],
) -> Result<ExitCode, CliError> {
    let path = args.baseline.display();
    let diff = BaselineDiff::between(old, &new);
    match old {
        None => say!(
            out,
            "baseline: {path} does not exist yet; every scenario is new"
        ),
        Some(_) if diff.is_empty() => say!(out, "baseline: no change against {path}"),
        Some(_) => say!(out, "baseline: changes against {path}:"),
    }
    if old.is_some() {
        for line in diff.lines() {
            say!(out, "  {line}");
        }
    }
    for id in accepted.keys() {
        if new.scenarios.get(id) != Some(&reports::gate::Expected::Fail) {
            say!(
                out,
                "note: {id} does not fail: --accept-failure {id} has nothing to accept"
            );
        }
    }
    let written = review(old, new, accepted).map_err(|refusal| {
        for id in &refusal.unaccepted {
            let failing = records.iter().filter(|r| r.id == *id && !r.passed());
            for r in failing.take(3) {
                say!(
                    out,
                    "FAIL {id} seed {}: {}\n  repro: {}",
                    r.seed,
                    r.message.as_deref().unwrap_or(""),
                    r.repro
                );
            }
        }
        let ids = refusal.unaccepted.join(", ");
        CliError::new(format!(
            "refusing to record {} as expected to fail: {ids} (later gates would pass with \
             the failure); the baseline is unchanged",
            count(refusal.unaccepted.len(), "new failure")
        ))
        .hint(format!(
            "fix it, or accept it knowingly: `chaos gate --accept --accept-failure {} \
             --reason \"why\"`",
            refusal.unaccepted[0]
        ))
    })?;
    write_text(&args.baseline, &written.to_json())?;
    say!(
        out,
        "gate: baseline written to {} ({})",
        args.baseline.display(),
        reports::readiness::plural(written.scenarios.len() as u64, "scenario")
    );
    for d in determinism {
        say!(
            out,
            "warning: {} seed {} is not deterministic",
            d.id,
            d.seed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `1 new failure`, `2 new failures`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
