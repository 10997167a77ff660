//! The four renderings of the fixture report (a passing, a failing, an inert and a
//! not-run scenario, a planned high-risk entry, a not-applicable entry, a partial merge
//! and a determinism finding), pinned by insta snapshots with wall-clock fields redacted;
//! plus checks that the JUnit XML parses with one case per scenario and that the JSON
//! reads back into the same report.

mod common;

use quick_xml::XmlVersion;
use quick_xml::events::Event;
use reports::readiness::{Outcome, READINESS_SCHEMA, Readiness};
use reports::render::{Format, html, json, junit, markdown};

/// Wall-clock values (generation time, wall times) replaced by placeholders, so the
/// snapshots hold only what is deterministic.
fn redacted(format: &str, text: &str) {
    insta::with_settings!({
        filters => vec![
            (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[generated_at]"),
            (r"\d+\.\d{3} s\b", "[wall time]"),
            (r#""wall_ms": \d+"#, r#""wall_ms": "[wall_ms]""#),
            (r#""elapsed_ms": \d+"#, r#""elapsed_ms": "[elapsed_ms]""#),
            (r#"time="[0-9.]+""#, r#"time="[time]""#),
        ],
    }, {
        insta::assert_snapshot!(format, text);
    });
}

#[test]
fn markdown_snapshot() {
    redacted("readiness.md", &markdown(&common::report()));
}

#[test]
fn html_snapshot() {
    redacted("readiness.html", &html(&common::report()).unwrap());
}

#[test]
fn json_snapshot() {
    redacted("readiness.json", &json(&common::report()).unwrap());
}

#[test]
fn junit_snapshot() {
    redacted("junit.xml", &junit(&common::report()).unwrap());
}

#[test]
fn the_redactions_hide_only_wall_clock_values() {
    // The snapshots must not depend on wall time: two reports that differ only in it
    // render identically once redacted, and differently before.
    let a = common::report();
    let mut b = a.clone();
    b.generated_at = "2030-01-01T00:00:00Z".to_string();
    b.totals.wall_ms += 12_345;
    b.totals.elapsed_ms = b.totals.elapsed_ms.map(|e| e + 54_321);
    for s in &mut b.scenarios {
        s.wall_ms += 1;
    }
    let filters = [
        (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "[generated_at]"),
        (r"\d+\.\d{3} s\b", "[wall time]"),
        (r#""wall_ms": \d+"#, r#""wall_ms": "[wall_ms]""#),
        (r#""elapsed_ms": \d+"#, r#""elapsed_ms": "[elapsed_ms]""#),
        (r#"time="[0-9.]+""#, r#"time="[time]""#),
    ];
    let redact = |text: String| {
        filters.iter().fold(text, |t, (re, to)| {
            regex::Regex::new(re)
                .unwrap()
                .replace_all(&t, *to)
                .into_owned()
        })
    };
    for format in Format::ALL {
        let (ra, rb) = (format.render(&a).unwrap(), format.render(&b).unwrap());
        assert_ne!(ra, rb, "{format:?} shows wall-clock values");
        assert_eq!(redact(ra), redact(rb), "{format:?} after redaction");
    }
}

/// (suite name, case name, classname, failure type and message or "" for a pass, or
/// "skipped") for every test case.
fn junit_cases(xml: &str) -> Vec<(String, String, String, String)> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut cases = Vec::new();
    let mut suite = String::new();
    let attr = |e: &quick_xml::events::BytesStart<'_>, name: &str| {
        e.try_get_attribute(name)
            .unwrap()
            .map(|a| {
                a.normalized_value(XmlVersion::Implicit1_0)
                    .unwrap()
                    .into_owned()
            })
            .unwrap_or_default()
    };
    loop {
        match reader.read_event().expect("the JUnit XML parses") {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testsuite" => suite = attr(&e, "name"),
                b"testcase" => cases.push((
                    suite.clone(),
                    attr(&e, "name"),
                    attr(&e, "classname"),
                    String::new(),
                )),
                b"failure" => {
                    let last = cases.last_mut().expect("a failure is inside a case");
                    last.3 = format!("{}: {}", attr(&e, "type"), attr(&e, "message"));
                }
                b"skipped" => cases.last_mut().expect("inside a case").3 = "skipped".into(),
                _ => {}
            },
            _ => {}
        }
    }
    cases
}

#[test]
fn junit_parses_with_one_case_per_scenario_and_failures_carry_the_repro() {
    let report = common::report();
    let xml = junit(&report).unwrap();
    let cases = junit_cases(&xml);
    let scenario_cases: Vec<_> = cases.iter().filter(|c| c.0 == "scenarios").collect();
    assert_eq!(scenario_cases.len(), report.scenarios.len());
    assert_eq!(scenario_cases.len(), 5, "{cases:#?}");
    let case = |id: &str| {
        scenario_cases
            .iter()
            .find(|c| c.1 == id)
            .unwrap_or_else(|| panic!("no case {id}: {cases:#?}"))
    };
    assert_eq!(case("core.EC-001").2, "core/sessions");
    assert_eq!(case("core.EC-001").3, "", "a passing scenario passes");
    let failing = &case("core.EC-002").3;
    assert!(
        failing.starts_with(
            "correctness: 1 of 2 runs failed; first seed 2 (correctness): quota went negative: <-1>"
        ),
        "{failing}"
    );
    assert!(
        failing.contains("repro: cargo run --release -p scenarios --bin chaos -- run core.EC-002 --seed 2 --trace"),
        "{failing}"
    );
    assert!(
        case("pattern.1.1")
            .3
            .starts_with("inert: INERT: none of its own faults (proc.oom_kill)")
    );
    assert_eq!(case("enable.1.1.1").3, "skipped");
    assert_eq!(case("sim.net.partition-heal-no-loss").2, "sim/simulator");
    assert!(
        failing.contains(
            "shrink: cargo run --release -p scenarios --bin chaos -- shrink core.EC-002 --seed 2"
        ),
        "{failing}"
    );
    let readiness = |name: &str| {
        cases
            .iter()
            .find(|c| c.0 == "readiness" && c.1 == name)
            .unwrap_or_else(|| panic!("no readiness case {name}: {cases:#?}"))
    };
    // Partial merge, failing, inert, nondeterministic; the waiver covers the planned
    // high-risk entry, so coverage passes while regression fails.
    assert!(
        readiness("verdict")
            .3
            .starts_with("not-ready: not ready: 4 blocking reasons"),
        "{cases:?}"
    );
    assert!(
        readiness("regression")
            .3
            .starts_with("regression-blocked: regression: FAIL (4 blocking); first: partial merge"),
        "{cases:?}"
    );
    assert_eq!(readiness("coverage").3, "", "coverage passes");
}

#[test]
fn json_reads_back_into_the_same_report() {
    let report = common::report();
    let text = json(&report).unwrap();
    let back: Readiness = serde_json::from_str(&text).unwrap();
    assert_eq!(back, report);
    assert_eq!(back.schema, READINESS_SCHEMA);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["verdict"]["ready"], false);
    assert_eq!(value["scenarios"][3]["outcome"], "inert");
}

#[test]
fn the_fixture_has_every_case_the_snapshots_claim() {
    let r = common::report();
    let outcome = |id: &str| r.scenarios.iter().find(|s| s.id == id).map(|s| s.outcome);
    assert_eq!(outcome("core.EC-001"), Some(Outcome::Passed));
    assert_eq!(outcome("core.EC-002"), Some(Outcome::Failed));
    assert_eq!(outcome("pattern.1.1"), Some(Outcome::Inert));
    assert_eq!(outcome("enable.1.1.1"), Some(Outcome::NotRun));
    assert!(r.inputs.partial);
    assert_eq!(r.planned.len(), 2);
    assert_eq!(r.not_applicable.len(), 1);
    assert_eq!(r.determinism.findings.len(), 1);
}

#[test]
fn html_is_self_contained_and_escapes_what_it_shows() {
    let page = html(&common::report()).unwrap();
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(external), "the page references {external}");
    }
    assert_eq!(page.matches("<svg ").count(), 4, "four charts");
    // The failure message holds `<-1>`, a pipe, quotes and an ampersand.
    assert!(
        page.contains("quota went negative: &lt;-1&gt; | expected &quot;≥ 0&quot; &amp; more"),
        "{page}"
    );
    assert!(!page.contains("<-1>"));
    assert!(page.contains("event 17: &lt;net&gt; send"));
}
