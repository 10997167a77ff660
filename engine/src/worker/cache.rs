//! `WriteCache`: a file of a given size in the worker's cache directory. It stands in
//! for whatever a session writes to disk, so scenarios can fill a disk, run out of file
//! handles, or try to write outside the worker's directory.

use super::errors::code_for;
use super::protocol::ErrorCode;
use crate::env::{Env, OpenMode, check_relative_path};
use std::io;

/// Bytes per write: large files are written in pieces, each one disk operation.
const CHUNK_BYTES: usize = 64 * 1024;
/// Bytes written between two yields to the runtime.
const YIELD_EVERY_BYTES: u64 = 16 * CHUNK_BYTES as u64;
/// What cache files are filled with (deterministic, so runs compare byte for byte).
const FILL_BYTE: u8 = b'x';

/// A refused or failed write: the code for the parent and a message for people.
pub(super) type CacheError = (ErrorCode, String);

/// Writes `bytes` bytes to `cache_dir/name` and makes them durable (data and name).
pub(super) async fn write_cache(
    env: &Env,
    cache_dir: &str,
    name: &str,
    bytes: u64,
) -> Result<(), CacheError> {
    // A plain file name: one component, so it can neither climb out (`..`, `/etc`) nor
    // reach into a subdirectory the worker did not create.
    if let Err(e) = check_relative_path(name) {
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
    let path = format!("{cache_dir}/{name}");
    let result = write_file(env, cache_dir, &path, bytes).await;
    if result.is_err() {
        // Give back what a failed write took (ENOSPC in particular); best effort.
        env.disk_pace().await;
        let _ = env.disk().remove(&path);
    }
    result.map_err(|e| (code_for(&e), format!("writing cache file {path:?}: {e}")))
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
