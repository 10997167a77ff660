//! An `Env` for a lone host that has only processes: for unit tests of programs and for
//! running the process contract without a world. Its network and disk refuse every
//! operation (`Unsupported`); its wall clock is a fixed epoch plus virtual time.

use super::host::SimProcs;
use crate::seed::SimRng;
use engine::env::{
    BoxFuture, Disk, DiskFile, Env, EnvParts, FileMeta, NetAddr, NetListener, NetStream, Network,
    OpenMode, RandomSource, WallClock,
};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Builds the host's `Env` around `procs` and hands it to `procs` (`set_env`). Call it
/// inside the runtime that will run the children.
pub fn standalone_env(procs: Arc<SimProcs>, seed: u64) -> Env {
    let env = Env::new(EnvParts {
        host: procs.host.clone(),
        clock: Arc::new(EpochClock {
            start: Instant::now(),
        }),
        random: Arc::new(Random(Mutex::new(SimRng::new(seed, "procs.standalone")))),
        tasks: procs.tasks.clone(),
        net: Arc::new(NoNet),
        disk: Arc::new(NoDisk),
        procs: procs.clone(),
    });
    procs.set_env(env.clone());
    env
}

/// 2023-11-14T22:13:20Z: a fixed, recognisable epoch.
const EPOCH_UNIX_S: u64 = 1_700_000_000;

struct EpochClock {
    start: Instant,
}

impl WallClock for EpochClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(EPOCH_UNIX_S) + self.start.elapsed()
    }
}

struct Random(Mutex<SimRng>);

impl RandomSource for Random {
    fn next_u64(&self) -> u64 {
        self.0.lock().expect("standalone rng poisoned").next_u64()
    }
}

fn unsupported(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{what}: a standalone process host has no network or disk"),
    )
}

struct NoNet;

impl Network for NoNet {
    fn bind(&self, _port: u16) -> BoxFuture<'_, io::Result<Box<dyn NetListener>>> {
        Box::pin(async { Err(unsupported("bind")) })
    }

    fn connect<'a>(&'a self, _addr: &'a NetAddr) -> BoxFuture<'a, io::Result<Box<dyn NetStream>>> {
        Box::pin(async { Err(unsupported("connect")) })
    }

    fn resolve<'a>(
        &'a self,
        _via: engine::env::ResolverId,
        _name: &'a str,
    ) -> BoxFuture<'a, io::Result<Vec<engine::env::Resolved>>> {
        Box::pin(async { Err(unsupported("resolve")) })
    }
}

struct NoDisk;

impl Disk for NoDisk {
    fn open(&self, _path: &str, _mode: OpenMode) -> io::Result<Box<dyn DiskFile>> {
        Err(unsupported("open"))
    }

    fn rename(&self, _from: &str, _to: &str) -> io::Result<()> {
        Err(unsupported("rename"))
    }

    fn remove(&self, _path: &str) -> io::Result<()> {
        Err(unsupported("remove"))
    }

    fn list(&self, _dir: &str) -> io::Result<Vec<String>> {
        Err(unsupported("list"))
    }

    fn metadata(&self, _path: &str) -> io::Result<FileMeta> {
        Err(unsupported("metadata"))
    }

    fn create_dir_all(&self, _dir: &str) -> io::Result<()> {
        Err(unsupported("create_dir_all"))
    }

    fn sync_dir(&self, _dir: &str) -> io::Result<()> {
        Err(unsupported("sync_dir"))
    }
}
