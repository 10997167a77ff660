//! The agent platform engine: the system under test.
//!
//! Engine code never reaches for ambient effects (time, randomness, threads, network,
//! files, processes). It receives them through one [`env::Env`] handle at construction.
//! `env::real` implements the handle on tokio and the OS; the `sim` crate implements it
//! on a deterministic simulated world. `engine` never depends on `sim`.

pub mod env;
pub mod gateway;
mod http;
pub mod protocol;
mod root;
pub mod sessions;
pub mod store;
pub mod upstream;
pub mod workers;

pub use root::{
    DrainReport, Engine, EngineConfig, EngineError, LockChoice, STORE_PATH, StoreChoice,
};
