//! Unit tests of the disk's namespace, limits and swarm faults. Crash behaviour is in
//! `tests_crash.rs`.

use super::*;
use crate::seed::Ratio;

pub(super) fn disk_with(options: DiskOptions, seed: u64) -> (SimDisk, FaultCounters) {
    let faults = FaultCounters::default();
    let disk = SimDisk::new("host-a", options, SimRng::new(seed, "disk"), faults.clone());
    (disk, faults)
}

pub(super) fn quiet_disk() -> (SimDisk, FaultCounters) {
    disk_with(DiskOptions::quiet(), 1)
}

pub(super) fn errno<T>(result: io::Result<T>) -> i32 {
    let Err(err) = result else {
        panic!("operation should have failed");
    };
    err.raw_os_error()
        .unwrap_or_else(|| panic!("error without an OS code: {err}"))
}

/// Writes `data` as the whole content of `path` (created if missing), unsynced.
pub(super) fn put(disk: &SimDisk, path: &str, data: &[u8]) {
    let file = disk.open(path, OpenMode::Truncate).unwrap();
    file.write_at(data, 0).unwrap();
}

pub(super) fn get(disk: &SimDisk, path: &str) -> Vec<u8> {
    let file = disk.open(path, OpenMode::Read).unwrap();
    let mut buf = vec![0u8; file.len().unwrap() as usize];
    assert_eq!(file.read_at(&mut buf, 0).unwrap(), buf.len());
    buf
}

#[test]
fn files_read_write_append_set_len() {
    let (disk, _) = quiet_disk();
    let file = disk.open("a", OpenMode::CreateNew).unwrap();
    file.write_at(b"hello", 0).unwrap();
    assert_eq!(file.append(b" world").unwrap(), 5);
    file.write_at(b"J", 0).unwrap();
    assert_eq!(file.len().unwrap(), 11);
    let mut buf = [0u8; 32];
    assert_eq!(file.read_at(&mut buf, 0).unwrap(), 11);
    assert_eq!(&buf[..11], b"Jello world");
    assert_eq!(file.read_at(&mut buf, 11).unwrap(), 0, "reading at the end");
    assert_eq!(
        file.read_at(&mut buf, 100).unwrap(),
        0,
        "reading past the end"
    );
    file.write_at(b"!", 13).unwrap();
    assert_eq!(file.read_at(&mut buf, 0).unwrap(), 14);
    assert_eq!(&buf[..14], b"Jello world\0\0!", "a gap reads as zeros");
    file.set_len(4).unwrap();
    assert_eq!(get(&disk, "a"), b"Jell");
    assert_eq!(disk.used_bytes(), 4);
    file.set_len(6).unwrap();
    assert_eq!(get(&disk, "a"), b"Jell\0\0");
    assert!(!file.is_empty().unwrap());
}

#[test]
fn open_modes_follow_the_os() {
    let (disk, _) = quiet_disk();
    assert_eq!(errno(disk.open("missing", OpenMode::Read)), errno::ENOENT);
    assert_eq!(
        errno(disk.open("missing", OpenMode::ReadWrite)),
        errno::ENOENT
    );
    put(&disk, "f", b"data");
    assert_eq!(errno(disk.open("f", OpenMode::CreateNew)), errno::EEXIST);
    assert_eq!(get(&disk, "f"), b"data", "Create keeps the content");
    drop(disk.open("f", OpenMode::Create).unwrap());
    assert_eq!(get(&disk, "f"), b"data");
    drop(disk.open("f", OpenMode::Truncate).unwrap());
    assert_eq!(get(&disk, "f"), b"");
    let read_only = disk.open("f", OpenMode::Read).unwrap();
    assert_eq!(errno(read_only.write_at(b"x", 0)), errno::EBADF);
    assert_eq!(errno(read_only.append(b"x")), errno::EBADF);
    assert_eq!(errno(read_only.set_len(3)), errno::EBADF);
}

