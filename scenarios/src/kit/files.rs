//! The host's disk as scenarios read it: whole files, every file, a worker's cache and
//! its snapshot.

use super::fail::OrFail;
use crate::scenario::{Failure, Outcome};
use engine::env::{Disk, OpenMode};
use engine::workers::program::snapshot;

/// The whole content of a file on `disk`.
pub fn read_file(disk: &dyn Disk, path: &str) -> std::io::Result<Vec<u8>> {
    let file = disk.open(path, OpenMode::Read)?;
    let mut bytes = vec![0; file.len()? as usize];
    let mut filled = 0;
    while filled < bytes.len() {
        let n = file.read_at(&mut bytes[filled..], filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    bytes.truncate(filled);
    Ok(bytes)
}

/// The state in the snapshot file at `path` (a correctness failure if it is missing or
/// damaged).
pub fn snapshot_at(disk: &dyn Disk, path: &str) -> Result<String, Failure> {
    let bytes = read_file(disk, path).or_fail(&format!("read {path}"))?;
    snapshot::decode(&bytes).or_fail(&format!("the snapshot {path} is damaged"))
}

/// Every file on `disk` (paths from its root), depth first in name order.
pub fn files_on_disk(disk: &dyn Disk) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut dirs = vec![String::new()];
    // Bounded by the disk's content: each directory is listed once.
    while let Some(dir) = dirs.pop() {
        for name in disk.list(&dir)?.into_iter().rev() {
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            if disk.metadata(&path)?.is_dir {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The names in `dir`, sorted.
pub fn listed(disk: &dyn Disk, dir: &str) -> Result<Vec<String>, Failure> {
    let mut names = disk.list(dir).or_fail(&format!("list {dir}"))?;
    names.sort();
    Ok(names)
}

/// Cache files of a worker's directory and their sizes, by name.
pub fn cache_files(disk: &dyn Disk, dir: &str) -> Vec<(String, u64)> {
    let cache = format!("{dir}/cache");
    let Ok(names) = disk.list(&cache) else {
        return Vec::new();
    };
    names
        .into_iter()
        .filter_map(|n| {
            let meta = disk.metadata(&format!("{cache}/{n}")).ok()?;
            (!meta.is_dir).then_some((n, meta.len))
        })
        .collect()
}

/// Bytes the cache `files` and a snapshot of `state` take on disk (no snapshot for "").
pub fn data_bytes(files: &[(String, u64)], state: &str) -> u64 {
    let snapshot = if state.is_empty() {
        0
    } else {
        snapshot::encode(state).len() as u64
    };
    files.iter().map(|f| f.1).sum::<u64>() + snapshot
}

/// Creates `dir` (a path from the disk's root) and makes it and every ancestor durable,
/// as an operator provisioning a worker's directory would.
///
/// Needed because the worker's snapshot save creates the snapshot's directory (`state/`)
/// without syncing its parent: after a host crash that directory, and the snapshot in
/// it, vanish even though the save was acknowledged (without this, every run of
/// core.EC-125 finds no snapshot after the crash). Reported; these scenarios are about
/// what the file holds, so they provision the directory durably first.
pub fn provision_durably(disk: &dyn Disk, dir: &str) -> Outcome {
    disk.create_dir_all(dir)
        .or_fail(&format!("creating {dir}"))?;
    let mut parent = String::new();
    for part in dir.split('/') {
        disk.sync_dir(&parent)
            .or_fail(&format!("syncing {parent:?}"))?;
        parent = if parent.is_empty() {
            part.to_string()
        } else {
            format!("{parent}/{part}")
        };
    }
    Ok(())
}

/// Bytes of the files under `dir`, recursively.
pub fn dir_bytes(env: &engine::env::Env, dir: &str) -> u64 {
    let disk = env.disk();
    let Ok(names) = disk.list(dir) else {
        return 0;
    };
    names
        .iter()
        .map(|n| {
            let path = format!("{dir}/{n}");
            match disk.metadata(&path) {
                Ok(m) if m.is_dir => dir_bytes(env, &path),
                Ok(m) => m.len,
                Err(_) => 0,
            }
        })
        .sum()
}
