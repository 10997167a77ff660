//! The stages scenarios play on: the channel stage (an engine instance serving its
//! gateway on a simulated host, with client hosts), the workers stage (an engine host
//! whose worker manager scenarios drive, also on this machine for reality checks), and
//! the worker program installed as a simulated process, and the local model API on a
//! host of its own.

pub mod channel;
pub mod client;
pub mod lock;
mod sim_worker;
mod upstream;
pub mod workers;

pub use sim_worker::install_worker;
pub(crate) use sim_worker::rooted_at;
pub use upstream::{host_upstream, host_upstream_over};
