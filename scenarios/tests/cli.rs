//! The `chaos` binary end to end: output shape, exit codes, and bad input that must get
//! a clear error (exit 2) and never a panic.

mod common;
use common::{chaos, text};

#[test]
fn list_json_has_exactly_the_235_catalog_ids_with_all_fields() {
    let out = chaos(&["list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json array");
    assert_eq!(entries.len(), 235);
    for e in &entries {
        for field in [
            "id",
            "title",
            "subsystem",
            "category",
            "risk",
            "source",
            "status",
            "reason",
        ] {
            assert!(
                e.get(field).is_some_and(|v| v.is_string()),
                "{e} lacks {field}"
            );
        }
    }
    for e in &entries {
        let cores = e["cores"]
            .as_array()
            .unwrap_or_else(|| panic!("{e} lacks cores"));
        if e["status"] == "implemented" {
            assert!(
                cores
                    .iter()
                    .any(|c| c.as_str().is_some_and(|c| c.starts_with("engine/src/"))),
                "{e}: an implemented entry names the engine files its scenario proves"
            );
        } else {
            assert!(cores.is_empty(), "{e}: cores without a scenario");
        }
    }
    let ids: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 235, "ids are unique");
    assert!(
        ids.contains("core.EC-141") && ids.contains("pattern.7.5") && ids.contains("api.LIMIT-FD")
    );
}

#[test]
fn list_filters_by_status_and_prefix() {
    let out = chaos(&["list", "--prefix", "pattern.", "--json"]);
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entries.len(), 22);
    let out = chaos(&["list", "--status", "not-applicable", "--json"]);
    let entries: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["status"] == "not-applicable" && e["reason"] != "")
    );
    let out = chaos(&["list", "--substrate", "--json"]);
    let scenarios: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!scenarios.is_empty());
    assert!(
        scenarios
            .iter()
            .all(|s| s["cores"].as_array().is_some_and(|c| !c.is_empty())),
        "every self-check names the files it proves"
    );
    let table = text(&chaos(&["list", "--prefix", "core.EC-032"]).stdout);
    assert!(
        table.contains("cores: engine/src/sessions/core/queries.rs"),
        "{table}"
    );
}

#[test]
fn run_json_has_the_outcome_fields_and_replays_identically() {
    let args = [
        "run",
        "sim.net.partition-heal-no-loss",
        "--seed",
        "7",
        "--json",
    ];
    let out = chaos(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "id",
        "seed",
        "verdict",
        "failure_class",
        "trace_hash",
        "sim_time_ns",
        "events",
        "faults",
        "wall_ms",
        "repro",
    ] {
        assert!(
            record.get(field).is_some(),
            "record lacks {field}: {record}"
        );
    }
    assert_eq!(record["verdict"], "pass");
    assert!(record["faults"]["net.partition_hold"].as_u64().unwrap() >= 1);
    assert!(record["repro"].as_str().unwrap().contains("--seed 7"));
    let again: serde_json::Value = serde_json::from_slice(&chaos(&args).stdout).unwrap();
    assert_eq!(record["trace_hash"], again["trace_hash"]);
}

#[test]
fn run_with_trace_prints_simulated_time_and_the_repro_line() {
    let out = chaos(&["run", "sim.proc.oom-kill-status", "--seed", "3", "--trace"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("proc.oom_kill"), "{stdout}");
    assert!(stdout.contains("verdict:     PASS"), "{stdout}");
    assert!(
        stdout.contains("cores:       sim/src/procs/launch.rs, sim/src/procs/process.rs"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()) && l.contains("s ")),
        "no timed trace line: {stdout}"
    );
    assert!(stdout.contains("repro:       cargo run --release -p scenarios --bin chaos -- run sim.proc.oom-kill-status --seed 3"));
}

