//! The JSON rendering: the [`Readiness`] structure itself (schema `chaos-readiness/2`,
//! every field documented in `reports/SCHEMA.md`), for other tools.

use super::RenderError;
use crate::readiness::Readiness;

pub fn json(report: &Readiness) -> Result<String, RenderError> {
    serde_json::to_string_pretty(report)
        .map(|s| s + "\n")
        .map_err(|e| RenderError {
            format: "json",
            message: e.to_string(),
        })
}
