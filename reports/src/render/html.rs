//! The HTML rendering: the Markdown's content in one self-contained page (inline CSS,
//! inline SVG charts drawn by `svg.rs`, no scripts, nothing fetched).
//!
//! The page is a minijinja template embedded at build time. Its name ends in `.html`, so
//! minijinja escapes every interpolated value for HTML; only the charts are passed as
//! safe strings, and `svg.rs` escapes every label it draws.

use super::RenderError;
use super::svg::{self, Bar, Chart, Scale, Segment};
use super::text::{
    BLOCKERS_UNFOLDED_MAX, blocker_groups, build_line, change_text, changed_faults, coverage_line,
    failing_seeds, judgement_word, policy_line, regression_line, run_time, seconds,
    trend_scenarios, verdict_word,
};
use crate::readiness::{CoverageRow, Outcome, Readiness, ScenarioReport, VerdictName, plural};
use minijinja::value::{Serde, Value};
use minijinja::{Environment, UndefinedBehavior, context};
use std::collections::BTreeMap;

const TEMPLATE_NAME: &str = "readiness.html";
const TEMPLATE: &str = include_str!("../../templates/readiness.html");

/// Failing seeds listed per scenario before "… and N more".
const SEEDS_LISTED_MAX: usize = 20;

pub fn html(r: &Readiness) -> Result<String, RenderError> {
    let error = |e: minijinja::Error| RenderError {
        format: "html",
        message: format!("{e:#}"),
    };
    let mut env = Environment::new();
    // A typo in the template must fail the snapshot tests, not render as empty text.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("seconds", |ms: u64| seconds(ms));
    // `{{ n | plural("run") }}`: `1 run`, `2 runs`.
    env.add_filter("plural", |n: u64, noun: String| plural(n, &noun));
    // The template sees an outcome in its serialized form; this gives the words people read.
    env.add_filter("outcome_label", |name: String| {
        Outcome::ALL
            .into_iter()
            .find(|o| o.name() == name)
            .map_or(name, |o| o.label().to_string())
    });
    env.add_template(TEMPLATE_NAME, TEMPLATE).map_err(error)?;
    let charts: BTreeMap<&str, Value> = [
        (
            "subsystem",
            coverage_chart("catalog coverage by subsystem", &r.coverage.by_subsystem),
        ),
        (
            "risk",
            coverage_chart("catalog coverage by risk", &r.coverage.by_risk),
        ),
        ("pass_rate", pass_rate_chart(r)),
        ("faults", faults_chart(r)),
    ]
    .into_iter()
    .map(|(name, svg)| (name, Value::from_safe_string(svg)))
    .collect();
    let failing_seeds: BTreeMap<&str, String> = r
        .scenarios
        .iter()
        .filter(|s| s.outcome == Outcome::Failed)
        .map(|s| (s.id.as_str(), failing_seeds(r, &s.id, SEEDS_LISTED_MAX)))
        .collect();
    let groups = blocker_groups(r);
    let verdicts: Vec<Value> = [
        (VerdictName::Regression, "Regression"),
        (VerdictName::Coverage, "Coverage"),
    ]
    .into_iter()
    .map(|(name, title)| {
        let mine: Vec<Value> = groups
            .iter()
            .filter(|g| g.verdict == name)
            .map(|g| {
                let folded = g.messages.len() > BLOCKERS_UNFOLDED_MAX;
                let messages: Vec<String> = g.messages.iter().map(|m| m.to_string()).collect();
                context! { label => g.label, messages => messages, folded => folded }
            })
            .collect();
        let pass = match name {
            VerdictName::Regression => r.verdict.regression.pass,
            VerdictName::Coverage => r.verdict.coverage.pass,
        };
        context! {
            title => title,
            word => judgement_word(r, name),
            pass => pass,
            groups => mine,
        }
    })
    .collect();
    let (trend_faults, trend_faults_same): (Vec<Value>, usize) = match &r.trend {
        Some(t) => {
            let changed = changed_faults(t);
            let same = t.faults.len() - changed.len();
            (
                changed
                    .into_iter()
                    .map(|f| Value::from(Serde(f.clone())))
                    .collect(),
                same,
            )
        }
        None => (Vec::new(), 0),
    };
    let trend: Vec<Value> = r
        .trend
        .as_ref()
        .map(|t| {
            trend_scenarios(t)
                .into_iter()
                .map(|(heading, list)| {
                    let items: Vec<String> = list.iter().map(change_text).collect();
                    context! { heading => heading, items => items }
                })
                .collect()
        })
        .unwrap_or_default();
    env.get_template(TEMPLATE_NAME)
        .and_then(|t| {
            t.render(context! {
                r => Value::from(Serde(r)),
                verdict_word => verdict_word(r),
                lines => context! {
                    regression => regression_line(r),
                    coverage => coverage_line(r),
                    policy => policy_line(r),
                    run_time => run_time(&r.totals),
                    build => build_line(r),
                },
                charts => charts,
                failing_seeds => failing_seeds,
                verdicts => verdicts,
                trend => trend,
                trend_faults => trend_faults,
                trend_faults_same => trend_faults_same,
            })
        })
        .map_err(error)
}

