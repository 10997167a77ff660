//! The worker's cache directory: `WriteCache` writes a file of a given size, `ReadCache`
//! reads one back. It stands in for whatever a session keeps on disk, so scenarios can
//! fill a disk, run out of file handles, or try to write outside the worker's directory.
//!
//! Limits, checked before anything is written: a cache cap (least recently used files
//! are evicted to make room), a disk quota over everything the worker writes (cache
//! and snapshot; refused, not evicted), and read-only mode (set by the parent when the
//! disk nears its quota).

use super::cache_index::CacheIndex;
use super::errors::code_for;
use super::protocol::ErrorCode;
use crate::env::{Env, OpenMode, check_relative_path};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes per write: large files are written in pieces, each one disk operation.
const CHUNK_BYTES: usize = 64 * 1024;
/// Bytes written between two yields to the runtime.
const YIELD_EVERY_BYTES: u64 = 16 * CHUNK_BYTES as u64;
/// What cache files are filled with (deterministic, so runs compare byte for byte).
const FILL_BYTE: u8 = b'x';

/// A refused or failed operation: the code for the parent and a message for people.
pub(super) type CacheError = (ErrorCode, String);

pub(super) struct Cache {
    dir: String,
    cap: Option<u64>,
    quota: Option<u64>,
    /// The snapshot file, which counts against the quota.
    snapshot: Option<String>,
    /// Held for a whole write or read, so operations on the cache happen one at a time
    /// and eviction choices never race.
    index: tokio::sync::Mutex<CacheIndex>,
    read_only: AtomicBool,
    evictions: AtomicU64,
}

impl Cache {
    /// The cache over `dir`, indexing the files a previous incarnation left there.
    pub(super) fn open(
        env: &Env,
        dir: &str,
        cap: Option<u64>,
        quota: Option<u64>,
        snapshot: Option<String>,
    ) -> Cache {
        let mut index = CacheIndex::default();
        let disk = env.disk();
        if let Ok(mut names) = disk.list(dir) {
            names.sort();
            for name in names {
                if let Ok(meta) = disk.metadata(&format!("{dir}/{name}"))
                    && !meta.is_dir
                {
                    index.record(&name, meta.len);
                }
            }
        }
        Cache {
            dir: dir.to_string(),
            cap,
            quota,
            snapshot,
            index: tokio::sync::Mutex::new(index),
            read_only: AtomicBool::new(false),
            evictions: AtomicU64::new(0),
        }
    }

    pub(super) fn set_read_only(&self, on: bool) {
        let was = self.read_only.swap(on, Ordering::Relaxed);
        if was != on {
            tracing::warn!(on, "read-only mode");
        }
    }

