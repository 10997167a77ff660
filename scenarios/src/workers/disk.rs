//! Disks filling up: core.EC-121 (a full file system under the worker's cache, and the
//! cache cap with LRU eviction and the 80 % alert) and enable.1.1.3 (a sandbox filling
//! its ephemeral storage: alert, cleanup proposal, read-only mode).

use crate::kit::plans::{met, on_host, plan_rng, quiet, workers};
use crate::kit::workers::*;
use engine::workers::disk::DiskPolicy;
use engine::workers::program::{Reply, Request};
use engine::workers::{LargeFile, OversightRequest};
use sim::{FaultPlan, SimRng};

pub fn all() -> Vec<&'static Scenario> {
    vec![&DISK_FULL, &EPHEMERAL_STORAGE]
}

workers_scenario!(
    DISK_FULL, "core.EC-121", "Filesystem full for the worker's cache directory",
    proves: "A worker writes seeded cache files, then the file system fills up (seeded room left). \
             A write larger than the room must fail with DiskQuotaExceeded, with a message naming \
             the OS error and what to do; the worker must keep running and healthy, the failed \
             write must leave nothing behind (disk_usage unchanged), a write that fits must still \
             succeed, and once space is freed large writes succeed again. Usage is read through \
             the supervisor (Worker::disk_usage). Before that, a second worker with a seeded disk \
             quota and a cache cap of 90% of it reads and writes seeded cache files: the files on \
             disk must always be exactly those an LRU model keeps (least recently used evicted \
             first), never more than the cap, the worker's eviction count must match the model's, \
             and the 80% disk alert must fire at the first sample over the line (never before; \
             again only after a sample under it, as one taken mid-write between an eviction \
             and its data), read-only mode never (the cap keeps use under 95%).",
    faults: ["disk.enospc"], secs: 300,
    cores: ["engine/src/workers/program/cache.rs", "engine/src/workers/program/cache_index.rs",
            "engine/src/workers/disk.rs", "engine/src/workers/error.rs"],
    // The disk fills up (a seeded room left) when the body marks `full`; 8 MiB are free
    // again when it marks `freed`.
    plan: |seed| workers(seed)
        .after("full", 0, on_host::disk_room(10_000 + plan_rng(seed).below(1_000_000)))
        .after("freed", 0, on_host::disk_room(8 * MIB)),
    body: disk_full
);
async fn disk_full(mut stage: Stage) -> Outcome {
    cache_cap(&mut stage).await?;
    let worker = stage.start_worker("cache", stage.config("cache")).await?;
    let pid = ready_pid(&worker)?;
    let mut usage = 0;
    for j in 0..1 + stage.rng.below(4) {
        let bytes = 1 + stage.rng.below(500_000);
        let written = write_cache(&worker, j, &format!("warm-{j}"), bytes).await;
        written.or_fail("warm-up write")?;
        usage += bytes;
    }
    ensure_usage(&worker, usage, "after the warm-up")?;
    let Some(room) = met::disk_room(&stage.mark("full")) else {
        // The disk never fills up (a shrunk plan): large writes succeed.
        let written = write_cache(&worker, 300, "big-again", 4 * MIB).await;
        written.or_fail("a large write on a disk with room")?;
        ensure_usage(&worker, usage + 4 * MIB, "after a large write")?;
        return stop_clean(&stage, &worker).await;
    };
    for j in 0..1 + stage.rng.below(3) {
        let bytes = room + 1 + stage.rng.below(2_000_000);
        let result = write_cache(&worker, 100 + j, &format!("big-{j}"), bytes).await;
        ensure!(no_space(&result), "{bytes} bytes, {room} free: {result:?}");
        ensure_usage(&worker, usage, "after a failed write")?;
    }
    ensure!(ready_pid(&worker)? == pid, "did not survive the full disk");
    ensure_healthy(&worker, "the disk full").await?;
    let fits = 1 + stage.rng.below(room);
    let written = write_cache(&worker, 200, "fits", fits).await;
    written.or_fail("a write that fits")?;
    usage += fits;
    ensure_usage(&worker, usage, "after a write that fits")?;
    let freed = met::disk_room(&stage.mark("freed"));
    let written = write_cache(&worker, 300, "big-again", 4 * MIB).await;
    if freed.is_some_and(|room| room >= 4 * MIB) {
        written.or_fail("a large write once space is freed")?;
        usage += 4 * MIB;
    } else {
        // Still full (a plan without the freeing): the write fails and leaves nothing.
        ensure!(
            no_space(&written),
            "4 MiB, {} free: {written:?}",
            room - fits
        );
    }
    ensure_usage(&worker, usage, "after freeing space")?;
    stop_clean(&stage, &worker).await
}

