//! The resolver chain's decisions, sans IO: which resolver to ask next, what the cache
//! answers, and what is left when every resolver fails.
//!
//! A lookup starts with [`DnsCore::handle_lookup`]: a cached answer within its TTL
//! answers at once; otherwise the primary is asked. Each reply goes to
//! [`DnsCore::handle_reply`]: an answer fills the cache (refreshing a stale entry) and
//! answers; a failure moves on to the secondary, then DNS over HTTPS. When all three
//! fail, an expired answer still within `stale_max` of its TTL answers (stale: the
//! service has not moved because DNS is down), else the pinned addresses of a critical
//! service, else the lookup fails. Pinned answers are never cached: the next lookup
//! asks the resolvers again.
//!
//! Every resolver failure moves on, NXDOMAIN included: the names looked up are the
//! engine's own configured services, known to exist, so an NXDOMAIN for one is a broken
//! or poisoned resolver rather than an answer (and a stale answer beats none).

use super::{DnsConfig, DnsSource, DnsStats};
use crate::env::{Resolved, ResolverId};
use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

/// What the shell does next for a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsStep {
    /// Ask resolver `via`, giving up on it after `timeout`.
    Ask { via: ResolverId, timeout: Duration },
    /// The lookup's answer: addresses to connect to, in order.
    Answer {
        hosts: Vec<String>,
        source: DnsSource,
    },
    /// Nothing answered and nothing is known.
    Fail,
}

struct Cached {
    hosts: Vec<String>,
    /// When the answer's TTL ends (time since the core's origin).
    expires_at: Duration,
}

/// The chain's state: its cache and what it has done (one per engine instance).
pub struct DnsCore {
    config: DnsConfig,
    cache: BTreeMap<String, Cached>,
    stats: DnsStats,
}

impl DnsCore {
    pub fn new(config: DnsConfig) -> Self {
        config.check();
        let mut config = config;
        config.pinned = std::mem::take(&mut config.pinned)
            .into_iter()
            .map(|(name, addresses)| (name.to_ascii_lowercase(), addresses))
            .collect();
        DnsCore {
            config,
            cache: BTreeMap::new(),
            stats: DnsStats::default(),
        }
    }

    pub fn stats(&self) -> DnsStats {
        self.stats.clone()
    }

    /// A lookup of `name` begins at `now`.
    pub fn handle_lookup(&mut self, now: Duration, name: &str) -> DnsStep {
        let key = name.to_ascii_lowercase();
        if let Some(cached) = self.cache.get(&key).filter(|c| now < c.expires_at) {
            self.stats.from_cache += 1;
            return DnsStep::Answer {
                hosts: cached.hosts.clone(),
                source: DnsSource::Cache,
            };
        }
        self.ask(ResolverId::Primary)
    }

    /// Resolver `via` replied to the lookup of `name` at `now` (a timeout of the shell
    /// is a `TimedOut` error).
    pub fn handle_reply(
        &mut self,
        now: Duration,
        name: &str,
        via: ResolverId,
        reply: Result<Vec<Resolved>, &io::Error>,
    ) -> DnsStep {
        let key = name.to_ascii_lowercase();
        match reply {
            Ok(answer) if !answer.is_empty() => {
                let ttl = answer.iter().map(|r| r.ttl).min().unwrap_or_default();
                let hosts: Vec<String> = answer.into_iter().map(|r| r.host).collect();
                self.cache.insert(
                    key,
                    Cached {
                        hosts: hosts.clone(),
                        expires_at: now.saturating_add(ttl),
                    },
                );
                *self.stats.answered_by(via) += 1;
                DnsStep::Answer {
                    hosts,
                    source: DnsSource::Resolver(via),
                }
            }
            failed => {
                self.stats
                    .count_failure(via, failed.err().map(io::Error::kind));
                match next_after(via) {
                    Some(next) => self.ask(next),
                    None => self.last_resort(now, &key),
                }
            }
        }
    }

    /// The lookup's caller gave up while resolver `via` was asked.
    pub fn handle_abandoned(&mut self, via: ResolverId) {
        tracing::debug!(resolver = via.name(), "dns lookup abandoned by its caller");
        self.stats.abandoned += 1;
    }

    fn ask(&self, via: ResolverId) -> DnsStep {
        DnsStep::Ask {
            via,
            timeout: self.config.timeout_of(via),
        }
    }

    /// Every resolver failed: a stale answer, else the pinned addresses.
    fn last_resort(&mut self, now: Duration, key: &str) -> DnsStep {
        let stale = self
            .cache
            .get(key)
            .filter(|c| now < c.expires_at.saturating_add(self.config.stale_max));
        if let Some(cached) = stale {
            self.stats.stale += 1;
            return DnsStep::Answer {
                hosts: cached.hosts.clone(),
                source: DnsSource::Stale,
            };
        }
        if let Some(pinned) = self.config.pinned.get(key).filter(|p| !p.is_empty()) {
            self.stats.pinned += 1;
            return DnsStep::Answer {
                hosts: pinned.clone(),
                source: DnsSource::Pinned,
            };
        }
        self.stats.failed += 1;
        DnsStep::Fail
    }
}

fn next_after(via: ResolverId) -> Option<ResolverId> {
    let at = ResolverId::CHAIN.iter().position(|&r| r == via)?;
    ResolverId::CHAIN.get(at + 1).copied()
}

impl DnsStats {
    fn answered_by(&mut self, via: ResolverId) -> &mut u64 {
        match via {
            ResolverId::Primary => &mut self.by_primary,
            ResolverId::Secondary => &mut self.by_secondary,
            ResolverId::OverHttps => &mut self.by_over_https,
        }
    }

    /// `kind` is `None` for an empty answer (no address is no answer).
    fn count_failure(&mut self, via: ResolverId, kind: Option<io::ErrorKind>) {
        let failures = match via {
            ResolverId::Primary => &mut self.primary_failures,
            ResolverId::Secondary => &mut self.secondary_failures,
            ResolverId::OverHttps => &mut self.over_https_failures,
        };
        *failures += 1;
        match kind {
            Some(io::ErrorKind::NotFound) => self.nxdomain += 1,
            Some(io::ErrorKind::TimedOut) => self.timed_out += 1,
            _ => self.other_failures += 1,
        }
    }
}

#[cfg(test)]
mod tests;
