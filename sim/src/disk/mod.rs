//! `SimDisk`: one host's crash-consistent simulated disk, behind the engine's
//! [`Disk`] seam.
//!
//! # Fault contract
//!
//! The disk promises exactly what a POSIX file system on a real device promises, and no
//! more: data is durable after `DiskFile::sync_data`, a name (creation, rename, removal,
//! including of directories made by `create_dir_all`) is durable after `Disk::sync_dir`
//! of its parent directory. A correct system survives everything below because a real
//! disk does all of it too:
//!
//! - **Crash** (`SimDisk::crash`, the host dies): every handle is closed (later calls
//!   on an old handle fail with EBADF). The namespace reverts to its durable version, so
//!   a file whose name was never dir-synced vanishes and an unsynced rename is undone.
//!   Each file's unsynced content is **torn** at `block_bytes` granularity: its length
//!   survives or reverts, and each changed block independently survives whole or reverts
//!   whole (bytes past the old end revert to zeros). Counted `disk.torn_write` per file
//!   left with a mix of old and new blocks, and `disk.lost_unsynced` once per crash that
//!   lost any unsynced data or name. Why survivable: ext4 without `auto_da_alloc`, XFS
//!   and friends do this; replacing a file safely needs write, `sync_data`, rename,
//!   `sync_dir`, and logs need checksums to find their torn tail.
//! - **ENOSPC** (28) when file contents would grow past `capacity_bytes_max` (or
//!   `set_capacity`); the failing write changes nothing. Counted `disk.enospc`. Why
//!   survivable: disks fill up; a system must fail the request, not corrupt its state.
//! - **EMFILE** (24) when more than `open_files_max` handles would be open. Counted
//!   `disk.emfile`. Why survivable: descriptor limits are real and shared.
//! - **EIO** (5) on any operation with chance `eio_rate` (swarm); the operation changes
//!   nothing (a failed `sync_data` leaves the data pending, not durable). Counted
//!   `disk.eio`. Why survivable: devices fail operations; the error must surface.
//! - **Bit flips** on reads with chance `bitflip_rate` (swarm): one bit of the returned
//!   bytes flips, silently; the stored data is unchanged. Counted `disk.bitflip`. Why
//!   survivable: media and buses corrupt data; stored data needs checksums.
//! - **Fixed faults** (`SimDisk::fail_next`): the next n operations of one kind fail
//!   with a chosen errno and change nothing. Counted `disk.injected`.
//!
//! Latency is not a fault: `Disk::op_delay` draws it uniformly in
//! `[latency_min, latency_max]` and counts nothing. A **slow operation** (swarm,
//! `slow_rate` per operation) adds up to `slow_op_max` and is counted `disk.slow`. Why
//! survivable: devices stall; a timeout that assumes a fast disk is a bug.
//!
//! Not modelled: sparse files (a file is at most [`state::FILE_LEN_MAX`] bytes, EFBIG
//! beyond), hard links, symlinks, removing directories, permissions, misdirected writes.

mod content;
mod errno;
mod file;
mod options;
mod state;
mod tear;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;

pub use options::{DiskOpKind, DiskOptions};

use crate::faults::FaultCounters;
use crate::seed::SimRng;
use engine::env::{Disk, DiskFile, FileMeta, OpenMode, check_relative_path};
use errno::{EIO, EMFILE, os};
use file::SimFile;
use state::{Fs, components};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// One host's simulated disk. Cheap to share: the world wraps it in an `Arc` and hands
/// it to the engine as `Arc<dyn Disk>`.
pub struct SimDisk {
    shared: Arc<Shared>,
}

struct Shared {
    host: String,
    faults: FaultCounters,
    inner: Mutex<Inner>,
}

