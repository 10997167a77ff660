//! The engine's resolver chain as scenarios judge it: which resolvers the plan's marks
//! put down (read from the faults a mark set going, never assumed), which source must
//! then answer a lookup that finds no fresh cache, and whether the engine's counts say
//! it did and agree with the faults the resolvers counted.

use crate::scenario::Failure;
use engine::env::ResolverId;
use engine::upstream::{DnsSource, DnsStats};
use sim::FaultCounters;
use sim::faults::Fault;
use sim::net::DnsFaultKind;
use std::collections::BTreeSet;

/// What the body knows of the world's resolvers.
#[derive(Clone, Debug, Default)]
pub struct Resolvers {
    /// Resolvers in a fault state now.
    pub down: BTreeSet<ResolverId>,
    /// Whether a resolver has answered the engine before (its cache holds the name).
    pub cached: bool,
}

impl Resolvers {
    /// Takes in the faults a mark set going.
    pub fn apply(&mut self, faults: &[Fault]) {
        for fault in faults {
            match fault {
                Fault::DnsFault { resolver, .. } => {
                    self.down.insert(*resolver);
                }
                Fault::DnsRecover { resolver } => {
                    self.down.remove(resolver);
                }
                _ => {}
            }
        }
    }

    /// Who answers a lookup that finds no fresh cache entry now: the first resolver up
    /// in the chain, else the expired cache, else the pinned address.
    pub fn expected(&self) -> DnsSource {
        match ResolverId::CHAIN.iter().find(|r| !self.down.contains(r)) {
            Some(&r) => DnsSource::Resolver(r),
            None if self.cached => DnsSource::Stale,
            None => DnsSource::Pinned,
        }
    }

    /// A phase whose expected source answered: a resolver's answer fills the cache.
    pub fn answered(&mut self, source: DnsSource) {
        if matches!(source, DnsSource::Resolver(_)) {
            self.cached = true;
        }
    }
}

/// Lookups `source` answered, by the engine's counts.
pub fn answers_by(stats: &DnsStats, source: DnsSource) -> u64 {
    match source {
        DnsSource::Cache => stats.from_cache,
        DnsSource::Resolver(ResolverId::Primary) => stats.by_primary,
        DnsSource::Resolver(ResolverId::Secondary) => stats.by_secondary,
        DnsSource::Resolver(ResolverId::OverHttps) => stats.by_over_https,
        DnsSource::Stale => stats.stale,
        DnsSource::Pinned => stats.pinned,
    }
}

/// Between `before` and `after`, `expected` answered at least once and no other source
/// but the fresh cache did, and no lookup failed.
pub fn check_phase(
    phase: &str,
    before: &DnsStats,
    after: &DnsStats,
    expected: DnsSource,
) -> Result<(), Failure> {
    let sources = [
        DnsSource::Resolver(ResolverId::Primary),
        DnsSource::Resolver(ResolverId::Secondary),
        DnsSource::Resolver(ResolverId::OverHttps),
        DnsSource::Stale,
        DnsSource::Pinned,
    ];
    let grew = |s| answers_by(after, s) - answers_by(before, s);
    if grew(expected) == 0 {
        return Err(Failure::correctness(format!(
            "{phase}: no lookup answered by {expected:?} after the cache expired ({after:?})"
        )));
    }
    for source in sources.into_iter().filter(|&s| s != expected) {
        if grew(source) > 0 {
            return Err(Failure::correctness(format!(
                "{phase}: {} lookups answered by {source:?} when {expected:?} should \
                 ({before:?} → {after:?})",
                grew(source)
            )));
        }
    }
    if after.failed > before.failed {
        return Err(Failure::correctness(format!(
            "{phase}: {} lookups failed though a source was left",
            after.failed - before.failed
        )));
    }
    Ok(())
}

/// The engine's failed questions, by kind, match what the resolvers counted as faults
/// they injected (a question whose lookup the engine abandoned may be a fault it never
/// saw): `None` when they agree, else what differs.
pub fn failures_disagree(stats: &DnsStats, faults: &FaultCounters) -> Option<String> {
    let count = |kind: DnsFaultKind| faults.count(kind.counter());
    let device = (
        count(DnsFaultKind::Nxdomain),
        count(DnsFaultKind::Timeout),
        count(DnsFaultKind::Servfail) + count(DnsFaultKind::Outage),
    );
    let engine = (stats.nxdomain, stats.timed_out, stats.other_failures);
    let by_resolver = stats.primary_failures + stats.secondary_failures + stats.over_https_failures;
    let total = engine.0 + engine.1 + engine.2;
    let unseen = (device.0 + device.1 + device.2).saturating_sub(total);
    let within = engine.0 <= device.0 && engine.1 <= device.1 && engine.2 <= device.2;
    (!within || unseen > stats.abandoned || by_resolver != total).then(|| {
        format!(
            "the engine met (nxdomain, timed out, other) = {engine:?} ({by_resolver} by \
             resolver, {} abandoned), the resolvers injected {device:?}",
            stats.abandoned
        )
    })
}