/// The cache cap: an LRU model beside the worker's cache, and the 80 % alert.
async fn cache_cap(stage: &mut Stage) -> Outcome {
    let quota = (8 + stage.rng.below(9)) * MIB;
    let cap = quota / 10 * 9;
    let interval = ms(500 + 100 * stage.rng.below(6));
    let mut policy = DiskPolicy::with_quota(quota);
    policy.cache_cap_bytes = Some(cap);
    policy.sample_interval = interval;
    let mut config = stage.config("lru");
    config.disk = Some(policy);
    let cache_dir = format!("{}/cache", config.dir);
    let worker = stage.start_worker("lru", config).await?;
    let alert_line = percent_of(quota, 80);
    // Least recently used first.
    let mut model: Vec<(String, u64)> = Vec::new();
    let mut evictions = 0u64;
    let (mut crossings, mut evicting_writes) = (0u64, 0u64);
    let mut above = false;
    let mut op = 0u64;
    while op < 12 || crossings == 0 || evictions < 2 {
        ensure!(op < 200, "no eviction after 200 operations");
        op += 1;
        if !model.is_empty() && stage.rng.below(3) == 0 {
            let (name, bytes) = model.remove(stage.rng.below(model.len() as u64) as usize);
            read_cache(&worker, op, &name).await?;
            model.push((name, bytes));
        } else {
            let bytes = quota / 10 + stage.rng.below(quota / 4 - quota / 10);
            let mut total: u64 = model.iter().map(|f| f.1).sum();
            let mut evicted = false;
            while total + bytes > cap {
                let (_, b) = model.remove(0);
                total -= b;
                evictions += 1;
                evicted = true;
            }
            // Only a write that evicts while the alert is raised can re-arm it.
            evicting_writes += u64::from(evicted && above);
            let name = format!("f{op}");
            let written = write_cache(&worker, op, &name, bytes).await;
            written.or_fail("a cache write under the cap")?;
            model.push((name, bytes));
        }
        tokio::time::sleep(settle(interval)).await;
        let total: u64 = model.iter().map(|f| f.1).sum();
        let mut kept: Vec<String> = model.iter().map(|f| f.0.clone()).collect();
        kept.sort();
        let on_disk = listed(stage.env.disk(), &cache_dir)?;
        ensure!(on_disk == kept, "op {op}: {on_disk:?}, model {kept:?}");
        ensure!(total <= cap, "op {op}: model {total} > {cap}");
        ensure_usage(&worker, total, &format!("op {op}"))?;
        if total >= alert_line && !above {
            crossings += 1;
        }
        above = total >= alert_line;
        let stats = worker.stats();
        // A sample taken mid-write (after its evictions, before its data) may dip under
        // the line and re-arm the alert: at most once per write that evicts while the
        // alert is raised (the deep sweep met three alerts for one crossing, at seeds
        // 182, 60177 and 60731).
        ensure!(
            stats.disk_alerts >= crossings && stats.disk_alerts <= crossings + evicting_writes,
            "op {op}: {} disk alerts after {crossings} crossings of 80% ({evicting_writes} \
             evicting writes above it)",
            stats.disk_alerts
        );
        ensure!(stats.read_only_entries == 0, "op {op}: {stats:?}");
    }
    let replies = ask(&worker, Request::Stats { id: 9_999 }).await?;
    ensure!(
        matches!(replies.last(), Some(Reply::Stats { cache_evictions, .. }) if *cache_evictions == evictions),
        "the worker counted {replies:?} evictions, the model {evictions}"
    );
    worker.stop().await.or_fail("stop")?;
    stage.manager.unregister("lru").await.or_fail("unregister")
}

