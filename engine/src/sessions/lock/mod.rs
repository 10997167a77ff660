//! The distributed session lock (api.SCALE-001): one small lock service that many engine
//! instances share, and the client each instance uses to take a session's lock.
//!
//! - [`backoff`]: the pure core: exponential delays between tries, optional symmetric
//!   jitter drawn from a raw `u64`, and a schedule that ends at the acquire timeout.
//! - [`protocol`]: the line protocol (`ACQUIRE key owner ttl_ms` → `OK`/`BUSY`,
//!   `RELEASE key owner` → `OK`/`NOT_OWNER`, anything malformed → `ERR reason`).
//! - [`server`]: [`LockServer`], the service on its own host, over the environment's
//!   network, with leases that expire in `tokio::time` (virtual in a world); its table
//!   ([`LockTable`]) is a pure core that takes `now`.
//! - [`client`]: [`SessionLock`], which retries `BUSY` on the backoff schedule.
//! - [`key`]: [`session_key`], the key a resume of a stored session locks.
//! - [`holds`]: named hold-offs (`HOLD key ms`, `CHECK key`) the service keeps for its
//!   instances: the model API's 429 window, shared by every instance of an account.
//!
//! An engine gets them from `Engine::start` (`EngineConfig::lock`): it may host the
//! service, and its sessions take the lock around a resume's check and claim.

pub mod backoff;
pub mod client;
pub mod holds;
pub mod key;
pub mod protocol;
pub mod server;

pub use backoff::{AcquireSchedule, LockBackoff, NextTry};
pub use client::{Held, LockError, SessionLock, SessionLockConfig};
pub use holds::{HoldStats, HoldTable};
pub use key::session_key;
pub use protocol::{LockCommand, LockReply};
pub use server::{LockLimits, LockServer, LockStats, LockTable};
