use crate::env::{Disk, DiskFile, FileMeta, OpenMode, check_relative_path};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// Real files under a data directory. Blocking calls: async callers keep them off the
/// runtime's worker threads where the data is large (the database runs on its own
/// blocking thread).
pub struct RealDisk {
    root: PathBuf,
}

impl RealDisk {
    pub fn new(root: PathBuf) -> Self {
        RealDisk { root }
    }

    fn path(&self, path: &str) -> io::Result<PathBuf> {
        check_relative_path(path)?;
        Ok(self.root.join(path))
    }

    fn dir_path(&self, dir: &str) -> io::Result<PathBuf> {
        if dir.is_empty() || dir == "." {
            return Ok(self.root.clone());
        }
        self.path(dir)
    }
}

impl Disk for RealDisk {
    fn open(&self, path: &str, mode: OpenMode) -> io::Result<Box<dyn DiskFile>> {
        let full = self.path(path)?;
        let mut options = OpenOptions::new();
        options.read(true).write(mode.writable());
        match mode {
            OpenMode::Read | OpenMode::ReadWrite => {}
            OpenMode::Create => {
                options.create(true);
            }
            OpenMode::CreateNew => {
                options.create_new(true);
            }
            OpenMode::Truncate => {
                options.create(true).truncate(true);
            }
        }
        let file = options.open(full)?;
        if file.metadata()?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        Ok(Box::new(RealFile {
            file,
            append_lock: Mutex::new(()),
        }))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from)?, self.path(to)?)
    }

    fn remove(&self, path: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(path)?)
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.dir_path(dir)?)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn metadata(&self, path: &str) -> io::Result<FileMeta> {
        let meta = std::fs::metadata(self.dir_path(path)?)?;
        Ok(FileMeta {
            len: if meta.is_dir() { 0 } else { meta.len() },
            is_dir: meta.is_dir(),
        })
    }

    fn create_dir_all(&self, dir: &str) -> io::Result<()> {
        std::fs::create_dir_all(self.path(dir)?)
    }

    fn sync_dir(&self, dir: &str) -> io::Result<()> {
        File::open(self.dir_path(dir)?)?.sync_all()
    }
}

struct RealFile {
    file: File,
    /// Makes "append at the current end" one step for this handle.
    append_lock: Mutex<()>,
}

impl DiskFile for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn append(&self, buf: &[u8]) -> io::Result<u64> {
        let _guard = self.append_lock.lock().expect("append lock poisoned");
        let offset = self.file.metadata()?.len();
        self.file.write_all_at(buf, offset)?;
        Ok(offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}
