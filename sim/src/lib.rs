//! The deterministic simulated world the engine runs in (BRIEF §2).
//!
//! seed → clocks → executor (a paused tokio runtime per world) → devices (network,
//! disk, processes) → fault plans → the world (composition root) → the trace.

pub mod clock;
pub mod disk;
pub mod faults;
pub mod net;
pub mod procs;
pub mod seed;
pub(crate) mod thread_lock;
pub mod trace;
pub mod upstream;
pub mod world;

pub use faults::{Fault, FaultCounters, FaultPlan};
pub use seed::{Ratio, SimRng};
pub use world::{Host, RunAbort, RunReport, World, WorldOptions, run_world};
