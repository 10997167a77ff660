//! The disk contract against both disks, until the shared conformance suite
//! (`tests/conformance/main.rs`) runs it for both environments.

#[path = "conformance/disk.rs"]
mod disk;

use engine::env::real::{RealEnvOptions, RealNet, RealProcs, real_env};
use engine::env::{BoxFuture, Env, EnvParts, RandomSource, Spawner, WallClock};
use sim::disk::{DiskOptions, SimDisk};
use sim::{FaultCounters, SimRng};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;

#[tokio::test]
async fn real_disk_meets_the_disk_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    if let Err(e) = disk::disk_contract(&env).await {
        panic!("real disk: {e}");
    }
}

/// Only the disk matters here; the other parts are inert stand-ins.
struct EpochClock;

impl WallClock for EpochClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
}

struct CountingRandom(AtomicU64);

impl RandomSource for CountingRandom {
    fn next_u64(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

struct NoSpawner;

impl Spawner for NoSpawner {
    fn spawn(&self, name: &'static str, _future: BoxFuture<'static, ()>) -> JoinHandle<()> {
        unreachable!("the disk contract spawns nothing, yet asked to spawn {name}")
    }
}

fn sim_disk_env(disk: Arc<SimDisk>) -> Env {
    Env::new(EnvParts {
        host: "host-a".to_string(),
        clock: Arc::new(EpochClock),
        random: Arc::new(CountingRandom(AtomicU64::new(0))),
        spawner: Arc::new(NoSpawner),
        net: Arc::new(RealNet::new(IpAddr::from([127, 0, 0, 1]))),
        disk,
        procs: Arc::new(RealProcs::new(".".into())),
    })
}

#[tokio::test]
async fn sim_disk_meets_the_disk_contract() {
    let options = DiskOptions {
        latency_min: Duration::from_micros(50),
        latency_max: Duration::from_micros(500),
        ..DiskOptions::quiet()
    };
    let faults = FaultCounters::default();
    let disk = Arc::new(SimDisk::new(
        "host-a",
        options,
        SimRng::new(7, "disk"),
        faults.clone(),
    ));
    let env = sim_disk_env(disk.clone());
    if let Err(e) = disk::disk_contract(&env).await {
        panic!("sim disk: {e}");
    }
    assert_eq!(
        disk.open_files(),
        0,
        "every handle the contract opened is closed"
    );
    assert!(faults.snapshot().is_empty(), "a quiet disk fires no faults");
}
