//! redb's storage backend over the environment's disk: the synchronous path. Each call
//! is one call of the [`DiskFile`]; errors pass through unchanged, so a simulated EIO or
//! ENOSPC reaches redb (and then the caller) with its OS code.

use crate::env::DiskFile;
use redb::StorageBackend;
use std::fmt;
use std::io;

/// A redb [`StorageBackend`] over one open [`DiskFile`].
///
/// It takes no locks (redb's lock methods keep their `Unsupported` default), so redb
/// falls back to trusting the caller: open one database per file per host.
pub struct DiskBackend {
    file: Box<dyn DiskFile>,
    /// The disk path, for error messages and `Debug`.
    path: String,
}

impl DiskBackend {
    pub fn new(file: Box<dyn DiskFile>, path: impl Into<String>) -> Self {
        DiskBackend {
            file,
            path: path.into(),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Debug for DiskBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiskBackend")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl StorageBackend for DiskBackend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    /// Fills all of `out` (a `DiskFile` read may return fewer bytes); reading past the end
    /// is `UnexpectedEof`, as redb requires.
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < out.len() {
            let at = offset + done as u64;
            match self.file.read_at(&mut out[done..], at)? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: read of {} bytes at {offset} ends past the end of the file",
                            self.path,
                            out.len()
                        ),
                    ));
                }
                n => done += n,
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_at(data, offset)
    }
}
