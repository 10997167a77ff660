//! `chaos shrink` and `chaos repro` of a shrunk record, end to end on the real binary:
//! nothing to shrink (no declared plan, a passing run) is exit 2 with a reason; a plan
//! that fails on main shrinks to fewer faults, is saved, and replays identically; a
//! hand-made record of a passing plan round-trips through `repro`; bad files are exit 2.

mod common;
use common::{chaos, read, stderr, stdout, write};

use scenarios::registry;
use scenarios::runner::run_scenario_with_plan;
use scenarios::shrink::{SHRUNK_SCHEMA, ShrunkRecord};
use sim::FaultPlan;
use sim::faults::Fault;
use std::path::Path;

const MANY: &str = "sim.net.many-faults-exactly-once";

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_scenario_without_a_declared_plan_has_nothing_to_shrink() {
    let out = chaos(&["shrink", "sim.host.pause-delays-heartbeats", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("declares no fault plan"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("hint:"), "{}", stderr(&out));
}

#[test]
fn a_passing_run_has_nothing_to_shrink_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("shrunk.json");
    let out = chaos(&["shrink", MANY, "--seed", "1", "--out", path(&out_file)]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("passes") && stderr(&out).contains("no failure to shrink"),
        "{}",
        stderr(&out)
    );
    assert!(!out_file.exists(), "nothing is saved for a passing run");
}

/// A plan that fails on main: crashing the client kills its sender (the scenario's
/// "sender task died" oracle), among faults that do not matter to that failure.
fn failing_plan() -> FaultPlan {
    let host = |h: &str| h.to_string();
    let mut plan = FaultPlan::default()
        .at(
            559,
            Fault::PauseHost {
                host: host("server"),
            },
        )
        .at(
            1_379,
            Fault::ResumeHost {
                host: host("server"),
            },
        )
        .at(
            3_000,
            Fault::ResetConnections {
                a: host("client"),
                b: host("server"),
            },
        )
        .at(
            5_000,
            Fault::CrashHost {
                host: host("client"),
            },
        )
        .at(
            12_000,
            Fault::Partition {
                a: host("client"),
                b: host("server"),
                mode: sim::faults::PartitionMode::Hold,
                one_way: false,
            },
        )
        .at(12_500, Fault::HealAll);
    plan.swarm
        .rates
        .insert(sim::faults::SwarmKind::NetReset, sim::Ratio::new(1, 100));
    plan
}

#[test]
fn a_failing_plan_shrinks_to_fewer_faults_that_fail_the_same_oracle_and_replay_identically() {
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("plan.json");
    write(&plan_file, &serde_json::to_string(&failing_plan()).unwrap());
    let saved = dir.path().join("out/shrunk.json");
    let out = chaos(&[
        "shrink",
        MANY,
        "--seed",
        "1",
        "--plan",
        path(&plan_file),
        "--out",
        path(&saved),
    ]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(4),
        "correctness: {text}{}",
        stderr(&out)
    );
    assert!(
        text.contains("original plan: 4 faults (6 actions), swarm net_reset 1/100"),
        "{text}"
    );
    assert!(text.contains("  at 5.000s crash client"), "{text}");
    assert!(
        text.contains("same oracle: correctness \"the client's sender task died\""),
        "{text}"
    );
    assert!(text.contains("minimal plan, found in "), "{text}");
    assert!(
        text.contains("[  1/500] drop 4 of 4 faults"),
        "progress: {text}"
    );

    let record = ShrunkRecord::parse("saved", &read(&saved)).unwrap();
    assert_eq!(record.schema, SHRUNK_SCHEMA);
    assert_eq!((record.id.as_str(), record.seed), (MANY, 1));
    let faults: Vec<&Fault> = record.plan.actions.iter().map(|a| &a.fault).collect();
    assert_eq!(
        faults,
        vec![&Fault::CrashHost {
            host: "client".into()
        }],
        "only the crash matters"
    );
    assert!(
        record.plan.swarm.rates.is_empty(),
        "the swarm does not matter"
    );
    assert_eq!(
        record.message.as_deref(),
        Some("the client's sender task died")
    );
    let stats = record.shrink.as_ref().unwrap();
    assert_eq!((stats.faults_before, stats.faults_after), (4, 1));
    assert_eq!(stats.original_plan, failing_plan());
    assert!(stats.runs >= 2 && stats.runs <= 500, "{} runs", stats.runs);

    let replay = chaos(&["repro", path(&saved)]);
    let replayed = stdout(&replay);
    assert_eq!(
        replay.status.code(),
        Some(4),
        "{replayed}{}",
        stderr(&replay)
    );
    assert!(
        replayed.contains(&format!(
            "replay: identical to the record (trace hash {})",
            record.trace_hash
        )),
        "{replayed}"
    );
    assert!(
        replayed.contains("crash client"),
        "the plan is shown: {replayed}"
    );
    assert!(
        replayed.contains(&format!("-- repro {}", path(&saved))),
        "the repro line replays the record, not the seed: {replayed}"
    );

    // The saved record can seed another shrink: already minimal, it stays as it is.
    let again = dir.path().join("again.json");
    let out = chaos(&[
        "shrink",
        MANY,
        "--seed",
        "1",
        "--plan",
        path(&saved),
        "--out",
        path(&again),
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let second = ShrunkRecord::parse("again", &read(&again)).unwrap();
    assert_eq!(second.plan, record.plan);
    assert_eq!(second.trace_hash, record.trace_hash);
}

#[test]
fn the_run_budget_is_respected_and_said_to_run_out() {
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("plan.json");
    write(&plan_file, &serde_json::to_string(&failing_plan()).unwrap());
    let saved = dir.path().join("shrunk.json");
    let out = chaos(&[
        "shrink",
        MANY,
        "--seed",
        "1",
        "--plan",
        path(&plan_file),
        "--max-runs",
        "2",
        "--out",
        path(&saved),
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("[2/2]") && !text.contains("[3/2]"), "{text}");
    assert!(text.contains("the budget ran out"), "{text}");
    let record = ShrunkRecord::parse("saved", &read(&saved)).unwrap();
    let stats = record.shrink.unwrap();
    assert!(stats.budget_exhausted && stats.runs == 2);
    assert!(
        stats.faults_after < stats.faults_before,
        "run 2 already dropped half"
    );
}

#[test]
fn a_record_of_a_passing_plan_round_trips_through_repro_and_a_changed_hash_is_caught() {
    let scenario = registry::find(MANY).unwrap();
    let plan = FaultPlan::default()
        .at(
            2_000,
            Fault::PauseHost {
                host: "server".into(),
            },
        )
        .at(
            2_200,
            Fault::ResumeHost {
                host: "server".into(),
            },
        );
    let result = run_scenario_with_plan(scenario, 5, Some(plan.clone()));
    assert!(result.record.passed(), "{:?}", result.record.message);
    assert_eq!(result.record.faults.get("host.pause"), Some(&1));
    let record = ShrunkRecord::of_run(&result, plan, None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pinned.json");
    write(&file, &serde_json::to_string_pretty(&record).unwrap());
    let out = chaos(&["repro", path(&file)]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "replay: identical to the record (trace hash {})",
            record.trace_hash
        )),
        "{text}"
    );
    assert!(text.contains("verdict: PASS"), "{text}");

    let mut tampered = record.clone();
    tampered.trace_hash = "0000000000000000".into();
    write(&file, &serde_json::to_string(&tampered).unwrap());
    let out = chaos(&["repro", path(&file)]);
    assert!(
        stdout(&out).contains("replay: DIFFERS from the record"),
        "{}",
        stdout(&out)
    );

    let out = chaos(&["repro", path(&file), "--seed", "6"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("seed 5, not 6"), "{}", stderr(&out));
}

#[test]
fn bad_plans_and_records_are_refused_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.json");
    let refuse = |args: &[&str], needle: &str| {
        let out = chaos(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    };
    let shrink = ["shrink", MANY, "--seed", "1", "--plan", path(&file)];

    write(&file, "not json");
    refuse(&shrink, "neither a fault plan nor a chaos-shrunk/1 record");

    write(
        &file,
        r#"{"actions":[{"at_ms":5,"kind":"pause_host","host":"nowhere"}]}"#,
    );
    refuse(&shrink, "\"nowhere\"");
    refuse(&["repro", path(&file)], "neither a run record");

    let record =
        format!(r#"{{"schema":"chaos-shrunk/9","id":"{MANY}","seed":1,"plan":{{"actions":[]}}}}"#);
    write(&file, &record);
    refuse(&["repro", path(&file)], "chaos-shrunk/9");
    refuse(&shrink, "chaos-shrunk/9");

    let other = ShrunkRecord {
        schema: SHRUNK_SCHEMA.into(),
        id: "sim.net.partition-heal-no-loss".into(),
        seed: 1,
        plan: FaultPlan::default(),
        verdict: scenarios::record::Verdict::Fail,
        failure_class: None,
        message: None,
        trace_hash: String::new(),
        shrink: None,
    };
    write(&file, &serde_json::to_string(&other).unwrap());
    refuse(&shrink, "a record of sim.net.partition-heal-no-loss");

    let nowhere = ShrunkRecord {
        id: MANY.into(),
        plan: FaultPlan::default().at(1, Fault::CrashHost { host: "x".into() }),
        ..other
    };
    write(&file, &serde_json::to_string(&nowhere).unwrap());
    refuse(&["repro", path(&file)], "\"x\"");

    refuse(
        &["shrink", MANY, "--seed", "1", "--max-runs", "0"],
        "--max-runs",
    );
}
