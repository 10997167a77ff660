//! Scenarios for the `workers` subsystem: every process-related catalog entry
//! (pattern.*, core.EC-114..127, enable.1.1.1, 1.1.3, 1.3.1, 1.3.2).
//!
//! Each scenario runs on a [`Stage`]: a simulated engine host with the real worker
//! program installed as a simulated process. Its faults come from the simulated
//! devices (spawn failures, slow starts, crashes, hangs, OOM kills, full disks…), never
//! from calls into the supervisor's internals.

pub mod any_plan;
mod crash;
mod disk;
mod pool;
mod registry;
mod resources;
mod security;
mod startup;

pub use crate::stage::workers::Stage;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    let mut all = Vec::new();
    all.extend(registry::all());
    all.extend(startup::all());
    all.extend(crash::all());
    all.extend(resources::all());
    all.extend(disk::all());
    all.extend(security::all());
    all.extend(pool::all());
    all.push(&any_plan::ANY_FAULT_PLAN);
    all
}
