//! `chaos gate` and `chaos repro` end to end, on the simulator's self-checks (fast): a
//! baseline that matches passes; a scenario the baseline expects but that no longer
//! exists fails the gate with an annotation for GitHub Actions; shard files of the fixed
//! sweep can be judged instead of a local sweep, and files of another sweep are refused;
//! `repro` replays a run from a sweep file bit for bit.

mod common;
use common::{command, read, stdout, write};

/// `chaos ARGS`, as GitHub Actions would run it when `github`.
fn chaos(args: &[&str], github: bool) -> Output {
    let mut command = command(args);
    if github {
        command.env("GITHUB_ACTIONS", "true");
    }
    command.output().expect("chaos runs")
}

use reports::gate::{Baseline, Expected};
use reports::sweep_file::SweepFile;
use std::path::Path;
use std::process::Output;

fn sweep(file: &Path, seeds: &str, shard: &str) {
    let out = chaos(
        &[
            "sweep",
            "--prefix",
            "sim.",
            "--seeds",
            seeds,
            "--jobs",
            "2",
            "--shard",
            shard,
            "--json",
            file.to_str().unwrap(),
        ],
        false,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

fn gate(baseline: &Path, extra: &[&str], github: bool) -> Output {
    let mut args = vec![
        "gate",
        "--prefix",
        "sim.",
        "--jobs",
        "2",
        "--baseline",
        baseline.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    chaos(&args, github)
}

#[test]
fn the_gate_passes_as_expected_and_fails_with_a_named_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("1.json"), dir.path().join("2.json"));
    sweep(&one, "3", "1/2");
    sweep(&two, "3", "2/2");
    let mut records = Vec::new();
    for file in [&one, &two] {
        let name = file.display().to_string();
        records.extend(SweepFile::parse(&name, &read(file)).unwrap().file.records);
    }
    let baseline = Baseline::accept(&records, 1, 3, 2);
    assert!(baseline.scenarios.len() >= 5, "{baseline:?}");
    let path = dir.path().join("baseline.json");
    write(&path, &baseline.to_json());

    let out = gate(&path, &[], false);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("gate: passed"), "{}", stdout(&out));

    // The shards, judged instead of a local sweep, give the same verdict.
    let (a, b) = (one.to_str().unwrap(), two.to_str().unwrap());
    let out = gate(&path, &["--from", a, b], false);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    // One shard alone is not the fixed sweep.
    let out = gate(&path, &["--from", a], false);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lack 1 shard"));

    // A scenario the baseline expects is gone; another one the baseline expects to fail
    // now passes (a note, not a failure).
    let mut changed = baseline.clone();
    changed
        .scenarios
        .insert("sim.gone".to_string(), Expected::Pass);
    let first = baseline.scenarios.keys().next().unwrap().clone();
    changed.scenarios.insert(first.clone(), Expected::Fail);
    write(&path, &changed.to_json());
    let out = gate(&path, &[], true);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL disappeared sim.gone"), "{text}");
    assert!(
        text.contains("::error title=chaos gate: disappeared sim.gone::"),
        "{text}"
    );
    assert!(text.contains(&format!("note: {first}: fixed")), "{text}");
    assert!(text.contains("gate: FAILED, 1 findings"), "{text}");

    // A broken baseline is a clear error.
    write(&path, "{\"schema\": 1}");
    let out = gate(&path, &[], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a gate baseline"));
}

#[test]
fn repro_replays_a_recorded_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.json");
    sweep(&file, "3", "1/1");
    let out = chaos(&["repro", file.to_str().unwrap(), "--seed", "1"], false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("replay: identical to the record"), "{text}");
    assert!(text.contains("verdict: PASS"), "{text}");
    assert!(text.contains("#1 "), "the trace is shown: {text}");
    // No failing run to pick, an id without a seed: clear errors.
    let out = chaos(&["repro", file.to_str().unwrap()], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no failing run"));
    let out = chaos(&["repro", "sim.clock.skew-drift"], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --seed"));
}
