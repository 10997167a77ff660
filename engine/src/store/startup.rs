//! The startup check: what a restart must clean up before sessions are served.

use super::error::StoreError;
use super::record::{SessionRecord, decode, encode};
use super::sessions::{At, SESSIONS, SessionStore, archive_raw};
use redb::ReadableTable;

/// What [`SessionStore::startup_check`] found and did. Ids are in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartupReport {
    /// Records looked at.
    pub checked: usize,
    /// Records whose data is gone: removed.
    pub orphans: Vec<String>,
    /// Records that did not decode: moved to the archive with their raw bytes.
    pub corrupt: Vec<String>,
    /// Records that were claimed: the claim is cleared (claims do not survive a restart).
    pub claims_cleared: Vec<String>,
}

impl StartupReport {
    /// Records left in place (claims cleared or not).
    pub fn kept(&self) -> usize {
        self.checked - self.orphans.len() - self.corrupt.len()
    }
}

impl SessionStore {
    /// Run once at startup, before any claim. In one write transaction:
    /// (a) removes the records whose data is gone (`data_exists` says `false`),
    /// (b) moves the records that do not decode to the archive,
    /// (c) clears every claim.
    ///
    /// A record of another format version stops the check with
    /// [`StoreError::IncompatibleVersion`] and changes nothing: it is not corrupt, only
    /// not this engine's to read (an operator migrates or removes the store).
    pub fn startup_check(
        &self,
        data_exists: impl Fn(&SessionRecord) -> bool,
    ) -> Result<StartupReport, StoreError> {
        self.write("startup check", |txn, cx| {
            let mut table = txn.open_table(SESSIONS).at(cx)?;
            let mut entries = Vec::new();
            for entry in table.iter().at(cx)? {
                let (id, bytes) = entry.at(cx)?;
                entries.push((id.value().to_string(), bytes.value().to_vec()));
            }
            let mut report = StartupReport {
                checked: entries.len(),
                ..StartupReport::default()
            };
            for (id, bytes) in entries {
                match decode(&id, &bytes) {
                    Ok(mut record) => {
                        if !data_exists(&record) {
                            table.remove(id.as_str()).at(cx)?;
                            report.orphans.push(id);
                        } else if record.claimed_by.take().is_some() {
                            table
                                .insert(id.as_str(), encode(&record)?.as_slice())
                                .at(cx)?;
                            report.claims_cleared.push(id);
                        }
                    }
                    Err(StoreError::CorruptRecord { detail, .. }) => {
                        table.remove(id.as_str()).at(cx)?;
                        let reason = format!("undecodable at startup: {detail}");
                        archive_raw(txn, cx, &id, &reason, &bytes)?;
                        report.corrupt.push(id);
                    }
                    Err(other) => return Err(other),
                }
            }
            Ok(report)
        })
    }
}
