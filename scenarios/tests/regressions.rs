//! Pinned regressions: every `chaos-shrunk/1` record in `scenarios/regressions/` is
//! replayed with its plan and must pass (the bug it found stays fixed), with its faults
//! firing (the pin still reaches the code it guards). See `regressions/README.md`.

use scenarios::registry;
use scenarios::runner::run_scenario_with_plan;
use scenarios::shrink::{ShrunkRecord, check_plan_fits};
use std::path::PathBuf;

fn pinned() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    #[allow(clippy::disallowed_methods, reason = "the test reads its pinned files")]
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_pinned_regression_replays_with_its_plan_and_passes() {
    for file in pinned() {
        let name = file.display().to_string();
        #[allow(clippy::disallowed_methods, reason = "the test reads its pinned files")]
        let text = std::fs::read_to_string(&file).unwrap();
        let record = ShrunkRecord::parse(&name, &text).unwrap();
        assert!(
            record.failure_class.is_some(),
            "{name}: a pinned regression records the failure it found"
        );
        let scenario = registry::find(&record.id)
            .unwrap_or_else(|| panic!("{name}: no scenario {} any more", record.id));
        check_plan_fits(scenario, record.seed, &record.plan).unwrap();
        let run = run_scenario_with_plan(scenario, record.seed, Some(record.plan.clone()));
        assert!(
            run.record.passed(),
            "{name}: the regression is back: {:?} {} (found as: {})",
            run.record.failure_class,
            run.record.message.unwrap_or_default(),
            record.message.unwrap_or_default()
        );
        // A pin whose plan has faults must still fire one; a workload-only pin (a
        // client's own misstep, no fault needed) has none to fire.
        let has_faults = !record.plan.actions.is_empty() || !record.plan.swarm.rates.is_empty();
        assert!(
            !has_faults || run.record.faults_expected_fired,
            "{name}: none of the plan's faults fired: the pin tests nothing now ({:?})",
            run.record.faults
        );
    }
}
