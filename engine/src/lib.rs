//! The agent platform engine: the system under test.
//!
//! Engine code never reaches for ambient effects (time, randomness, threads, network,
//! files, processes). It receives them through one [`env::Env`] handle at construction.
//! `env::real` implements the handle on tokio and the OS; the `sim` crate implements it
//! on a deterministic simulated world. `engine` never depends on `sim`.
//!
//! One engine instance is assembled in one place, [`Engine::start`] (the composition
//! root, `root/`), from an [`EngineConfig`] profile.
//!
//! **The public API is deliberate** (everything else is `pub(crate)` or narrower, and
//! `unreachable_pub` is denied so a stray `pub` cannot widen it):
//! - for the binaries and every scenario stage: [`Engine`], [`EngineConfig`] and what it
//!   configures, and read-only views of a running engine (sessions, pool, workers,
//!   gateway stats, store);
//! - for `sim`: the seams of [`env`] it implements;
//! - for the client channel's peers and the fuzzers: [`protocol`] (frames, decoding);
//! - for the property tests: the pure cores (`sessions::core`, `sessions::replay`,
//!   `workers::lifecycle`, `workers::pool`, the breakers, retry and watches, the resolver
//!   chain `upstream::DnsCore`);
//! - for the simulated worker process: [`workers::program`], the worker program itself;
//! - for the egress scenario: [`egress`] (its stats, its cores for tests) and
//!   [`serve_router`] (a simulated outside web server on a stage host).

#![deny(unreachable_pub)]

pub mod egress;
pub mod env;
pub mod gateway;
mod http;
pub mod met;
pub mod protocol;
mod root;
pub mod sessions;
pub mod store;
pub mod upstream;
pub mod workers;

/// Serves an axum router on a listener of the environment: the gateway's and the local
/// model server's way, also how a stage hosts a simulated outside web server.
pub use http::serve_router;
pub use root::{
    DrainReport, Engine, EngineConfig, EngineError, LockChoice, STORE_PATH, StoreChoice,
};
