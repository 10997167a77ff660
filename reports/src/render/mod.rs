//! Renderings of a [`Readiness`](crate::readiness::Readiness): each a pure function to a
//! `String`; the CLI decides where the files go.

mod html;
mod json;
mod junit;
mod markdown;
mod svg;
mod text;

pub use html::html;
pub use json::json;
pub use junit::junit;
pub use markdown::markdown;
pub use text::{
    BLOCKERS_UNFOLDED_MAX, BlockerGroup, blocker_groups, build_line, coverage_line, policy_line,
    regression_line, run_time, trend_lines,
};

use crate::readiness::Readiness;
use std::fmt;

/// One rendering and the file it is written to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    Markdown,
    Html,
    Json,
    Junit,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Markdown, Format::Html, Format::Json, Format::Junit];

    /// The name `--formats` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Markdown => "md",
            Format::Html => "html",
            Format::Json => "json",
            Format::Junit => "junit",
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Format::Markdown => "readiness.md",
            Format::Html => "readiness.html",
            Format::Json => "readiness.json",
            Format::Junit => "junit.xml",
        }
    }

    pub fn render(self, report: &Readiness) -> Result<String, RenderError> {
        match self {
            Format::Markdown => Ok(markdown(report)),
            Format::Html => html(report),
            Format::Json => json(report),
            Format::Junit => junit(report),
        }
    }
}

/// A rendering failed: a bug in a template or a serializer, not bad input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderError {
    pub format: &'static str,
    pub message: String,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rendering {} failed: {}", self.format, self.message)
    }
}

impl std::error::Error for RenderError {}
