//! [`SessionStore`]: session records in a redb database on the environment's disk.
//!
//! Each method is one redb transaction, so each is atomic: a crash or an error leaves
//! the store as it was before the call or as after it, never in between.

use super::backend::DiskBackend;
use super::error::{StoreError, Versioned};
use super::record::{SessionRecord, decode, encode};
use crate::env::{Disk, OpenMode, check_relative_path};
use redb::{Builder, Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

/// The store layout this engine writes and reads (tables and their types).
pub const SCHEMA_VERSION: u32 = 1;

/// Session id → the record's JSON bytes.
pub(super) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (session id, sequence) → (reason, the raw bytes the record had). A session archived
/// twice keeps both entries.
pub(super) const ARCHIVED: TableDefinition<(&str, u64), (&str, &[u8])> =
    TableDefinition::new("archived");
/// The store's own settings: `schema_version`.
const META: TableDefinition<&str, u32> = TableDefinition::new("meta");
/// Counter name → the next number it hands out (session numbers: an id is never
/// issued twice, across restarts).
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");
const SCHEMA_KEY: &str = "schema_version";

/// redb's page cache. The default (1 GiB) is sized for large databases; session
/// metadata is small, and many simulated hosts may share one process.
const CACHE_BYTES: usize = 4 << 20;

/// Session metadata, durable. Open one store per file per host (the backend takes no
/// file locks).
pub struct SessionStore {
    /// `None` only while a reopen is under way or after one failed (the next write
    /// tries again).
    db: Mutex<Option<Arc<Database>>>,
    disk: Arc<dyn Disk>,
    path: String,
}

/// What [`SessionStore::claim`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The claimant holds the session now (or already did); the record's restore count
    /// after this claim.
    Claimed { restores: u32 },
    /// Someone else holds it.
    AlreadyClaimed { by: String },
    /// No such session.
    Missing,
}

/// What [`SessionStore::release`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The claimant's claim is gone.
    Released,
    /// The claimant did not hold the session; `by` is who does, if anyone. Nothing changed.
    NotHolder { by: Option<String> },
    /// No such session.
    Missing,
}

/// A record moved out of `sessions` by [`SessionStore::archive`] or the startup check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedRecord {
    pub id: String,
    /// 0 for the first archive of this id, then 1, 2…
    pub seq: u64,
    pub reason: String,
    /// The record's bytes as they were stored (they may not decode).
    pub raw: Vec<u8>,
}

/// Which operation on which store: the context every redb error is wrapped with.
pub(super) struct Cx<'a> {
    op: &'static str,
    path: &'a str,
}

