//! Name resolution for the upstream: the resolver chain (primary, then secondary, then
//! DNS over HTTPS, each bounded by its own timeout), a cache kept past its TTL while
//! every resolver fails, and pinned addresses for critical services. The decisions are
//! `core.rs`; this is the shell that asks the environment's resolvers
//! (`Network::resolve`). One chain per engine instance: the upstream client owns it.
//!
//! Defaults: 2 s per classic resolver, 3 s for DNS over HTTPS (a TLS round trip more),
//! so a lookup meeting three silent resolvers gives up after 7 s, well inside a model
//! call's 30 s request timeout; stale answers serve up to 24 h past their TTL (RFC 8767
//! suggests one to three days); no pinned addresses unless configured.

mod core;

pub use self::core::{DnsCore, DnsStep};
use crate::env::{Env, NetAddr, NetStream, ResolverId};
use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How the upstream's host name is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// How long each resolver may take before the next is asked.
    pub primary_timeout: Duration,
    pub secondary_timeout: Duration,
    pub over_https_timeout: Duration,
    /// How long past its TTL a cached answer still serves while every resolver fails.
    pub stale_max: Duration,
    /// Known addresses of critical services (name → addresses, in order), used when no
    /// resolver answers and nothing is cached. Names are case-insensitive.
    pub pinned: BTreeMap<String, Vec<String>>,
}

impl DnsConfig {
    pub fn new() -> Self {
        DnsConfig {
            primary_timeout: Duration::from_secs(2),
            secondary_timeout: Duration::from_secs(2),
            over_https_timeout: Duration::from_secs(3),
            stale_max: Duration::from_secs(24 * 3600),
            pinned: BTreeMap::new(),
        }
    }

    /// Pins `addresses` for `name`.
    pub fn pin(mut self, name: &str, addresses: &[&str]) -> Self {
        let addresses = addresses.iter().map(|a| a.to_string()).collect();
        self.pinned.insert(name.to_ascii_lowercase(), addresses);
        self
    }

    pub fn timeout_of(&self, via: ResolverId) -> Duration {
        match via {
            ResolverId::Primary => self.primary_timeout,
            ResolverId::Secondary => self.secondary_timeout,
            ResolverId::OverHttps => self.over_https_timeout,
        }
    }

    pub fn check(&self) {
        for via in ResolverId::CHAIN {
            assert!(
                !self.timeout_of(via).is_zero(),
                "the {via} resolver's timeout must be positive"
            );
        }
        for (name, addresses) in &self.pinned {
            assert!(!addresses.is_empty(), "pinned name {name:?} has no address");
        }
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig::new()
    }
}

/// Where a lookup's answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DnsSource {
    /// The cache, within the answer's TTL.
    Cache,
    /// This resolver, just now.
    Resolver(ResolverId),
    /// The cache, past the TTL: every resolver failed.
    Stale,
    /// The configured known addresses: every resolver failed and nothing was cached.
    Pinned,
}

/// What the chain has done, for operators and oracles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Lookups answered by each resolver.
    pub by_primary: u64,
    pub by_secondary: u64,
    pub by_over_https: u64,
    /// Lookups answered from the cache within the TTL, past it, and by pinned addresses.
    pub from_cache: u64,
    pub stale: u64,
    pub pinned: u64,
    /// Lookups nothing answered.
    pub failed: u64,
    /// Questions each resolver failed (its error or its timeout).
    pub primary_failures: u64,
    pub secondary_failures: u64,
    pub over_https_failures: u64,
    /// The same failures by how: NXDOMAIN, no answer in time, anything else
    /// (SERVFAIL, unreachable, an empty answer).
    pub nxdomain: u64,
    pub timed_out: u64,
    pub other_failures: u64,
    /// Questions whose lookup was given up by its caller before the resolver replied
    /// (a bound above the chain, such as the start-up key check): neither an answer
    /// nor a failure the engine saw.
    pub abandoned: u64,
}

