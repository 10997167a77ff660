use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Counts every fault that actually fired, per kind (`"net.reset"`, `"disk.eio"`…).
///
/// A fault that was planned but never reached the system under test is not counted:
/// the readiness report uses these counts to tell a tested scenario from an inert one.
#[derive(Clone, Default)]
pub struct FaultCounters {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl FaultCounters {
    /// Records one firing of `kind` and traces it with `detail`.
    pub fn fire(&self, kind: &str, detail: &str) {
        {
            let mut counts = self.counts.lock().expect("fault counters poisoned");
            *counts.entry(kind.to_string()).or_insert(0) += 1;
        }
        tracing::info!(target: "sim::fault", kind, "fault fired: {detail}");
    }

    pub fn count(&self, kind: &str) -> u64 {
        self.counts
            .lock()
            .expect("fault counters poisoned")
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("fault counters poisoned").clone()
    }
}
