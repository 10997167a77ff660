//! The JUnit XML rendering, so CI systems show failures natively.
//!
//! Suite `scenarios`: one test case per scenario (its whole run set), classname
//! `source/subsystem`. A failing scenario is a failure whose message carries the first
//! failing seed, class, message and reproduce command; an inert scenario is a failure of
//! type `inert` (it tested nothing, so it must not show green); an implemented scenario
//! with no run is skipped; a scenario unknown to this build is a failure of type
//! `unknown`. Suite `readiness`: cases `regression` and `coverage`, one per verdict, each
//! failing with its blocking reasons, and `verdict`, failing when either does, so a
//! planned high-risk entry is visible in CI too. A trend (`--previous`) is in the
//! `scenarios` suite's properties (`trend.*`) and the `verdict` case's system-out.

use super::RenderError;
use super::text::{
    coverage_line, failure_line, faults_line, policy_line, regression_line, run_time, trend_lines,
};
use crate::readiness::{Outcome, Readiness, ScenarioReport, VerdictName, plural};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// Failing runs described per scenario before "… and N more".
const FAILURES_DESCRIBED_MAX: usize = 20;

pub fn junit(r: &Readiness) -> Result<String, RenderError> {
    let mut report = Report::new("chaos readiness");
    let mut suite = TestSuite::new("scenarios");
    suite.add_property(Property::new("generated_at", r.generated_at.as_str()));
    suite.add_property(Property::new("schema", r.schema.as_str()));
    suite.add_property(Property::new("policy", r.policy.source.as_str()));
    if let Some(b) = &r.build {
        for (name, value) in [
            ("build.commit", b.commit.clone()),
            ("build.dirty", b.dirty.to_string()),
            ("build.version", b.version.clone()),
            ("build.toolchain", b.toolchain.clone()),
            ("build.host", format!("{} on {}", b.target, b.host)),
            ("build.date", b.date.clone()),
        ] {
            suite.add_property(Property::new(name, value.as_str()));
        }
    }
    if let Some(t) = &r.trend {
        let ids = |list: &[crate::readiness::ScenarioChange]| {
            list.iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        for (name, value) in [
            ("trend.previous", t.previous_file.clone()),
            ("trend.newly_failing", ids(&t.newly_failing)),
            ("trend.fixed", ids(&t.fixed)),
            ("trend.still_failing", ids(&t.still_failing)),
            ("trend.coverage_gained", t.coverage_gained.join(" ")),
            ("trend.coverage_lost", t.coverage_lost.join(" ")),
            (
                "trend.runs",
                format!("{} -> {}", t.runs.before, t.runs.after),
            ),
        ] {
            suite.add_property(Property::new(name, value));
        }
    }
    suite.set_time(Duration::from_millis(r.totals.wall_ms));
    for s in &r.scenarios {
        suite.add_test_case(scenario_case(r, s));
    }
    report.add_test_suite(suite);
    let mut readiness = TestSuite::new("readiness");
    readiness.add_test_case(judgement_case(r, VerdictName::Regression));
    readiness.add_test_case(judgement_case(r, VerdictName::Coverage));
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
        Outcome::Unknown => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_type("unknown").set_message(format!(
                "unknown to this build: {} of a scenario id this build does not know; not counted as passed",
                plural(s.runs, "run")
            ));
            status
        }
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
        "INERT: none of its own faults ({}) fired in any of its {}",
        s.faults_expected.join(", "),
        plural(s.runs, "run")
    )
}

fn failed_status(r: &Readiness, s: &ScenarioReport) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    let Some(first) = &s.first_failure else {
        status.set_message(format!("{} of {} failed", s.failed, plural(s.runs, "run")));
        return status;
    };
    let mut message = format!(
        "{} of {} failed; first {} | repro: {}",
        s.failed,
        plural(s.runs, "run"),
        failure_line(first),
        first.repro
    );
    if let Some(shrink) = &first.shrink {
        message.push_str(" | shrink: ");
        message.push_str(shrink);
    }
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
            "… and {} more",
            plural((mine.len() - FAILURES_DESCRIBED_MAX) as u64, "failing run")
        ));
    }
    status
        .set_type(first.class.map_or("unclassified", |c| c.name()))
        .set_message(message)
        .set_description(description.join("\n"));
    status
}

/// One case per verdict, failing with that verdict's blockers.
fn judgement_case(r: &Readiness, name: VerdictName) -> TestCase {
    let lines: Vec<String> = r
        .verdict
        .blocking
        .iter()
        .filter(|b| b.verdict == name)
        .map(|b| format!("{}: {}", b.kind.label(), b.message))
        .collect();
    let line = match name {
        VerdictName::Regression => regression_line(r),
        VerdictName::Coverage => coverage_line(r),
    };
    let status = if lines.is_empty() {
        TestCaseStatus::success()
    } else {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
        status
            .set_type(format!("{}-blocked", name.name()))
            .set_message(format!(
                "{line}; first: {}",
                lines.first().map_or("", String::as_str)
            ))
            .set_description(lines.join("\n"));
        status
    };
    let mut case = TestCase::new(name.name(), status);
    case.set_classname("readiness");
    case.set_system_out(format!("{line}\n{}\n", policy_line(r)));
    case
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
                "not ready: {}; first: {}",
                plural(lines.len() as u64, "blocking reason"),
                lines.first().map_or("", String::as_str)
            ))
            .set_description(lines.join("\n"));
        status
    };
    let mut case = TestCase::new("verdict", status);
    case.set_classname("readiness");
    let trend = r
        .trend
        .as_ref()
        .map_or(String::new(), |t| trend_lines(t).join("\n") + "\n");
    case.set_system_out(format!(
        "{trend}{}\n{}\n{}\n{}, {} failed. {}.\nrules:\n{}\n",
        regression_line(r),
        coverage_line(r),
        policy_line(r),
        plural(r.totals.runs, "run"),
        r.totals.runs_failed,
        run_time(&r.totals),
        r.rules
            .iter()
            .enumerate()
            .map(|(i, rule)| format!("{}. {rule}", i + 1))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    case
}
