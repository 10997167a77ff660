//! Sessions: a table of live sessions, each backed by a worker, with a lifecycle state
//! machine, a pre-warm pool, admission at the limit, time and memory limits, resume and
//! fork. The intricate parts are pure cores (`lifecycle`, `limits`, `prewarm`,
//! `admission`); `service` and `driver` are the async shell around them.

pub mod admission;
pub mod config;
mod driver;
mod durable;
pub mod lifecycle;
pub mod limits;
pub mod lock;
pub mod replay;
mod resume_lock;
mod service;
pub mod session;
mod upstream;

pub use admission::AdmissionMode;
pub use config::{QueryMode, SessionsConfig};
pub(crate) use durable::check_store;
pub use lifecycle::SessionState;
pub use limits::SessionLimits;
pub use service::{CreateError, ForkError, Resumed, Sessions, SessionsParts, Tombstone};
pub use session::{Session, SessionStats};
pub use upstream::UpstreamCheck;
