//! The lock service: a table of leases (a pure core that takes `now`) behind a line
//! protocol on the environment's network.
//!
//! A lease lasts its TTL from its last grant; an expired lease is free for anyone (the
//! holder's later RELEASE gets `NOT_OWNER`). The table lives in memory only, so a
//! service that starts again after a crash cannot know whose leases were live: started
//! with a quiet period ([`LockLimits::quiet`], one longest lease), it grants nothing
//! until every lease its predecessor could have granted has run out, and it refuses
//! TTLs above that longest lease (`ERR`), which is what makes the wait long enough.
//!
//! The server also measures what contention looks like from its side: how many ACQUIREs were retries (the same owner asking for
//! the same key again after a `BUSY`), and the most retries that arrived within one
//! millisecond (the thundering herd).

use super::holds::{HoldStats, HoldTable};
use super::protocol::{LINE_BYTES_MAX, LockCommand, LockReply};
use crate::env::{Env, NetAddr, NetStream, Task};
use crate::workers::program::lines::{Line, LineReader};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// An ACQUIRE counts as a retry if the same owner was refused the same key at most
/// this long before.
const RETRY_MEMORY: Duration = Duration::from_secs(10);
/// Refusals remembered at most (past it, old ones are dropped first).
const REFUSALS_MAX: usize = 16 * 1024;
/// Expired leases are swept when the table grows past a multiple of this.
const SWEEP_EVERY: usize = 1024;

/// What the server has done, counted since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockStats {
    pub acquires: u64,
    /// ACQUIREs answered `OK` (renewals by the holder included).
    pub grants: u64,
    pub busy: u64,
    /// ACQUIREs that repeated a refused one (same key and owner).
    pub retries: u64,
    pub releases: u64,
    pub not_owner: u64,
    /// Grants of a key whose previous lease had expired unreleased.
    pub expired: u64,
    /// Lines answered `ERR`.
    pub errors: u64,
    /// The most retries that arrived within one millisecond, and that millisecond
    /// (since the table's origin).
    pub retry_burst_max: u32,
    pub retry_burst_at: Duration,
    /// Σ over milliseconds of (retries in that millisecond)²: see [`LockStats::retry_crowding`].
    pub retry_window_sq_sum: u64,
}

impl LockStats {
    /// How crowded retries arrive: the mean number of retries that arrived within the
    /// same millisecond as a retry, itself included (Σc² / Σc over millisecond windows).
    /// 1.0 when no two retries ever share a millisecond; k when retries come in lockstep
    /// groups of k. 0.0 without retries. Unlike the peak burst, an average over every
    /// retry: one unlucky millisecond does not move it.
    pub fn retry_crowding(&self) -> f64 {
        if self.retries == 0 {
            0.0
        } else {
            self.retry_window_sq_sum as f64 / self.retries as f64
        }
    }
}

/// What a service grants, and whether it waits first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockLimits {
    /// The longest lease granted: an ACQUIRE asking for more is refused (`ERR`).
    pub lease_max: Duration,
    /// Nothing is granted (`BUSY`) for this long after the start: a service started
    /// again after a crash waits out its predecessor's leases (at least `lease_max`).
    pub quiet: Duration,
}

impl LockLimits {
    /// Leases of at most `lease_max`; after a restart, quiet for one of them.
    pub fn with_lease_max(lease_max: Duration, restarted: bool) -> Self {
        LockLimits {
            lease_max,
            quiet: if restarted { lease_max } else { Duration::ZERO },
        }
    }
}

/// A service that never waits and grants any TTL the protocol carries (a first start,
/// or a table that dies with its only clients).
impl Default for LockLimits {
    fn default() -> Self {
        LockLimits {
            lease_max: Duration::from_millis(super::protocol::TTL_MS_MAX),
            quiet: Duration::ZERO,
        }
    }
}

#[derive(Clone, Debug)]
struct Lease {
    owner: String,
    expires: Duration,
}

/// The leases, keyed by lock key. A pure core: every call takes `now` (time since any
/// fixed origin, never going backwards).
#[derive(Debug, Default)]
pub struct LockTable {
    leases: BTreeMap<String, Lease>,
    /// (key, owner) → when that owner was last refused that key.
    refused: BTreeMap<(String, String), Duration>,
    stats: LockStats,
    window_ms: u64,
    window_retries: u32,
    limits: LockLimits,
    holds: HoldTable,
}

