//! `SimFile`: an open handle on the simulated disk. A crash makes it stale (EBADF).

use super::errno::{EBADF, os};
use super::options::DiskOpKind;
use super::state::Ino;
use super::{Inner, Shared};
use engine::env::DiskFile;
use std::io;
use std::sync::{Arc, MutexGuard};

pub(super) struct SimFile {
    pub shared: Arc<Shared>,
    pub ino: Ino,
    /// The disk generation this handle was opened in; a crash bumps the disk's.
    pub generation: u64,
    /// Opened for writing (writes through a read-only handle fail with EBADF).
    pub writable: bool,
    /// For fault details only: the handle follows its inode, not this name.
    pub path: String,
}

impl SimFile {
    /// Locks the disk for one operation on this handle: EBADF if the handle is stale or
    /// `writes` on a read-only handle, then fault injection.
    fn begin(&self, op: DiskOpKind, writes: bool) -> io::Result<MutexGuard<'_, Inner>> {
        let mut inner = self.shared.lock();
        if inner.generation != self.generation || (writes && !self.writable) {
            return Err(os(EBADF));
        }
        self.shared.inject(&mut inner, op, &self.path)?;
        Ok(inner)
    }

    /// Runs a growing operation; counts ENOSPC when it fires.
    fn grow(
        &self,
        op: DiskOpKind,
        body: impl FnOnce(&mut Inner) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut inner = self.begin(op, true)?;
        let result = body(&mut inner);
        if let Err(e) = &result
            && e.raw_os_error() == Some(super::errno::ENOSPC)
        {
            let detail = format!(
                "{}: {op} {:?} would pass the capacity of {} bytes ({} used)",
                self.shared.host,
                self.path,
                inner.options.capacity_bytes_max,
                inner.fs.used_bytes()
            );
            self.shared.faults.fire("disk.enospc", &detail);
        }
        if cfg!(debug_assertions) {
            inner.fs.assert_invariants();
        }
        result
    }
}

impl DiskFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut inner = self.begin(DiskOpKind::Read, false)?;
        let n = inner.fs.read(self.ino, buf, offset);
        let rate = inner.options.bitflip_rate;
        if n > 0 && inner.rng_faults.chance(rate) {
            let bit = inner.rng_faults.below(n as u64 * 8);
            buf[(bit / 8) as usize] ^= 1 << (bit % 8);
            let detail = format!(
                "{}: read {:?} at {offset} returned bit {bit} of {n} bytes flipped",
                self.shared.host, self.path
            );
            self.shared.faults.fire("disk.bitflip", &detail);
        }
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.grow(DiskOpKind::Write, |inner| {
            let capacity = inner.options.capacity_bytes_max;
            inner.fs.write(self.ino, buf, offset, capacity)
        })
    }

    fn append(&self, buf: &[u8]) -> io::Result<u64> {
        let mut at = 0;
        self.grow(DiskOpKind::Append, |inner| {
            let capacity = inner.options.capacity_bytes_max;
            at = inner.fs.len(self.ino);
            inner.fs.write(self.ino, buf, at, capacity)
        })?;
        Ok(at)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.grow(DiskOpKind::SetLen, |inner| {
            let capacity = inner.options.capacity_bytes_max;
            inner.fs.set_len(self.ino, len, capacity)
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut inner = self.begin(DiskOpKind::SyncData, false)?;
        inner.fs.sync_data(self.ino);
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let inner = self.begin(DiskOpKind::Len, false)?;
        Ok(inner.fs.len(self.ino))
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        // Never panic in drop (it may run while unwinding): a poisoned lock is skipped.
        let Ok(mut inner) = self.shared.inner.lock() else {
            return;
        };
        if inner.generation == self.generation {
            assert!(
                inner.open_files > 0,
                "closing a handle the disk did not count"
            );
            inner.open_files -= 1;
            inner.fs.handle_closed(self.ino);
        }
    }
}
