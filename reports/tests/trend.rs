//! The comparison with an earlier report: a planted failure is named newly failing, and
//! once fixed, fixed; an earlier report of schema `chaos-readiness/1` still reads; a bad
//! earlier report is an error naming the file; every rendering shows the trend first.

mod common;

use common::{catalog, report_of, report_with, shard_file};
use reports::catalog::CatalogEntry;
use reports::merge::{Merged, merge};
use reports::readiness::{Policy, PreviousReport, Readiness};
use reports::record::{FailureClass, Verdict};
use reports::render::{html, json, junit, markdown};

/// Every shard of the fixture sweep, with only passing runs of core.EC-001 and sim.*.
fn clean() -> Merged {
    let keep = |mut f: reports::sweep_file::LoadedSweep| {
        f.file
            .records
            .retain(|r| r.id == "core.EC-001" || r.id.starts_with("sim."));
        f
    };
    merge(vec![keep(shard_file(1, 2)), keep(shard_file(2, 2))]).unwrap()
}

/// `clean` with core.EC-001 failing at seed 3: the planted bug.
fn planted() -> Merged {
    let mut m = clean();
    let run = m
        .records
        .iter_mut()
        .find(|r| r.id == "core.EC-001" && r.seed == 3)
        .unwrap();
    run.verdict = Verdict::Fail;
    run.failure_class = Some(FailureClass::Correctness);
    m
}

fn read_back(r: &Readiness) -> PreviousReport {
    PreviousReport::parse("old/readiness.json", &json(r).unwrap()).unwrap()
}

fn cat() -> Vec<CatalogEntry> {
    catalog()
}

