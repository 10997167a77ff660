//! Unit tests of crash semantics: durability of data and names, tearing, determinism.

use super::tests::{disk_with, errno, get, quiet_disk};
use super::*;

/// Seeds enough that an event of probability 1/2 per seed shows up (miss chance 2^-64).
const SEEDS: u64 = 64;

/// `path` holding `data`, with data and name durable.
fn durable_file(disk: &SimDisk, path: &str, data: &[u8]) {
    let file = disk.open(path, OpenMode::Truncate).unwrap();
    file.write_at(data, 0).unwrap();
    file.sync_data().unwrap();
    disk.sync_dir(path.rsplit_once('/').map_or("", |(dir, _)| dir))
        .unwrap();
}

fn small_blocks(seed: u64) -> (SimDisk, FaultCounters) {
    let options = DiskOptions {
        block_bytes: 4,
        ..DiskOptions::quiet()
    };
    disk_with(options, seed)
}

#[test]
fn a_crash_with_nothing_pending_changes_and_counts_nothing() {
    let (disk, faults) = quiet_disk();
    durable_file(&disk, "f", b"data");
    disk.crash();
    assert_eq!(get(&disk, "f"), b"data");
    assert!(faults.snapshot().is_empty(), "{:?}", faults.snapshot());
}

#[test]
fn an_unsynced_write_may_be_lost_and_the_loss_is_counted() {
    let mut outcomes = BTreeMap::new();
    for seed in 0..SEEDS {
        let (disk, faults) = quiet_disk_seeded(seed);
        durable_file(&disk, "f", b"old");
        disk.open("f", OpenMode::ReadWrite)
            .unwrap()
            .write_at(b"new", 0)
            .unwrap();
        disk.crash();
        let content = get(&disk, "f");
        assert!(content == b"old" || content == b"new", "{content:?}");
        let lost = content == b"old";
        assert_eq!(faults.count("disk.lost_unsynced"), u64::from(lost));
        assert_eq!(faults.count("disk.torn_write"), 0, "one block cannot tear");
        *outcomes.entry(content).or_insert(0) += 1;
    }
    assert_eq!(
        outcomes.len(),
        2,
        "both outcomes over {SEEDS} seeds: {outcomes:?}"
    );
}

/// Synced content is shared with the pending content until the next change: a
/// truncation and rewrite after a sync (the path that copies nothing) must still leave
/// the synced bytes durable, and a second sync must make the new ones durable.
#[test]
fn a_rewrite_after_sync_keeps_the_synced_bytes_until_the_next_sync() {
    let mut outcomes = BTreeMap::new();
    for seed in 0..SEEDS {
        let (disk, _faults) = quiet_disk_seeded(seed);
        durable_file(&disk, "f", b"old");
        let file = disk.open("f", OpenMode::Truncate).unwrap();
        file.write_at(b"new", 0).unwrap();
        assert_eq!(get(&disk, "f"), b"new", "the host reads what it wrote");
        drop(file);
        disk.crash();
        let content = get(&disk, "f");
        assert!(content == b"old" || content == b"new", "{content:?}");
        *outcomes.entry(content).or_insert(0) += 1;
        durable_file(&disk, "f", b"two");
        disk.crash();
        assert_eq!(get(&disk, "f"), b"two", "synced twice, durable twice");
    }
    assert!(
        outcomes.contains_key(b"old".as_slice()),
        "the synced bytes survive some crashes: {outcomes:?}"
    );
}

fn quiet_disk_seeded(seed: u64) -> (SimDisk, FaultCounters) {
    disk_with(DiskOptions::quiet(), seed)
}

#[test]
fn synced_data_survives_but_a_name_without_dir_sync_vanishes() {
    for seed in 0..8 {
        let (disk, faults) = quiet_disk_seeded(seed);
        let file = disk.open("f", OpenMode::CreateNew).unwrap();
        file.write_at(b"data", 0).unwrap();
        file.sync_data().unwrap();
        disk.crash();
        assert_eq!(errno(disk.metadata("f")), errno::ENOENT);
        assert_eq!(disk.used_bytes(), 0);
        assert_eq!(faults.count("disk.lost_unsynced"), 1);

        durable_file(&disk, "f", b"data");
        disk.crash();
        assert_eq!(get(&disk, "f"), b"data", "seed {seed}");
    }
}

#[test]
fn directories_need_their_parent_synced_too() {
    let (disk, _) = quiet_disk();
    disk.create_dir_all("a/b").unwrap();
    durable_file(&disk, "a/b/f", b"x");
    disk.sync_dir("a").unwrap();
    disk.crash();
    assert_eq!(
        errno(disk.metadata("a")),
        errno::ENOENT,
        "root was never synced"
    );
    disk.create_dir_all("a/b").unwrap();
    durable_file(&disk, "a/b/f", b"x");
    disk.sync_dir("a").unwrap();
    disk.sync_dir("").unwrap();
    disk.crash();
    assert_eq!(get(&disk, "a/b/f"), b"x");
}

#[test]
fn removals_and_renames_revert_without_dir_sync() {
    let (disk, _) = quiet_disk();
    durable_file(&disk, "keep", b"k");
    durable_file(&disk, "moved", b"m");
    disk.remove("keep").unwrap();
    disk.rename("moved", "there").unwrap();
    disk.crash();
    assert_eq!(disk.list("").unwrap(), vec!["keep", "moved"]);
    disk.remove("keep").unwrap();
    disk.rename("moved", "there").unwrap();
    disk.sync_dir("").unwrap();
    disk.crash();
    assert_eq!(disk.list("").unwrap(), vec!["there"]);
    assert_eq!(get(&disk, "there"), b"m");
}

