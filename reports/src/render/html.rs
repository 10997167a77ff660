//! The HTML rendering: the Markdown's content in one self-contained page (inline CSS,
//! inline SVG charts drawn by `svg.rs`, no scripts, nothing fetched).
//!
//! The page is a minijinja template embedded at build time. Its name ends in `.html`, so
//! minijinja escapes every interpolated value for HTML; only the charts are passed as
//! safe strings, and `svg.rs` escapes every label it draws.

use super::RenderError;
use super::svg::{self, Bar, Chart, Scale, Segment};
use super::text::{BLOCKERS_UNFOLDED_MAX, blocker_groups, failing_seeds, seconds, verdict_word};
use crate::readiness::{CoverageRow, Outcome, Readiness};
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
    let blockers: Vec<Value> = blocker_groups(r)
        .into_iter()
        .map(|g| {
            let folded = g.messages.len() > BLOCKERS_UNFOLDED_MAX;
            let messages: Vec<String> = g.messages.into_iter().map(str::to_string).collect();
            context! { label => g.label, messages => messages, folded => folded }
        })
        .collect();
    env.get_template(TEMPLATE_NAME)
        .and_then(|t| {
            t.render(context! {
                r => Value::from(Serde(r)),
                verdict_word => verdict_word(r),
                charts => charts,
                failing_seeds => failing_seeds,
                blockers => blockers,
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

fn pass_rate_chart(r: &Readiness) -> String {
    Chart {
        title: "pass rate per scenario",
        bars: r
            .scenarios
            .iter()
            .filter(|s| s.runs > 0)
            .map(|s| Bar {
                label: s.id.clone(),
                segments: vec![
                    Segment {
                        value: s.passed,
                        color: if s.inert { svg::PURPLE } else { svg::GREEN },
                        name: if s.inert {
                            "passed but inert"
                        } else {
                            "passed"
                        },
                    },
                    Segment {
                        value: s.failed,
                        color: svg::RED,
                        name: "failed",
                    },
                ],
                note: format!(
                    "{} ({}/{}){}",
                    super::text::percent(s.passed, s.runs),
                    s.passed,
                    s.runs,
                    if s.inert { " INERT" } else { "" }
                ),
            })
            .collect(),
        legend: vec![
            (svg::GREEN, "passed"),
            (svg::RED, "failed"),
            (svg::PURPLE, "passed, but inert"),
        ],
        scale: Scale::Share,
    }
    .to_svg()
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
                note: format!("{} in {} runs", f.fired, f.runs),
            })
            .collect(),
        legend: Vec::new(),
        scale: Scale::Absolute,
    }
    .to_svg()
}