/// All four renderings of `r`, pinned as `{name}.{md,html,json,xml}` with wall-clock
/// values redacted (as in render.rs).
fn snapshot_all(name: &str, r: &Readiness) {
    let renderings = [
        ("md", markdown(r)),
        ("html", html(r).unwrap()),
        ("json", json(r).unwrap()),
        ("xml", junit(r).unwrap()),
    ];
    for (ext, text) in renderings {
        insta::with_settings!({
            filters => vec![
                (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[generated_at]"),
                (r"\d+\.\d{3} s\b", "[wall time]"),
                (r#""wall_ms": \d+"#, r#""wall_ms": "[wall_ms]""#),
                (r#"time="[0-9.]+""#, r#"time="[time]""#),
            ],
        }, {
            insta::assert_snapshot!(format!("{name}.{ext}"), text);
        });
    }
}

/// The acceptance pair: a build with one planted failure against the clean build's
/// report names it newly failing; the fixed build against the planted one names it
/// fixed. Every rendering is pinned, so a lost trend line shows in review.
#[test]
fn planted_then_fixed_in_all_four_renderings() {
    let good = report_of(&clean(), &cat());
    let bad = report_with(
        &planted(),
        &cat(),
        &Policy::builtin(),
        Some(&read_back(&good)),
    );
    snapshot_all("trend_newly_failing", &bad);
    let fixed = report_with(&clean(), &cat(), &Policy::builtin(), Some(&read_back(&bad)));
    snapshot_all("trend_fixed", &fixed);
}

#[test]
fn a_planted_failure_is_newly_failing_and_then_fixed() {
    let good = report_of(&clean(), &cat());
    let bad = report_with(
        &planted(),
        &cat(),
        &Policy::builtin(),
        Some(&read_back(&good)),
    );
    let t = bad.trend.as_ref().expect("a trend");
    let ids = |l: &[reports::readiness::ScenarioChange]| {
        l.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&t.newly_failing), vec!["core.EC-001"]);
    assert_eq!(t.newly_failing[0].before, "passed");
    assert_eq!(t.newly_failing[0].after, "failed");
    assert!(t.fixed.is_empty() && t.still_failing.is_empty());
    assert_eq!((t.runs_failed.before, t.runs_failed.after), (0, 1));
    assert_eq!(t.previous_file, "old/readiness.json");

    let fixed = report_with(&clean(), &cat(), &Policy::builtin(), Some(&read_back(&bad)));
    let t = fixed.trend.as_ref().unwrap();
    assert_eq!(ids(&t.fixed), vec!["core.EC-001"]);
    assert!(t.newly_failing.is_empty() && t.still_failing.is_empty());

    let again = report_with(
        &planted(),
        &cat(),
        &Policy::builtin(),
        Some(&read_back(&bad)),
    );
    assert_eq!(
        ids(&again.trend.as_ref().unwrap().still_failing),
        vec!["core.EC-001"]
    );
}

#[test]
fn coverage_and_faults_are_compared() {
    let mut before_catalog = cat();
    before_catalog.retain(|e| e.id != "core.EC-004");
    let before = report_of(&clean(), &before_catalog);
    let now = report_with(
        &clean(),
        &cat(),
        &Policy::builtin(),
        Some(&read_back(&before)),
    );
    let t = now.trend.unwrap();
    assert_eq!(t.coverage_lost, vec!["core.EC-004"]);
    assert!(t.coverage_gained.is_empty());
    assert_eq!((t.planned.before, t.planned.after), (1, 2));
    let crash = t.faults.iter().find(|f| f.kind == "host.crash").unwrap();
    assert_eq!((crash.before, crash.after), (4, 4));
}

#[test]
fn an_earlier_report_of_schema_1_still_reads() {
    let earlier = report_of(&planted(), &cat());
    let mut v: serde_json::Value = serde_json::from_str(&json(&earlier).unwrap()).unwrap();
    // What /1 did not have.
    v["schema"] = "chaos-readiness/1".into();
    let o = v.as_object_mut().unwrap();
    o.remove("policy");
    o.remove("trend");
    let verdict = v["verdict"].as_object_mut().unwrap();
    verdict.remove("regression");
    verdict.remove("coverage");
    for s in v["scenarios"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("unknown");
    }
    let p = PreviousReport::parse("v1.json", &v.to_string()).unwrap();
    assert_eq!(p.schema, "chaos-readiness/1");
    let now = report_with(&clean(), &cat(), &Policy::builtin(), Some(&p));
    assert_eq!(now.trend.unwrap().fixed[0].id, "core.EC-001");
}

#[test]
fn a_bad_earlier_report_names_the_file_and_the_problem() {
    for (text, why) in [
        ("", "not valid JSON"),
        ("[1, 2]", "not a readiness report"),
        ("{}", "no \"schema\" field"),
        (
            "{\"schema\": \"chaos-sweep/1\"}",
            "schema \"chaos-sweep/1\", but this build reads",
        ),
        (
            "{\"schema\": \"chaos-readiness/2\"}",
            "malformed readiness report",
        ),
    ] {
        let err = PreviousReport::parse("old/readiness.json", text).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("old/readiness.json: "), "{shown}");
        assert!(shown.contains(why), "{text:?}: {shown}");
    }
}

#[test]
fn every_rendering_shows_the_trend_first() {
    let good = report_of(&clean(), &cat());
    let r = report_with(
        &planted(),
        &cat(),
        &Policy::builtin(),
        Some(&read_back(&good)),
    );
    let md = markdown(&r);
    let at = |text: &str, what: &str| {
        text.find(what)
            .unwrap_or_else(|| panic!("{what:?} missing from {text}"))
    };
    assert!(at(&md, "## Since the previous report") < at(&md, "## Verdict"));
    assert!(
        md.contains("- **newly failing** (1): core.EC-001 (passed → failed)"),
        "{md}"
    );
    // A planted failure fires the same faults: the kinds are summed up, not listed.
    assert!(
        md.contains("Faults fired: 3 kinds with the same count before and after."),
        "{md}"
    );
    assert!(!md.contains("| faults fired: `host.crash`"), "{md}");
    let page = html(&r).unwrap();
    assert!(at(&page, "id=\"trend\"") < at(&page, "id=\"verdict\""));
    assert!(
        page.contains("Faults fired: 3 kinds with the same count before and after."),
        "{page}"
    );
    assert!(page.contains("core.EC-001 (passed → failed)"), "{page}");
    let xml = junit(&r).unwrap();
    assert!(
        xml.contains("<property name=\"trend.newly_failing\" value=\"core.EC-001\"/>"),
        "{xml}"
    );
    assert!(
        xml.contains("newly failing (1): core.EC-001 (passed → failed)"),
        "{xml}"
    );
    let value: serde_json::Value = serde_json::from_str(&json(&r).unwrap()).unwrap();
    assert_eq!(value["trend"]["newly_failing"][0]["id"], "core.EC-001");
    // Without --previous there is no trend section and no `trend` field.
    let plain = report_of(&planted(), &cat());
    assert!(!markdown(&plain).contains("Since the previous report"));
    let value: serde_json::Value = serde_json::from_str(&json(&plain).unwrap()).unwrap();
    assert!(value.get("trend").is_none());
}
