//! What runs produce and how people read it: the run record schema shared by `chaos run`,
//! `chaos sweep` and the reports, and the summaries rendered from records.

pub mod record;
pub mod summary;

pub use record::{FailureClass, RunRecord, Verdict};
pub use summary::{ScenarioSummary, summarize};
