//! Disk self-checks: what survives a crash.

use crate::ensure;
use crate::scenario::{BodyFuture, Failure, Scenario, converge};
use engine::env::{Env, OpenMode};
use sim::World;
use sim::seed::Fnv;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn disk_failure(e: std::io::Error) -> Failure {
    Failure::correctness(format!("unexpected disk error: {e}"))
}

/// Content of version `v`: a header with the version, then seeded bytes spanning
/// several blocks, so a torn write cannot pass for a whole version.
fn version_bytes(seed: u64, v: u64) -> Vec<u8> {
    let mut rng = sim::SimRng::new(seed, &format!("version/{v}"));
    let len = 4096 + rng.below(16 * 1024) as usize;
    let mut data = vec![0u8; len];
    rng.fill(&mut data);
    data[..8].copy_from_slice(&v.to_le_bytes());
    data
}

fn read_all(env: &Env, path: &str) -> std::io::Result<Vec<u8>> {
    let file = env.disk().open(path, OpenMode::Read)?;
    let mut data = vec![0u8; file.len()? as usize];
    let mut at = 0;
    while at < data.len() {
        let n = file.read_at(&mut data[at..], at as u64)?;
        if n == 0 {
            break;
        }
        at += n;
    }
    data.truncate(at);
    Ok(data)
}

pub static ATOMIC_REPLACE_CRASH: Scenario = Scenario {
    id: "sim.disk.atomic-replace-crash",
    declared_at: crate::declared_here!(),
    title: "An fsync'd atomic replace survives a crash; an unsynced write does not",
    proves: "A writer replaces a file version after version the careful way (write a temporary \
             file, sync its data, rename it over the old one, sync the directory) and also \
             writes a scratch file it never syncs. The host crashes at a seeded time. After \
             restart the file must hold exactly the last acknowledged version, whole, and the \
             scratch file's unsynced contents must be gone.",
    faults_expected: &["disk.lost_unsynced"],
    cores: &["sim/src/disk/state.rs", "sim/src/disk/mod.rs"],
    sim_time_max: Duration::from_secs(600),
    body: atomic_replace_crash,
    real: None,
    plan: None,
};

fn atomic_replace_crash(world: World) -> BodyFuture {
    Box::pin(async move {
        let host = world.add_host("store");
        let mut options = host.disk().options();
        options.latency_min = Duration::from_micros(200);
        options.latency_max = Duration::from_millis(3);
        host.disk().set_options(options);
        let env = host.env();
        env.disk().create_dir_all("state").map_err(disk_failure)?;
        env.disk().create_dir_all("scratch").map_err(disk_failure)?;
        env.disk().sync_dir("").map_err(disk_failure)?;
        let seed = world.seed();
        let acked = Arc::new(AtomicU64::new(0));
        let writer_acked = acked.clone();
        let writer_env = env.clone();
        let _writer = env.spawn("writer", async move {
            let env = writer_env;
            for v in 1u64.. {
                let data = version_bytes(seed, v);
                env.disk_pace().await;
                let tmp = env.disk().open("state/current.tmp", OpenMode::Truncate)?;
                tmp.write_at(&data, 0)?;
                env.disk_pace().await;
                tmp.sync_data()?;
                drop(tmp);
                env.disk_pace().await;
                env.disk().rename("state/current.tmp", "state/current")?;
                env.disk_pace().await;
                env.disk().sync_dir("state")?;
                writer_acked.store(v, Ordering::SeqCst);
                env.disk_pace().await;
                // Never synced, in a directory never synced after creation: lost on crash.
                let scratch = env.disk().open(&format!("scratch/{v}"), OpenMode::Create)?;
                scratch.write_at(&data, 0)?;
            }
            Ok::<_, std::io::Error>(())
        });
        let crash_at = Duration::from_micros(5_000 + world.rng("scenario").below(200_000));
        tokio::time::sleep(crash_at).await;
        host.crash();
        let acked = acked.load(Ordering::SeqCst);
        host.restart();
        let env = host.env();
        let check = async {
            let current = match read_all(&env, "state/current") {
                Ok(data) => Some(data),
                Err(e) if e.raw_os_error() == Some(2) => None,
                Err(e) => return Err(disk_failure(e)),
            };
            match (acked, current) {
                (0, None) => {}
                (0, Some(_)) => {
                    return Err(Failure::correctness(
                        "a version nobody acknowledged survived the crash",
                    ));
                }
                (v, None) => {
                    return Err(Failure::correctness(format!(
                        "acknowledged version {v} was lost: the file is missing"
                    )));
                }
                (v, Some(data)) => {
                    let found =
                        u64::from_le_bytes(data[..8.min(data.len())].try_into().unwrap_or([0; 8]));
                    ensure!(
                        data == version_bytes(seed, v),
                        "after the crash the file holds {} bytes claiming version {found}, not exactly acknowledged version {v}",
                        data.len()
                    );
                }
            }
            let scratch = env.disk().list("scratch").map_err(disk_failure)?;
            ensure!(
                scratch.is_empty(),
                "never-synced scratch files survived the crash: {scratch:?}"
            );
            Ok(())
        };
        converge("recovery check", Duration::from_secs(10), check).await?
    })
}

