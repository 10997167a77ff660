//! Scenarios for the `sessions` subsystem. So far: the distributed session lock under
//! contention (api.SCALE-001), against the engine's real lock service and client.

mod scale;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    vec![&scale::SCALE]
}