/// Write tmp, sync its data, rename over the target: the protocol every store uses.
fn replace(disk: &SimDisk, data: &[u8], sync_data: bool) {
    let tmp = disk.open("db.tmp", OpenMode::Truncate).unwrap();
    tmp.write_at(data, 0).unwrap();
    if sync_data {
        tmp.sync_data().unwrap();
    }
    disk.rename("db.tmp", "db").unwrap();
}

#[test]
fn atomic_replace_survives_a_crash_once_the_dir_is_synced() {
    for seed in 0..SEEDS {
        let (disk, _) = small_blocks(seed);
        durable_file(&disk, "db", b"old contents 16b");
        replace(&disk, b"new contents, longer", true);
        disk.sync_dir("").unwrap();
        disk.crash();
        assert_eq!(get(&disk, "db"), b"new contents, longer", "seed {seed}");
        assert_eq!(disk.list("").unwrap(), vec!["db"]);
    }
}

#[test]
fn a_crash_before_the_dir_sync_leaves_the_old_file() {
    for seed in 0..SEEDS {
        let (disk, _) = small_blocks(seed);
        durable_file(&disk, "db", b"old contents 16b");
        replace(&disk, b"new contents, longer", true);
        disk.crash();
        assert_eq!(get(&disk, "db"), b"old contents 16b", "seed {seed}");
        assert_eq!(
            disk.list("").unwrap(),
            vec!["db"],
            "the tmp name was never durable"
        );
    }
}

#[test]
fn a_rename_without_sync_data_can_leave_an_empty_or_torn_file() {
    let mut damaged = 0;
    for seed in 0..SEEDS {
        let (disk, _) = small_blocks(seed);
        durable_file(&disk, "db", b"old contents 16b");
        replace(&disk, b"new contents, longer", false);
        disk.sync_dir("").unwrap();
        disk.crash();
        let content = get(&disk, "db");
        if content != b"new contents, longer" {
            damaged += 1;
            assert_ne!(content, b"old contents 16b", "the old inode is gone");
        }
    }
    assert!(
        damaged > SEEDS / 2,
        "only {damaged} of {SEEDS} crashes damaged the file"
    );
}

#[test]
fn torn_writes_mix_whole_old_and_new_blocks() {
    let mut torn_seen = 0;
    for seed in 0..SEEDS {
        let (disk, faults) = small_blocks(seed);
        durable_file(&disk, "f", &[b'a'; 32]);
        let file = disk.open("f", OpenMode::ReadWrite).unwrap();
        file.write_at(&[b'b'; 32], 0).unwrap();
        file.append(&[b'c'; 6]).unwrap();
        disk.crash();
        let content = get(&disk, "f");
        assert!(
            content.len() == 32 || content.len() == 38,
            "len {}",
            content.len()
        );
        for block in content[..32].chunks(4) {
            assert!(
                block == b"aaaa" || block == b"bbbb",
                "torn inside a block: {block:?}"
            );
        }
        if content.len() == 38 {
            for block in content[32..].chunks(4) {
                let zeros = vec![0u8; block.len()];
                let new = vec![b'c'; block.len()];
                assert!(block == zeros || block == new, "appended block {block:?}");
            }
        }
        let torn = faults.count("disk.torn_write");
        assert!(torn <= 1);
        torn_seen += torn;
        let mixed = content.contains(&b'a') && (content.contains(&b'b') || content.contains(&b'c'));
        assert!(
            !mixed || torn == 1,
            "a mix of old and new is counted as torn"
        );
    }
    assert!(
        torn_seen > SEEDS / 2,
        "only {torn_seen} of {SEEDS} crashes tore"
    );
}

/// One crash scenario's observable result: the file's content and the faults counted.
fn torn_outcome(seed: u64) -> (Vec<u8>, BTreeMap<String, u64>) {
    let (disk, faults) = small_blocks(seed);
    durable_file(&disk, "f", &[1u8; 40]);
    disk.open("f", OpenMode::ReadWrite)
        .unwrap()
        .write_at(&[2u8; 40], 0)
        .unwrap();
    disk.crash();
    (get(&disk, "f"), faults.snapshot())
}

#[test]
fn the_same_seed_tears_the_same_way() {
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..SEEDS {
        let first = torn_outcome(seed);
        assert_eq!(
            first,
            torn_outcome(seed),
            "seed {seed} is not deterministic"
        );
        distinct.insert(first.0);
    }
    assert!(
        distinct.len() > SEEDS as usize / 2,
        "seeds barely vary the tear"
    );
}

#[test]
fn the_model_stays_consistent_across_crashes() {
    let (disk, _) = small_blocks(3);
    disk.create_dir_all("d").unwrap();
    disk.sync_dir("").unwrap();
    for round in 0..20u8 {
        let path = format!("d/f{}", round % 5);
        let file = disk.open(&path, OpenMode::Create).unwrap();
        file.append(&[round; 7]).unwrap();
        if round % 2 == 0 {
            file.sync_data().unwrap();
            disk.sync_dir("d").unwrap();
        }
        if round % 3 == 0 {
            disk.crash();
        }
        disk.shared.lock().fs.assert_invariants();
    }
    let listed: u64 = disk
        .list("d")
        .unwrap()
        .iter()
        .map(|name| disk.metadata(&format!("d/{name}")).unwrap().len)
        .sum();
    assert_eq!(listed, disk.used_bytes());
}