workers_scenario!(
    EPHEMERAL_STORAGE, "enable.1.1.3", "Sandbox fills its ephemeral storage",
    proves: "A sandbox (worker) with a seeded disk quota, on a disk with slightly less room, writes \
             two files over 10 MiB and a seeded mix of others up to 75% of the quota: no alert may \
             fire. Filled past 80%, the disk watch must alert once and file one oversight request \
             listing exactly the files over 10 MiB (paths and sizes, found by the engine). Past 95%, \
             the sandbox must be put in read-only mode within one sample: a write is refused with \
             ReadOnly and changes nothing. Once the cleanup is approved, the large files must be \
             gone, the bytes freed reported, read-only mode lifted at the next sample and writes \
             accepted. Last, a write larger than the room left (within the quota) must fail with \
             DiskQuotaExceeded naming the OS error, leave nothing behind, and the sandbox answer.",
    faults: ["disk.enospc"], secs: 900,
    cores: ["engine/src/workers/disk.rs", "engine/src/workers/lifecycle/resources.rs",
            "engine/src/workers/oversight.rs", "engine/src/workers/program/cache.rs"],
    plan: ephemeral_storage_plan,
    body: ephemeral_storage
);
const LARGE_BYTES: u64 = 10 * MIB;

/// The room on the disk, the body's first draw (its quota is slightly more).
fn ephemeral_room(rng: &mut SimRng) -> u64 {
    (48 + rng.below(49)) * MIB
}
/// The disk keeps that room (less than the quota) from the `started` mark on. No swarm:
/// the oracle samples the disk monitor one interval plus 10 ms after each step; a slow
/// disk operation, a late message or a slow start stretches a sample past it.
fn ephemeral_storage_plan(seed: u64) -> FaultPlan {
    let room = ephemeral_room(&mut SimRng::new(seed, "scenario"));
    quiet(seed).after("started", 0, on_host::disk_room(room))
}

