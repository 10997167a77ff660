//! The record of one run (scenario, seed): what `chaos run --json` prints and what a
//! sweep writes, one per run.

use crate::provenance::Provenance;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

/// How a failed run failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    /// Something panicked (engine, scenario or simulator).
    Crash,
    /// An oracle saw a wrong state or outcome.
    Correctness,
    /// The system did not converge within its bound after faults healed, or the run's
    /// virtual-time budget ran out.
    Liveness,
}

impl FailureClass {
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Crash => "crash",
            FailureClass::Correctness => "correctness",
            FailureClass::Liveness => "liveness",
        }
    }

    /// Process exit status `chaos run` uses for a failure of this class.
    pub fn exit_code(self) -> i32 {
        match self {
            FailureClass::Crash => 3,
            FailureClass::Correctness => 4,
            FailureClass::Liveness => 5,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Outcome of one run, as BRIEF §6 lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub seed: u64,
    pub verdict: Verdict,
    /// Set when the verdict is `fail`.
    pub failure_class: Option<FailureClass>,
    /// The failing oracle's message, or the panic.
    pub message: Option<String>,
    /// Rolling hash of the run's trace (16 hex digits).
    pub trace_hash: String,
    pub sim_time_ns: u64,
    /// Trace events recorded.
    pub events: u64,
    /// Faults that fired in this run, per kind.
    pub faults: BTreeMap<String, u64>,
    /// Of those, the ones the run's swarm drew (a swarm rate, not a fixed fault), per
    /// kind. Absent in records written before it was kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub swarm_faults: BTreeMap<String, u64>,
    /// The scenario's own fault kinds.
    pub faults_expected: Vec<String>,
    /// Whether at least one of `faults_expected` fired in this run.
    pub faults_expected_fired: bool,
    /// Real time the run took. Not deterministic; never part of a comparison.
    pub wall_ms: u64,
    /// The one command that replays this run.
    pub repro: String,
    /// Digest of the fault plan the run was given or drew (`provenance::digest` of its
    /// JSON): two runs with one digest ran one plan. Absent for scenarios without a
    /// declared plan and in records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// The build and machine that made the run. Set on `chaos run --json`; a sweep file
    /// carries it once for all its records (and leaves it out of each). Absent in
    /// records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

impl RunRecord {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}
