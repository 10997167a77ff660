//! The snapshot file: what a worker leaves for its next incarnation.
//!
//! Format: a header line `chaos-snapshot v1 <fnv64 of body, 16 hex> <body length>`, then
//! the body (UTF-8). The checksum and length catch a torn or bit-flipped file, which
//! the worker then ignores (it starts clean: a lost snapshot costs a session its
//! warm state, a trusted corrupt one could cost much more).
//!
//! Saving is atomic: the new content goes to `FILE.tmp`, is synced, renamed over
//! `FILE`, and the directory is synced, so after a crash `FILE` is the old snapshot or
//! the new one, never a mix. A directory the save creates is made durable too.

use super::protocol::{LINE_BYTES_MAX, SnapshotState};
use crate::env::{Env, OpenMode};
use std::io;

const MAGIC: &str = "chaos-snapshot";
const FORMAT_VERSION: &str = "v1";

/// The largest snapshot file read back. A body comes from one request line, which
/// scrubbing can at most about double; anything much larger is not ours.
const FILE_BYTES_MAX: u64 = 4 * LINE_BYTES_MAX as u64;

/// FNV-1a's starting state (its offset basis).
pub const FNV64_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bits.
pub fn fnv64(bytes: &[u8]) -> u64 {
    fnv64_extend(FNV64_START, bytes)
}

/// FNV-1a continued from `hash`, the state after some earlier bytes: `fnv64(a ++ b)` is
/// `fnv64_extend(fnv64(a), b)`, so a caller trying many endings hashes the prefix once.
pub fn fnv64_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The file's bytes for `body`.
pub fn encode(body: &str) -> Vec<u8> {
    let mut file = format!(
        "{MAGIC} {FORMAT_VERSION} {:016x} {}\n",
        fnv64(body.as_bytes()),
        body.len()
    )
    .into_bytes();
    file.extend_from_slice(body.as_bytes());
    file
}

/// The body of a snapshot file, or what is wrong with it.
pub fn decode(file: &[u8]) -> Result<String, String> {
    let newline = file
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let header = std::str::from_utf8(&file[..newline]).map_err(|_| "header is not UTF-8")?;
    let body = &file[newline + 1..];
    let fields: Vec<&str> = header.split(' ').collect();
    let [magic, version, checksum, length] = fields[..] else {
        return Err(format!("bad header {header:?}"));
    };
    if magic != MAGIC {
        return Err(format!("not a snapshot (header {header:?})"));
    }
    if version != FORMAT_VERSION {
        return Err(format!("unknown snapshot version {version:?}"));
    }
    let checksum = u64::from_str_radix(checksum, 16)
        .ok()
        .filter(|_| checksum.len() == 16)
        .ok_or_else(|| format!("bad checksum field {checksum:?}"))?;
    let length: usize = length
        .parse()
        .map_err(|_| format!("bad length field {length:?}"))?;
    if body.len() != length {
        return Err(format!(
            "body is {} bytes, header says {length}",
            body.len()
        ));
    }
    if fnv64(body) != checksum {
        return Err("checksum mismatch".to_string());
    }
    String::from_utf8(body.to_vec()).map_err(|_| "body is not UTF-8".to_string())
}

/// Reads and checks the snapshot at `path`. Never fails: a missing file is `None`, an
/// unreadable or corrupt one is `CorruptFallback` (logged) and the worker starts clean.
pub async fn load(env: &Env, path: &str) -> (SnapshotState, Option<String>) {
    match read_file(env, path).await {
        Ok(None) => (SnapshotState::None, None),
        Ok(Some(bytes)) => match decode(&bytes) {
            Ok(body) => {
                tracing::info!(path, bytes = body.len(), "snapshot restored");
                (SnapshotState::Restored, Some(body))
            }
            Err(why) => {
                tracing::warn!(path, why = %why, "snapshot is corrupt: starting clean");
                (SnapshotState::CorruptFallback, None)
            }
        },
        Err(e) => {
            tracing::warn!(path, error = %e, "snapshot is unreadable: starting clean");
            (SnapshotState::CorruptFallback, None)
        }
    }
}