pub static TORN_LOG_RECOVERY: Scenario = Scenario {
    id: "sim.disk.torn-log-recovery",
    declared_at: crate::declared_here!(),
    title: "A checksummed log recovers every synced record after a crash and no torn one",
    proves: "A writer appends checksummed records to a log and syncs after a seeded number of \
             records. The host crashes at a seeded time, tearing unsynced appends at block \
             granularity. Recovery must keep every record synced before the crash, accept no \
             record whose bytes were torn or lost, and stop at the first bad one.",
    faults_expected: &["disk.lost_unsynced", "disk.torn_write"],
    cores: &["sim/src/disk/tear.rs", "sim/src/disk/state.rs"],
    sim_time_max: Duration::from_secs(600),
    body: torn_log_recovery,
    real: None,
    plan: None,
};

fn record_bytes(seed: u64, n: u64) -> Vec<u8> {
    let mut rng = sim::SimRng::new(seed, &format!("record/{n}"));
    let len = 100 + rng.below(3000) as usize;
    let mut payload = vec![0u8; len];
    rng.fill(&mut payload);
    payload[..8].copy_from_slice(&n.to_le_bytes());
    let mut h = Fnv::default();
    h.bytes(&payload);
    let mut out = Vec::with_capacity(12 + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&h.0.to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Scans the log; returns the payloads of the valid prefix.
fn recover(data: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut at = 0;
    while at + 12 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        let sum = u64::from_le_bytes(data[at + 4..at + 12].try_into().expect("8 bytes"));
        if len == 0 || at + 12 + len > data.len() {
            break;
        }
        let payload = &data[at + 12..at + 12 + len];
        let mut h = Fnv::default();
        h.bytes(payload);
        if h.0 != sum {
            break;
        }
        records.push(payload.to_vec());
        at += 12 + len;
    }
    records
}

fn torn_log_recovery(world: World) -> BodyFuture {
    Box::pin(async move {
        let host = world.add_host("store");
        let env = host.env();
        let log = env
            .disk()
            .open("wal", OpenMode::Create)
            .map_err(disk_failure)?;
        drop(log);
        env.disk().sync_dir("").map_err(disk_failure)?;
        let seed = world.seed();
        let mut rng = world.rng("scenario");
        let sync_every = 2 + rng.below(8);
        let synced = Arc::new(AtomicU64::new(0));
        let writer_synced = synced.clone();
        let writer_env = env.clone();
        let _writer = env.spawn("appender", async move {
            let env = writer_env;
            let log = env.disk().open("wal", OpenMode::ReadWrite)?;
            for n in 1u64.. {
                log.append(&record_bytes(seed, n))?;
                if n % sync_every == 0 {
                    log.sync_data()?;
                    writer_synced.store(n, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_micros(100 + (n * 7919) % 900)).await;
            }
            Ok::<_, std::io::Error>(())
        });
        tokio::time::sleep(Duration::from_micros(3_000 + rng.below(100_000))).await;
        host.crash();
        let synced = synced.load(Ordering::SeqCst);
        host.restart();
        let env = host.env();
        let data = read_all(&env, "wal").map_err(disk_failure)?;
        let records = recover(&data);
        ensure!(
            records.len() as u64 >= synced,
            "recovered {} records but {synced} were synced before the crash",
            records.len()
        );
        for (i, payload) in records.iter().enumerate() {
            let n = i as u64 + 1;
            ensure!(
                record_bytes(seed, n)[12..] == payload[..],
                "recovered record {n} differs from what was written"
            );
        }
        tracing::info!(target: "scenarios", "recovered {} records ({synced} synced)", records.len());
        Ok(())
    })
}