#[test]
fn sweep_writes_one_record_per_run_and_summarizes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out/sweep.json");
    let out = chaos(&[
        "sweep",
        "--prefix",
        "sim.clock.",
        "--seeds",
        "3",
        "--jobs",
        "2",
        "--json",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    #[allow(clippy::disallowed_methods, reason = "reading the CLI's output file")]
    let sweep: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(sweep["schema"], "chaos-sweep/1");
    assert_eq!(sweep["shard"], serde_json::json!({"index": 1, "count": 1}));
    let records = sweep["records"].as_array().expect("records");
    assert_eq!(records.len(), 3);
    let seeds: Vec<u64> = records
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, vec![1, 2, 3]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("3 runs of 1 scenario"), "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("sweep: 3 passed, 0 failed"),
        "{stdout}"
    );
    assert!(
        !text(&out.stderr).contains('\u{2588}'),
        "no progress bar when not on a terminal"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_exit_2_never_a_panic() {
    // An entry still without a scenario: the first planned one (they get implemented
    // over time, so none is named here).
    let planned = text(&chaos(&["list", "--status", "planned"]).stdout);
    let planned_id = planned
        .split_whitespace()
        .next()
        .expect("the catalog has a planned entry")
        .to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "sim.net.partition-heal-no-los", "--seed", "1"],
            "did you mean sim.net.partition-heal-no-loss",
        ),
        (
            &["run", planned_id.as_str(), "--seed", "1"],
            "has no scenario yet",
        ),
        (&["run", "nope", "--seed", "1"], "no scenario has the id"),
        (
            &[
                "run",
                "sim.clock.skew-does-not-bend-timeouts",
                "--seed",
                "-1",
            ],
            "error",
        ),
        (
            &[
                "run",
                "sim.clock.skew-does-not-bend-timeouts",
                "--seed",
                "abc",
            ],
            "invalid value",
        ),
        (
            &[
                "run",
                "sim.clock.skew-does-not-bend-timeouts",
                "--seed",
                "18446744073709551616",
            ],
            "invalid value",
        ),
        (&["run", "sim.clock.skew-does-not-bend-timeouts"], "--seed"),
        (&["list", "--status", "done"], "unknown status"),
        (&["list", "--bogus"], "unexpected argument"),
        (&["sweep", "--prefix", "zzz."], "no scenario id starts with"),
        (&["sweep", "--seeds", "0"], "invalid value"),
        (&["sweep", "--jobs", "0"], "invalid value"),
        (
            &[
                "sweep",
                "--seeds",
                "2",
                "--seed-start",
                "18446744073709551615",
            ],
            "--seed-start can be at most 18446744073709551614",
        ),
        (&["frobnicate"], "unrecognized subcommand"),
        (&[], "Usage"),
    ];
    for (args, expected) in cases {
        let out = chaos(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "chaos {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "chaos {args:?} panicked: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "chaos {args:?} said {stderr:?}, expected {expected:?}"
        );
    }
    let unwritable = chaos(&[
        "run",
        "sim.clock.skew-does-not-bend-timeouts",
        "--seed",
        "1",
        "--trace-jsonl",
        "/proc/nope/x",
    ]);
    assert_eq!(unwritable.status.code(), Some(2));
    assert!(text(&unwritable.stderr).contains("cannot write the trace"));
}

