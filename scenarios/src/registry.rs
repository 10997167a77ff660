//! Every scenario this build has, and how ids and prefixes select them.

use crate::catalog::{Catalog, Status};
use crate::scenario::Scenario;

/// Scenarios for catalog entries, subsystem by subsystem.
fn catalog_scenarios() -> Vec<&'static Scenario> {
    let mut all = crate::workers::all();
    all.extend(crate::gateway::all());
    all.extend(crate::sessions::all());
    all.extend(crate::upstream::all());
    all
}

/// Every scenario: catalog ones first, then the substrate self-checks.
pub fn all() -> Vec<&'static Scenario> {
    let mut all = catalog_scenarios();
    all.extend(crate::substrate::all());
    all.extend(crate::vopr::all());
    all
}

pub fn find(id: &str) -> Option<&'static Scenario> {
    all().into_iter().find(|s| s.id == id)
}

/// Whether `id` lives outside the catalog: the simulator's self-checks (`sim.*`) and
/// the whole-engine VOPR (`vopr.*`).
pub fn is_substrate(id: &str) -> bool {
    id.starts_with("sim.") || id.starts_with("vopr.")
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

    /// What is wrong with `s.cores`, given the workspace root: each problem names the
    /// scenario and the path.
    fn core_problems(s: &Scenario, root: &std::path::Path) -> Vec<String> {
        let mut problems = Vec::new();
        if s.cores.is_empty() {
            problems.push(format!("{} names no engine file it proves (cores)", s.id));
        }
        if !is_substrate(s.id) && !s.cores.iter().any(|c| c.starts_with("engine/src/")) {
            problems.push(format!(
                "{} is a catalog scenario but names no engine/src/ file among its cores {:?}",
                s.id, s.cores
            ));
        }
        for (i, core) in s.cores.iter().enumerate() {
            if s.cores[..i].contains(core) {
                problems.push(format!("{} names {core} twice in its cores", s.id));
            }
            let shaped = (core.starts_with("engine/src/") || core.starts_with("sim/src/"))
                && core.ends_with(".rs")
                && !core
                    .split('/')
                    .any(|part| part == ".." || part == "." || part.is_empty());
            if !shaped {
                problems.push(format!(
                    "{}: core {core:?} is not a workspace-relative engine/src/… or sim/src/… .rs path",
                    s.id
                ));
            } else if !root.join(core).is_file() {
                problems.push(format!(
                    "{}: core {core} does not exist (renamed or moved? name the file that now holds that behaviour)",
                    s.id
                ));
            }
        }
        problems
    }

    #[test]
    fn every_scenario_names_the_engine_files_it_proves_and_they_exist() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let problems: Vec<String> = all().iter().flat_map(|s| core_problems(s, &root)).collect();
        assert!(
            problems.is_empty(),
            "{} problem(s) with scenarios' cores:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }

    /// CI annotations point at `declared_at`: it must name a workspace file whose line,
    /// or one of the two around it, holds the scenario's id.
    #[test]
    fn every_scenario_is_declared_where_it_says() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for s in all() {
            let at = s.declared_at;
            #[allow(clippy::disallowed_methods, reason = "reading the workspace's source")]
            let text = std::fs::read_to_string(root.join(at.file))
                .unwrap_or_else(|e| panic!("{}: declared in {}: {e}", s.id, at.file));
            let from = (at.line as usize).saturating_sub(3);
            let lines: Vec<&str> = text.lines().skip(from).take(5).collect();
            assert!(
                lines.iter().any(|l| l.contains(&format!("\"{}\"", s.id))),
                "{}: {}:{} does not declare it: {lines:?}",
                s.id,
                at.file,
                at.line
            );
        }
    }

    #[test]
    fn the_cores_check_names_the_scenario_and_the_path() {
        fn body(_: sim::World) -> crate::scenario::BodyFuture {
            Box::pin(async { Ok(()) })
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let with = |cores: &'static [&'static str]| Scenario {
            id: "core.EC-000",
            title: "t",
            proves: "p",
            faults_expected: &[],
            cores,
            sim_time_max: std::time::Duration::from_secs(1),
            body,
            real: None,
            plan: None,
            declared_at: crate::declared_here!(),
        };
        let problems = core_problems(
            &with(&[
                "engine/src/gone.rs",
                "engine/src/lib.rs",
                "engine/src/lib.rs",
                "../engine/src/lib.rs",
            ]),
            &root,
        );
        assert_eq!(
            problems,
            [
                "core.EC-000: core engine/src/gone.rs does not exist (renamed or moved? name the file that now holds that behaviour)",
                "core.EC-000 names engine/src/lib.rs twice in its cores",
                "core.EC-000: core \"../engine/src/lib.rs\" is not a workspace-relative engine/src/… or sim/src/… .rs path",
            ]
        );
        let only_sim = core_problems(&with(&["sim/src/clock.rs"]), &root);
        assert!(
            only_sim.len() == 1 && only_sim[0].contains("names no engine/src/ file"),
            "{only_sim:?}"
        );
        let none = core_problems(&with(&[]), &root);
        assert!(none[0].contains("names no engine file"), "{none:?}");
        assert!(core_problems(&with(&["engine/src/lib.rs", "sim/src/lib.rs"]), &root).is_empty());
    }
}
