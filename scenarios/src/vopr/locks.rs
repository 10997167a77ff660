//! Lock holders and the exclusion oracle. When the run has a lock service (hosted by
//! the engine, so it crashes and restarts with it), users on the client hosts also
//! take plain keys (`vopr-key-<k>`) through the engine's own lock client
//! ([`SessionLock`]), hold them for a while and release them, as other engine instances
//! sharing the service would.
//!
//! The oracle judges what each holder could rely on: from the moment its grant arrived
//! until it sent its release, and never past its acquire's start plus the TTL (the
//! lease runs from the grant, which came later). No two such spans of one key may
//! overlap, whatever crashed, paused or was cut off in between.

use super::config::{ENGINE_HOST, LOCK_PORT};
use super::observer::Observer;
use engine::env::{Env, NetAddr};
use engine::sessions::lock::{SessionLock, SessionLockConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Keys the holders share (few, so they contend).
pub const KEYS: u64 = 2;

/// What a holder could rely on: key, token, from, until.
#[derive(Clone, Debug)]
struct Span {
    token: String,
    from: Instant,
    until: Instant,
}

/// Every lock client of the run (one per user, as one per engine instance) and what
/// their holders relied on.
pub struct Lockers {
    clients: Vec<Arc<SessionLock>>,
    spans: Mutex<BTreeMap<String, Vec<Span>>>,
}

impl Lockers {
    /// One client per user host, each acquiring as `user<i>`.
    pub fn new(hosts: &[Env]) -> Arc<Self> {
        let server = NetAddr::new(ENGINE_HOST, LOCK_PORT);
        let clients = hosts
            .iter()
            .enumerate()
            .map(|(i, env)| {
                let config = SessionLockConfig::standard();
                Arc::new(SessionLock::new(
                    env.clone(),
                    server.clone(),
                    &format!("user{i}"),
                    config,
                ))
            })
            .collect();
        Arc::new(Lockers {
            clients,
            spans: Mutex::new(BTreeMap::new()),
        })
    }

    /// User `user` takes key `key`, holds it for `hold`, and releases it (a task of the
    /// user's host: the user's other operations go on meanwhile).
    pub fn hold(self: &Arc<Self>, env: &Env, user: usize, key: u64, hold: Duration) {
        let Some(client) = self.clients.get(user).cloned() else {
            return;
        };
        let lockers = self.clone();
        let key = format!("vopr-key-{key}");
        // Dropping the handle leaves the holder running (the run's end stops it).
        drop(env.spawn("vopr-lock-holder", async move {
            let started = Instant::now();
            let held = match client.acquire(&key).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::debug!(target: "scenarios", user, "lock {key} not taken: {e}");
                    return;
                }
            };
            let index = lockers.granted(&key, &held.token, started, client.config().ttl);
            tokio::time::sleep(hold).await;
            lockers.releasing(&key, index);
            if let Err(e) = client.release(held).await {
                tracing::debug!(target: "scenarios", user, "lock {key} release: {e}");
            }
        }));
    }

    fn granted(&self, key: &str, token: &str, started: Instant, ttl: Duration) -> usize {
        let mut spans = self.spans.lock().expect("lock spans poisoned");
        let list = spans.entry(key.to_string()).or_default();
        list.push(Span {
            token: token.to_string(),
            from: Instant::now(),
            until: started + ttl,
        });
        list.len() - 1
    }

    fn releasing(&self, key: &str, index: usize) {
        let mut spans = self.spans.lock().expect("lock spans poisoned");
        if let Some(span) = spans.get_mut(key).and_then(|l| l.get_mut(index)) {
            span.until = span.until.min(Instant::now());
        }
    }

    /// The exclusion oracle, at the end of the run; counts the grants.
    pub fn check(&self, observer: &Observer, origin: Instant) {
        let spans = self.spans.lock().expect("lock spans poisoned");
        for (key, list) in spans.iter() {
            for _ in list {
                observer.count("locks granted");
            }
            if let Some((a, b)) = first_overlap(list) {
                let at = |i: Instant| (i - origin).as_secs_f64();
                observer.violation(format!(
                    "lock {key} held twice at once: {} from {:.3} s to {:.3} s, {} from {:.3} s",
                    a.token,
                    at(a.from),
                    at(a.until),
                    b.token,
                    at(b.from)
                ));
                return;
            }
        }
    }
}

/// The first two spans of one key that overlap (by start time).
fn first_overlap(list: &[Span]) -> Option<(Span, Span)> {
    let mut sorted: Vec<&Span> = list.iter().filter(|s| s.from < s.until).collect();
    sorted.sort_by_key(|s| s.from);
    let mut latest: Option<&Span> = None;
    for span in sorted {
        if let Some(prev) = latest {
            if span.from < prev.until {
                return Some((prev.clone(), span.clone()));
            }
            if span.until > prev.until {
                latest = Some(span);
            }
        } else {
            latest = Some(span);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(token: &str, origin: Instant, from_ms: u64, until_ms: u64) -> Span {
        Span {
            token: token.into(),
            from: origin + Duration::from_millis(from_ms),
            until: origin + Duration::from_millis(until_ms),
        }
    }

    #[test]
    fn spans_that_touch_are_fine_and_any_overlap_is_found() {
        let o = Instant::now();
        let touching = [
            span("a", o, 0, 10),
            span("b", o, 10, 20),
            span("c", o, 25, 30),
        ];
        assert!(first_overlap(&touching).is_none());
        // c starts inside a's long span even though b (inside a too) ended earlier.
        let nested = [
            span("a", o, 0, 100),
            span("b", o, 5, 10),
            span("c", o, 50, 60),
        ];
        let (a, b) = first_overlap(&nested).expect("overlap");
        assert_eq!((a.token.as_str(), b.token.as_str()), ("a", "b"));
        let late = [span("a", o, 0, 100), span("c", o, 99, 120)];
        assert!(first_overlap(&late).is_some());
        // A span that ended before it began (a grant read after its lease ran out)
        // relied on nothing.
        let empty = [span("a", o, 50, 40), span("b", o, 45, 60)];
        assert!(first_overlap(&empty).is_none());
    }
}
