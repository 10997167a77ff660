//! Requests for a human (or the oversight subsystem) to decide: the supervisor files
//! them when it reaches a limit it may not lift on its own.

use serde::Serialize;

/// A file proposed for removal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LargeFile {
    /// Disk path (the worker's directory included).
    pub path: String,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OversightRequest {
    /// The memory watch stopped the worker at its limit: raise the limit (to twice
    /// the current one) so the work can complete?
    RaiseMemoryLimit {
        current_bytes: u64,
        proposed_bytes: u64,
    },
    /// The worker's disk passed the alert line: approve removing its large files?
    ApproveCleanup {
        used_bytes: u64,
        quota_bytes: u64,
        files: Vec<LargeFile>,
    },
}
