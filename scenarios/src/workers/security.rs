use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    vec![]
}
