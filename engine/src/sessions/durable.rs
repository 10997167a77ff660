//! Sessions made durable: each live session has a record in the [`SessionStore`]
//! (claimed by the instance serving it) and a data file with its history, rewritten
//! before each query. A session that is not live here but has a record (another
//! instance's, or one left by a previous run) can be resumed: its data is checked
//! first (present, checksum matches), then claimed atomically, then restored.
//!
//! Disk and store calls are synchronous (redb's backend is); callers charge the
//! simulated disk's latency with `env.disk_pace()` first.

use crate::env::{Env, OpenMode};
use crate::store::{
    ClaimOutcome, SessionRecord, SessionStore, StartupReport, StoreError, checksum,
};
use std::io;
use std::sync::Arc;

/// The store and where this instance keeps session data.
pub(crate) struct Durable {
    pub(crate) store: Arc<SessionStore>,
    /// Names this running instance in claims: its name plus a random suffix drawn at
    /// each start, so a claim means "held by this process". An instance started again
    /// does not take its crashed predecessor's claims for its own (the startup check
    /// clears those), and two instances given the same name never share claims.
    pub(crate) claimant: String,
    /// Directory of the data files (`<dir>/<id>.json`).
    pub(crate) dir: String,
}

/// What a resume found in the store.
pub(crate) enum Stored {
    /// No record: the id is unknown here.
    Absent,
    /// Another instance or connection holds it.
    Claimed { by: String },
    /// The record or its data is unusable: it was archived (or removed) and why.
    Damaged { notice: String },
    /// Claimed for this instance; the history to restore, and where the restored
    /// stream's numbering starts (after every number an earlier incarnation used).
    Restored {
        transcript: Vec<Arc<String>>,
        first_seq_after: u64,
    },
}

impl Durable {
    fn data_path(&self, id: &str) -> String {
        format!("{}/{id}.json", self.dir)
    }

    /// Writes the session's history and its record, claimed by this instance or (a
    /// session handed over) by nobody. The data goes to a new file renamed over the
    /// old, so a crash leaves one or the other.
    pub(crate) fn save(
        &self,
        env: &Env,
        id: &str,
        user: &str,
        parent: Option<&str>,
        transcript: &[Arc<String>],
        claimed: bool,
    ) -> Result<(), String> {
        let bytes = encode_transcript(transcript).map_err(|e| e.to_string())?;
        let path = self.data_path(id);
        let write = || -> io::Result<()> {
            let disk = env.disk();
            disk.create_dir_all(&self.dir)?;
            let tmp = format!("{path}.tmp");
            let file = disk.open(&tmp, OpenMode::Truncate)?;
            file.write_at(&bytes, 0)?;
            file.sync_data()?;
            disk.rename(&tmp, &path)?;
            disk.sync_dir(&self.dir)
        };
        write().map_err(|e| format!("writing {path}: {e}"))?;
        let now = env.wall_unix_ms();
        let (created, restores) = match self.store.get(id) {
            Ok(Some(r)) => (r.created_unix_ms, r.restores),
            _ => (now, 0),
        };
        let mut record = SessionRecord::new(id, user, path, created);
        record.restores = restores;
        record.updated_unix_ms = now;
        record.state = "live".to_string();
        record.claimed_by = claimed.then(|| self.claimant.clone());
        record.checksum = checksum(&bytes);
        record.parent = parent.map(str::to_string);
        self.store.put(&record).map_err(|e| e.to_string())
    }

    /// The session is over: its record and data go.
    pub(crate) fn forget(&self, env: &Env, id: &str) {
        if let Err(e) = self.store.remove(id) {
            tracing::warn!(session = id, "could not remove the session's record: {e}");
        }
        let _ = env.disk().remove(&self.data_path(id));
    }

