//! `chaos sweep --shard` and `chaos report` end to end: two shards of the simulator's
//! self-checks merge to exactly the unsharded sweep, the report writes its four files
//! (the JUnit XML with one case per scenario run set), and bad input gets a clear error
//! with exit status 2; the policy and its waivers decide the coverage verdict while a
//! failing run still blocks the regression verdict; `--previous` names a planted failure
//! as newly failing and, once fixed, as fixed.

mod common;
use common::{chaos, read, text, write};

use std::path::Path;
use std::process::Output;

/// Runs `chaos sweep --prefix sim. --seeds 3` (plus `extra`) into `file`.
fn sweep(file: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "sweep", "--prefix", "sim.", "--seeds", "3", "--jobs", "2", "--json",
    ];
    args.push(file.to_str().unwrap());
    args.extend_from_slice(extra);
    let out = chaos(&args);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// (id, seed, verdict, trace hash) of every record in a sweep file, sorted.
fn runs(file: &Path) -> Vec<(String, u64, String, String)> {
    let sweep: serde_json::Value = serde_json::from_str(&read(file)).unwrap();
    let mut runs: Vec<_> = sweep["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["seed"].as_u64().unwrap(),
                r["verdict"].as_str().unwrap().to_string(),
                r["trace_hash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    runs.sort();
    runs
}

#[test]
fn two_shards_merge_to_the_unsharded_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, one, two) = (
        dir.path().join("whole.json"),
        dir.path().join("shard-1.json"),
        dir.path().join("shard-2.json"),
    );
    sweep(&whole, &[]);
    let out1 = sweep(&one, &["--shard", "1/2"]);
    sweep(&two, &["--shard", "2/2"]);
    // Every sim.* scenario × 3 seeds.
    let scenarios = scenarios::registry::select(Some("sim.")).len();
    let jobs = 3 * scenarios;
    assert!(
        text(&out1.stdout).contains(&format!("shard 1/2 of {jobs} jobs")),
        "{}",
        text(&out1.stdout)
    );

    // Disjoint, and together exactly the unsharded runs (same seeds, verdicts, traces).
    let (r1, r2) = (runs(&one), runs(&two));
    assert_eq!((r1.len(), r2.len()), (jobs.div_ceil(2), jobs / 2));
    assert!(r1.iter().all(|r| !r2.contains(r)), "a run in both shards");
    let mut union = [r1, r2].concat();
    union.sort();
    assert_eq!(union, runs(&whole));

    // Merged by `chaos report`: the same totals as the unsharded sweep.
    let totals = |files: &[&Path], out: &Path| {
        let mut args = vec!["report"];
        args.extend(files.iter().map(|f| f.to_str().unwrap()));
        args.extend(["--out", out.to_str().unwrap(), "--formats", "json"]);
        let result = chaos(&args);
        assert!(result.status.success(), "{}", text(&result.stderr));
        let report: serde_json::Value =
            serde_json::from_str(&read(&out.join("readiness.json"))).unwrap();
        (
            report["totals"].clone(),
            report["scenarios"].clone(),
            report["inputs"]["partial"].clone(),
        )
    };
    let (mut merged, merged_scenarios, partial) = totals(&[&one, &two], &dir.path().join("m"));
    let (mut unsharded, unsharded_scenarios, _) = totals(&[&whole], &dir.path().join("u"));
    assert_eq!(partial, false);
    assert_eq!(merged["runs"], jobs);
    assert_eq!(merged["runs_passed"], jobs);
    assert_eq!(merged["scenarios_run"], scenarios);
    // Wall times differ between runs of one seed; everything else must match.
    merged["wall_ms"] = 0.into();
    unsharded["wall_ms"] = 0.into();
    merged["elapsed_ms"] = 0.into();
    unsharded["elapsed_ms"] = 0.into();
    assert_eq!(merged, unsharded);
    let without_wall = |mut v: serde_json::Value| {
        for s in v.as_array_mut().unwrap() {
            s["wall_ms"] = 0.into();
        }
        v
    };
    assert_eq!(
        without_wall(merged_scenarios),
        without_wall(unsharded_scenarios)
    );

    // One shard alone is a partial merge, which the report says and which blocks.
    let out = chaos(&[
        "report",
        one.to_str().unwrap(),
        "--out",
        dir.path().join("p").to_str().unwrap(),
        "--require-ready",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not ready exits 1 with --require-ready"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("missing shard 2/2 of the sweep of scenarios sim.*, seeds 1..=3, 2 shards"),
        "{stdout}"
    );
    assert!(stdout.contains("blocking: partial merge"), "{stdout}");
    let md = read(&dir.path().join("p/readiness.md"));
    assert!(md.contains("**Partial**: missing shard 2/2"), "{md}");
}

#[test]
fn report_writes_four_files_and_junit_has_a_case_per_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.json");
    small_sweep(&file, false);
    let rep = dir.path().join("rep/nested");
    let out = chaos(&[
        "report",
        file.to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    assert!(last.starts_with("readiness: NOT READY ("), "{stdout}");
    for name in [
        "readiness.md",
        "readiness.html",
        "readiness.json",
        "junit.xml",
    ] {
        assert!(!read(&rep.join(name)).is_empty(), "{name}");
    }
    let json: serde_json::Value = serde_json::from_str(&read(&rep.join("readiness.json"))).unwrap();
    assert_eq!(json["schema"], "chaos-readiness/2");
    let scenarios = json["scenarios"].as_array().unwrap();
    let clock = scenarios
        .iter()
        .find(|s| s["id"] == "sim.clock.skew-does-not-bend-timeouts")
        .expect("the swept scenario is in the report");
    assert_eq!(
        (clock["runs"].as_u64(), clock["outcome"].as_str()),
        (Some(2), Some("passed"))
    );
    // Implemented catalog entries that were not swept are listed as not run.
    let not_run = scenarios
        .iter()
        .filter(|s| s["outcome"] == "not-run")
        .count();
    assert_eq!(not_run, scenarios.len() - 1);
    let xml = read(&rep.join("junit.xml"));
    assert_eq!(
        xml.matches("<testcase ").count(),
        scenarios.len() + 3,
        "one per scenario plus the two verdicts and both together"
    );
    assert!(
        xml.contains(
            "<testcase name=\"sim.clock.skew-does-not-bend-timeouts\" classname=\"sim/simulator\""
        ),
        "{xml}"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out_dir = out_dir.to_str().unwrap();
    let garbage = dir.path().join("garbage.json");
    write(&garbage, "{\"records\": []}");
    let other = dir.path().join("other.json");
    write(&other, "{\"schema\": \"chaos-sweep/9\"}");
    let truncated = dir.path().join("truncated.json");
    write(&truncated, "{\"schema\": \"chaos-sweep/1\", \"shard\": ");
    let good = dir.path().join("good.json");
    let out = chaos(&[
        "sweep",
        "--prefix",
        "sim.clock.",
        "--seeds",
        "1",
        "--json",
        good.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let g = good.to_str().unwrap();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["sweep", "--shard", "0/4"], "outside 1..=4".into()),
        (vec!["sweep", "--shard", "5/4"], "outside 1..=4".into()),
        (vec!["sweep", "--shard", "1/0"], "at least 1".into()),
        (vec!["sweep", "--shard", "2"], "not of the form i/n".into()),
        (vec!["report", "--out", out_dir], "required".into()),
        (vec!["report", g], "--out".into()),
        (
            vec!["report", "/nonexistent/s.json", "--out", out_dir],
            "cannot read /nonexistent/s.json".into(),
        ),
        (
            vec!["report", garbage.to_str().unwrap(), "--out", out_dir],
            format!("{}: no \"schema\" field", garbage.display()),
        ),
        (
            vec!["report", other.to_str().unwrap(), "--out", out_dir],
            "\"chaos-sweep/9\", but this build reads \"chaos-sweep/1\"".into(),
        ),
        (
            vec!["report", truncated.to_str().unwrap(), "--out", out_dir],
            format!("{}: not valid JSON", truncated.display()),
        ),
        (
            vec!["report", g, g, "--out", out_dir],
            "is given twice".into(),
        ),
        (
            vec!["report", g, "--out", out_dir, "--formats", "md,pdf"],
            "unknown report format \"pdf\"".into(),
        ),
        (
            vec!["report", g, "--out", "/proc/nope/x"],
            "cannot create /proc/nope/x".into(),
        ),
    ];
    for (args, expected) in cases {
        let out = chaos(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "chaos {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "chaos {args:?} panicked: {stderr}"
        );
        assert!(
            stderr.contains(&expected),
            "chaos {args:?} said {stderr:?}, expected {expected:?}"
        );
    }
}

#[test]
fn a_legacy_bare_array_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.json");
    small_sweep(&file, false);
    let sweep: serde_json::Value = serde_json::from_str(&read(&file)).unwrap();
    let legacy = dir.path().join("legacy.json");
    write(&legacy, &sweep["records"].to_string());
    let rep = dir.path().join("rep");
    let out = chaos(&[
        "report",
        legacy.to_str().unwrap(),
        "--out",
        rep.to_str().unwrap(),
        "--formats",
        "md",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let md = read(&rep.join("readiness.md"));
    assert!(md.contains("legacy sweep file"), "{md}");
    assert!(md.contains("2 runs of 1 scenario:"), "{md}");
    assert!(
        !rep.join("readiness.html").exists(),
        "only the asked format is written"
    );
}

/// High-risk planned entries of the catalog: the repository's policy waives each.
fn high_risk_planned() -> usize {
    scenarios::catalog::Catalog::embedded()
        .entries
        .iter()
        .filter(|e| {
            e.risk == scenarios::catalog::Risk::High
                && e.status == scenarios::catalog::Status::Planned
        })
        .count()
}

/// The repository's policy file.
fn repo_policy() -> String {
    format!("{}/../ci/readiness-policy.toml", env!("CARGO_MANIFEST_DIR"))
}

/// A one-scenario sweep (sim.clock.*, seeds 1..=2) into `file`; with `fail`, its seed-2
/// run is rewritten as a correctness failure: the planted bug.
fn small_sweep(file: &Path, fail: bool) {
    let out = chaos(&[
        "sweep",
        "--prefix",
        "sim.clock.",
        "--seeds",
        "2",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut sweep: serde_json::Value = serde_json::from_str(&read(file)).unwrap();
    assert!(
        sweep["elapsed_ms"].is_u64(),
        "the sweep records its elapsed time"
    );
    if fail {
        let run = &mut sweep["records"][1];
        run["verdict"] = "fail".into();
        run["failure_class"] = "correctness".into();
        run["message"] = "planted".into();
        write(file, &sweep.to_string());
    }
}

fn report_of(files: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["report"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    chaos(&args)
}

#[test]
fn the_repository_policy_makes_coverage_ready_and_a_failing_run_still_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (dir.path().join("good.json"), dir.path().join("bad.json"));
    small_sweep(&good, false);
    small_sweep(&bad, true);
    let policy = repo_policy();
    let n = high_risk_planned();
    let out = report_of(
        &[&good],
        &dir.path().join("g"),
        &["--policy", &policy, "--require-ready"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let tail: Vec<&str> = stdout.lines().rev().take(3).collect();
    assert_eq!(
        tail,
        vec![
            "readiness: ready (0 blocking)",
            &format!("coverage: ready (0 blocking, {n} waived)"),
            "regression: pass (0 blocking)",
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{n} used, 0 expired, 0 unused")),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&read(&dir.path().join("g/readiness.json"))).unwrap();
    assert_eq!(json["verdict"]["coverage"]["waived"], n);
    assert!(json["totals"]["elapsed_ms"].is_u64());
    let md = read(&dir.path().join("g/readiness.md"));
    assert!(md.contains("summed over runs;"), "{md}");

    // The same policy, a failing run: regression blocks, --require-ready exits 1.
    let out = report_of(
        &[&bad],
        &dir.path().join("b"),
        &["--policy", &policy, "--require-ready"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("regression: FAIL (1 blocking)"), "{stdout}");
    assert!(
        stdout.contains(&format!("coverage: ready (0 blocking, {n} waived)")),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("readiness: NOT READY (1 blocking)\n"),
        "{stdout}"
    );

    // Run from the repository's root, the policy file is found without --policy.
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    let out = common::command(&[
        "report",
        good.to_str().unwrap(),
        "--out",
        dir.path().join("d").to_str().unwrap(),
        "--formats",
        "json",
    ])
    .current_dir(&root)
    .output()
    .unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("policy: ci/readiness-policy.toml ("),
        "{stdout}"
    );
    assert!(stdout.contains("coverage: ready"), "{stdout}");
}

#[test]
fn an_expired_waiver_blocks_coverage_and_names_its_owner_and_date() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    small_sweep(&good, false);
    // The repository's waivers, one of them expired.
    let policy = read(Path::new(&repo_policy())).replacen(
        "entry = \"core.EC-059\"\nreason = \"plugins subsystem not built yet\"\nowner = \"engine team\"\nexpires = \"2027-03-31\"",
        "entry = \"core.EC-059\"\nreason = \"plugins subsystem not built yet\"\nowner = \"plugin team\"\nexpires = \"2020-01-31\"",
        1,
    );
    assert!(
        policy.contains("owner = \"plugin team\""),
        "the repository's policy no longer waives core.EC-059 as this test expects"
    );
    let file = dir.path().join("policy.toml");
    write(&file, &policy);
    let out = report_of(
        &[&good],
        &dir.path().join("r"),
        &["--policy", file.to_str().unwrap(), "--require-ready"],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "blocking: expired waiver: the waiver for core.EC-059 (owner plugin team) expired on 2020-01-31"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("regression: pass (0 blocking)"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "coverage: NOT READY (1 blocking, {} waived)",
            high_risk_planned() - 1
        )),
        "{stdout}"
    );
    // Without --require-ready the report is written and the exit status is 0.
    let out = report_of(
        &[&good],
        &dir.path().join("r2"),
        &["--policy", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn previous_names_a_planted_failure_newly_failing_then_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = (dir.path().join("good.json"), dir.path().join("bad.json"));
    small_sweep(&good, false);
    small_sweep(&bad, true);
    let id = "sim.clock.skew-does-not-bend-timeouts";
    let first = dir.path().join("first");
    assert!(report_of(&[&good], &first, &[]).status.success());
    // The previous report given as its directory.
    let second = dir.path().join("second");
    let out = report_of(&[&bad], &second, &["--previous", first.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("newly failing (1): {id} (passed → failed)")),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&read(&second.join("readiness.json"))).unwrap();
    assert_eq!(json["trend"]["newly_failing"][0]["id"], id);
    let md = read(&second.join("readiness.md"));
    assert!(md.contains("## Since the previous report"), "{md}");
    // The fix, compared with the failing report given as its file.
    let third = dir.path().join("third");
    let previous = second.join("readiness.json");
    let out = report_of(
        &[&good],
        &third,
        &["--previous", previous.to_str().unwrap()],
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("fixed (1): {id} (failed → passed)")),
        "{stdout}"
    );
    // The --out directory itself as the previous report: read before it is replaced.
    let out = report_of(&[&bad], &third, &["--previous", third.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("newly failing (1): {id} (passed → failed)")),
        "{stdout}"
    );
    let out = report_of(&[&good], &third, &["--previous", third.to_str().unwrap()]);
    assert!(text(&out.stdout).contains(&format!("fixed (1): {id}")));
    let xml = read(&third.join("junit.xml"));
    assert!(
        xml.contains(&format!("<property name=\"trend.fixed\" value=\"{id}\"/>")),
        "{xml}"
    );
}

#[test]
fn bad_policy_and_previous_files_get_a_clear_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    small_sweep(&good, false);
    let bad_policy = dir.path().join("bad.toml");
    write(
        &bad_policy,
        "[coverage]\nblock_planned = [\"high\"]\n\n[[waiver]]\nentry = \"core.EC-059\"\nreason = \"r\"\nowner = \"o\"\nexpires = \"2027-02-30\"\n",
    );
    let not_report = dir.path().join("not-report.json");
    write(&not_report, "{\"schema\": \"chaos-sweep/1\"}");
    let empty_dir = dir.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    let g = good.to_str().unwrap();
    let out_dir = dir.path().join("out");
    let o = out_dir.to_str().unwrap();
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["report", g, "--out", o, "--policy", "/nonexistent/p.toml"],
            "cannot read /nonexistent/p.toml".into(),
        ),
        (
            vec!["report", g, "--out", o, "--policy", bad_policy.to_str().unwrap()],
            format!(
                "{}: line 8: waiver for \"core.EC-059\": expires: \"2027-02-30\": month 2 of 2027 has no day 30",
                bad_policy.display()
            ),
        ),
        (
            vec!["report", g, "--out", o, "--previous", "/nonexistent/old.json"],
            "cannot read the previous report /nonexistent/old.json".into(),
        ),
        (
            vec!["report", g, "--out", o, "--previous", empty_dir.to_str().unwrap()],
            format!("no readiness.json in {}", empty_dir.display()),
        ),
        (
            vec!["report", g, "--out", o, "--previous", not_report.to_str().unwrap()],
            "schema \"chaos-sweep/1\", but this build reads chaos-readiness/1 and chaos-readiness/2"
                .into(),
        ),
    ];
    for (args, expected) in cases {
        let out = chaos(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "chaos {args:?}: {stderr}");
        assert!(
            stderr.contains(&expected),
            "chaos {args:?} said {stderr:?}, expected {expected:?}"
        );
        assert!(stderr.contains("hint: "), "chaos {args:?}: {stderr}");
    }
}

/// On GitHub Actions a failing scenario is annotated at its declaration with its repro
/// line, and the report lands in the job summary.
#[test]
fn on_github_a_failure_is_annotated_at_its_declaration_and_the_report_summarized() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    small_sweep(&bad, true);
    let summary = dir.path().join("summary.md");
    write(&summary, "earlier step\n");
    let out = common::command(&[
        "report",
        bad.to_str().unwrap(),
        "--out",
        dir.path().join("r").to_str().unwrap(),
        "--policy",
        &repo_policy(),
    ])
    .env("GITHUB_ACTIONS", "true")
    .env("GITHUB_STEP_SUMMARY", &summary)
    .output()
    .unwrap();
    let stdout = text(&out.stdout);
    let id = "sim.clock.skew-does-not-bend-timeouts";
    let annotation = stdout
        .lines()
        .find(|l| l.starts_with("::error file=scenarios/src/substrate/clock.rs,line="))
        .unwrap_or_else(|| panic!("no annotation at the declaration: {stdout}"));
    assert!(
        annotation.contains(&format!("title=chaos report%3A failing {id}::")),
        "{annotation}"
    );
    assert!(
        annotation.contains("%0Arepro: ")
            && annotation.ends_with(&format!("run {id} --seed 2 --trace")),
        "{annotation}"
    );
    let summarized = read(&summary);
    assert!(
        summarized.starts_with("earlier step\n"),
        "appended, not replaced"
    );
    assert!(summarized.contains("Release readiness"), "{summarized}");
    assert!(summarized.contains(id), "{summarized}");

    // Off GitHub: no workflow commands, and no summary written.
    let quiet = report_of(
        &[&bad],
        &dir.path().join("q"),
        &["--policy", &repo_policy()],
    );
    assert!(!text(&quiet.stdout).contains("::error"));
}