struct Inner {
    fs: Fs,
    options: DiskOptions,
    /// Bumped by every crash; a handle from an older generation is stale (EBADF).
    generation: u64,
    open_files: u32,
    /// Fixed faults: the next `count` operations of a kind fail with `errno`.
    injected: BTreeMap<DiskOpKind, (i32, u32)>,
    /// One stream per purpose, so tuning latency never shifts fault or tear draws.
    rng_latency: SimRng,
    rng_faults: SimRng,
    rng_tear: SimRng,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("sim disk lock poisoned")
    }

    /// Fires a fixed or swarm fault for `op` if one is due; `what` names the target.
    fn inject(&self, inner: &mut Inner, op: DiskOpKind, what: &str) -> io::Result<()> {
        if let Some((errno, count)) = inner.injected.get_mut(&op) {
            let errno = *errno;
            *count -= 1;
            if *count == 0 {
                inner.injected.remove(&op);
            }
            let detail = format!("{}: {op} {what:?} failed with errno {errno}", self.host);
            self.faults.fire("disk.injected", &detail);
            return Err(os(errno));
        }
        if inner.rng_faults.chance(inner.options.eio_rate) {
            let detail = format!("{}: {op} {what:?} failed with EIO", self.host);
            self.faults.fire_swarm("disk.eio", &detail);
            return Err(os(EIO));
        }
        Ok(())
    }

    /// Runs a namespace operation: fault injection first, then the model.
    fn run<T>(
        &self,
        op: DiskOpKind,
        what: &str,
        body: impl FnOnce(&mut Fs) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut inner = self.lock();
        self.inject(&mut inner, op, what)?;
        let result = body(&mut inner.fs);
        if cfg!(debug_assertions) {
            inner.fs.assert_invariants();
        }
        result
    }
}

/// `""` and `"."` name the root directory; anything else must be a valid relative path.
fn check_dir_path(dir: &str) -> io::Result<()> {
    if dir.is_empty() || dir == "." {
        return Ok(());
    }
    check_relative_path(dir)
}

impl SimDisk {
    /// An empty disk for `host`. Draws from `rng` only to key its own streams.
    pub fn new(host: &str, options: DiskOptions, mut rng: SimRng, faults: FaultCounters) -> Self {
        options.assert_valid();
        let rng_latency = SimRng::new(rng.next_u64(), "disk.latency");
        let rng_faults = SimRng::new(rng.next_u64(), "disk.faults");
        let rng_tear = SimRng::new(rng.next_u64(), "disk.tear");
        SimDisk {
            shared: Arc::new(Shared {
                host: host.to_string(),
                faults,
                inner: Mutex::new(Inner {
                    fs: Fs::new(),
                    options,
                    generation: 0,
                    open_files: 0,
                    injected: BTreeMap::new(),
                    rng_latency,
                    rng_faults,
                    rng_tear,
                }),
            }),
        }
    }

    /// The host crashed: close every handle, revert to the durable state, tear unsynced
    /// writes (see the fault contract above).
    pub fn crash(&self) {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        inner.generation += 1;
        inner.open_files = 0;
        let block = inner.options.block_bytes as usize;
        let loss = inner.fs.crash(block, &mut inner.rng_tear);
        inner.fs.assert_invariants();
        let host = &self.shared.host;
        for (ino, kept, reverted) in &loss.torn {
            let detail =
                format!("{host}: crash tore inode {ino}: {kept} blocks kept, {reverted} reverted");
            self.shared.faults.fire("disk.torn_write", &detail);
        }
        if loss.files_reverted > 0 || loss.dirs_reverted > 0 {
            let detail = format!(
                "{host}: crash lost unsynced data of {} files and unsynced entries of {} dirs",
                loss.files_reverted, loss.dirs_reverted
            );
            self.shared.faults.fire("disk.lost_unsynced", &detail);
        }
    }

    /// Sets the capacity (bytes of file content); lowering it below the used bytes makes
    /// every growing write fail with ENOSPC until space is freed.
    pub fn set_capacity(&self, bytes: u64) {
        self.shared.lock().options.capacity_bytes_max = bytes;
    }