#[test]
fn paths_and_directories() {
    let (disk, _) = quiet_disk();
    for bad in ["", "/abs", "../x", "a/../b", "a//b", "./a", "a/"] {
        let err = disk.open(bad, OpenMode::Create).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "path {bad:?}");
    }
    assert_eq!(
        errno(disk.open("d/f", OpenMode::Create)),
        errno::ENOENT,
        "no parent"
    );
    disk.create_dir_all("d/e").unwrap();
    disk.create_dir_all("d/e").unwrap(); // idempotent
    put(&disk, "d/e/f", b"1");
    put(&disk, "d/b", b"22");
    assert_eq!(disk.list("d").unwrap(), vec!["b", "e"]);
    assert_eq!(disk.list("").unwrap(), vec!["d"]);
    assert_eq!(disk.list(".").unwrap(), vec!["d"]);
    let dir = disk.metadata("d/e").unwrap();
    assert_eq!((dir.len, dir.is_dir), (0, true));
    let file = disk.metadata("d/b").unwrap();
    assert_eq!((file.len, file.is_dir), (2, false));
    assert!(disk.metadata("").unwrap().is_dir);
    assert_eq!(errno(disk.metadata("d/zz")), errno::ENOENT);
    assert_eq!(errno(disk.metadata("d/b/x")), errno::ENOTDIR);
    assert_eq!(errno(disk.list("d/b")), errno::ENOTDIR);
    assert_eq!(errno(disk.list("nope")), errno::ENOENT);
    assert_eq!(errno(disk.open("d/e", OpenMode::Read)), errno::EISDIR);
    assert_eq!(errno(disk.open("d/e", OpenMode::Create)), errno::EISDIR);
    assert_eq!(errno(disk.remove("d/e")), errno::EISDIR);
    assert_eq!(errno(disk.remove("d/zz")), errno::ENOENT);
    assert_eq!(errno(disk.create_dir_all("d/b")), errno::EEXIST);
    assert_eq!(errno(disk.create_dir_all("d/b/c")), errno::ENOTDIR);
    assert_eq!(errno(disk.sync_dir("d/zz")), errno::ENOENT);
    disk.remove("d/b").unwrap();
    assert_eq!(disk.list("d").unwrap(), vec!["e"]);
}

#[test]
fn rename_moves_and_replaces() {
    let (disk, _) = quiet_disk();
    disk.create_dir_all("x").unwrap();
    disk.create_dir_all("y").unwrap();
    put(&disk, "a", b"new");
    put(&disk, "b", b"old");
    disk.rename("a", "b").unwrap();
    assert_eq!(get(&disk, "b"), b"new");
    assert_eq!(errno(disk.metadata("a")), errno::ENOENT);
    disk.rename("b", "x/c").unwrap();
    assert_eq!(get(&disk, "x/c"), b"new");
    disk.rename("x/c", "x/c").unwrap(); // renaming onto itself is a no-op
    assert_eq!(errno(disk.rename("nope", "z")), errno::ENOENT);
    assert_eq!(errno(disk.rename("x/c", "q/c")), errno::ENOENT);
    assert_eq!(errno(disk.rename("x/c", "y")), errno::EISDIR);
    assert_eq!(errno(disk.rename("y", "x/c")), errno::ENOTDIR);
    assert_eq!(errno(disk.rename("y", "x")), errno::ENOTEMPTY);
    assert_eq!(errno(disk.rename("x", "x/sub")), errno::EINVAL);
    disk.rename("x", "z").unwrap();
    assert_eq!(get(&disk, "z/c"), b"new");
    assert_eq!(disk.used_bytes(), 3, "the replaced file's bytes are freed");
}

#[test]
fn an_open_file_outlives_its_name() {
    let (disk, _) = quiet_disk();
    put(&disk, "f", b"abc");
    let file = disk.open("f", OpenMode::ReadWrite).unwrap();
    disk.remove("f").unwrap();
    file.append(b"d").unwrap();
    assert_eq!(file.len().unwrap(), 4);
    assert_eq!(disk.used_bytes(), 4);
    drop(file);
    assert_eq!(
        disk.used_bytes(),
        0,
        "closing the last handle frees the inode"
    );
}

