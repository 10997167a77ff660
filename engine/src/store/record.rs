//! One session's metadata and its encoding: JSON bytes, versioned.

use super::error::{StoreError, Versioned};
use serde::{Deserialize, Serialize};

/// The record format this engine writes and reads.
pub const RECORD_VERSION: u32 = 1;

/// A session's durable metadata (the session's own files live under `data_path`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Format version of this record: [`RECORD_VERSION`].
    pub version: u32,
    pub id: String,
    pub user: String,
    pub created_unix_ms: u64,
    pub updated_unix_ms: u64,
    /// Free-form lifecycle state name.
    pub state: String,
    /// The connection or instance that holds the session, if any.
    pub claimed_by: Option<String>,
    /// Where the session's files live on the disk.
    pub data_path: String,
    /// [`super::checksum`] of the session data file's contents.
    pub checksum: u64,
    /// The session this one was forked from.
    pub parent: Option<String>,
    /// How many times an instance claimed the session to restore it. A restored stream
    /// numbers its messages after `restores << 32`, past any number a client could hold
    /// from an earlier incarnation (absent in older records: 0).
    #[serde(default)]
    pub restores: u32,
}

impl SessionRecord {
    /// A fresh, unclaimed record of the current version, created and updated at `now_ms`.
    pub fn new(
        id: impl Into<String>,
        user: impl Into<String>,
        data_path: impl Into<String>,
        now_ms: u64,
    ) -> Self {
        SessionRecord {
            version: RECORD_VERSION,
            id: id.into(),
            user: user.into(),
            created_unix_ms: now_ms,
            updated_unix_ms: now_ms,
            state: String::new(),
            claimed_by: None,
            data_path: data_path.into(),
            checksum: 0,
            parent: None,
            restores: 0,
        }
    }
}

/// Encodes a record; only the current version is written.
pub(crate) fn encode(record: &SessionRecord) -> Result<Vec<u8>, StoreError> {
    if record.version != RECORD_VERSION {
        return Err(StoreError::IncompatibleVersion {
            of: Versioned::Record,
            id: record.id.clone(),
            found: record.version,
            supported: RECORD_VERSION,
        });
    }
    serde_json::to_vec(record).map_err(|e| StoreError::CorruptRecord {
        id: record.id.clone(),
        detail: format!("cannot encode: {e}"),
    })
}

/// Decodes the record stored under `id`. The version is read first, so a record of
/// another version is [`StoreError::IncompatibleVersion`] whatever its other fields are.
pub(crate) fn decode(id: &str, bytes: &[u8]) -> Result<SessionRecord, StoreError> {
    let corrupt = |detail: String| StoreError::CorruptRecord {
        id: id.to_string(),
        detail,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("no numeric \"version\" field".to_string()))?;
    let version = u32::try_from(version)
        .map_err(|_| corrupt(format!("version {version} is out of range")))?;
    if version != RECORD_VERSION {
        return Err(StoreError::IncompatibleVersion {
            of: Versioned::Record,
            id: id.to_string(),
            found: version,
            supported: RECORD_VERSION,
        });
    }
    let record: SessionRecord = serde_json::from_value(value)
        .map_err(|e| corrupt(format!("not a version {version} record: {e}")))?;
    if record.id != id {
        return Err(corrupt(format!(
            "it names session {:?} but is stored under {id:?}",
            record.id
        )));
    }
    Ok(record)
}
