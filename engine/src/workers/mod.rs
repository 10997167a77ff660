//! Worker supervision: the subprocesses that back sessions (BRIEF §4, `workers`).
//!
//! Logic that is intricate lives in plain cores that take `now` and inputs and return
//! decisions: [`lifecycle`] (the per-worker state machine), [`retry`] (backoff with
//! jitter, bounded), [`breaker`] (restart backoff and circuit breaker), [`memory`]
//! (growth tracking), [`disk`] (quota alert and read-only mode), [`sanitize`] (environment variables), [`pool`] (warm pool). The
//! async shell is thin: [`supervise`] runs one task per worker that owns its child
//! process; [`manager`] is the registry of named workers.

pub mod breaker;
mod config;
pub mod disk;
mod error;
pub mod lifecycle;
mod manager;
pub mod memory;
mod name;
mod oversight;
pub mod pool;
mod ports;
pub mod program;
mod reaper;
mod request;
pub mod retry;
pub mod sanitize;
mod supervise;
mod worker;

pub use config::{PortRange, WorkerConfig};
pub use error::WorkerError;
pub use lifecycle::WorkerStatus;
pub use manager::WorkerManager;
pub use name::NAME_BYTES_MAX;
pub use oversight::{LargeFile, OversightRequest};
pub use pool::{CheckRefusal, Claim, ClaimPath, Priority, WarmCheck, WarmPool, WarmPoolConfig};
pub use worker::{Health, Worker, WorkerInfo, WorkerStats};
