//! Errors of the session store: each says which operation, which file or record, and
//! what to do about it.

use std::fmt;
use std::io;

/// What carries the version an [`StoreError::IncompatibleVersion`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versioned {
    /// One session record (its `version` field); `id` is the session id.
    Record,
    /// The store as a whole (its schema version in the `meta` table); `id` is its path.
    Store,
}

#[derive(Debug)]
pub enum StoreError {
    /// A disk operation of the store's own (not through redb) failed: creating the
    /// directory, opening the file, syncing the directory.
    Io {
        op: &'static str,
        path: String,
        source: io::Error,
    },
    /// The file is not a redb database, or redb found it corrupted.
    Corrupt { path: String, detail: String },
    /// The database reported an error during `op` (boxed: redb's error is large).
    Database {
        op: &'static str,
        path: String,
        source: Box<redb::Error>,
    },
    /// A record or the store has a format version this engine does not read.
    IncompatibleVersion {
        of: Versioned,
        id: String,
        found: u32,
        supported: u32,
    },
    /// A record's bytes do not decode (not JSON, missing fields, wrong id).
    CorruptRecord { id: String, detail: String },
    /// A counter used its last number.
    Exhausted { counter: String },
}

impl StoreError {
    /// Wraps a redb error: a corruption redb detected is [`StoreError::Corrupt`].
    pub(crate) fn database(op: &'static str, path: &str, source: impl Into<redb::Error>) -> Self {
        match source.into() {
            redb::Error::Corrupted(detail) => StoreError::Corrupt {
                path: path.to_string(),
                detail: format!("{op}: {detail}"),
            },
            source => StoreError::Database {
                op,
                path: path.to_string(),
                source: Box::new(source),
            },
        }
    }

    /// The OS error code underneath, if this is a disk failure (`ENOSPC`, `EIO`…).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            StoreError::Io { source, .. } => source.raw_os_error(),
            StoreError::Database { source, .. } => match &**source {
                redb::Error::Io(e) => e.raw_os_error(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the database refuses further work until it is reopened: after an I/O
    /// failure redb answers every later operation with `PreviousIo`.
    pub fn needs_reopen(&self) -> bool {
        match self {
            StoreError::Database { source, .. } => {
                matches!(**source, redb::Error::Io(_) | redb::Error::PreviousIo)
            }
            _ => false,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { op, path, source } => {
                write!(f, "session store {path:?}: {op} failed: {source}")
            }
            StoreError::Corrupt { path, detail } => write!(
                f,
                "session store {path:?} is not a readable database ({detail}): restore it from a backup or remove it"
            ),
            StoreError::Database { op, path, source } => match **source {
                redb::Error::PreviousIo => write!(
                    f,
                    "session store {path:?}: {op} refused: an earlier I/O error stopped the database; reopen the store"
                ),
                _ => write!(f, "session store {path:?}: {op} failed: {source}"),
            },
            StoreError::IncompatibleVersion {
                of: Versioned::Record,
                id,
                found,
                supported,
            } => write!(
                f,
                "session record {id:?} has format version {found}; this engine reads version {supported}: migrate or remove the store"
            ),
            StoreError::IncompatibleVersion {
                of: Versioned::Store,
                id,
                found,
                supported,
            } => write!(
                f,
                "session store {id:?} has schema version {found}; this engine reads schema version {supported}: migrate or remove the store"
            ),
            StoreError::CorruptRecord { id, detail } => write!(
                f,
                "session record {id:?} is corrupted ({detail}); the startup check archives it"
            ),
            StoreError::Exhausted { counter } => {
                write!(f, "session store counter {counter:?} used its last number")
            }
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Database { source, .. } => Some(&**source),
            _ => None,
        }
    }
}