pub(super) trait At<T> {
    /// Wraps a redb error with the operation and the store's path.
    fn at(self, cx: &Cx<'_>) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> At<T> for Result<T, E> {
    fn at(self, cx: &Cx<'_>) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::database(cx.op, cx.path, e))
    }
}

impl SessionStore {
    /// Opens the store at `path` on `disk`, creating it (and its directory, durably) if
    /// missing. A file that is not a redb database, or that fails redb's integrity check,
    /// is [`StoreError::Corrupt`]; a store of another schema version is
    /// [`StoreError::IncompatibleVersion`].
    pub fn open(disk: Arc<dyn Disk>, path: &str) -> Result<SessionStore, StoreError> {
        let io_err = |op: &'static str| {
            move |source: io::Error| StoreError::Io {
                op,
                path: path.to_string(),
                source,
            }
        };
        check_relative_path(path).map_err(io_err("check the path"))?;
        let existed = match disk.metadata(path) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err("stat the file")(e)),
        };
        let parent = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        if !existed {
            create_dir_all_durable(&*disk, parent).map_err(io_err("create its directory"))?;
        }
        let file = disk
            .open(path, OpenMode::Create)
            .map_err(io_err("open the file"))?;
        if !existed {
            // The name must be durable before any commit is, or a crash loses the store.
            disk.sync_dir(parent)
                .map_err(io_err("sync its directory"))?;
        }
        let db = build_db(file, path)?;
        let store = SessionStore {
            db: Mutex::new(Some(Arc::new(db))),
            disk,
            path: path.to_string(),
        };
        store.init_schema()?;
        Ok(store)
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// Inserts or replaces the record under `record.id`. Only [`super::RECORD_VERSION`]
    /// records are written.
    pub fn put(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let bytes = encode(record)?;
        self.write("put", |txn, cx| {
            let mut table = txn.open_table(SESSIONS).at(cx)?;
            table.insert(record.id.as_str(), bytes.as_slice()).at(cx)?;
            Ok(())
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let cx = self.cx("get");
        let db = self.db(&cx)?;
        let txn = db.begin_read().at(&cx)?;
        let table = txn.open_table(SESSIONS).at(&cx)?;
        let guard = table.get(id).at(&cx)?;
        guard.map(|bytes| decode(id, bytes.value())).transpose()
    }

    /// The next number of counter `name`, durably: one write transaction, so no number
    /// is handed out twice, across crashes and restarts. A counter never used starts
    /// past every record the store holds (`number_of` says which number a record's id
    /// used, if any), so a store written before counters existed is safe too.
    pub fn next_number(
        &self,
        name: &str,
        number_of: impl Fn(&str) -> Option<u64>,
    ) -> Result<u64, StoreError> {
        self.write("next_number", |txn, cx| {
            let mut counters = txn.open_table(COUNTERS).at(cx)?;
            let stored = counters.get(name).at(cx)?.map(|g| g.value());
            let next = match stored {
                Some(n) => n,
                None => {
                    let sessions = txn.open_table(SESSIONS).at(cx)?;
                    let mut used = 0;
                    for entry in sessions.iter().at(cx)? {
                        let (id, _) = entry.at(cx)?;
                        used = used.max(number_of(id.value()).unwrap_or(0));
                    }
                    used + 1
                }
            };
            let after = next.checked_add(1).ok_or_else(|| StoreError::Exhausted {
                counter: name.to_string(),
            })?;
            counters.insert(name, after).at(cx)?;
            Ok(next)
        })
    }

    /// Removes the record; `false` if there was none.
    pub fn remove(&self, id: &str) -> Result<bool, StoreError> {
        self.write("remove", |txn, cx| {
            let mut table = txn.open_table(SESSIONS).at(cx)?;
            let removed = table.remove(id).at(cx)?.is_some();
            Ok(removed)
        })
    }

    /// Every record, ordered by id. A record that does not decode fails the whole list
    /// (the startup check archives such records).
    pub fn list(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let cx = self.cx("list");
        let db = self.db(&cx)?;
        let txn = db.begin_read().at(&cx)?;
        let table = txn.open_table(SESSIONS).at(&cx)?;
        let mut records = Vec::new();
        for entry in table.iter().at(&cx)? {
            let (id, bytes) = entry.at(&cx)?;
            records.push(decode(id.value(), bytes.value())?);
        }
        Ok(records)
    }

    /// Claims session `id` for `claimant`: check and set in one write transaction, so two
    /// claimants can never both get [`ClaimOutcome::Claimed`]. Claiming again by the
    /// holder succeeds. A successful claim sets `updated_unix_ms` to `now_ms`.
    pub fn claim(&self, id: &str, claimant: &str, now_ms: u64) -> Result<ClaimOutcome, StoreError> {
        self.write("claim", |txn, cx| {
            let mut table = txn.open_table(SESSIONS).at(cx)?;
            let Some(bytes) = table.get(id).at(cx)?.map(|g| g.value().to_vec()) else {
                return Ok(ClaimOutcome::Missing);
            };
            let mut record = decode(id, &bytes)?;
            if let Some(by) = &record.claimed_by
                && by != claimant
            {
                return Ok(ClaimOutcome::AlreadyClaimed { by: by.clone() });
            }
            record.claimed_by = Some(claimant.to_string());
            record.updated_unix_ms = now_ms;
            record.restores =
                record
                    .restores
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Exhausted {
                        counter: format!("restores of session {id}"),
                    })?;
            table.insert(id, encode(&record)?.as_slice()).at(cx)?;
            Ok(ClaimOutcome::Claimed {
                restores: record.restores,
            })
        })
    }

    /// Drops `claimant`'s claim on `id`. Someone else's claim is left alone.
    pub fn release(&self, id: &str, claimant: &str) -> Result<ReleaseOutcome, StoreError> {
        self.write("release", |txn, cx| {
            let mut table = txn.open_table(SESSIONS).at(cx)?;
            let Some(bytes) = table.get(id).at(cx)?.map(|g| g.value().to_vec()) else {
                return Ok(ReleaseOutcome::Missing);
            };
            let mut record = decode(id, &bytes)?;
            if record.claimed_by.as_deref() != Some(claimant) {
                return Ok(ReleaseOutcome::NotHolder {
                    by: record.claimed_by,
                });
            }
            record.claimed_by = None;
            table.insert(id, encode(&record)?.as_slice()).at(cx)?;
            Ok(ReleaseOutcome::Released)
        })
    }

    /// Moves the record of `id` (its raw bytes, decodable or not) to the `archived`
    /// table with `reason`; `false` if there was none. Used when a session's data is
    /// found corrupted at resume.
    pub fn archive(&self, id: &str, reason: &str) -> Result<bool, StoreError> {
        self.write("archive", |txn, cx| {
            let mut table = txn.open_table(SESSIONS).at(cx)?;
            let Some(bytes) = table.remove(id).at(cx)?.map(|g| g.value().to_vec()) else {
                return Ok(false);
            };
            archive_raw(txn, cx, id, reason, &bytes)?;
            Ok(true)
        })
    }

    /// The archived records, ordered by id then sequence.
    pub fn archived(&self) -> Result<Vec<ArchivedRecord>, StoreError> {
        let cx = self.cx("list the archive");
        let db = self.db(&cx)?;
        let txn = db.begin_read().at(&cx)?;
        let table = txn.open_table(ARCHIVED).at(&cx)?;
        let mut out = Vec::new();
        for entry in table.iter().at(&cx)? {
            let (key, value) = entry.at(&cx)?;
            let (id, seq) = key.value();
            let (reason, raw) = value.value();
            out.push(ArchivedRecord {
                id: id.to_string(),
                seq,
                reason: reason.to_string(),
                raw: raw.to_vec(),
            });
        }
        Ok(out)
    }

    pub(super) fn cx(&self, op: &'static str) -> Cx<'_> {
        Cx {
            op,
            path: &self.path,
        }
    }

    /// The open database (reopened first if an earlier reopen failed).
    pub(super) fn db(&self, cx: &Cx<'_>) -> Result<Arc<Database>, StoreError> {
        let mut db = self.db.lock().expect("store poisoned");
        if db.is_none() {
            *db = Some(Arc::new(self.reopen_db(cx)?));
        }
        Ok(db.as_ref().expect("set above").clone())
    }

    /// After an I/O error redb refuses every write until the database is opened again
    /// (`StoreError::needs_reopen`): the old one is dropped first (two open on one file
    /// would fight over it), then the file is opened again, its integrity checked.
    fn reopen(&self, cx: &Cx<'_>) -> Result<(), StoreError> {
        let mut db = self.db.lock().expect("store poisoned");
        drop(db.take());
        *db = Some(Arc::new(self.reopen_db(cx)?));
        drop(db);
        tracing::warn!(path = %self.path, op = cx.op, "session store reopened after an I/O error");
        Ok(())
    }

    fn reopen_db(&self, cx: &Cx<'_>) -> Result<Database, StoreError> {
        open_db(&*self.disk, &self.path).inspect_err(|e| {
            tracing::warn!(path = %self.path, op = cx.op, "session store could not be reopened: {e}");
        })
    }

    /// Runs `body` in one write transaction: committed if it returns `Ok`, aborted
    /// (nothing changes) if it returns `Err`. A write refused because an earlier I/O
    /// error stopped the database is tried once more on the database reopened.
    pub(super) fn write<T>(
        &self,
        op: &'static str,
        body: impl Fn(&WriteTransaction, &Cx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match self.write_once(op, &body) {
            Err(e) if e.needs_reopen() => match self.reopen(&self.cx(op)) {
                Ok(()) => self.write_once(op, &body),
                // Still failing: the caller learns what its write met; the next write
                // tries to reopen again.
                Err(_) => Err(e),
            },
            done => done,
        }
    }

    fn write_once<T>(
        &self,
        op: &'static str,
        body: &impl Fn(&WriteTransaction, &Cx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let cx = self.cx(op);
        let db = self.db(&cx)?;
        let txn = db.begin_write().at(&cx)?;
        match body(&txn, &cx) {
            Ok(out) => {
                txn.commit().at(&cx)?;
                Ok(out)
            }
            Err(e) => {
                // The error that matters is the body's; an abort failure adds nothing.
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    /// Creates the tables of a new store, or checks an existing store's schema version
    /// (before touching its other tables).
    fn init_schema(&self) -> Result<(), StoreError> {
        self.write("check the schema version", |txn, cx| {
            let mut meta = txn.open_table(META).at(cx)?;
            let found = meta.get(SCHEMA_KEY).at(cx)?.map(|g| g.value());
            match found {
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION).at(cx)?;
                }
                Some(SCHEMA_VERSION) => {}
                Some(found) => {
                    return Err(StoreError::IncompatibleVersion {
                        of: Versioned::Store,
                        id: cx.path.to_string(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
            }
            drop(meta);
            txn.open_table(SESSIONS).at(cx)?;
            txn.open_table(ARCHIVED).at(cx)?;
            Ok(())
        })
    }

    /// Stores `bytes` under `id` as they are, decodable or not (tests write bad records).
    #[cfg(test)]
    pub(super) fn put_raw(&self, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.write("put raw", |txn, cx| {
            let mut table = txn.open_table(SESSIONS).at(cx)?;
            table.insert(id, bytes).at(cx)?;
            Ok(())
        })
    }

    /// Overwrites the schema version (tests open a "newer" store).
    #[cfg(test)]
    pub(super) fn set_schema_version(&self, version: u32) -> Result<(), StoreError> {
        self.write("set the schema version", |txn, cx| {
            let mut meta = txn.open_table(META).at(cx)?;
            meta.insert(SCHEMA_KEY, version).at(cx)?;
            Ok(())
        })
    }
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Appends `bytes` to the archive under `(id, next sequence)`.
pub(super) fn archive_raw(
    txn: &WriteTransaction,
    cx: &Cx<'_>,
    id: &str,
    reason: &str,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut archived = txn.open_table(ARCHIVED).at(cx)?;
    let last = archived
        .range((id, 0)..=(id, u64::MAX))
        .at(cx)?
        .next_back()
        .transpose()
        .at(cx)?
        .map(|(key, _)| key.value().1);
    let seq = last.map_or(0, |seq| seq.saturating_add(1));
    archived.insert((id, seq), (reason, bytes)).at(cx)?;
    Ok(())
}

/// An open failure: a file that is not a database, or one redb finds damaged, is
/// [`StoreError::Corrupt`].
/// Opens the database in the existing file at `path` again.
fn open_db(disk: &dyn Disk, path: &str) -> Result<Database, StoreError> {
    let file = disk
        .open(path, OpenMode::Create)
        .map_err(|source| StoreError::Io {
            op: "open the file",
            path: path.to_string(),
            source,
        })?;
    build_db(file, path)
}

/// The database in `file`, its integrity checked: a damaged file is `Corrupt`, never
/// trusted.
fn build_db(file: Box<dyn crate::env::DiskFile>, path: &str) -> Result<Database, StoreError> {
    Builder::new()
        .set_cache_size(CACHE_BYTES)
        // A damaged file fails to open as Corrupted instead of being trusted.
        .set_check_integrity_on_open(true)
        .create_with_backend(DiskBackend::new(file, path))
        .map_err(|e| open_error(path, e))
}

fn open_error(path: &str, error: redb::DatabaseError) -> StoreError {
    match redb::Error::from(error) {
        redb::Error::Io(e) if e.kind() == io::ErrorKind::InvalidData => StoreError::Corrupt {
            path: path.to_string(),
            detail: e.to_string(),
        },
        other => StoreError::database("open", path, other),
    }
}

/// Creates `dir` and its parents, and makes their names durable (each ancestor synced,
/// from the root down), as `Env::create_dir_all_durable` does on the async path.
fn create_dir_all_durable(disk: &dyn Disk, dir: &str) -> io::Result<()> {
    if dir.is_empty() {
        return Ok(());
    }
    disk.create_dir_all(dir)?;
    let mut parent = String::new();
    for name in dir.split('/') {
        disk.sync_dir(&parent)?;
        if !parent.is_empty() {
            parent.push('/');
        }
        parent.push_str(name);
    }
    Ok(())
}
