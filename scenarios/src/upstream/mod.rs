//! Scenarios of the `upstream` subsystem: the model API client itself (name
//! resolution, `dns`). The model API under live sessions is `sessions/upstream.rs`.

mod dns;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    vec![&dns::DNS_FAILURE]
}
