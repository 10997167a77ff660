//! The stages scenarios play on: the channel stage (an engine instance serving its
//! gateway on a simulated host, with client hosts), the workers stage (an engine host
//! whose worker manager scenarios drive, also on this machine for reality checks),
//! the worker program installed as a simulated process, the local model API on a
//! host of its own, and a simulated outside web server (`outside.rs`).

pub mod channel;
pub mod client;
pub mod lock;
pub mod outside;
mod sim_worker;
mod upstream;
pub mod workers;

pub use sim_worker::install_worker;
pub(crate) use sim_worker::rooted_at;
pub use upstream::{host_upstream, host_upstream_over};
