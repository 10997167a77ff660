//! Durable session metadata (BRIEF §4, `store`): a redb database whose storage goes
//! through the environment's disk, so crash, torn-write and corruption faults of the
//! simulated disk hit the real database code.
//!
//! - [`DiskBackend`] (`backend.rs`): redb's `StorageBackend` over one [`DiskFile`]. It is
//!   synchronous (redb calls its backend synchronously): no threads, no tokio.
//! - [`SessionRecord`] (`record.rs`): one session's metadata, JSON in the `sessions` table,
//!   with a format version ([`RECORD_VERSION`]); the store itself has a schema version
//!   ([`SCHEMA_VERSION`]) in the `meta` table. Another version is
//!   [`StoreError::IncompatibleVersion`], never a guess.
//! - [`SessionStore`] (`sessions.rs`, `startup.rs`): get/put/remove/list, an atomic
//!   check-and-claim (one write transaction), the startup check (orphans purged, corrupt
//!   records archived, stale claims cleared) and archiving.
//! - [`checksum`] (`checksum.rs`): FNV-1a 64 of a session's data file, for integrity.
//!
//! Every call is synchronous and short; async callers call them directly (after
//! `env.disk_pace().await` when they want a simulated disk's latency charged).
//!
//! [`DiskFile`]: crate::env::DiskFile

mod backend;
mod checksum;
mod error;
mod record;
mod sessions;
mod startup;
#[cfg(test)]
mod tests;

pub use backend::DiskBackend;
pub use checksum::checksum;
pub use error::{StoreError, Versioned};
pub use record::{RECORD_VERSION, SessionRecord};
pub use sessions::{ArchivedRecord, ClaimOutcome, ReleaseOutcome, SCHEMA_VERSION, SessionStore};
pub use startup::StartupReport;
