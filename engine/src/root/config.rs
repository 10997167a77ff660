//! Everything a deployment of one engine instance sets, with named profiles and no
//! silent defaults: [`EngineConfig::production`] is what `engine serve` runs,
//! [`EngineConfig::simulation`] the small instance scenarios run (a few sessions, a
//! small pool, short init timeouts). Limits are configuration, so a 4-hour session
//! limit is a few simulated seconds in a scenario.

use super::LockChoice;
use crate::gateway::{GatewayConfig, TokenKeys};
use crate::sessions::SessionsConfig;
use crate::store::SessionStore;
use crate::workers::{PortRange, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;

/// Where the instance keeps its sessions.
#[derive(Clone)]
pub enum StoreChoice {
    /// Nothing durable: sessions live and die with the instance.
    None,
    /// A redb store at this path of the environment's disk, opened and checked at start
    /// (a corrupt store, or one of another version, stops the start with its reason).
    Open { path: String },
    /// A store another instance on the same host opened (two instances behind one load
    /// balancer share it; redb takes no file locks, so one opener per file per host).
    /// Not checked again: the start-up check runs once per deployment start.
    Shared(Arc<SessionStore>),
}

impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::None => f.write_str("None"),
            StoreChoice::Open { path } => write!(f, "Open({path})"),
            StoreChoice::Shared(_) => f.write_str("Shared"),
        }
    }
}

#[derive(Clone)]
pub struct EngineConfig {
    /// The gateway's port (0: any free one; `Engine::addr` says which).
    pub port: u16,
    /// Ports this instance's workers' endpoints get.
    pub worker_ports: PortRange,
    /// How often the zombie watchdog reaps children the supervisor gave up on.
    pub watchdog_interval: Duration,
    pub sessions: SessionsConfig,
    pub gateway: GatewayConfig,
    pub store: StoreChoice,
    /// The distributed session lock a resume from the store takes first.
    pub lock: LockChoice,
}

/// Where the instance's store lives on its disk.
pub const STORE_PATH: &str = "store/sessions.redb";

impl EngineConfig {
    /// The engine as `engine serve` runs it: 100 sessions, 3 warm workers, sessions in
    /// a redb store, no session lock (`engine serve --serve-lock` / `--lock-service`
    /// choose one), the worker binary at `program`.
    pub fn production(program: impl Into<String>, keys: TokenKeys) -> Self {
        let worker = WorkerConfig::new(program, "sessions");
        EngineConfig {
            port: 0,
            worker_ports: PortRange::DEFAULT,
            watchdog_interval: Duration::from_secs(5),
            sessions: SessionsConfig::new(worker),
            gateway: GatewayConfig::new(keys),
            store: StoreChoice::Open {
                path: STORE_PATH.to_string(),
            },
            lock: LockChoice::None,
        }
    }

    /// A small instance for scenarios: 8 sessions, 2 warm workers, a
    /// 10 s worker init timeout, sessions in a redb store on the host's disk, no
    /// session lock.
    pub fn simulation(program: impl Into<String>, keys: TokenKeys) -> Self {
        let mut worker = WorkerConfig::new(program, "sessions");
        worker.init_timeout = Duration::from_secs(10);
        let mut sessions = SessionsConfig::new(worker);
        sessions.pool.size_target = 2;
        sessions.session_limit = 8;
        EngineConfig {
            port: 0,
            worker_ports: PortRange::DEFAULT,
            watchdog_interval: Duration::from_secs(5),
            sessions,
            gateway: GatewayConfig::new(keys),
            store: StoreChoice::Open {
                path: STORE_PATH.to_string(),
            },
            lock: LockChoice::None,
        }
    }

    /// Panics with the offending field when the configuration contradicts itself.
    pub fn check(&self) {
        assert!(
            !self.watchdog_interval.is_zero(),
            "watchdog_interval must be positive"
        );
        assert!(
            self.worker_ports.first <= self.worker_ports.last,
            "worker_ports is empty"
        );
        self.sessions.check();
        self.lock.check();
    }
}
