//! The JUnit XML rendering, so CI systems show failures natively.
//!
//! Suite `scenarios`: one test case per scenario (its whole run set), classname
//! `source/subsystem`. A failing scenario is a failure whose message carries the first
//! failing seed, class, message and reproduce command; an inert scenario is a failure of
//! type `inert` (it tested nothing, so it must not show green); an implemented scenario
//! with no run is skipped. Suite `readiness`: one case, `verdict`, failing with the
//! blocking reasons when not ready, so a planned high-risk entry is visible in CI too.

use super::RenderError;
use super::text::{failure_line, faults_line, seconds};
use crate::readiness::{Outcome, Readiness, ScenarioReport};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// Failing runs described per scenario before "… and N more".
const FAILURES_DESCRIBED_MAX: usize = 20;

pub fn junit(r: &Readiness) -> Result<String, RenderError> {
    let mut report = Report::new("chaos readiness");
    let mut suite = TestSuite::new("scenarios");
    suite.add_property(Property::new("generated_at", r.generated_at.as_str()));
    suite.add_property(Property::new("schema", r.schema.as_str()));
    suite.set_time(Duration::from_millis(r.totals.wall_ms));
    for s in &r.scenarios {
        suite.add_test_case(scenario_case(r, s));
    }
    report.add_test_suite(suite);
    let mut readiness = TestSuite::new("readiness");
    readiness.add_test_case(verdict_case(r));
    report.add_test_suite(readiness);
    report.to_string().map_err(|e| RenderError {
        format: "junit",
        message: e.to_string(),
    })
}

fn scenario_case(r: &Readiness, s: &ScenarioReport) -> TestCase {
    let status = match s.outcome {
        Outcome::Passed => TestCaseStatus::success(),
        Outcome::NotRun => {
            let mut status = TestCaseStatus::skipped();
            status.set_message("implemented, but no run of it is in the input");
            status
        }
        Outcome::Failed => failed_status(r, s),
        Outcome::Inert => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status
                .set_type("inert")
                .set_message(inert_message(s))
                .set_description(format!("faults fired: {}", faults_line(&s.faults)));
            status
        }
    };
    let mut case = TestCase::new(s.id.as_str(), status);
    case.set_classname(format!("{}/{}", s.source, s.subsystem));
    case.set_time(Duration::from_millis(s.wall_ms));
    case.set_system_out(format!(
        "runs: {}, passed: {}, failed: {}\nown faults: {}\nruns with own faults fired: {}\n\
         faults fired: {}\n",
        s.runs,
        s.passed,
        s.failed,
        if s.faults_expected.is_empty() {
            "none".to_string()
        } else {
            s.faults_expected.join(", ")
        },
        s.runs_faults_fired,
        faults_line(&s.faults)
    ));
    case
}

fn inert_message(s: &ScenarioReport) -> String {
    format!(
        "INERT: none of its own faults ({}) fired in any of its {} runs",
        s.faults_expected.join(", "),
        s.runs
    )
}

fn failed_status(r: &Readiness, s: &ScenarioReport) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    let Some(first) = &s.first_failure else {
        status.set_message(format!("{} of {} runs failed", s.failed, s.runs));
        return status;
    };
    let mut message = format!(
        "{} of {} runs failed; first {} | repro: {}",
        s.failed,
        s.runs,
        failure_line(first),
        first.repro
    );
    if s.inert {
        message.push_str(" | also ");
        message.push_str(&inert_message(s));
    }
    let mine: Vec<_> = r.failures.iter().filter(|f| f.id == s.id).collect();
    let mut description: Vec<String> = mine
        .iter()
        .take(FAILURES_DESCRIBED_MAX)
        .map(|f| format!("{}\n  repro: {}", failure_line(f), f.repro))
        .collect();
    if mine.len() > FAILURES_DESCRIBED_MAX {
        description.push(format!(
            "… and {} more failing runs",
            mine.len() - FAILURES_DESCRIBED_MAX
        ));
    }
    status
        .set_type(first.class.map_or("unclassified", |c| c.name()))
        .set_message(message)
        .set_description(description.join("\n"));
    status
}

fn verdict_case(r: &Readiness) -> TestCase {
    let status = if r.verdict.ready {
        TestCaseStatus::success()
    } else {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        let lines: Vec<String> = r
            .verdict
            .blocking
            .iter()
            .map(|b| format!("{}: {}", b.kind.label(), b.message))
            .collect();
        status
            .set_type("not-ready")
            .set_message(format!(
                "not ready: {} blocking reason(s); first: {}",
                lines.len(),
                lines.first().map_or("", String::as_str)
            ))
            .set_description(lines.join("\n"));
        status
    };
    let mut case = TestCase::new("verdict", status);
    case.set_classname("readiness");
    case.set_system_out(format!(
        "{} runs, {} failed; run wall time {}\nrules:\n{}\n",
        r.totals.runs,
        r.totals.runs_failed,
        seconds(r.totals.wall_ms),
        r.rules
            .iter()
            .enumerate()
            .map(|(i, rule)| format!("{}. {rule}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    case
}
