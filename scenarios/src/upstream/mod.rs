//! Scenarios of the `upstream` subsystem: the model API behind the sessions, as
//! `SimUpstream` on host `upstream-0` (and the simulated network) makes it fail:
//! server errors, silence, broken and empty streams (`failures`).

mod failures;
mod kit;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    let mut all = Vec::new();
    all.extend(failures::all());
    all
}