impl LockTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table that grants within `limits` (its quiet period counted from `now` = 0).
    pub fn with_limits(limits: LockLimits) -> Self {
        LockTable {
            limits,
            ..Self::default()
        }
    }

    pub fn stats(&self) -> &LockStats {
        &self.stats
    }

    pub fn hold_stats(&self) -> &HoldStats {
        self.holds.stats()
    }

    /// The owner whose lease on `key` is live at `now`.
    pub fn holder(&self, key: &str, now: Duration) -> Option<&str> {
        self.leases
            .get(key)
            .filter(|l| l.expires > now)
            .map(|l| l.owner.as_str())
    }

    /// How many leases are live at `now`.
    pub fn live_count(&self, now: Duration) -> usize {
        self.leases.values().filter(|l| l.expires > now).count()
    }

    /// Counts a line the server could not understand.
    pub fn on_error(&mut self) {
        self.stats.errors += 1;
    }

    pub fn apply(&mut self, command: LockCommand, now: Duration) -> LockReply {
        match command {
            LockCommand::Acquire { key, owner, ttl } => self.acquire(key, owner, ttl, now),
            LockCommand::Release { key, owner } => self.release(&key, &owner, now),
            LockCommand::Hold { key, hold } => match self.holds.handle_hold(key, hold, now) {
                Ok(()) => LockReply::Ok,
                Err(reason) => {
                    self.stats.errors += 1;
                    LockReply::Err(reason)
                }
            },
            LockCommand::Check { key } => match self.holds.handle_check(&key, now) {
                Some(left) => LockReply::Held(left),
                None => LockReply::Clear,
            },
        }
    }

    fn acquire(&mut self, key: String, owner: String, ttl: Duration, now: Duration) -> LockReply {
        self.stats.acquires += 1;
        let id = (key, owner);
        let retry = self
            .refused
            .get(&id)
            .is_some_and(|at| now.saturating_sub(*at) <= RETRY_MEMORY);
        if retry {
            self.count_retry(now);
        }
        let (key, owner) = id;
        if ttl > self.limits.lease_max {
            self.stats.errors += 1;
            return LockReply::Err(format!(
                "ttl {} ms is above this service's longest lease, {} ms",
                ttl.as_millis(),
                self.limits.lease_max.as_millis()
            ));
        }
        let expires = now.saturating_add(ttl);
        // Inside the quiet period a lease of the previous incarnation may still be live.
        let holder = self
            .leases
            .get(&key)
            .filter(|l| l.owner != owner && l.expires > now);
        if let Some(holder) = holder
            && !retry
        {
            crate::met!(
                "lock.contention",
                "{owner}'s claim of {key} refused: held by {} for {} ms more",
                holder.owner,
                holder.expires.saturating_sub(now).as_millis()
            );
        }
        let busy = now < self.limits.quiet || holder.is_some();
        if busy {
            self.stats.busy += 1;
            self.remember_refusal(key, owner, now);
            return LockReply::Busy;
        }
        if let Some(lease) = self.leases.get_mut(&key) {
            if lease.owner != owner {
                self.stats.expired += 1;
                lease.owner.clone_from(&owner);
            }
            lease.expires = expires;
        } else {
            if self.leases.len() >= SWEEP_EVERY && self.leases.len().is_multiple_of(SWEEP_EVERY) {
                self.leases.retain(|_, l| l.expires > now);
            }
            self.leases.insert(
                key.clone(),
                Lease {
                    owner: owner.clone(),
                    expires,
                },
            );
        }
        self.stats.grants += 1;
        self.refused.remove(&(key, owner));
        LockReply::Ok
    }

    fn release(&mut self, key: &str, owner: &str, now: Duration) -> LockReply {
        match self.leases.get(key) {
            Some(lease) if lease.owner == owner => {
                let live = lease.expires > now;
                self.leases.remove(key);
                if live {
                    self.stats.releases += 1;
                    LockReply::Ok
                } else {
                    self.stats.not_owner += 1;
                    LockReply::NotOwner
                }
            }
            _ => {
                self.stats.not_owner += 1;
                LockReply::NotOwner
            }
        }
    }

    fn count_retry(&mut self, now: Duration) {
        self.stats.retries += 1;
        let ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        if ms == self.window_ms {
            self.window_retries += 1;
        } else {
            self.window_ms = ms;
            self.window_retries = 1;
        }
        // (c + 1)² − c² = 2c + 1: the window's square grows by this with each arrival.
        self.stats.retry_window_sq_sum += 2 * u64::from(self.window_retries) - 1;
        if self.window_retries > self.stats.retry_burst_max {
            self.stats.retry_burst_max = self.window_retries;
            self.stats.retry_burst_at = Duration::from_millis(ms);
        }
    }

    fn remember_refusal(&mut self, key: String, owner: String, now: Duration) {
        if self.refused.len() >= REFUSALS_MAX {
            self.refused
                .retain(|_, at| now.saturating_sub(*at) <= RETRY_MEMORY);
            if self.refused.len() >= REFUSALS_MAX {
                return;
            }
        }
        self.refused.insert((key, owner), now);
    }
}

