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
            "--output",
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
    // --json: the sweep file on stdout, the verdict on stderr.
    let out = gate(&path, &["--json"], false);
    assert_eq!(out.status.code(), Some(0));
    let printed = SweepFile::parse("stdout", &stdout(&out)).expect("stdout is a sweep file");
    assert_eq!(printed.file.records.len(), records.len());
    assert_eq!(printed.file.determinism, Some(vec![]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gate: passed"));

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
        text.contains("::error title=chaos gate%3A disappeared sim.gone::"),
        "{text}"
    );
    assert!(text.contains(&format!("note: {first}: fixed")), "{text}");
    assert!(text.contains("gate: FAILED, 1 finding"), "{text}");

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
    assert!(!text.contains("note: recorded by"), "same build: {text}");
    // A record of another build says so beside the replay.
    let mut other = SweepFile::parse("s", &read(&file)).unwrap().file;
    other.provenance.as_mut().unwrap().commit = "0123456789abcdef".to_string();
    let moved = dir.path().join("other-build.json");
    write(&moved, &other.to_json().unwrap());
    let out = chaos(&["repro", moved.to_str().unwrap(), "--seed", "1"], false);
    let text = stdout(&out);
    assert!(
        text.contains("note: recorded by commit 0123456789ab"),
        "{text}"
    );
    // No failing run to pick, an id without a seed: clear errors.
    let out = chaos(&["repro", file.to_str().unwrap()], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no failing run"));
    let out = chaos(&["repro", "sim.clock.skew-drift"], false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --seed"));
}

/// The whole registry's sweep over seed 1 (fast: one run per scenario), as a file.
fn whole_sweep(file: &Path) -> SweepFile {
    let out = chaos(
        &[
            "sweep",
            "--seeds",
            "1",
            "--jobs",
            "2",
            "-o",
            file.to_str().unwrap(),
        ],
        false,
    );
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        stdout(&out)
    );
    SweepFile::parse("sweep", &read(file)).unwrap().file
}

/// `chaos gate --accept` over seed 1 with no re-runs, plus `extra`.
fn accept(baseline: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "gate",
        "--accept",
        "--seeds",
        "1",
        "--determinism-sample",
        "0",
        "--jobs",
        "2",
        "--baseline",
        baseline.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    chaos(&args, false)
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn accept_prints_what_changes_against_the_old_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    let out = accept(&path, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr_of(&out)
    );
    assert!(
        stdout(&out).contains("does not exist yet"),
        "{}",
        stdout(&out)
    );
    let first = Baseline::parse(&read(&path)).unwrap();
    assert!(first.provenance.is_some(), "the baseline names its build");
    let out = accept(&path, &[]);
    assert!(
        stdout(&out).contains("baseline: no change against"),
        "{}",
        stdout(&out)
    );

    // An old baseline that differs in every way a review shows.
    let mut old = first.clone();
    old.seeds = 3;
    let ids: Vec<String> = old.scenarios.keys().cloned().collect();
    old.scenarios.insert(ids[0].clone(), Expected::Fail);
    old.scenarios.remove(&ids[1]);
    old.scenarios.insert("sim.gone".to_string(), Expected::Pass);
    write(&path, &old.to_json());
    let out = accept(&path, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr_of(&out));
    assert!(text.contains("baseline: changes against"), "{text}");
    assert!(text.contains(&format!("fail → pass  {}", ids[0])), "{text}");
    assert!(
        text.contains(&format!("added        {} (passes)", ids[1])),
        "{text}"
    );
    assert!(text.contains("removed      sim.gone"), "{text}");
    assert!(text.contains("seeds        1..=3 → 1..=1"), "{text}");
    assert_eq!(
        Baseline::parse(&read(&path)).unwrap().scenarios,
        first.scenarios
    );
}

#[test]
fn accept_refuses_a_new_failure_unless_accepted_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    let sweep_path = dir.path().join("sweep.json");
    let mut sweep = whole_sweep(&sweep_path);
    assert_eq!(
        accept(&path, &["--from", sweep_path.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let before = read(&path);
    // Plant a failure in a scenario the baseline expects to pass.
    let planted = sweep
        .records
        .iter_mut()
        .find(|r| r.id == "core.EC-001")
        .unwrap();
    planted.verdict = reports::Verdict::Fail;
    planted.failure_class = Some(reports::FailureClass::Correctness);
    planted.message = Some("planted: an oracle said no".to_string());
    write(&sweep_path, &sweep.to_json().unwrap());
    let from = sweep_path.to_str().unwrap();

    let out = accept(&path, &["--from", from]);
    let (text, err) = (stdout(&out), stderr_of(&out));
    assert_eq!(out.status.code(), Some(2), "{text}{err}");
    assert!(text.contains("pass → fail  core.EC-001"), "{text}");
    assert!(text.contains("FAIL core.EC-001 seed 1: planted"), "{text}");
    assert!(
        err.contains("refusing to record 1 new failure as expected to fail: core.EC-001"),
        "{err}"
    );
    assert!(err.contains("hint: fix it, or accept it knowingly: `chaos gate --accept --accept-failure core.EC-001"), "{err}");
    assert_eq!(read(&path), before, "the baseline is unchanged");

    let reason = "planted by the test; tracked in issue 19";
    let out = accept(
        &path,
        &[
            "--from",
            from,
            "--accept-failure",
            "core.EC-001",
            "--reason",
            reason,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr_of(&out)
    );
    let written = Baseline::parse(&read(&path)).unwrap();
    assert_eq!(written.scenarios["core.EC-001"], Expected::Fail);
    assert_eq!(written.reasons["core.EC-001"], reason);

    // Later gates print the reason beside the known failure.
    let out = chaos(
        &[
            "gate",
            "--from",
            from,
            "--jobs",
            "2",
            "--baseline",
            path.to_str().unwrap(),
        ],
        false,
    );
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "note: core.EC-001: known failure (fails 1 of 1 run), accepted because: {reason}"
        )),
        "{text}"
    );
}

#[test]
fn accept_options_are_checked_before_the_sweep_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baseline.json");
    let p = path.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["--accept", "--prefix", "sim."],
            "--accept writes the whole baseline",
        ),
        (
            vec!["--accept", "--id", "core.EC-001"],
            "cannot take --id core.EC-001",
        ),
        (
            vec![
                "--accept",
                "--accept-failure",
                "core.EC-0001",
                "--reason",
                "x",
            ],
            "did you mean core.EC-001",
        ),
        (
            vec!["--accept", "--accept-failure", "core.EC-001"],
            "needs a --reason",
        ),
        (
            vec![
                "--accept",
                "--accept-failure",
                "core.EC-001",
                "--reason",
                " ",
            ],
            "a --reason is empty",
        ),
        (
            vec!["--accept-failure", "core.EC-001", "--reason", "x"],
            "--accept",
        ),
        (vec!["--seeds", "3"], "--accept"),
        (
            vec![
                "--accept",
                "--seed-start",
                "18446744073709551615",
                "--seeds",
                "2",
            ],
            "largest seed",
        ),
        (vec!["--id", "core.EC-0001"], "did you mean core.EC-001"),
    ] {
        let mut all = vec!["gate", "--baseline", p];
        all.extend_from_slice(&args);
        let out = chaos(&all, false);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(
            !stdout(&out).contains("gate: "),
            "{args:?} ran the sweep: {}",
            stdout(&out)
        );
    }
}

#[test]
fn shards_of_two_builds_are_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (dir.path().join("1.json"), dir.path().join("2.json"));
    sweep(&one, "2", "1/2");
    sweep(&two, "2", "2/2");
    let name = two.display().to_string();
    let mut other = SweepFile::parse(&name, &read(&two)).unwrap().file;
    let provenance = other
        .provenance
        .as_mut()
        .expect("sweep files name their build");
    provenance.commit = "0123456789abcdef0123456789abcdef01234567".to_string();
    write(&two, &other.to_json().unwrap());
    let (a, b) = (one.to_str().unwrap(), two.to_str().unwrap());
    let report = dir.path().join("report");
    let out = chaos(&["report", a, b, "--out", report.to_str().unwrap()], false);
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("come from two different builds"), "{err}");
    assert!(err.contains("against commit 0123456789ab"), "{err}");
    assert!(
        err.contains("hint: run every shard with one build"),
        "{err}"
    );
    let baseline = dir.path().join("baseline.json");
    write(&baseline, &Baseline::accept(&[], 1, 2, 0).to_json());
    let out = gate(&baseline, &["--from", a, b], false);
    assert!(
        stderr_of(&out).contains("come from two different builds"),
        "{}",
        stderr_of(&out)
    );
}