#[test]
fn a_removal_frees_its_space_once_the_directory_is_synced() {
    let (disk, _) = quiet_disk();
    disk.create_dir_all("d").unwrap();
    put(&disk, "d/f", b"abcdef");
    disk.sync_dir("d").unwrap();
    disk.remove("d/f").unwrap();
    assert_eq!(
        disk.used_bytes(),
        6,
        "the durable name still holds the content a crash would bring back"
    );
    disk.sync_dir("d").unwrap();
    assert_eq!(
        disk.used_bytes(),
        0,
        "no name is left once the removal is durable"
    );
}

#[test]
fn enospc_leaves_the_file_unchanged() {
    let options = DiskOptions {
        capacity_bytes_max: 10,
        ..DiskOptions::quiet()
    };
    let (disk, faults) = disk_with(options, 1);
    let file = disk.open("f", OpenMode::Create).unwrap();
    file.write_at(b"12345678", 0).unwrap();
    assert_eq!(errno(file.write_at(b"abcd", 7)), errno::ENOSPC);
    assert_eq!(errno(file.append(b"abc")), errno::ENOSPC);
    assert_eq!(errno(file.set_len(11)), errno::ENOSPC);
    assert_eq!(
        get(&disk, "f"),
        b"12345678",
        "a failed write writes nothing"
    );
    file.write_at(b"ab", 8).unwrap(); // exactly at capacity
    assert_eq!(disk.used_bytes(), 10);
    file.write_at(b"XY", 0).unwrap(); // overwriting needs no space
    assert_eq!(faults.count("disk.enospc"), 3);
    disk.set_capacity(4);
    file.write_at(b"Z", 0).unwrap();
    assert_eq!(errno(file.append(b"!")), errno::ENOSPC);
    file.set_len(2).unwrap();
    assert_eq!(get(&disk, "f"), b"ZY");
    assert_eq!(errno(file.write_at(b"x", 1 << 40)), errno::EFBIG);
}

#[test]
fn emfile_limits_open_handles() {
    let options = DiskOptions {
        open_files_max: 2,
        ..DiskOptions::quiet()
    };
    let (disk, faults) = disk_with(options, 1);
    let a = disk.open("a", OpenMode::Create).unwrap();
    let b = disk.open("b", OpenMode::Create).unwrap();
    assert_eq!(disk.open_files(), 2);
    assert_eq!(errno(disk.open("c", OpenMode::Create)), errno::EMFILE);
    assert_eq!(
        errno(disk.metadata("c")),
        errno::ENOENT,
        "a failed open creates nothing"
    );
    drop(a);
    assert_eq!(disk.open_files(), 1);
    let c = disk.open("c", OpenMode::Create).unwrap();
    assert_eq!(faults.count("disk.emfile"), 1);
    drop((b, c));
    assert_eq!(disk.open_files(), 0);
}

#[test]
fn bitflips_corrupt_reads_not_storage() {
    let options = DiskOptions {
        bitflip_rate: Ratio::ONE,
        ..DiskOptions::quiet()
    };
    let (disk, faults) = disk_with(options, 5);
    put(&disk, "f", &[0u8; 64]);
    let file = disk.open("f", OpenMode::Read).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(file.read_at(&mut buf, 0).unwrap(), 64);
    let ones: u32 = buf.iter().map(|b| b.count_ones()).sum();
    assert_eq!(ones, 1, "exactly one bit flipped");
    assert_eq!(faults.count("disk.bitflip"), 1);
    disk.set_options(DiskOptions::quiet());
    assert_eq!(get(&disk, "f"), vec![0u8; 64], "stored data unchanged");
    assert_eq!(file.read_at(&mut buf, 64).unwrap(), 0);
}