    /// The next `count` operations of kind `op` fail with `errno` (a Linux error number)
    /// and change nothing. Replaces any earlier injection for `op`; a count of 0 clears.
    pub fn fail_next(&self, op: DiskOpKind, errno: i32, count: u32) {
        assert!(errno > 0, "fail_next needs a positive errno, got {errno}");
        let mut inner = self.shared.lock();
        if count == 0 {
            inner.injected.remove(&op);
        } else {
            inner.injected.insert(op, (errno, count));
        }
    }

    /// Replaces every knob (swarm rates change mid-run; healing sets `quiet()`).
    pub fn set_options(&self, options: DiskOptions) {
        options.assert_valid();
        self.shared.lock().options = options;
    }

    pub fn options(&self) -> DiskOptions {
        self.shared.lock().options.clone()
    }

    /// Bytes of file content the host sees now (what capacity limits).
    pub fn used_bytes(&self) -> u64 {
        self.shared.lock().fs.used_bytes()
    }

    /// Handles open now.
    pub fn open_files(&self) -> u32 {
        self.shared.lock().open_files
    }
}

impl Disk for SimDisk {
    fn open(&self, path: &str, mode: OpenMode) -> io::Result<Box<dyn DiskFile>> {
        check_relative_path(path)?;
        let mut inner = self.shared.lock();
        self.shared.inject(&mut inner, DiskOpKind::Open, path)?;
        if inner.open_files >= inner.options.open_files_max {
            let detail = format!(
                "{}: open {path:?} hit the limit of {} open files",
                self.shared.host, inner.options.open_files_max
            );
            self.shared.faults.fire("disk.emfile", &detail);
            return Err(os(EMFILE));
        }
        let ino = inner.fs.open(&components(path), mode)?;
        inner.fs.handle_opened(ino);
        inner.open_files += 1;
        Ok(Box::new(SimFile {
            shared: Arc::clone(&self.shared),
            ino,
            generation: inner.generation,
            writable: mode.writable(),
            path: path.to_string(),
        }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_relative_path(from)?;
        check_relative_path(to)?;
        self.shared.run(DiskOpKind::Rename, from, |fs| {
            fs.rename(&components(from), &components(to))
        })
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        check_relative_path(path)?;
        self.shared
            .run(DiskOpKind::Remove, path, |fs| fs.remove(&components(path)))
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        check_dir_path(dir)?;
        self.shared
            .run(DiskOpKind::List, dir, |fs| fs.list(&components(dir)))
    }

    fn metadata(&self, path: &str) -> io::Result<FileMeta> {
        check_dir_path(path)?;
        let (len, is_dir) = self.shared.run(DiskOpKind::Metadata, path, |fs| {
            fs.metadata(&components(path))
        })?;
        Ok(FileMeta { len, is_dir })
    }

    fn create_dir_all(&self, dir: &str) -> io::Result<()> {
        check_relative_path(dir)?;
        self.shared.run(DiskOpKind::CreateDir, dir, |fs| {
            fs.create_dir_all(&components(dir))
        })
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        check_dir_path(dir)?;
        self.shared
            .run(DiskOpKind::SyncDir, dir, |fs| fs.sync_dir(&components(dir)))
    }

    fn op_delay(&self) -> Duration {
        let (delay, slow) = {
            let mut inner = self.shared.lock();
            let low = inner.options.latency_min.as_nanos() as u64;
            let high = inner.options.latency_max.as_nanos() as u64;
            // No draw for a fixed latency or a zero rate: a knob left alone keeps the stream.
            let delay = if low == high {
                Duration::from_nanos(low)
            } else {
                Duration::from_nanos(inner.rng_latency.between(low, high))
            };
            let slow_rate = inner.options.slow_rate;
            let slow_max = inner.options.slow_op_max.as_nanos() as u64;
            let slow = inner
                .rng_latency
                .chance(slow_rate)
                .then(|| Duration::from_nanos(inner.rng_latency.between(0, slow_max)));
            (delay, slow)
        };
        if let Some(slow) = slow {
            self.shared.faults.fire_swarm(
                "disk.slow",
                &format!("disk operation {} ms slower", slow.as_millis()),
            );
        }
        delay + slow.unwrap_or_default()
    }
}
