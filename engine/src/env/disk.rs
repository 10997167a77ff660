use std::io;
use std::time::Duration;

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file if it is missing.
    Create,
    /// Read and write; create the file, failing with `AlreadyExists` if it exists.
    CreateNew,
    /// Read and write; create or truncate to zero length.
    Truncate,
}

impl OpenMode {
    pub fn writable(self) -> bool {
        !matches!(self, OpenMode::Read)
    }

    pub fn creates(self) -> bool {
        matches!(
            self,
            OpenMode::Create | OpenMode::CreateNew | OpenMode::Truncate
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub len: u64,
    pub is_dir: bool,
}

/// One host's disk. Paths are relative, `/`-separated, without `..` (the real disk roots
/// them in its data directory). Operations are synchronous because the embedded database
/// (redb) calls its storage backend synchronously; async code calls [`super::Env::disk_pace`]
/// first so a simulated latency is charged in virtual time.
///
/// Durability contract (what both implementations promise and the conformance suite
/// checks): data written to a file is durable after `DiskFile::sync_data`; a newly
/// created name, a rename or a removal is durable after `Disk::sync_dir` of its parent.
pub trait Disk: Send + Sync {
    fn open(&self, path: &str, mode: OpenMode) -> io::Result<Box<dyn DiskFile>>;
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    fn remove(&self, path: &str) -> io::Result<()>;
    /// Names (not paths) of the entries of a directory, sorted.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
    fn metadata(&self, path: &str) -> io::Result<FileMeta>;
    fn create_dir_all(&self, dir: &str) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &str) -> io::Result<()>;
    /// Latency to charge for the next operation (simulated disks only).
    fn op_delay(&self) -> Duration {
        Duration::ZERO
    }
}

/// An open file. Offsets are absolute; writes never leave holes that read as garbage.
pub trait DiskFile: Send + Sync {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many (0 at or past the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at the end; returns the offset it was written at.
    fn append(&self, buf: &[u8]) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// Validates a disk path: relative, non-empty components, no `.` or `..`.
pub fn check_relative_path(path: &str) -> io::Result<()> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "disk path {path:?} {why}: paths are relative, '/'-separated, without '.' or '..'"
            ),
        )
    };
    if path.is_empty() {
        return Err(bad("is empty"));
    }
    if path.starts_with('/') {
        return Err(bad("is absolute"));
    }
    if path.contains('\0') {
        return Err(bad("contains NUL"));
    }
    for part in path.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err(bad("has an empty, '.' or '..' component"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_pass_and_escapes_are_refused() {
        for ok in ["a", "a/b.txt", "state/current.tmp"] {
            assert!(check_relative_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a/",
            "a\0b",
        ] {
            let err = check_relative_path(bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn open_modes_know_what_they_do() {
        assert!(!OpenMode::Read.writable() && !OpenMode::Read.creates());
        assert!(OpenMode::ReadWrite.writable() && !OpenMode::ReadWrite.creates());
        for mode in [OpenMode::Create, OpenMode::CreateNew, OpenMode::Truncate] {
            assert!(mode.writable() && mode.creates(), "{mode:?}");
        }
    }
}
