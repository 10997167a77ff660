//! What runs produce and how people read it: the run record schema shared by `chaos run`,
//! `chaos sweep` and the reports; sweep files and their sharding and merging; the
//! summaries rendered from records; and the release readiness report in four renderings.
//!
//! No I/O here: parsing takes text, rendering returns strings, the CLI reads and writes.

pub mod catalog;
pub mod gate;
pub mod merge;
pub mod provenance;
pub mod readiness;
pub mod record;
pub mod render;
pub mod shard;
pub mod summary;
pub mod sweep_file;

pub use record::{FailureClass, RunRecord, Verdict};
pub use summary::{ScenarioSummary, summarize};
