//! The store on the real disk under a temporary directory (engine tests cannot use the
//! simulated disk: `engine` never depends on `sim`). Every file goes through the `Disk`
//! seam, garbage included.

use super::*;
use crate::env::real::RealDisk;
use crate::env::{Disk, OpenMode};
use redb::StorageBackend;
use std::sync::Arc;

const STORE: &str = "state/sessions.redb";

fn real_disk() -> (tempfile::TempDir, Arc<dyn Disk>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk: Arc<dyn Disk> = Arc::new(RealDisk::new(dir.path().to_path_buf()));
    (dir, disk)
}

fn record(id: &str, data_path: &str) -> SessionRecord {
    let mut r = SessionRecord::new(id, "user-1", data_path, 1_000);
    r.state = "active".to_string();
    r.checksum = checksum(id.as_bytes());
    r
}

fn write_file(disk: &dyn Disk, path: &str, bytes: &[u8]) {
    let file = disk.open(path, OpenMode::Truncate).expect("open");
    file.write_at(bytes, 0).expect("write");
    file.sync_data().expect("sync");
}

#[test]
fn checksum_is_fnv1a_64() {
    // Reference values of FNV-1a 64 (the published test vectors).
    assert_eq!(checksum(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(checksum(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(checksum(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn records_round_trip_and_survive_a_reopen() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk.clone(), STORE).unwrap();
    assert_eq!(store.list().unwrap(), vec![]);

    let mut b = record("b", "sessions/b");
    b.parent = Some("a".to_string());
    b.claimed_by = Some("conn-9".to_string());
    let a = record("a", "sessions/a");
    store.put(&b).unwrap();
    store.put(&a).unwrap();
    assert_eq!(store.get("a").unwrap(), Some(a.clone()));
    assert_eq!(store.get("b").unwrap(), Some(b.clone()));
    assert_eq!(store.get("zz").unwrap(), None);
    assert_eq!(
        store.list().unwrap(),
        vec![a.clone(), b.clone()],
        "ordered by id"
    );

    let mut a2 = a.clone();
    a2.state = "idle".to_string();
    a2.updated_unix_ms = 2_000;
    store.put(&a2).unwrap();
    assert_eq!(store.get("a").unwrap(), Some(a2.clone()), "put replaces");

    drop(store);
    let store = SessionStore::open(disk.clone(), STORE).unwrap();
    assert_eq!(store.list().unwrap(), vec![a2, b.clone()]);
    assert!(store.remove("a").unwrap());
    assert!(!store.remove("a").unwrap());
    assert_eq!(store.list().unwrap(), vec![b]);
}

#[test]
fn a_claim_is_exclusive_until_released() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk, STORE).unwrap();
    store.put(&record("s1", "sessions/s1")).unwrap();

    assert_eq!(
        store.claim("s1", "conn-a", 5_000).unwrap(),
        ClaimOutcome::Claimed { restores: 1 }
    );
    let held = store.get("s1").unwrap().unwrap();
    assert_eq!(held.claimed_by.as_deref(), Some("conn-a"));
    assert_eq!(held.updated_unix_ms, 5_000);

    assert_eq!(
        store.claim("s1", "conn-b", 6_000).unwrap(),
        ClaimOutcome::AlreadyClaimed {
            by: "conn-a".to_string()
        }
    );
    assert_eq!(
        store.get("s1").unwrap().unwrap().updated_unix_ms,
        5_000,
        "a refused claim changes nothing"
    );
    assert_eq!(
        store.claim("s1", "conn-a", 7_000).unwrap(),
        ClaimOutcome::Claimed { restores: 2 },
        "the holder may claim again"
    );
    assert_eq!(
        store.release("s1", "conn-b").unwrap(),
        ReleaseOutcome::NotHolder {
            by: Some("conn-a".to_string())
        }
    );
    assert_eq!(
        store.release("s1", "conn-a").unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(store.get("s1").unwrap().unwrap().claimed_by, None);
    assert_eq!(
        store.release("s1", "conn-a").unwrap(),
        ReleaseOutcome::NotHolder { by: None }
    );
    assert_eq!(
        store.claim("s1", "conn-b", 8_000).unwrap(),
        ClaimOutcome::Claimed { restores: 3 },
        "every claim counts: a restored stream numbers past every earlier one"
    );
    assert_eq!(
        store.get("s1").unwrap().unwrap().claimed_by.as_deref(),
        Some("conn-b")
    );

    assert_eq!(
        store.claim("nope", "conn-a", 9_000).unwrap(),
        ClaimOutcome::Missing
    );
    assert_eq!(
        store.release("nope", "conn-a").unwrap(),
        ReleaseOutcome::Missing
    );
}

#[test]
fn a_record_of_another_version_is_refused_with_a_clear_message() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk, STORE).unwrap();
    let mut future = serde_json::to_value(record("s7", "sessions/s7")).unwrap();
    future["version"] = serde_json::json!(7);
    future["new_field"] = serde_json::json!("whatever");
    store
        .put_raw("s7", &serde_json::to_vec(&future).unwrap())
        .unwrap();

    let err = store.get("s7").unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::IncompatibleVersion {
                of: Versioned::Record,
                id,
                found: 7,
                supported: RECORD_VERSION,
            } if id == "s7"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "session record \"s7\" has format version 7; this engine reads version 1: migrate or remove the store"
    );
    assert!(matches!(
        store.list().unwrap_err(),
        StoreError::IncompatibleVersion { .. }
    ));
    assert!(matches!(
        store.claim("s7", "conn-a", 1).unwrap_err(),
        StoreError::IncompatibleVersion { .. }
    ));

    // This engine writes only its own version.
    let mut old = record("s8", "sessions/s8");
    old.version = 0;
    assert!(matches!(
        store.put(&old).unwrap_err(),
        StoreError::IncompatibleVersion { found: 0, .. }
    ));
    assert_eq!(store.get("s8").unwrap(), None);
}

#[test]
fn undecodable_records_are_corrupt_records() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk, STORE).unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("garbage", b"\x00\xffnot json"),
        ("no-version", br#"{"id":"no-version"}"#),
        ("missing-fields", br#"{"version":1,"id":"missing-fields"}"#),
        ("array", b"[1,2,3]"),
    ];
    for (id, bytes) in cases {
        store.put_raw(id, bytes).unwrap();
        let err = store.get(id).unwrap_err();
        assert!(
            matches!(&err, StoreError::CorruptRecord { id: got, .. } if got == id),
            "{id}: {err:?}"
        );
    }
    // A valid record stored under another id.
    let other = serde_json::to_vec(&record("x", "sessions/x")).unwrap();
    store.put_raw("y", &other).unwrap();
    let err = store.get("y").unwrap_err();
    assert!(err.to_string().contains("stored under \"y\""), "{err}");
}

