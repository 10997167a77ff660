//! What a readiness report needs to know of the catalog.
//!
//! The catalog itself lives in `scenarios` (it is validated against the registry of
//! scenarios there). `reports` must not depend on `scenarios`, so it reads this small
//! view of an entry, which the `chaos` CLI fills from the real catalog.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    High,
    Medium,
    Low,
}

impl Risk {
    pub const ALL: [Risk; 3] = [Risk::High, Risk::Medium, Risk::Low];

    pub fn name(self) -> &'static str {
        match self {
            Risk::High => "high",
            Risk::Medium => "medium",
            Risk::Low => "low",
        }
    }
}

/// Where an entry stands (the catalog's `status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryStatus {
    /// A scenario exists and runs.
    Implemented,
    /// No scenario yet.
    Planned,
    /// Nothing a server-side simulation can exercise; the entry's reason says why.
    NotApplicable,
}

impl EntryStatus {
    pub fn name(self) -> &'static str {
        match self {
            EntryStatus::Implemented => "implemented",
            EntryStatus::Planned => "planned",
            EntryStatus::NotApplicable => "not-applicable",
        }
    }
}

/// One catalog entry, as reports see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub id: String,
    /// The seed document the entry comes from (a file name).
    pub source: String,
    pub subsystem: String,
    pub category: String,
    pub risk: Risk,
    pub status: EntryStatus,
    pub title: String,
    /// Why a `not-applicable` entry is; empty otherwise.
    pub reason: String,
}

impl CatalogEntry {
    /// The id's namespace (`core`, `enable`, …), which names its source document.
    pub fn prefix(&self) -> &str {
        id_prefix(&self.id)
    }
}

/// The part of a scenario id before its first dot (`sim` for `sim.net.x`).
pub fn id_prefix(id: &str) -> &str {
    id.split_once('.').map_or(id, |(prefix, _)| prefix)
}