    /// Checks, claims and loads a stored session for `user`.
    pub(crate) fn resume(&self, env: &Env, id: &str, user: &str) -> Stored {
        let record = match self.store.get(id) {
            Ok(Some(r)) if r.user == user => r,
            Ok(_) => return Stored::Absent,
            Err(StoreError::CorruptRecord { detail, .. }) => {
                crate::met!(
                    "disk.corrupt_data",
                    "session {id}'s record does not decode: {detail}"
                );
                return self.archive(id, &format!("its record is corrupted ({detail})"));
            }
            Err(e) => {
                return Stored::Damaged {
                    notice: format!(
                        "session {id} could not be read ({e}); a new session was started"
                    ),
                };
            }
        };
        let bytes = match read_all(env, &record.data_path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                crate::met!(
                    "disk.files_lost",
                    "resume of {id}: its data file {} is gone",
                    record.data_path
                );
                let _ = self.store.remove(id);
                tracing::warn!(session = id, "session files are gone: record purged");
                return Stored::Damaged {
                    notice: format!("session {id}'s files are gone; a new session was started"),
                };
            }
            Err(e) => return self.archive(id, &format!("its data could not be read ({e})")),
        };
        if checksum(&bytes) != record.checksum {
            crate::met!(
                "disk.corrupt_data",
                "resume of {id}: {} does not match the record's checksum",
                record.data_path
            );
            return self.archive(id, "its data does not match its checksum");
        }
        let Ok(transcript) = serde_json::from_slice::<Vec<String>>(&bytes) else {
            crate::met!(
                "disk.corrupt_data",
                "resume of {id}: {} matches its checksum but does not decode",
                record.data_path
            );
            return self.archive(id, "its data does not decode");
        };
        match self.store.claim(id, &self.claimant, env.wall_unix_ms()) {
            Ok(ClaimOutcome::Claimed { restores }) => Stored::Restored {
                transcript: transcript.into_iter().map(Arc::new).collect(),
                first_seq_after: restored_seq_base(restores),
            },
            Ok(ClaimOutcome::AlreadyClaimed { by }) => Stored::Claimed { by },
            Ok(ClaimOutcome::Missing) => Stored::Absent,
            Err(e) => Stored::Damaged {
                notice: format!(
                    "session {id} could not be claimed ({e}); a new session was started"
                ),
            },
        }
    }

    /// Gives up this instance's claim (a restore that could not be served).
    pub(crate) fn release(&self, id: &str) {
        let _ = self.store.release(id, &self.claimant);
    }

    fn archive(&self, id: &str, why: &str) -> Stored {
        match self.store.archive(id, why) {
            Ok(_) => tracing::warn!(session = id, "session archived: {why}"),
            Err(e) => tracing::error!(session = id, "archiving failed ({e}); {why}"),
        }
        Stored::Damaged {
            notice: format!(
                "session {id} could not be resumed: {why}; it was archived and a new session was started"
            ),
        }
    }
}

/// The store's start-up check, once per deployment start: records whose files are gone
/// are purged, corrupt ones archived, stale claims cleared.
pub(crate) fn check_store(env: &Env, store: &SessionStore) -> Result<StartupReport, StoreError> {
    let disk = env.disk();
    let report = store.startup_check(|r| disk.metadata(&r.data_path).is_ok())?;
    for id in &report.orphans {
        crate::met!(
            "disk.files_lost",
            "start-up check: {id}'s data is gone, record purged"
        );
    }
    for id in &report.corrupt {
        crate::met!(
            "disk.corrupt_data",
            "start-up check: {id}'s record does not decode, archived"
        );
    }
    Ok(report)
}

fn read_all(env: &Env, path: &str) -> io::Result<Vec<u8>> {
    let file = env.disk().open(path, OpenMode::Read)?;
    let len = file.len()? as usize;
    let mut buf = vec![0u8; len];
    let mut at = 0;
    while at < len {
        let n = file.read_at(&mut buf[at..], at as u64)?;
        if n == 0 {
            buf.truncate(at);
            break;
        }
        at += n;
    }
    Ok(buf)
}

/// Where the stream of a session restored for the `restores`-th time starts numbering.
/// Each incarnation owns 2^32 numbers: a client reconnecting with a number from an
/// earlier incarnation is behind (it gets a `replay_gap` notice for what it may have
/// missed), never ahead (which would reset the session as tampering).
pub(crate) fn restored_seq_base(restores: u32) -> u64 {
    u64::from(restores) << 32
}

/// The history as its data file holds it: a JSON array of strings, written into a
/// buffer sized for it up front (a history holding a 10 MB answer would otherwise grow
/// its buffer by doubling, to 16 MiB, with the 8 MiB one still held while it moves).
fn encode_transcript(transcript: &[Arc<String>]) -> serde_json::Result<Vec<u8>> {
    // Each entry's text, its two quotes and a comma, and the brackets; escapes (rare)
    // grow the buffer past this.
    let unescaped: usize = transcript.iter().map(|e| e.len() + 3).sum();
    let mut bytes = Vec::with_capacity(unescaped + 2);
    let entries: Vec<&str> = transcript.iter().map(|e| e.as_str()).collect();
    serde_json::to_writer(&mut bytes, &entries)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_encodes_as_the_json_array_of_its_strings() {
        let entries = ["> q", "plain", "quote \" backslash \\ newline \n é \u{1}"];
        let shared: Vec<Arc<String>> = entries.iter().map(|e| Arc::new(e.to_string())).collect();
        let owned: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        let encoded = encode_transcript(&shared).unwrap();
        assert_eq!(encoded, serde_json::to_vec(&owned).unwrap());
        assert_eq!(
            serde_json::from_slice::<Vec<String>>(&encoded).unwrap(),
            owned
        );
        assert_eq!(encode_transcript(&[]).unwrap(), b"[]");
    }
}