struct Shared {
    table: Mutex<LockTable>,
    origin: Instant,
    connections: Mutex<Vec<Task<()>>>,
}

impl Shared {
    fn now(&self) -> Duration {
        Instant::now().duration_since(self.origin)
    }
}

/// The lock service, listening on one port of its host. Dropping it (or `stop`) stops
/// accepting and closes every connection.
pub struct LockServer {
    addr: NetAddr,
    shared: Arc<Shared>,
    accept: Task<()>,
}

impl LockServer {
    /// Binds `port` on `env`'s host and serves there until stopped, within `limits`.
    pub async fn start(env: &Env, port: u16, limits: LockLimits) -> io::Result<LockServer> {
        let mut listener = env.net().bind(port).await?;
        let addr = NetAddr::new(env.host(), listener.local_addr().port);
        if !limits.quiet.is_zero() {
            tracing::info!(
                target: "engine::sessions::lock",
                quiet_ms = limits.quiet.as_millis() as u64,
                "lock service started again: no grants until every earlier lease has run out"
            );
        }
        let shared = Arc::new(Shared {
            table: Mutex::new(LockTable::with_limits(limits)),
            origin: Instant::now(),
            connections: Mutex::new(Vec::new()),
        });
        let accept_shared = shared.clone();
        let accept_env = env.clone();
        let accept = env.spawn("lock-accept", async move {
            loop {
                let stream = match listener.accept().await {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(target: "engine::sessions::lock", "accept failed: {e}");
                        return;
                    }
                };
                let task = accept_env.spawn("lock-conn", serve(accept_shared.clone(), stream));
                let mut connections = accept_shared
                    .connections
                    .lock()
                    .expect("lock server poisoned");
                connections.retain(|t| !t.is_finished());
                connections.push(task);
            }
        });
        tracing::debug!(target: "engine::sessions::lock", "lock server listening on {addr}");
        Ok(LockServer {
            addr,
            shared,
            accept,
        })
    }

    /// Where clients connect (this host's name and the bound port).
    pub fn addr(&self) -> &NetAddr {
        &self.addr
    }

    pub fn stats(&self) -> LockStats {
        self.shared
            .table
            .lock()
            .expect("lock server poisoned")
            .stats()
            .clone()
    }

    /// The owner of `key`'s live lease, if any.
    pub fn holder(&self, key: &str) -> Option<String> {
        let now = self.shared.now();
        let table = self.shared.table.lock().expect("lock server poisoned");
        table.holder(key, now).map(str::to_string)
    }

    /// What the holds (`HOLD`, `CHECK`) have seen.
    pub fn hold_stats(&self) -> HoldStats {
        let table = self.shared.table.lock().expect("lock server poisoned");
        table.hold_stats().clone()
    }

    /// How many leases are live now.
    pub fn live_leases(&self) -> usize {
        let now = self.shared.now();
        let table = self.shared.table.lock().expect("lock server poisoned");
        table.live_count(now)
    }

    /// Stops accepting and closes every connection (again: nothing).
    pub fn stop(&self) {
        self.accept.abort();
        let connections = std::mem::take(
            &mut *self
                .shared
                .connections
                .lock()
                .expect("lock server poisoned"),
        );
        for task in connections {
            task.abort();
        }
    }
}