async fn ephemeral_storage(mut stage: Stage) -> Outcome {
    let room = ephemeral_room(&mut stage.rng);
    let quota = room + 1 + stage.rng.below(room / 25);
    let policy = DiskPolicy::with_quota(quota);
    let interval = policy.sample_interval;
    let mut config = stage.config("sandbox");
    config.disk = Some(policy);
    let cache_dir = format!("{}/cache", config.dir);
    let worker = stage.start_worker("sandbox", config).await?;
    // The disk's room, when the plan limits it (else the quota is all that limits).
    let disk_room = met::disk_room(&stage.mark("started"));
    let mut large: Vec<LargeFile> = Vec::new();
    let mut usage = 0;
    let ids = std::cell::Cell::new(0u64);
    let write = async |name: String, bytes: u64| {
        ids.set(ids.get() + 1);
        write_cache(&worker, ids.get(), &name, bytes).await
    };
    // Up to 75 %: quiet.
    loop {
        let j = ids.get();
        let (name, bytes) = if j < 2 || stage.rng.below(3) == 0 {
            let bytes = LARGE_BYTES + MIB + stage.rng.below(6 * MIB);
            (format!("large-{j}"), bytes)
        } else {
            (format!("small-{j}"), 1 + stage.rng.below(9 * MIB))
        };
        if usage + bytes > quota / 4 * 3 {
            ensure!(j >= 2, "the two large files did not fit");
            break;
        }
        write(name.clone(), bytes).await.or_fail("a write")?;
        usage += bytes;
        if bytes > LARGE_BYTES {
            let path = format!("{cache_dir}/{name}");
            large.push(LargeFile { path, bytes });
        }
        tokio::time::sleep(settle(interval)).await;
        let (now, alerts) = (worker.disk_usage(), worker.stats().disk_alerts);
        ensure!(
            now == usage && alerts == 0,
            "at {usage} of {quota} bytes: usage {now}, {alerts} alerts"
        );
    }
    large.sort_by(|a, b| a.path.cmp(&b.path));
    // Past 80 % (small steps, so the crossing write stays under 95 %).
    let mut fill = async |line: u64, usage: &mut u64| -> Outcome {
        while *usage < line {
            let bytes = (1 + stage.rng.below(2 * MIB)).min(room - *usage);
            let written = write(format!("fill-{}", *usage), bytes).await;
            written.or_fail("a write that fits")?;
            *usage += bytes;
        }
        tokio::time::sleep(settle(interval)).await;
        Ok(())
    };
    fill(percent_of(quota, 80), &mut usage).await?;
    let stats = worker.stats();
    let (alerts, read_only) = (stats.disk_alerts, stats.read_only_entries);
    ensure!(alerts == 1 && read_only == 0, "past 80%: {stats:?}");
    let requests = worker.oversight_requests();
    ensure!(
        matches!(&requests[..], [OversightRequest::ApproveCleanup { files, quota_bytes, .. }]
            if *files == large && *quota_bytes == quota),
        "oversight requests past 80%: {requests:?}; files over 10 MiB: {large:?}"
    );
    // Past 95 %: read-only.
    fill(percent_of(quota, 95), &mut usage).await?;
    let stats = worker.stats();
    let (alerts, read_only) = (stats.disk_alerts, stats.read_only_entries);
    ensure!(alerts == 1 && read_only == 1, "past 95%: {stats:?}");
    let refused = write("refused".to_string(), 1).await;
    let read_only = matches!(&refused, Err(WorkerError::ReadOnly { .. }));
    ensure!(read_only, "a write in read-only mode gave {refused:?}");
    ensure_usage(&worker, usage, "after the refused write")?;
    // The cleanup is approved.
    let freed = worker.approve_cleanup().await.or_fail("cleanup")?;
    let expected: u64 = large.iter().map(|f| f.bytes).sum();
    ensure!(
        freed == Some(expected),
        "the approved cleanup freed {freed:?} bytes; the large files held {expected}"
    );
    usage -= expected;
    let disk = stage.env.disk();
    let gone = large.iter().all(|f| disk.metadata(&f.path).is_err());
    ensure!(gone, "the large files are still there after the cleanup");
    ensure_usage(&worker, usage, "after the cleanup")?;
    tokio::time::sleep(settle(interval)).await;
    let (stats, requests) = (worker.stats(), worker.oversight_requests());
    ensure!(
        stats.read_only_exits == 1 && requests.is_empty(),
        "after the cleanup: {stats:?}, {requests:?}"
    );
    let bytes = 1 + stage.rng.below(MIB);
    let written = write("after-cleanup".to_string(), bytes).await;
    written.or_fail("a write after the cleanup")?;
    usage = worker.disk_usage();
    // The disk is smaller than the quota: a write within the quota but past the room.
    let pid = ready_pid(&worker)?;
    let bytes = room - usage + 1 + stage.rng.below(quota - room);
    let result = write("too-big".to_string(), bytes).await;
    if disk_room.is_some_and(|disk_room| disk_room < usage + bytes) {
        ensure!(
            matches!(&result, Err(e @ WorkerError::DiskQuotaExceeded { .. })
                if e.to_string().contains("No space left on device")),
            "a {bytes}-byte write with {} bytes of room left gave {result:?}",
            room - usage
        );
    } else {
        // The disk has room (a shrunk plan): the write, within the quota, succeeds.
        result.or_fail("a write within the quota on a disk with room")?;
        usage += bytes;
    }
    ensure_usage(&worker, usage, "after the failed write")?;
    ensure!(ready_pid(&worker)? == pid, "died of the failed write");
    ping(&worker, 1).await?;
    stop_clean(&stage, &worker).await
}