#[test]
fn a_store_of_another_schema_version_is_refused() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk.clone(), STORE).unwrap();
    store.put(&record("s1", "sessions/s1")).unwrap();
    store.set_schema_version(SCHEMA_VERSION + 1).unwrap();
    drop(store);

    let err = SessionStore::open(disk.clone(), STORE).unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::IncompatibleVersion {
                of: Versioned::Store,
                found: 2,
                supported: SCHEMA_VERSION,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "session store \"state/sessions.redb\" has schema version 2; this engine reads schema version 1: migrate or remove the store"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_corrupt_not_a_panic() {
    let (_dir, disk) = real_disk();
    disk.create_dir_all("state").unwrap();
    let mut magic_then_garbage = b"redb\x1a\x0a\xa9\x0d\x0a".to_vec();
    magic_then_garbage.extend((0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let cases: [(&str, Vec<u8>); 3] = [
        (
            "text",
            b"this is a session log, not a database\n".repeat(200),
        ),
        ("short", b"re".to_vec()),
        ("magic then garbage", magic_then_garbage),
    ];
    for (name, bytes) in cases {
        write_file(&*disk, STORE, &bytes);
        let err = SessionStore::open(disk.clone(), STORE).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { path, .. } if path == STORE),
            "{name}: {err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("session store \"state/sessions.redb\" is not a readable database"),
            "{name}: {err}"
        );
    }
}

