//! The 429 window shared by every instance of an account, through the state service
//! the instances already share (the session lock's service and its holds: `HOLD key
//! ms`, `CHECK key`).
//!
//! The instance that reads a 429 holds the account's key for its `Retry-After`; before
//! a call, an instance not limited by its own window asks how much of the shared one
//! is left, and a held key holds the call back like its own 429 would. The service
//! counts the window on its own clock and answers in durations, so the instances'
//! clocks need not agree.
//!
//! The service is asked within [`SHARE_ANSWER_BOUND`]; when it cannot answer, the
//! instance falls back to its own window alone for [`SHARE_RETRY_AFTER`] (warned once
//! per outage), so a lost service slows no call by more than one bound and stops none.

use crate::sessions::lock::SessionLock;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One question to the service waits at most this long.
pub const SHARE_ANSWER_BOUND: Duration = Duration::from_millis(250);
/// After the service failed to answer, it is not asked again for this long.
pub const SHARE_RETRY_AFTER: Duration = Duration::from_secs(5);
/// The longest hold the protocol carries (a longer `Retry-After` is held this long).
const HOLD_MAX: Duration = Duration::from_millis(crate::sessions::lock::protocol::TTL_MS_MAX);

/// What the share has done, for operators and oracles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShareStats {
    /// Times the service was asked before a call.
    pub checks: u64,
    /// Calls held back by a window another instance (or this one) published.
    pub held: u64,
    /// 429 windows published to the service.
    pub published: u64,
    /// Questions the service did not answer in time (each starts or extends a fallback).
    pub unreachable: u64,
}

/// Whether the service is asked (sans-IO: every call takes `now`).
#[derive(Debug, Default)]
struct ShareCore {
    /// Not asked before this: it failed to answer.
    down_until: Option<Duration>,
    stats: ShareStats,
}

impl ShareCore {
    fn poll_ask(&self, now: Duration) -> bool {
        self.down_until.is_none_or(|until| now >= until)
    }

    /// The service did not answer at `now`; true if this starts an outage.
    fn handle_unreachable(&mut self, now: Duration) -> bool {
        self.stats.unreachable += 1;
        let starts = self.down_until.is_none();
        self.down_until = Some(now + SHARE_RETRY_AFTER);
        starts
    }

    /// The service answered: an outage, if any, is over; true if one was.
    fn handle_answered(&mut self) -> bool {
        self.down_until.take().is_some()
    }
}

pub struct WindowShare {
    lock: Arc<SessionLock>,
    key: String,
    core: Mutex<ShareCore>,
}

impl WindowShare {
    /// The share of the account behind `api_key` at `addr`, through `lock`'s service.
    pub fn new(lock: Arc<SessionLock>, addr: &crate::env::NetAddr, api_key: &str) -> Self {
        WindowShare {
            lock,
            key: account_key(&addr.host, addr.port, api_key),
            core: Mutex::new(ShareCore::default()),
        }
    }

    pub fn stats(&self) -> ShareStats {
        self.core().stats.clone()
    }

    fn core(&self) -> std::sync::MutexGuard<'_, ShareCore> {
        self.core.lock().expect("window share poisoned")
    }

    /// How much of the account's shared window is left (`None`: none, or the service
    /// could not say: the instance's own window decides alone).
    pub async fn check(&self, now: impl Fn() -> Duration) -> Option<Duration> {
        {
            let mut core = self.core();
            if !core.poll_ask(now()) {
                return None;
            }
            core.stats.checks += 1;
        }
        let answer = self.lock.check(&self.key, SHARE_ANSWER_BOUND).await;
        match answer {
            Ok(left) => {
                self.answered();
                if left.is_some() {
                    self.core().stats.held += 1;
                }
                left
            }
            Err(e) => {
                self.unreachable(now(), &e.to_string());
                None
            }
        }
    }

    /// This instance read a 429 holding calls back for `retry_after`: every instance
    /// of the account is told.
    pub async fn publish(&self, retry_after: Duration, now: impl Fn() -> Duration) {
        if !self.core().poll_ask(now()) {
            return;
        }
        // Whole milliseconds, rounded up, within what the protocol carries.
        let ms = retry_after.as_nanos().div_ceil(1_000_000).max(1);
        let hold = Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX)).min(HOLD_MAX);
        match self.lock.hold(&self.key, hold, SHARE_ANSWER_BOUND).await {
            Ok(()) => {
                self.answered();
                self.core().stats.published += 1;
            }
            Err(e) => self.unreachable(now(), &e.to_string()),
        }
    }

    fn answered(&self) {
        if self.core().handle_answered() {
            tracing::info!(key = %self.key, "the shared rate-limit window is reachable again");
        }
    }

    fn unreachable(&self, now: Duration, why: &str) {
        if self.core().handle_unreachable(now) {
            crate::met!(
                "upstream.window_share_unreachable",
                "the shared rate-limit window cannot be reached ({why}): this instance \
                 follows its own 429s alone for {} s",
                SHARE_RETRY_AFTER.as_secs()
            );
        }
    }
}

/// `rate-window/<host>:<port>/<16 hex>`: the API's address and a fingerprint of the
/// key (instances of one account share it, other accounts do not, and the key itself
/// never leaves the instance), in the protocol's characters.
fn account_key(host: &str, port: u16, api_key: &str) -> String {
    let digest = Sha256::digest(api_key.as_bytes());
    let fingerprint: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut host: String = host
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    host.truncate(crate::sessions::lock::protocol::TOKEN_BYTES_MAX - 48);
    format!("rate-window/{host}:{port}/{fingerprint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_service_is_not_asked_again_until_the_retry_time() {
        let mut core = ShareCore::default();
        let s = Duration::from_secs;
        assert!(core.poll_ask(s(0)));
        assert!(core.handle_unreachable(s(1)), "an outage starts");
        assert!(!core.poll_ask(s(3)));
        assert!(core.poll_ask(s(6)), "asked again after the retry time");
        assert!(!core.handle_unreachable(s(6)), "the same outage");
        assert!(!core.poll_ask(s(10)));
        assert!(core.handle_answered(), "the outage ends");
        assert!(!core.handle_answered());
        assert_eq!(core.stats.unreachable, 2);
    }

    #[test]
    fn the_account_key_separates_accounts_and_hides_the_key() {
        let a = account_key("api.example.com", 443, "sk-one");
        let b = account_key("api.example.com", 443, "sk-two");
        assert_ne!(a, b);
        assert!(!a.contains("sk-one"));
        assert!(a.starts_with("rate-window/api.example.com:443/"), "{a}");
        let odd = account_key(&format!("h ost\n{}", "x".repeat(400)), 1, "k");
        crate::sessions::lock::protocol::check_token("key", &odd).expect("a valid token");
    }
}