/// The file's content; `None` if it does not exist.
async fn read_file(env: &Env, path: &str) -> io::Result<Option<Vec<u8>>> {
    env.disk_pace().await;
    let file = match env.disk().open(path, OpenMode::Read) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.len()?;
    if len > FILE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes, more than a snapshot ever is ({FILE_BYTES_MAX})"),
        ));
    }
    let mut bytes = vec![0; len as usize];
    let mut filled = 0;
    while filled < bytes.len() {
        env.disk_pace().await;
        let n = file.read_at(&mut bytes[filled..], filled as u64)?;
        if n == 0 {
            break; // shrank under us: the checksum will say so
        }
        filled += n;
    }
    bytes.truncate(filled);
    Ok(Some(bytes))
}

/// Writes `body` as the snapshot at `path`, atomically (see the module doc).
pub async fn save(env: &Env, path: &str, body: &str) -> io::Result<()> {
    let tmp = format!("{path}.tmp");
    let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let result = write_then_rename(env, &tmp, path, dir, &encode(body)).await;
    if result.is_err() {
        // Best effort: a stale tmp file is harmless (the next save truncates it), but
        // removing it gives back the space of a write that failed with ENOSPC.
        env.disk_pace().await;
        let _ = env.disk().remove(&tmp);
    }
    result
}

async fn write_then_rename(
    env: &Env,
    tmp: &str,
    path: &str,
    dir: &str,
    content: &[u8],
) -> io::Result<()> {
    let disk = env.disk();
    if !dir.is_empty() {
        env.create_dir_all_durable(dir).await?;
    }
    env.disk_pace().await;
    let file = disk.open(tmp, OpenMode::Truncate)?;
    env.disk_pace().await;
    file.write_at(content, 0)?;
    env.disk_pace().await;
    file.sync_data()?;
    drop(file);
    env.disk_pace().await;
    disk.rename(tmp, path)?;
    env.disk_pace().await;
    disk.sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv64_matches_the_reference_values() {
        assert_eq!(fnv64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv64_extend(fnv64(b"foo"), b"bar"), fnv64(b"foobar"));
    }

    #[test]
    fn a_snapshot_round_trips() {
        for body in ["", "state", "two\nlines\n", "ünïcode ☃"] {
            let file = encode(body);
            assert_eq!(decode(&file), Ok(body.to_string()));
        }
        let file = String::from_utf8(encode("abc")).unwrap();
        assert_eq!(
            file,
            format!("chaos-snapshot v1 {:016x} 3\nabc", fnv64(b"abc"))
        );
    }

    #[test]
    fn every_kind_of_damage_is_detected() {
        let good = encode("some state worth keeping");
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        let torn = &good[..good.len() - 3];
        let mut longer = good.clone();
        longer.extend_from_slice(b"junk");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (flipped, "checksum mismatch"),
            (torn.to_vec(), "header says"),
            (longer, "header says"),
            (b"".to_vec(), "no header"),
            (b"no newline at all".to_vec(), "no header"),
            (b"other-format v1 0 0\n".to_vec(), "not a snapshot"),
            (
                b"chaos-snapshot v2 0000000000000000 0\n".to_vec(),
                "version",
            ),
            (b"chaos-snapshot v1 zz 0\n".to_vec(), "bad checksum"),
            (
                b"chaos-snapshot v1 cbf29ce484222325 x\n".to_vec(),
                "bad length",
            ),
            (b"chaos-snapshot v1\n".to_vec(), "bad header"),
            (b"\xff\xfe\n".to_vec(), "not UTF-8"),
        ];
        for (file, expected) in cases {
            let err = decode(&file).unwrap_err();
            assert!(err.contains(expected), "{file:?}: {err}");
        }
        // A body that is not UTF-8 but whose header is right.
        let body = b"\xff";
        let mut file = format!("chaos-snapshot v1 {:016x} 1\n", fnv64(body)).into_bytes();
        file.extend_from_slice(body);
        assert!(decode(&file).unwrap_err().contains("not UTF-8"));
    }
}
