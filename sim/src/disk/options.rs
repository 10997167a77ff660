//! The disk's knobs (one options struct per device) and the operation kinds that fixed
//! faults target.

use crate::seed::Ratio;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Every knob of one simulated disk. Sizes are in bytes, rates are [`Ratio`]s per
/// operation, latencies are simulated time. Swarm knobs may change mid-run through
/// `SimDisk::set_options` (healing = [`DiskOptions::quiet`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskOptions {
    /// Bytes: the most file content (pending, i.e. as the host sees it) the disk holds.
    /// An operation that would grow the total past it fails with ENOSPC (28) and changes
    /// nothing.
    pub capacity_bytes_max: u64,
    /// Handles: the most files open at once. Opening one more fails with EMFILE (24).
    pub open_files_max: u32,
    /// Bytes: the granularity of torn writes at a crash. Each block of unsynced data
    /// survives whole or reverts whole; a byte is never torn inside a block. Positive.
    pub block_bytes: u32,
    /// Simulated time: the least latency `Disk::op_delay` charges for one operation.
    pub latency_min: Duration,
    /// Simulated time: the most latency `Disk::op_delay` charges; at least `latency_min`.
    pub latency_max: Duration,
    /// Per operation (swarm): the chance it fails with EIO (5) and changes nothing.
    pub eio_rate: Ratio,
    /// Per read that returns data (swarm): the chance one bit of the returned bytes is
    /// flipped. Silent (the read succeeds); the stored data stays unchanged.
    pub bitflip_rate: Ratio,
    /// Per operation (swarm): the chance it is slow, taking up to `slow_op_max` more
    /// (a busy device, a flush in the way). Counted `disk.slow`.
    pub slow_rate: Ratio,
    /// Simulated time: the longest extra time of a slow operation.
    pub slow_op_max: Duration,
}

impl DiskOptions {
    /// No faults, a capacity no test reaches, zero latency: a disk that behaves like an
    /// ideal one until crashed. Also the healed state of a swarm run.
    pub fn quiet() -> Self {
        DiskOptions {
            capacity_bytes_max: 1 << 40,
            open_files_max: 1 << 16,
            block_bytes: 4096,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            eio_rate: Ratio::ZERO,
            bitflip_rate: Ratio::ZERO,
            slow_rate: Ratio::ZERO,
            slow_op_max: Duration::from_millis(40),
        }
    }

    /// Panics on options no disk can honour (a programming error in a scenario).
    pub(crate) fn assert_valid(&self) {
        assert!(self.block_bytes > 0, "disk block_bytes must be positive");
        assert!(
            self.latency_min <= self.latency_max,
            "disk latency_min {:?} above latency_max {:?}",
            self.latency_min,
            self.latency_max
        );
        assert!(
            self.latency_max.as_nanos() <= u128::from(u64::MAX),
            "disk latency_max does not fit in u64 nanoseconds"
        );
    }
}

/// The operations a fixed fault (`SimDisk::fail_next`) can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskOpKind {
    Open,
    Read,
    /// `DiskFile::write_at`.
    Write,
    Append,
    SetLen,
    SyncData,
    Len,
    Rename,
    Remove,
    List,
    Metadata,
    #[serde(rename = "create_dir_all")]
    CreateDir,
    SyncDir,
}

impl DiskOpKind {
    pub fn name(self) -> &'static str {
        match self {
            DiskOpKind::Open => "open",
            DiskOpKind::Read => "read",
            DiskOpKind::Write => "write",
            DiskOpKind::Append => "append",
            DiskOpKind::SetLen => "set_len",
            DiskOpKind::SyncData => "sync_data",
            DiskOpKind::Len => "len",
            DiskOpKind::Rename => "rename",
            DiskOpKind::Remove => "remove",
            DiskOpKind::List => "list",
            DiskOpKind::Metadata => "metadata",
            DiskOpKind::CreateDir => "create_dir_all",
            DiskOpKind::SyncDir => "sync_dir",
        }
    }
}

impl fmt::Display for DiskOpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
