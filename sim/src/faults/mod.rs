//! Faults: counting what fired, fixed plans and swarm rates.

mod counters;
mod plan;
mod swarm;

pub use counters::FaultCounters;
pub use plan::{Fault, FaultAction, FaultPlan, PartitionMode};
pub use swarm::{SwarmKind, SwarmPlan};