/// The chain of one engine instance: its cache and counts live as long as the client.
pub(crate) struct DnsChain {
    core: Mutex<DnsCore>,
    origin: Instant,
}

impl DnsChain {
    pub(crate) fn new(config: DnsConfig) -> Self {
        DnsChain {
            core: Mutex::new(DnsCore::new(config)),
            origin: Instant::now(),
        }
    }

    fn core(&self) -> std::sync::MutexGuard<'_, DnsCore> {
        self.core.lock().expect("dns chain poisoned")
    }

    pub(crate) fn stats(&self) -> DnsStats {
        self.core().stats()
    }

    /// The addresses `name` resolves to now, and where they came from.
    pub(crate) async fn resolve(
        &self,
        env: &Env,
        name: &str,
    ) -> io::Result<(Vec<String>, DnsSource)> {
        let mut step = self.core().handle_lookup(self.origin.elapsed(), name);
        let mut failures: Vec<String> = Vec::new();
        loop {
            match step {
                DnsStep::Ask { via, timeout } => {
                    let question = Outstanding {
                        chain: self,
                        via: Some(via),
                    };
                    let asked = tokio::time::timeout(timeout, env.net().resolve(via, name)).await;
                    question.replied();
                    let reply = asked.unwrap_or_else(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("no answer within {} ms", timeout.as_millis()),
                        ))
                    });
                    if let Err(e) = &reply {
                        tracing::info!(resolver = via.name(), "dns lookup of {name} failed: {e}");
                        failures.push(format!("{via}: {e}"));
                    }
                    let now = self.origin.elapsed();
                    step = self
                        .core()
                        .handle_reply(now, name, via, reply.as_ref().map(Vec::clone));
                }
                DnsStep::Answer { hosts, source } => {
                    if !failures.is_empty() {
                        tracing::warn!(
                            ?source,
                            "dns lookup of {name} answered after failures ({})",
                            failures.join("; ")
                        );
                    }
                    match source {
                        DnsSource::Stale => crate::met!(
                            "dns.stale_answer",
                            "every resolver failed: {name} answered from the expired cache"
                        ),
                        DnsSource::Pinned => crate::met!(
                            "dns.pinned_address",
                            "every resolver failed, nothing cached: {name} answered by its pinned address"
                        ),
                        _ => {}
                    }
                    return Ok((hosts, source));
                }
                DnsStep::Fail => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "cannot resolve {name}: {}; nothing cached or pinned",
                            failures.join("; ")
                        ),
                    ));
                }
            }
        }
    }

    /// Connects to `addr`, its host resolved through the chain: each address in turn
    /// until one connects (a refused or unreachable one moves on to the next).
    pub(crate) async fn connect(
        &self,
        env: &Env,
        addr: &NetAddr,
    ) -> io::Result<Box<dyn NetStream>> {
        let (hosts, _) = self.resolve(env, &addr.host).await?;
        let mut last = io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} has no address", addr.host),
        );
        for host in hosts {
            match env.net().connect(&NetAddr::new(host, addr.port)).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A question out to a resolver: dropped before its reply (the caller gave up on the
/// lookup), it counts as abandoned.
struct Outstanding<'a> {
    chain: &'a DnsChain,
    via: Option<ResolverId>,
}

impl Outstanding<'_> {
    fn replied(mut self) {
        self.via = None;
    }
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        if let Some(via) = self.via {
            self.chain.core().handle_abandoned(via);
        }
    }
}

/// Connects to `addr`: through `dns` when the upstream is reached by name, else as given.
pub(crate) async fn connect(
    env: &Env,
    dns: Option<&DnsChain>,
    addr: &NetAddr,
) -> io::Result<Box<dyn NetStream>> {
    match dns {
        Some(chain) => chain.connect(env, addr).await,
        None => env.net().connect(addr).await,
    }
}
