//! Faults: counting what fired, fixed plans and swarm rates, and shrinking a plan.

mod counters;
mod plan;
pub mod shrink;
mod swarm;

pub use counters::FaultCounters;
pub use plan::{Fault, FaultAction, FaultPlan, PartitionMode, SignalName, WorkloadStep, format_ms};
pub use swarm::{LADDER, SwarmKind, SwarmPlan};