#[test]
fn eio_fails_operations_without_effect() {
    let options = DiskOptions {
        eio_rate: Ratio::new(1, 2),
        ..DiskOptions::quiet()
    };
    let (disk, faults) = disk_with(options, 9);
    let mut failed = 0;
    for i in 0..200u8 {
        match disk.open(&format!("f{i}"), OpenMode::CreateNew) {
            Ok(file) => match file.write_at(&[i], 0) {
                Ok(()) => assert_eq!(file.len().unwrap_or(1), 1),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(errno::EIO));
                    failed += 1;
                    disk.set_options(DiskOptions::quiet());
                    assert_eq!(file.len().unwrap(), 0, "a failed write wrote nothing");
                    disk.set_options(DiskOptions {
                        eio_rate: Ratio::new(1, 2),
                        ..DiskOptions::quiet()
                    });
                }
            },
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(errno::EIO));
                failed += 1;
                disk.set_options(DiskOptions::quiet());
                assert_eq!(errno(disk.metadata(&format!("f{i}"))), errno::ENOENT);
                disk.set_options(DiskOptions {
                    eio_rate: Ratio::new(1, 2),
                    ..DiskOptions::quiet()
                });
            }
        }
    }
    assert!(failed > 50, "only {failed} of 200 rounds saw EIO");
    assert!(faults.count("disk.eio") >= failed);
}

#[test]
fn fail_next_fails_exactly_n_ops_of_a_kind() {
    let (disk, faults) = quiet_disk();
    let file = disk.open("f", OpenMode::Create).unwrap();
    disk.fail_next(DiskOpKind::SyncData, 28, 2);
    file.write_at(b"x", 0).unwrap(); // other kinds are unaffected
    assert_eq!(errno(file.sync_data()), 28);
    assert_eq!(errno(file.sync_data()), 28);
    file.sync_data().unwrap();
    disk.fail_next(DiskOpKind::Rename, 5, 1);
    assert_eq!(errno(disk.rename("f", "g")), 5);
    disk.rename("f", "g").unwrap();
    disk.fail_next(DiskOpKind::List, 5, 3);
    disk.fail_next(DiskOpKind::List, 5, 0); // cleared
    disk.list("").unwrap();
    assert_eq!(faults.count("disk.injected"), 3);
}

#[test]
fn op_delay_is_uniform_in_bounds_and_counts_nothing() {
    let (disk, faults) = quiet_disk();
    assert_eq!(disk.op_delay(), Duration::ZERO);
    disk.set_options(DiskOptions {
        latency_min: Duration::from_micros(100),
        latency_max: Duration::from_micros(300),
        ..DiskOptions::quiet()
    });
    let delays: Vec<Duration> = (0..1000).map(|_| disk.op_delay()).collect();
    assert!(
        delays
            .iter()
            .all(|d| (100_000..=300_000).contains(&d.as_nanos()))
    );
    assert!(delays.iter().any(|d| d.as_nanos() < 150_000));
    assert!(delays.iter().any(|d| d.as_nanos() > 250_000));
    assert!(faults.snapshot().is_empty());
}

#[test]
fn stale_handles_fail_with_ebadf_after_a_crash() {
    let (disk, _) = quiet_disk();
    let file = disk.open("f", OpenMode::Create).unwrap();
    assert_eq!(disk.open_files(), 1);
    disk.crash();
    assert_eq!(disk.open_files(), 0);
    let mut buf = [0u8; 4];
    assert_eq!(errno(file.read_at(&mut buf, 0)), errno::EBADF);
    assert_eq!(errno(file.write_at(b"x", 0)), errno::EBADF);
    assert_eq!(errno(file.append(b"x")), errno::EBADF);
    assert_eq!(errno(file.set_len(1)), errno::EBADF);
    assert_eq!(errno(file.sync_data()), errno::EBADF);
    assert_eq!(errno(file.len()), errno::EBADF);
    let fresh = disk.open("g", OpenMode::Create).unwrap();
    drop(file); // dropping a stale handle must not touch the new generation's count
    assert_eq!(disk.open_files(), 1);
    drop(fresh);
    assert_eq!(disk.open_files(), 0);
}
