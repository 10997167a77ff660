//! A disk seen from a directory: every path is taken relative to it, as a process sees
//! paths relative to its working directory. The simulated launcher gives a child the
//! host's disk scoped to the child's working directory, so the same relative paths mean
//! the same files for a real child (whose disk is rooted at its cwd) and a simulated one.

use super::disk::{Disk, DiskFile, FileMeta, OpenMode, check_relative_path};
use std::io;
use std::sync::Arc;
use std::time::Duration;

pub struct ScopedDisk {
    inner: Arc<dyn Disk>,
    dir: String,
}

impl ScopedDisk {
    /// `dir` must be a valid relative disk path.
    pub fn new(inner: Arc<dyn Disk>, dir: &str) -> io::Result<Self> {
        check_relative_path(dir)?;
        Ok(ScopedDisk {
            inner,
            dir: dir.to_string(),
        })
    }

    fn full(&self, path: &str) -> io::Result<String> {
        // "" is the scope's own directory, as it is the root for the other disks.
        if path.is_empty() || path == "." {
            return Ok(self.dir.clone());
        }
        check_relative_path(path)?;
        Ok(format!("{}/{path}", self.dir))
    }
}

impl Disk for ScopedDisk {
    fn open(&self, path: &str, mode: OpenMode) -> io::Result<Box<dyn DiskFile>> {
        self.inner.open(&self.full(path)?, mode)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(&self.full(from)?, &self.full(to)?)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        self.inner.remove(&self.full(path)?)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        self.inner.list(&self.full(dir)?)
    }

    fn metadata(&self, path: &str) -> io::Result<FileMeta> {
        self.inner.metadata(&self.full(path)?)
    }

    fn create_dir_all(&self, dir: &str) -> io::Result<()> {
        self.inner.create_dir_all(&self.full(dir)?)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        self.inner.sync_dir(&self.full(dir)?)
    }

    fn op_delay(&self) -> Duration {
        self.inner.op_delay()
    }
}
