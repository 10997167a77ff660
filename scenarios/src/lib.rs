//! The catalog, the scenarios that prove it, the runner, and the `chaos` CLI's guts.

pub mod catalog;
pub mod cli;
pub mod fuzzing;
pub mod gateway;
pub mod kit;
pub mod real;
pub mod record;
pub mod registry;
pub mod runner;
pub mod scenario;
pub mod sessions;
pub mod shrink;
pub mod stage;
mod substrate;
pub mod upstream;
mod vopr;
pub mod workers;

pub use catalog::Catalog;
pub use record::RunRecord;
pub use scenario::{Failure, FailureClass, Scenario};