impl Drop for LockServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves one connection: a reply line per command line, until the peer closes.
async fn serve(shared: Arc<Shared>, stream: Box<dyn NetStream>) {
    let mut lines = LineReader::with_limit(stream, LINE_BYTES_MAX);
    loop {
        let parsed = match lines.next_line().await {
            Ok(Line::Eof) | Err(_) => return,
            Ok(Line::TooLong) => Err(format!(
                "line too long: the limit is {LINE_BYTES_MAX} bytes"
            )),
            Ok(Line::Text(bytes)) => LockCommand::parse(&bytes),
        };
        let reply = {
            let now = shared.now();
            let mut table = shared.table.lock().expect("lock server poisoned");
            match parsed {
                Ok(command) => table.apply(command, now),
                Err(reason) => {
                    table.on_error();
                    LockReply::Err(reason)
                }
            }
        };
        if lines
            .get_mut()
            .write_all(reply.encode().as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn acquire(key: &str, owner: &str, ttl_ms: u64) -> LockCommand {
        LockCommand::Acquire {
            key: key.into(),
            owner: owner.into(),
            ttl: ms(ttl_ms),
        }
    }

    fn release(key: &str, owner: &str) -> LockCommand {
        LockCommand::Release {
            key: key.into(),
            owner: owner.into(),
        }
    }

    #[test]
    fn one_owner_at_a_time_until_release_or_expiry() {
        let mut t = LockTable::new();
        assert_eq!(t.apply(acquire("k", "a", 100), ms(0)), LockReply::Ok);
        assert_eq!(t.apply(acquire("k", "b", 100), ms(10)), LockReply::Busy);
        assert_eq!(t.apply(acquire("other", "b", 100), ms(10)), LockReply::Ok);
        assert_eq!(t.apply(release("k", "b"), ms(20)), LockReply::NotOwner);
        assert_eq!(t.holder("k", ms(20)), Some("a"));
        assert_eq!(t.apply(release("k", "a"), ms(30)), LockReply::Ok);
        assert_eq!(t.apply(acquire("k", "b", 100), ms(31)), LockReply::Ok);
        // b's lease runs out at 131: c takes it, and b's late release is refused.
        assert_eq!(t.apply(acquire("k", "c", 100), ms(130)), LockReply::Busy);
        assert_eq!(t.apply(acquire("k", "c", 100), ms(131)), LockReply::Ok);
        assert_eq!(t.apply(release("k", "b"), ms(140)), LockReply::NotOwner);
        assert_eq!(t.holder("k", ms(140)), Some("c"));
        // The holder renews its own lease.
        assert_eq!(t.apply(acquire("k", "c", 500), ms(150)), LockReply::Ok);
        assert_eq!(t.holder("k", ms(600)), Some("c"));
        // A lease that expired unreleased and unclaimed: its owner's release is late.
        assert_eq!(t.apply(release("k", "c"), ms(700)), LockReply::NotOwner);
        assert_eq!(t.holder("k", ms(700)), None);
        let s = t.stats();
        assert_eq!((s.acquires, s.grants, s.busy), (7, 5, 2));
        assert_eq!((s.releases, s.not_owner, s.expired), (1, 3, 1));
    }

    #[test]
    fn a_restarted_table_waits_out_earlier_leases_and_refuses_longer_ones() {
        let mut t = LockTable::with_limits(LockLimits::with_lease_max(ms(1_000), true));
        assert!(matches!(
            t.apply(acquire("k", "a", 1_001), ms(0)),
            LockReply::Err(_)
        ));
        assert_eq!(t.apply(acquire("k", "a", 1_000), ms(0)), LockReply::Busy);
        assert_eq!(t.apply(acquire("k", "a", 1_000), ms(999)), LockReply::Busy);
        assert_eq!(t.apply(acquire("k", "a", 1_000), ms(1_000)), LockReply::Ok);
        assert_eq!(
            t.apply(acquire("k", "b", 1_000), ms(1_001)),
            LockReply::Busy
        );
        let s = t.stats();
        assert_eq!((s.grants, s.busy, s.errors), (1, 3, 1));
        // A first start grants at once.
        let mut fresh = LockTable::with_limits(LockLimits::with_lease_max(ms(1_000), false));
        assert_eq!(fresh.apply(acquire("k", "a", 1_000), ms(0)), LockReply::Ok);
    }

    #[test]
    fn retries_are_counted_per_millisecond_window() {
        let mut t = LockTable::new();
        assert_eq!(t.apply(acquire("k", "h", 10_000), ms(0)), LockReply::Ok);
        for w in ["a", "b", "c"] {
            assert_eq!(t.apply(acquire("k", w, 100), ms(1)), LockReply::Busy);
        }
        assert_eq!(t.stats().retries, 0, "first tries are not retries");
        // Three retries within millisecond 11 (at different sub-millisecond instants),
        // one in millisecond 12.
        for (w, at) in [("a", 11_000_000), ("b", 11_400_000), ("c", 11_999_999)] {
            t.apply(acquire("k", w, 100), Duration::from_nanos(at));
        }
        t.apply(acquire("k", "a", 100), ms(12));
        // A new owner's first try is not a retry.
        t.apply(acquire("k", "d", 100), ms(12));
        let s = t.stats();
        assert_eq!(s.retries, 4);
        assert_eq!((s.retry_burst_max, s.retry_burst_at), (3, ms(11)));
        // Windows of 3 and 1 retries: (9 + 1) / 4.
        assert_eq!(s.retry_window_sq_sum, 10);
        assert!((s.retry_crowding() - 2.5).abs() < 1e-12);
        // Once granted, the owner's next try is a first try again.
        t.apply(release("k", "h"), ms(13));
        assert_eq!(t.apply(acquire("k", "a", 100), ms(14)), LockReply::Ok);
        t.apply(release("k", "a"), ms(15));
        t.apply(acquire("k", "a", 100), ms(16));
        assert_eq!(t.stats().retries, 5);
        // A refusal older than the memory is forgotten.
        t.apply(acquire("k", "b", 100), ms(20) + RETRY_MEMORY);
        assert_eq!(t.stats().retries, 5);
    }
}
