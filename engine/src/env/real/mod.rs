//! The real environment: tokio, the OS clock and entropy, real sockets, files and child
//! processes. This module is the one place allowed to use ambient effects (clippy.toml).
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the real environment is the seam's production side: it is where ambient effects live"
)]

mod disk;
mod net;
mod process;

pub use disk::RealDisk;
pub use net::RealNet;
pub use process::RealProcs;

use super::{Env, EnvParts, RandomSource, WallClock};
use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Settings of a real environment.
#[derive(Clone, Debug)]
pub struct RealEnvOptions {
    /// Host name reported by `Env::host`.
    pub host: String,
    /// Directory that disk paths are relative to. Must exist.
    pub data_dir: PathBuf,
    /// Address listeners bind to.
    pub bind_ip: IpAddr,
    /// Seed for the RNG; `None` seeds from OS entropy.
    pub seed: Option<u64>,
}

impl RealEnvOptions {
    /// Loopback-only environment rooted at `data_dir`.
    pub fn loopback(data_dir: impl Into<PathBuf>) -> Self {
        RealEnvOptions {
            host: "localhost".to_string(),
            data_dir: data_dir.into(),
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            seed: None,
        }
    }
}

/// Builds an [`Env`] on the real world. Must be called inside a tokio runtime with IO
/// and time enabled.
pub fn real_env(options: RealEnvOptions) -> Env {
    let rng = match options.seed {
        Some(seed) => ChaCha12Rng::seed_from_u64(seed),
        None => ChaCha12Rng::from_os_rng(),
    };
    Env::new(EnvParts {
        host: options.host.clone(),
        clock: Arc::new(RealClock),
        random: Arc::new(RealRandom(Mutex::new(rng))),
        tasks: None,
        net: Arc::new(RealNet::new(options.bind_ip)),
        disk: Arc::new(RealDisk::new(options.data_dir.clone())),
        procs: Arc::new(RealProcs::new(options.data_dir)),
    })
}

struct RealClock;

impl WallClock for RealClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

struct RealRandom(Mutex<ChaCha12Rng>);

impl RandomSource for RealRandom {
    fn next_u64(&self) -> u64 {
        self.0.lock().expect("rng lock poisoned").next_u64()
    }

    fn os_entropy(&self) -> bool {
        true
    }
}
