//! The world's DNS resolvers: the primary, the secondary and DNS over HTTPS, as one
//! device of the network.
//!
//! Fault contract. A resolver answers a question after a latency drawn uniformly in
//! `[answer_latency_min, answer_latency_max]` (from the network's seeded stream for
//! DNS: one draw per question, whatever the answer). Records map a name to a host of
//! the world (its name: connecting to it works like connecting to the host) with a
//! TTL; a name without a record is an honest NXDOMAIN (`NotFound`), not a fault. Each
//! resolver can be put in one fault state by a plan (`Fault::DnsFault`, ended by
//! `Fault::DnsRecover`), which every question to it meets until then:
//! - **NXDOMAIN** (`NotFound`, "NXDOMAIN") for names that exist: a broken or poisoned
//!   resolver. Counted `net.dns_nxdomain`;
//! - **SERVFAIL** (`Other`, "SERVFAIL"): the resolver cannot reach the authority.
//!   Counted `net.dns_servfail`;
//! - **timeout**: no answer at all; the question fails with `TimedOut` after
//!   `timeout` (a client with a shorter timeout of its own gives up first). Counted
//!   `net.dns_timeout`;
//! - **outage**: the resolver is unreachable (ICMP port unreachable comes back after
//!   one latency: `ConnectionRefused`). Counted `net.dns_outage`.
//!
//! Each fault counts once per question that met it, when the question reaches the
//! resolver (on the asking host). Resolvers sit outside the world's hosts: partitions
//! and host crashes do not touch them (a crashed host asks nothing: its tasks stop).
//!
//! Why survivable: resolvers fail in each of these ways in production; a client that
//! falls back to the next resolver, keeps answers past their TTL while all fail, and
//! pins the addresses of its critical services still reaches them.

use super::{ECONNREFUSED, ETIMEDOUT, SimNet};
use crate::seed::{Between, SimRng};
use engine::env::{Resolved, ResolverId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

/// How a resolver fails (plan data: `Fault::DnsFault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsFaultKind {
    Nxdomain,
    Servfail,
    Timeout,
    Outage,
}

impl DnsFaultKind {
    pub const ALL: [DnsFaultKind; 4] = [
        DnsFaultKind::Nxdomain,
        DnsFaultKind::Servfail,
        DnsFaultKind::Timeout,
        DnsFaultKind::Outage,
    ];

    /// The fault counter a question meeting this fault raises.
    pub fn counter(self) -> &'static str {
        match self {
            DnsFaultKind::Nxdomain => "net.dns_nxdomain",
            DnsFaultKind::Servfail => "net.dns_servfail",
            DnsFaultKind::Timeout => "net.dns_timeout",
            DnsFaultKind::Outage => "net.dns_outage",
        }
    }
}

/// The resolvers' settings. Durations are virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsOptions {
    /// A question's round trip, uniform in `[answer_latency_min, answer_latency_max]`.
    pub answer_latency_min: Duration,
    pub answer_latency_max: Duration,
    /// How long a question that gets no answer waits before `TimedOut` (the classic
    /// resolver timeout of 5 s).
    pub timeout: Duration,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            answer_latency_min: Duration::from_millis(1),
            answer_latency_max: Duration::from_millis(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// A name's record: the host it points at, and for how long the answer may be kept.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DnsRecord {
    target: String,
    ttl: Duration,
}

/// The resolvers' state, behind the network's DNS lock.
pub(super) struct SimDns {
    options: DnsOptions,
    rng: SimRng,
    records: BTreeMap<String, DnsRecord>,
    faults: BTreeMap<ResolverId, DnsFaultKind>,
}

impl SimDns {
    pub(super) fn new(rng: SimRng) -> Self {
        SimDns {
            options: DnsOptions::default(),
            rng,
            records: BTreeMap::new(),
            faults: BTreeMap::new(),
        }
    }