/// Runs `chaos ARGS`, expecting exit 2, and returns stderr.
fn refused(args: &[&str]) -> String {
    let out = chaos(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "chaos {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "chaos {args:?}: {stderr}");
    stderr
}

#[test]
fn errors_suggest_each_id_once_and_say_what_the_filter_found() {
    // The catalog and the registry both know core.EC-001: it is suggested once.
    let stderr = refused(&["run", "core.EC-00", "--seed", "1"]);
    let hint = stderr
        .lines()
        .find_map(|l| l.strip_prefix("hint: did you mean "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let ids: Vec<&str> = hint.trim_end_matches('?').split(", ").collect();
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(ids.len(), 3, "{hint}");
    assert_eq!(ids, distinct, "{hint}");
    // Entries match the prefix, but none has the status asked for.
    let out = chaos(&["list", "--prefix", "cwm", "--status", "implemented"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success());
    assert!(
        stderr.contains("entries match --prefix cwm but none is implemented (they are planned)"),
        "{stderr}"
    );
    assert!(!stderr.contains("did you mean"), "{stderr}");
}

#[test]
fn a_directory_or_a_binary_file_gets_a_message_and_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let binary = dir.path().join("sweep.json.gz");
    common::write_bytes(&binary, &[0x1f, 0x8b, 0x08, 0xff, 0xfe, 0x00]);
    let b = binary.to_str().unwrap();
    // A scenario with a plan: --plan is read only for those.
    let id = "core.EC-001";
    let out = dir.path().join("report");
    let o = out.to_str().unwrap();
    for args in [
        vec!["report", d, "--out", o],
        vec!["repro", d],
        vec!["gate", "--from", d, "--baseline", d],
        vec!["run", id, "--seed", "1", "--plan", d],
    ] {
        let stderr = refused(&args);
        assert!(
            stderr.contains("is a directory, not a file"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("hint: name a file in it"),
            "{args:?}: {stderr}"
        );
    }
    for args in [
        vec!["report", b, "--out", o],
        vec!["repro", b],
        vec!["run", id, "--seed", "1", "--plan", b],
        vec!["shrink", id, "--seed", "1", "--plan", b],
    ] {
        let stderr = refused(&args);
        assert!(
            stderr.contains("is not a text file (it is not UTF-8)"),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("hint: give the JSON file chaos wrote"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn seeds_past_the_largest_say_the_maximum() {
    let stderr = refused(&["run", "core.EC-001", "--seed", "99999999999999999999"]);
    assert!(
        stderr.contains("larger than the largest seed, 18446744073709551615"),
        "{stderr}"
    );
    let stderr = refused(&[
        "sweep",
        "--seed-start",
        "18446744073709551610",
        "--seeds",
        "9",
    ]);
    assert!(stderr.contains("run past the largest seed"), "{stderr}");
    assert!(
        stderr.contains("hint: with --seeds 9, --seed-start can be at most 18446744073709551607"),
        "{stderr}"
    );
}

#[test]
fn json_means_stdout_and_output_means_a_file_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    // sweep --json: the sweep file on stdout, the summary on stderr.
    let out = chaos(&["sweep", "--prefix", "sim.clock.", "--seeds", "2", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sweep: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(sweep["records"].as_array().unwrap().len(), 2);
    assert!(text(&out.stderr).contains("sweep: 2 passed, 0 failed"));
    // -o FILE writes it; the older --json FILE still does, with a warning.
    let new = dir.path().join("new.json");
    let old = dir.path().join("old.json");
    let out = chaos(&[
        "sweep",
        "--prefix",
        "sim.clock.",
        "--seeds",
        "2",
        "-o",
        new.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && text(&out.stderr).is_empty(),
        "{}",
        text(&out.stderr)
    );
    let out = chaos(&[
        "sweep",
        "--prefix",
        "sim.clock.",
        "--seeds",
        "2",
        "--json",
        old.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("`--json FILE` is deprecated: use `--output FILE`"));
    let records = |path| {
        let v: serde_json::Value = serde_json::from_str(&common::read(path)).unwrap();
        v["records"].clone()
    };
    assert_eq!(
        records(&new).as_array().unwrap().len(),
        records(&old).as_array().unwrap().len()
    );
    // run --trace --json carries the trace; run -o writes the record.
    let id = "sim.proc.oom-kill-status";
    let out = chaos(&["run", id, "--seed", "3", "--trace", "--json"]);
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let trace = record["trace"]
        .as_array()
        .expect("the trace is in the JSON");
    assert!(!trace.is_empty() && trace[0]["t_ns"].is_u64(), "{record}");
    assert!(record["trace_lines_dropped"].is_u64());
    let file = dir.path().join("run.json");
    let out = chaos(&["run", id, "--seed", "3", "-o", file.to_str().unwrap()]);
    assert!(text(&out.stdout).contains("verdict:     PASS"));
    let written: serde_json::Value = serde_json::from_str(&common::read(&file)).unwrap();
    assert_eq!(written["trace_hash"], record["trace_hash"]);
    assert!(written.get("trace").is_none(), "no trace without --trace");
}

#[test]
fn records_and_sweep_files_say_which_build_made_them() {
    let out = chaos(&["run", "core.EC-001", "--seed", "4", "--json"]);
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &record["provenance"];
    for field in ["commit", "version", "toolchain", "target", "host", "date"] {
        assert!(
            p[field].as_str().is_some_and(|v| !v.is_empty()),
            "provenance lacks {field}: {record}"
        );
    }
    assert!(p["dirty"].is_boolean());
    assert!(
        p["toolchain"].as_str().unwrap().starts_with("rustc "),
        "{p}"
    );
    assert_eq!(p["version"], env!("CARGO_PKG_VERSION"));
    // The plan digest names the plan the seed drew: another seed, another plan.
    let digest = record["plan_digest"].as_str().expect("a plan digest");
    assert_eq!(digest.len(), 16);
    let again: serde_json::Value =
        serde_json::from_slice(&chaos(&["run", "core.EC-001", "--seed", "4", "--json"]).stdout)
            .unwrap();
    assert_eq!(again["plan_digest"], digest);
    let other: serde_json::Value =
        serde_json::from_slice(&chaos(&["run", "core.EC-001", "--seed", "5", "--json"]).stdout)
            .unwrap();
    assert_ne!(other["plan_digest"], digest);
    let out = chaos(&["sweep", "--id", "core.EC-001", "--seeds", "1", "--json"]);
    let sweep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sweep["provenance"]["commit"], p["commit"]);
    assert!(
        sweep["records"][0].get("provenance").is_none(),
        "once per file"
    );
    assert!(sweep["records"][0]["plan_digest"].is_string());
    // --version names the same build.
    let version = text(&chaos(&["--version"]).stdout);
    assert!(
        version.contains(&format!(
            "(commit {}, dirty: {}",
            p["commit"].as_str().unwrap(),
            p["dirty"]
        )),
        "{version}"
    );
}

#[test]
fn scenarios_are_chosen_by_ids_lists_patterns_and_partitions() {
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["sweep", "--seeds", "1", "--json"];
        all.extend_from_slice(args);
        let out = chaos(&all);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&["--id", "core.EC-002,core.EC-001"]),
        ["core.EC-001", "core.EC-002"]
    );
    assert_eq!(
        ids(&["--id", "core.EC-001", "--id", "core.EC-003"]),
        ["core.EC-001", "core.EC-003"]
    );
    let globbed = ids(&["--filter", "core.EC-00?"]);
    assert_eq!(globbed.len(), 9, "{globbed:?}");
    assert!(globbed.iter().all(|id| id.starts_with("core.EC-00")));
    // A prefix narrows what the ids and patterns take.
    assert_eq!(
        ids(&["--filter", "core.EC-00*,sim.net.*", "--prefix", "core."]),
        globbed
    );
    // --partition count:I/N is --shard I/N.
    let shard = ids(&["--filter", "core.EC-00?", "--shard", "2/3"]);
    assert_eq!(
        ids(&["--filter", "core.EC-00?", "--partition", "count:2/3"]),
        shard
    );
    assert_eq!(shard.len(), 3);
    let stderr = refused(&["sweep", "--partition", "hash:1/2"]);
    assert!(
        stderr.contains("partition kind \"hash\" is not supported"),
        "{stderr}"
    );
    let stderr = refused(&["sweep", "--shard", "1/2", "--partition", "count:1/2"]);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let stderr = refused(&["sweep", "--id", "core.EC-0001"]);
    assert!(stderr.contains("did you mean core.EC-001"), "{stderr}");
    let stderr = refused(&["sweep", "--filter", "EC-00*"]);
    assert!(stderr.contains("matches no scenario"), "{stderr}");
    // list takes the same selectors, over the catalog.
    let out = chaos(&["list", "--id", "core.EC-001,pattern.7.5", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<&str> = listed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ["core.EC-001", "pattern.7.5"]);
    let out = chaos(&["list", "--filter", "pattern.7.*", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !listed.is_empty()
            && listed
                .iter()
                .all(|e| e["id"].as_str().unwrap().starts_with("pattern.7."))
    );
    let stderr = refused(&["list", "--id", "core.EC-9999"]);
    assert!(stderr.contains("no catalog entry has the id"), "{stderr}");
}
