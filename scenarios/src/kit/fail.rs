//! `or_fail`: an error the scenario did not expect, as a correctness failure.

use crate::scenario::Failure;
use std::fmt::Display;

/// An unexpected error, as a correctness failure: "`what`: the error".
pub fn unexpected(what: &str, e: impl Display) -> Failure {
    Failure::correctness(format!("{what}: {e}"))
}

/// Turns an error (or a missing value) the scenario did not expect into a correctness
/// failure naming what was being done.
pub trait OrFail<T> {
    /// The value, or the failure "`what`: the error" ("`what`: nothing" for `None`).
    fn or_fail(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| unexpected(what, e))
    }
}

impl<T> OrFail<T> for Option<T> {
    fn or_fail(self, what: &str) -> Result<T, Failure> {
        self.ok_or_else(|| unexpected(what, "nothing"))
    }
}
