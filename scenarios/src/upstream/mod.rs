//! Scenarios of the `upstream` subsystem: the model API client itself (`tls`: the API's
//! certificate judged by the engine's clock).

mod tls;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    tls::all()
}
