//! Configuration of one worker: what to run and the limits it runs under.

use super::breaker::RestartPolicy;
use super::disk::DiskPolicy;
use super::memory::MemoryPolicy;
use super::retry::RetryPolicy;
use std::time::Duration;

/// Ports a supervisor hands to its workers' endpoints (one range per manager).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const DEFAULT: PortRange = PortRange {
        first: 20_000,
        last: 20_999,
    };
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The worker binary.
    pub program: String,
    /// Arguments added after the ones the supervisor sets.
    pub args: Vec<String>,
    /// Variables for the worker, sanitized before use (see `sanitize`).
    pub env: Vec<(String, String)>,
    /// The worker's directory on the host's disk (its cache and snapshot live there).
    pub dir: String,
    /// Version of the configuration it was started with (warm-pool freshness).
    pub config_version: u64,
    /// The worker must report ready within this (60 s by default).
    pub init_timeout: Duration,
    /// A slower startup is logged as a warning (2 s).
    pub startup_warn_after: Duration,
    pub connect: RetryPolicy,
    pub restart: RestartPolicy,
    pub memory: Option<MemoryPolicy>,
    /// Heartbeats the worker sends on stdout, and how long silence may last before
    /// the worker is declared hung and killed.
    pub heartbeat_interval: Duration,
    pub heartbeat_timeout: Duration,
    /// Between SIGTERM and SIGKILL when stopping (30 s).
    pub grace: Duration,
    /// A health check answers within this bound (100 ms).
    pub health_timeout: Duration,
    /// Disk quota, cache cap and the disk watch; `None`: only the disk's capacity
    /// limits the worker (a full disk is still a clear error).
    pub disk: Option<DiskPolicy>,
    /// When the memory watch stops a worker, it first asks for a checkpoint of its
    /// session, and waits this long for it (5 s).
    pub checkpoint_timeout: Duration,
}

impl WorkerConfig {
    pub fn new(program: impl Into<String>, dir: impl Into<String>) -> Self {
        WorkerConfig {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: dir.into(),
            config_version: 1,
            init_timeout: Duration::from_secs(60),
            startup_warn_after: Duration::from_secs(2),
            connect: RetryPolicy::endpoint_connect(),
            restart: RestartPolicy::default_policy(),
            memory: None,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            grace: Duration::from_secs(30),
            health_timeout: Duration::from_millis(100),
            disk: None,
            checkpoint_timeout: Duration::from_secs(5),
        }
    }

    /// Panics with the offending field when the configuration contradicts itself.
    pub fn check(&self) {
        assert!(!self.program.is_empty(), "program must be set");
        assert!(
            !self.init_timeout.is_zero(),
            "init_timeout must be positive"
        );
        assert!(
            self.heartbeat_interval.is_zero() || self.heartbeat_timeout > self.heartbeat_interval,
            "heartbeat_timeout must exceed heartbeat_interval"
        );
        self.connect.check();
        self.restart.check();
        if let Some(memory) = &self.memory {
            memory.check();
        }
        if let Some(disk) = &self.disk {
            disk.check();
        }
    }
}