    pub(super) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Writes `bytes` bytes to `name` and makes them durable (data and name), evicting
    /// least recently used files first if the cap needs it.
    pub(super) async fn write(&self, env: &Env, name: &str, bytes: u64) -> Result<(), CacheError> {
        check_name(name)?;
        if self.read_only.load(Ordering::Relaxed) {
            return Err((
                ErrorCode::ReadOnly,
                format!(
                    "cache file {name:?} refused: the worker is in read-only mode (its disk is \
                     near its quota); free space to leave it"
                ),
            ));
        }
        let mut index = self.index.lock().await;
        let disk = env.disk();
        index.refresh(|n| {
            disk.metadata(&format!("{}/{n}", self.dir))
                .ok()
                .filter(|m| !m.is_dir)
                .map(|m| m.len)
        });
        let victims = match self.cap {
            Some(cap) => index.victims(name, bytes, cap).ok_or_else(|| {
                (
                    ErrorCode::QuotaExceeded,
                    format!("cache file {name:?} of {bytes} bytes is larger than the cache cap of {cap} bytes"),
                )
            })?,
            None => Vec::new(),
        };
        if let Some(quota) = self.quota {
            let others = self.snapshot_bytes(env);
            let after = index.total_after(name, bytes, &victims) + others;
            if after > quota {
                crate::met!(
                    "disk.session_growth",
                    "cache file {name:?} of {bytes} bytes refused: {after} bytes would pass the disk quota of {quota}"
                );
                return Err((
                    ErrorCode::QuotaExceeded,
                    format!(
                        "cache file {name:?} of {bytes} bytes would take the worker to {after} \
                         bytes, over its disk quota of {quota} bytes; remove files or raise the quota"
                    ),
                ));
            }
        }
        for victim in &victims {
            env.disk_pace().await;
            let path = format!("{}/{victim}", self.dir);
            match env.disk().remove(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err((code_for(&e), format!("evicting cache file {path:?}: {e}")));
                }
            }
            index.forget(victim);
            self.evictions.fetch_add(1, Ordering::Relaxed);
            tracing::info!(file = %victim, "cache file evicted (least recently used)");
        }
        if !victims.is_empty() {
            crate::met!(
                "disk.session_growth",
                "cache file {name:?} of {bytes} bytes needs room under the cap of {} bytes: {} files evicted",
                self.cap.unwrap_or(0),
                victims.len()
            );
            // The evictions' space is free once the removals are durable.
            env.disk_pace().await;
            env.disk()
                .sync_dir(&self.dir)
                .map_err(|e| (code_for(&e), format!("syncing {:?}: {e}", self.dir)))?;
        }
        let path = format!("{}/{name}", self.dir);
        match write_file(env, &self.dir, &path, bytes).await {
            Ok(()) => {
                index.record(name, bytes);
                Ok(())
            }
            Err(e) => {
                // Give back what a failed write took (ENOSPC in particular); best effort.
                env.disk_pace().await;
                let _ = env.disk().remove(&path);
                index.forget(name);
                Err((code_for(&e), format!("writing cache file {path:?}: {e}")))
            }
        }
    }

    /// Reads `name` back in full (a use, for the eviction order).
    pub(super) async fn read(&self, env: &Env, name: &str) -> Result<u64, CacheError> {
        check_name(name)?;
        let mut index = self.index.lock().await;
        if !index.touch(name) {
            return Err((ErrorCode::NotFound, format!("no cache file {name:?}")));
        }
        let path = format!("{}/{name}", self.dir);
        read_file(env, &path).await.map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                index.forget(name);
            }
            (code_for(&e), format!("reading cache file {path:?}: {e}"))
        })
    }

    fn snapshot_bytes(&self, env: &Env) -> u64 {
        self.snapshot
            .as_deref()
            .and_then(|p| env.disk().metadata(p).ok())
            .map_or(0, |m| m.len)
    }
}

/// A plain file name: one component, so it can neither climb out (`..`, `/etc`) nor
/// reach into a subdirectory the worker did not create.
fn check_name(name: &str) -> Result<(), CacheError> {
    if let Err(e) = check_relative_path(name) {
        crate::met!("input.path_escape", "cache file name refused: {e}");
        return Err((
            ErrorCode::AccessDenied,
            format!("cache file name refused: {e}"),
        ));
    }
    if name.contains('/') {
        return Err((
            ErrorCode::AccessDenied,
            format!("cache file name {name:?} refused: a plain name, without '/', is required"),
        ));
    }
    Ok(())
}

async fn write_file(env: &Env, cache_dir: &str, path: &str, bytes: u64) -> io::Result<()> {
    let disk = env.disk();
    env.disk_pace().await;
    disk.create_dir_all(cache_dir)?;
    env.disk_pace().await;
    let file = disk.open(path, OpenMode::Truncate)?;
    let chunk = vec![FILL_BYTE; CHUNK_BYTES];
    let mut written = 0u64;
    while written < bytes {
        let n = (bytes - written).min(CHUNK_BYTES as u64) as usize;
        env.disk_pace().await;
        file.write_at(&chunk[..n], written)?;
        written += n as u64;
        if written.is_multiple_of(YIELD_EVERY_BYTES) {
            // A real disk charges no virtual pace, so let the worker's other tasks (its
            // endpoint connections) run during a long write.
            tokio::task::yield_now().await;
        }
    }
    env.disk_pace().await;
    file.sync_data()?;
    drop(file);
    env.disk_pace().await;
    disk.sync_dir(cache_dir)
}

async fn read_file(env: &Env, path: &str) -> io::Result<u64> {
    env.disk_pace().await;
    let file = env.disk().open(path, OpenMode::Read)?;
    let mut buf = vec![0; CHUNK_BYTES];
    let mut read = 0u64;
    loop {
        env.disk_pace().await;
        let n = file.read_at(&mut buf, read)?;
        if n == 0 {
            return Ok(read);
        }
        read += n as u64;
        if read.is_multiple_of(YIELD_EVERY_BYTES) {
            tokio::task::yield_now().await;
        }
    }
}
