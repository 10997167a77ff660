//! Every scenario this build has, and how ids and prefixes select them.

use crate::catalog::{Catalog, Status};
use crate::scenario::Scenario;

/// Scenarios for catalog entries, subsystem by subsystem.
fn catalog_scenarios() -> Vec<&'static Scenario> {
    let mut all = crate::workers::all();
    all.extend(crate::gateway::all());
    all.extend(crate::sessions::all());
    all
}

/// Every scenario: catalog ones first, then the substrate self-checks.
pub fn all() -> Vec<&'static Scenario> {
    let mut all = catalog_scenarios();
    all.extend(crate::substrate::all());
    all
}

pub fn find(id: &str) -> Option<&'static Scenario> {
    all().into_iter().find(|s| s.id == id)
}

/// Whether `id` belongs to the simulator's self-checks rather than the catalog.
pub fn is_substrate(id: &str) -> bool {
    id.starts_with("sim.")
}

/// Scenarios whose id starts with `prefix` (all of them for `None`).
pub fn select(prefix: Option<&str>) -> Vec<&'static Scenario> {
    all()
        .into_iter()
        .filter(|s| prefix.is_none_or(|p| s.id.starts_with(p)))
        .collect()
}

/// Checks that the registry and the catalog agree: every catalog scenario has an entry
/// marked `implemented`, and every `implemented` entry has a scenario.
pub fn check_against(catalog: &Catalog) -> Result<(), String> {
    for scenario in all() {
        if is_substrate(scenario.id) {
            continue;
        }
        match catalog.get(scenario.id) {
            None => return Err(format!("scenario {} has no catalog entry", scenario.id)),
            Some(e) if e.status != Status::Implemented => {
                return Err(format!(
                    "scenario {} exists but its catalog entry says {}",
                    scenario.id, e.status
                ));
            }
            Some(_) => {}
        }
    }
    for entry in &catalog.entries {
        if entry.status == Status::Implemented && find(&entry.id).is_none() {
            return Err(format!(
                "catalog entry {} says implemented but no scenario exists",
                entry.id
            ));
        }
    }
    let mut ids: Vec<&str> = all().iter().map(|s| s.id).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("two scenarios share the id {}", w[0]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_and_catalog_agree() {
        check_against(&Catalog::embedded()).unwrap();
    }

    #[test]
    fn every_scenario_names_its_faults_and_states_what_it_proves() {
        for s in all() {
            assert!(
                !s.faults_expected.is_empty(),
                "{} names no fault it exercises",
                s.id
            );
            assert!(s.proves.len() > 80, "{} does not say what it proves", s.id);
        }
    }
}