#[test]
fn a_damaged_database_fails_its_integrity_check() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk.clone(), STORE).unwrap();
    for i in 0..50 {
        store
            .put(&record(&format!("s{i:02}"), &format!("sessions/s{i:02}")))
            .unwrap();
    }
    drop(store);
    // Flip every byte of the pages past the header: checksums no longer match.
    let file = disk.open(STORE, OpenMode::ReadWrite).unwrap();
    let len = file.len().unwrap();
    let mut bytes = vec![0; len as usize];
    DiskBackend::new(file, STORE).read(0, &mut bytes).unwrap();
    for b in &mut bytes[4096..] {
        *b = !*b;
    }
    write_file(&*disk, STORE, &bytes);

    let err = SessionStore::open(disk, STORE).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn the_startup_check_purges_orphans_archives_corrupt_records_and_clears_claims() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk.clone(), STORE).unwrap();
    disk.create_dir_all("sessions").unwrap();
    write_file(&*disk, "sessions/a", b"a's data");
    write_file(&*disk, "sessions/d", b"d's data");

    let mut a = record("a", "sessions/a");
    a.claimed_by = Some("conn-old".to_string());
    let mut b = record("b", "sessions/b"); // its data file is gone
    b.claimed_by = Some("conn-old".to_string());
    let d = record("d", "sessions/d");
    store.put(&a).unwrap();
    store.put(&b).unwrap();
    store.put(&d).unwrap();
    let bad = b"{\"version\":1,\"id\":\"c\",\"user\":tru".to_vec();
    store.put_raw("c", &bad).unwrap();

    let exists = |r: &SessionRecord| disk.metadata(&r.data_path).is_ok();
    let report = store.startup_check(exists).unwrap();
    assert_eq!(
        report,
        StartupReport {
            checked: 4,
            orphans: vec!["b".to_string()],
            corrupt: vec!["c".to_string()],
            claims_cleared: vec!["a".to_string()],
        }
    );
    assert_eq!(report.kept(), 2);

    let mut a_released = a.clone();
    a_released.claimed_by = None;
    assert_eq!(store.list().unwrap(), vec![a_released.clone(), d.clone()]);
    let archived = store.archived().unwrap();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].id, "c");
    assert_eq!(archived[0].seq, 0);
    assert_eq!(archived[0].raw, bad, "the raw bytes are kept");
    assert!(
        archived[0].reason.starts_with("undecodable at startup"),
        "{}",
        archived[0].reason
    );

    // Durable, and a second check finds nothing to do.
    drop(store);
    let store = SessionStore::open(disk.clone(), STORE).unwrap();
    assert_eq!(store.list().unwrap(), vec![a_released, d]);
    let again = store.startup_check(exists).unwrap();
    assert_eq!(
        again,
        StartupReport {
            checked: 2,
            ..StartupReport::default()
        }
    );
}

#[test]
fn the_startup_check_changes_nothing_when_a_record_has_another_version() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk, STORE).unwrap();
    let mut a = record("a", "sessions/a");
    a.claimed_by = Some("conn-old".to_string());
    store.put(&a).unwrap();
    store.put_raw("b", b"garbage").unwrap();
    let mut future = serde_json::to_value(record("z", "sessions/z")).unwrap();
    future["version"] = serde_json::json!(2);
    store
        .put_raw("z", &serde_json::to_vec(&future).unwrap())
        .unwrap();

    let err = store.startup_check(|_| false).unwrap_err();
    assert!(
        matches!(&err, StoreError::IncompatibleVersion { id, found: 2, .. } if id == "z"),
        "{err:?}"
    );
    // Rolled back: the orphan, the claim and the corrupt record are all still there.
    assert_eq!(store.get("a").unwrap(), Some(a));
    assert!(matches!(
        store.get("b").unwrap_err(),
        StoreError::CorruptRecord { .. }
    ));
    assert_eq!(store.archived().unwrap(), vec![]);
}

#[test]
fn archive_moves_a_record_and_keeps_each_archive_of_an_id() {
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk, STORE).unwrap();
    let s = record("s", "sessions/s");
    store.put(&s).unwrap();
    assert!(
        store
            .archive("s", "data checksum mismatch at resume")
            .unwrap()
    );
    assert_eq!(store.get("s").unwrap(), None);
    assert!(
        !store.archive("s", "again").unwrap(),
        "nothing left to archive"
    );

    store.put(&s).unwrap();
    assert!(store.archive("s", "second time").unwrap());
    let archived = store.archived().unwrap();
    let seen: Vec<(u64, &str)> = archived
        .iter()
        .map(|r| (r.seq, r.reason.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![(0, "data checksum mismatch at resume"), (1, "second time")]
    );
    let raw = serde_json::to_vec(&s).unwrap();
    assert!(archived.iter().all(|r| r.id == "s" && r.raw == raw));
}