fn coverage_chart(title: &str, rows: &[CoverageRow]) -> String {
    Chart {
        title,
        bars: rows
            .iter()
            .map(|row| Bar {
                label: row.key.clone(),
                segments: vec![
                    Segment {
                        value: row.implemented,
                        color: svg::GREEN,
                        name: "implemented",
                    },
                    Segment {
                        value: row.planned,
                        color: svg::AMBER,
                        name: "planned",
                    },
                    Segment {
                        value: row.not_applicable,
                        color: svg::GREY,
                        name: "not applicable",
                    },
                ],
                note: format!(
                    "{} impl / {} planned / {} n/a",
                    row.implemented, row.planned, row.not_applicable
                ),
            })
            .collect(),
        legend: vec![
            (svg::GREEN, "implemented"),
            (svg::AMBER, "planned"),
            (svg::GREY, "not applicable"),
        ],
        scale: Scale::Absolute,
    }
    .to_svg()
}

/// One bar per subsystem (not per scenario: a hundred green bars would push everything
/// else down), each followed by a bar per scenario of it that failed, is inert or is
/// unknown to this build, named.
fn pass_rate_chart(r: &Readiness) -> String {
    // (source / subsystem, its scenarios with runs), in that key's order.
    let mut groups: BTreeMap<String, Vec<&ScenarioReport>> = BTreeMap::new();
    for s in r.scenarios.iter().filter(|s| s.runs > 0) {
        groups
            .entry(format!("{} / {}", s.source, s.subsystem))
            .or_default()
            .push(s);
    }
    let mut bars = Vec::new();
    for (label, scenarios) in groups {
        let sum = |f: fn(&ScenarioReport) -> u64| scenarios.iter().map(|s| f(s)).sum::<u64>();
        let suspect = |s: &ScenarioReport| s.inert || s.unknown;
        let passed = sum(|s| if s.inert || s.unknown { 0 } else { s.passed });
        let runs = sum(|s| s.runs);
        bars.push(Bar {
            label,
            segments: segments(passed, runs - passed - sum(|s| s.failed), sum(|s| s.failed)),
            note: format!(
                "{} of {}, {}",
                super::text::percent(passed, runs),
                plural(runs, "run"),
                plural(scenarios.len() as u64, "scenario")
            ),
        });
        for s in scenarios
            .iter()
            .filter(|s| s.outcome != Outcome::Passed || suspect(s))
        {
            let suspect_passed = if suspect(s) { s.passed } else { 0 };
            bars.push(Bar {
                label: format!("↳ {}", s.id),
                segments: segments(s.passed - suspect_passed, suspect_passed, s.failed),
                note: format!(
                    "{}: {} of {} failed",
                    s.outcome.label(),
                    s.failed,
                    plural(s.runs, "run")
                ),
            });
        }
    }
    Chart {
        title: "pass rate per subsystem, with its failing, inert and unknown scenarios",
        bars,
        legend: vec![
            (svg::GREEN, "passed"),
            (svg::RED, "failed"),
            (svg::PURPLE, "passed, but inert or unknown"),
        ],
        scale: Scale::Share,
    }
    .to_svg()
}

fn segments(passed: u64, suspect: u64, failed: u64) -> Vec<Segment> {
    vec![
        Segment {
            value: passed,
            color: svg::GREEN,
            name: "passed",
        },
        Segment {
            value: suspect,
            color: svg::PURPLE,
            name: "passed, but inert or unknown",
        },
        Segment {
            value: failed,
            color: svg::RED,
            name: "failed",
        },
    ]
}

fn faults_chart(r: &Readiness) -> String {
    Chart {
        title: "faults fired per kind",
        bars: r
            .faults
            .iter()
            .map(|f| Bar {
                label: f.kind.clone(),
                segments: vec![Segment {
                    value: f.fired,
                    color: svg::BLUE,
                    name: "fired",
                }],
                note: format!("{} in {}", f.fired, plural(f.runs, "run")),
            })
            .collect(),
        legend: Vec::new(),
        scale: Scale::Absolute,
    }
    .to_svg()
}