    /// What one question meets: its latency, the fault in force, and the record.
    fn ask(&mut self, via: ResolverId, name: &str) -> Question {
        let range = Between::new(
            self.options.answer_latency_min.as_nanos() as u64,
            self.options.answer_latency_max.as_nanos() as u64,
        );
        Question {
            latency: Duration::from_nanos(self.rng.draw(range)),
            timeout: self.options.timeout,
            fault: self.faults.get(&via).copied(),
            record: self.records.get(&name.to_ascii_lowercase()).cloned(),
        }
    }
}

struct Question {
    latency: Duration,
    timeout: Duration,
    fault: Option<DnsFaultKind>,
    record: Option<DnsRecord>,
}

impl SimNet {
    fn dns(&self) -> std::sync::MutexGuard<'_, SimDns> {
        self.dns.lock().expect("dns poisoned")
    }

    /// Points `name` at host `target` (a world host's name) with `ttl`; replaces an
    /// earlier record. Names are case-insensitive.
    pub fn dns_record(&self, name: &str, target: &str, ttl: Duration) {
        let record = DnsRecord {
            target: target.to_string(),
            ttl,
        };
        self.dns().records.insert(name.to_ascii_lowercase(), record);
    }

    pub fn dns_options(&self) -> DnsOptions {
        self.dns().options.clone()
    }

    /// Panics on a latency range that is empty (a wrong plan, not a silent clamp).
    pub fn set_dns_options(&self, options: DnsOptions) {
        assert!(
            options.answer_latency_min <= options.answer_latency_max,
            "dns answer_latency_min {:?} exceeds answer_latency_max {:?}",
            options.answer_latency_min,
            options.answer_latency_max
        );
        self.dns().options = options;
    }

    /// Resolver `via` fails every question with `kind` until [`SimNet::dns_recover`].
    pub fn dns_fault(&self, via: ResolverId, kind: DnsFaultKind) {
        self.dns().faults.insert(via, kind);
        tracing::info!(target: "sim::fault", "dns resolver {via}: {kind:?} from now on");
    }

    /// Resolver `via` answers again.
    pub fn dns_recover(&self, via: ResolverId) {
        if let Some(kind) = self.dns().faults.remove(&via) {
            tracing::info!(target: "sim::fault", "dns resolver {via} recovered from {kind:?}");
        }
    }

    /// The fault resolver `via` is in, if any.
    pub fn dns_fault_of(&self, via: ResolverId) -> Option<DnsFaultKind> {
        self.dns().faults.get(&via).copied()
    }

    /// Host `from` asks resolver `via` for `name`.
    pub(super) async fn resolve_from(
        &self,
        from: usize,
        via: ResolverId,
        name: &str,
    ) -> io::Result<Vec<Resolved>> {
        let question = self.dns().ask(via, name);
        if let Some(kind) = question.fault {
            let host = self.host_name(from);
            self.faults.for_host(&host).fire(
                kind.counter(),
                &format!("{host} asked the {via} resolver for {name}: {kind:?}"),
            );
            let error = match kind {
                DnsFaultKind::Timeout => {
                    tokio::time::sleep(question.timeout).await;
                    return Err(io::Error::from_raw_os_error(ETIMEDOUT));
                }
                DnsFaultKind::Nxdomain => io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{via} resolver: NXDOMAIN for {name}"),
                ),
                DnsFaultKind::Servfail => {
                    io::Error::other(format!("{via} resolver: SERVFAIL for {name}"))
                }
                DnsFaultKind::Outage => io::Error::from_raw_os_error(ECONNREFUSED),
            };
            tokio::time::sleep(question.latency).await;
            return Err(error);
        }
        tokio::time::sleep(question.latency).await;
        match question.record {
            Some(record) => Ok(vec![Resolved {
                host: record.target,
                ttl: record.ttl,
            }]),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{via} resolver: no record for {name} (NXDOMAIN)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