#[test]
fn the_backend_reads_whole_buffers_and_refuses_reads_past_the_end() {
    let (_dir, disk) = real_disk();
    let file = disk.open("f", OpenMode::Create).unwrap();
    let backend = DiskBackend::new(file, "f");
    assert!(format!("{backend:?}").contains("\"f\""));
    backend.set_len(10).unwrap();
    backend.write(2, b"abc").unwrap();
    backend.sync_data().unwrap();
    assert_eq!(backend.len().unwrap(), 10);
    let mut out = [9u8; 10];
    backend.read(0, &mut out).unwrap();
    assert_eq!(&out, b"\0\0abc\0\0\0\0\0");
    let err = backend.read(8, &mut [0; 4]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
}

#[test]
fn paths_that_escape_the_disk_are_refused() {
    let (_dir, disk) = real_disk();
    let err = SessionStore::open(disk, "../outside.redb").unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::InvalidInput),
        "{err:?}"
    );
}

/// A disk whose files fail writes and syncs with `errno` while `failing` is set.
struct FailingDisk {
    inner: RealDisk,
    failing: Arc<std::sync::atomic::AtomicBool>,
    errno: i32,
}

struct FailingFile {
    inner: Box<dyn crate::env::DiskFile>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    errno: i32,
}

impl FailingFile {
    fn check(&self) -> std::io::Result<()> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(self.errno));
        }
        Ok(())
    }
}

impl Disk for FailingDisk {
    fn open(&self, path: &str, mode: OpenMode) -> std::io::Result<Box<dyn crate::env::DiskFile>> {
        Ok(Box::new(FailingFile {
            inner: self.inner.open(path, mode)?,
            failing: self.failing.clone(),
            errno: self.errno,
        }))
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &str) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn list(&self, dir: &str) -> std::io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn metadata(&self, path: &str) -> std::io::Result<crate::env::FileMeta> {
        self.inner.metadata(path)
    }
    fn create_dir_all(&self, dir: &str) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &str) -> std::io::Result<()> {
        self.inner.sync_dir(dir)
    }
}

impl crate::env::DiskFile for FailingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.write_at(buf, offset)
    }
    fn append(&self, buf: &[u8]) -> std::io::Result<u64> {
        self.check()?;
        self.inner.append(buf)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
}

#[test]
fn a_disk_error_reaches_the_caller_with_its_os_code_and_the_committed_state_survives() {
    const ENOSPC: i32 = 28;
    let dir = tempfile::tempdir().expect("tempdir");
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let disk: Arc<dyn Disk> = Arc::new(FailingDisk {
        inner: RealDisk::new(dir.path().to_path_buf()),
        failing: failing.clone(),
        errno: ENOSPC,
    });
    let store = SessionStore::open(disk.clone(), STORE).unwrap();
    let a = record("a", "sessions/a");
    store.put(&a).unwrap();

    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let err = store.put(&record("b", "sessions/b")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(ENOSPC), "{err:?}");
    assert!(err.needs_reopen(), "{err:?}");
    assert!(err.to_string().contains("put failed"), "{err}");

    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    // redb stops writing after an I/O error until the database is reopened (reads go
    // on): the store reopens it by itself at the next write.
    assert_eq!(store.get("a").unwrap(), Some(a.clone()));
    let c = record("c", "sessions/c");
    store.put(&c).unwrap();
    drop(store);
    let store = SessionStore::open(disk, STORE).unwrap();
    assert_eq!(
        store.list().unwrap(),
        vec![a, c],
        "the failed put left nothing, the later one is kept"
    );
}

#[test]
fn counters_never_hand_out_a_number_twice_across_reopens_and_start_past_old_records() {
    let number = |id: &str| id.strip_prefix('s').and_then(|n| n.parse::<u64>().ok());
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk.clone(), STORE).unwrap();
    assert_eq!(store.next_number("sessions", number).unwrap(), 1);
    assert_eq!(store.next_number("sessions", number).unwrap(), 2);
    assert_eq!(
        store.next_number("other", number).unwrap(),
        1,
        "counters are apart"
    );
    drop(store);
    let store = SessionStore::open(disk, STORE).unwrap();
    assert_eq!(
        store.next_number("sessions", number).unwrap(),
        3,
        "a restart continues"
    );
    // A store written before counters existed: the first number is past its records.
    let (_dir, disk) = real_disk();
    let store = SessionStore::open(disk, STORE).unwrap();
    store.put(&record("s000007", "sessions/7")).unwrap();
    store.put(&record("s000003", "sessions/3")).unwrap();
    assert_eq!(store.next_number("sessions", number).unwrap(), 8);
}
