use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Counts every fault that actually fired, per kind (`"net.reset"`, `"disk.eio"`…).
///
/// A fault that was planned but never reached the system under test is not counted:
/// the readiness report uses these counts to tell a tested scenario from an inert one.
/// A host's devices get a copy scoped to the host (`for_host`), so the trace shows each
/// fault on the host it hit; all copies share one set of counts.
#[derive(Clone, Default)]
pub struct FaultCounters {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    /// Of those, the ones a swarm rate drew (not a plan's fixed action, not a scenario's
    /// configuration): what tells a run the swarm reached from one it did not.
    swarm: Arc<Mutex<BTreeMap<String, u64>>>,
    host: Option<Arc<str>>,
}

impl FaultCounters {
    /// The same counters, with faults traced as happening on `host`.
    pub fn for_host(&self, host: &str) -> FaultCounters {
        FaultCounters {
            counts: self.counts.clone(),
            swarm: self.swarm.clone(),
            host: Some(Arc::from(host)),
        }
    }

    /// Records one firing of `kind` and traces it with `detail`.
    pub fn fire(&self, kind: &str, detail: &str) {
        {
            let mut counts = self.counts.lock().expect("fault counters poisoned");
            *counts.entry(kind.to_string()).or_insert(0) += 1;
        }
        match &self.host {
            Some(host) => {
                tracing::info!(target: "sim::fault", host = &**host, kind, "fault fired: {detail}")
            }
            None => tracing::info!(target: "sim::fault", kind, "fault fired: {detail}"),
        }
    }

    /// [`FaultCounters::fire`] for a fault a swarm rate drew: also tallied as the swarm's.
    pub fn fire_swarm(&self, kind: &str, detail: &str) {
        {
            let mut swarm = self.swarm.lock().expect("fault counters poisoned");
            *swarm.entry(kind.to_string()).or_insert(0) += 1;
        }
        self.fire(kind, detail);
    }

    /// Faults a swarm rate drew, per kind.
    pub fn swarm_snapshot(&self) -> BTreeMap<String, u64> {
        self.swarm.lock().expect("fault counters poisoned").clone()
    }

    /// Records one edge case of `kind` the engine met (its own `engine::met` event is
    /// the trace line, so nothing more is traced).
    pub(crate) fn count_met(&self, kind: &str) {
        let mut counts = self.counts.lock().expect("fault counters poisoned");
        *counts.entry(kind.to_string()).or_insert(0) += 1;
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
