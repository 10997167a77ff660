//! Swarm testing: the seed decides which fault kinds are on at all, and how often.
//!
//! Uniform low-rate faults everywhere tend to hide bugs that need one kind of fault in
//! bulk; swarm testing instead turns each allowed kind on with probability 1/2 and, if
//! on, picks its rate from a wide ladder, so some runs drown in resets while others see
//! none (TigerBeetle's VOPR does the same).

use crate::seed::{Ratio, SimRng};
use crate::world::World;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Fault kinds a swarm can turn on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwarmKind {
    /// Connection resets per write.
    NetReset,
    /// `EIO` per disk operation.
    DiskEio,
    /// Silent bit flips per disk read.
    DiskBitflip,
    /// `EAGAIN` per spawn.
    ProcSpawnFail,
    /// SIGSEGV per child, at a random time.
    ProcCrash,
    /// A hang per child, at a random time.
    ProcHang,
    /// Garbled stdout per child.
    ProcGarble,
    /// Truncated stdout per child.
    ProcTruncate,
    /// Latency spikes per write (up to the network's `delay_spike_max`).
    NetDelay,
    /// Slow operations per disk operation (up to the disk's `slow_op_max`).
    DiskSlow,
    /// Slow starts per spawn (up to the host's `slow_start_max`).
    ProcSlowStart,
    /// 429s per model API call (with a Retry-After from the device's range).
    UpstreamRateLimit,
    /// 503s per model API call.
    UpstreamError,
    /// Model API calls never answered.
    UpstreamTimeout,
    /// Model API answers dropped halfway.
    UpstreamDrop,
    /// Model API answers cut short (a 200 that does not parse).
    UpstreamTruncate,
    /// Empty model API answers.
    UpstreamEmpty,
    /// Slow model API answers (up to the device's `slow_max`).
    UpstreamSlow,
}

impl SwarmKind {
    pub const ALL: [SwarmKind; 18] = [
        SwarmKind::NetReset,
        SwarmKind::DiskEio,
        SwarmKind::DiskBitflip,
        SwarmKind::ProcSpawnFail,
        SwarmKind::ProcCrash,
        SwarmKind::ProcHang,
        SwarmKind::ProcGarble,
        SwarmKind::ProcTruncate,
        SwarmKind::NetDelay,
        SwarmKind::DiskSlow,
        SwarmKind::ProcSlowStart,
        SwarmKind::UpstreamRateLimit,
        SwarmKind::UpstreamError,
        SwarmKind::UpstreamTimeout,
        SwarmKind::UpstreamDrop,
        SwarmKind::UpstreamTruncate,
        SwarmKind::UpstreamEmpty,
        SwarmKind::UpstreamSlow,
    ];

    /// The kind's name as plans spell it (`net_reset`).
    pub fn name(self) -> &'static str {
        match self {
            SwarmKind::NetReset => "net_reset",
            SwarmKind::DiskEio => "disk_eio",
            SwarmKind::DiskBitflip => "disk_bitflip",
            SwarmKind::ProcSpawnFail => "proc_spawn_fail",
            SwarmKind::ProcCrash => "proc_crash",
            SwarmKind::ProcHang => "proc_hang",
            SwarmKind::ProcGarble => "proc_garble",
            SwarmKind::ProcTruncate => "proc_truncate",
            SwarmKind::NetDelay => "net_delay",
            SwarmKind::DiskSlow => "disk_slow",
            SwarmKind::ProcSlowStart => "proc_slow_start",
            SwarmKind::UpstreamRateLimit => "upstream_rate_limit",
            SwarmKind::UpstreamError => "upstream_error",
            SwarmKind::UpstreamTimeout => "upstream_timeout",
            SwarmKind::UpstreamDrop => "upstream_drop",
            SwarmKind::UpstreamTruncate => "upstream_truncate",
            SwarmKind::UpstreamEmpty => "upstream_empty",
            SwarmKind::UpstreamSlow => "upstream_slow",
        }
    }
}

/// Rates of the fault kinds that are on in this run. Kinds absent are off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmPlan {
    pub rates: BTreeMap<SwarmKind, Ratio>,
}

/// Each of `allowed` on with probability 1/2, at a rate drawn from `rungs` (drawn for
/// every kind, on or off, so a kind's draw does not shift the next kind's).
fn draw_rates(
    rng: &mut SimRng,
    allowed: &[SwarmKind],
    rungs: &[Ratio],
) -> BTreeMap<SwarmKind, Ratio> {
    let mut rates = BTreeMap::new();
    for kind in allowed {
        let on = rng.below(2) == 1;
        let rate = rungs[rng.below(rungs.len() as u64) as usize];
        if on {
            rates.insert(*kind, rate);
        }
    }
    rates
}

/// The rate ladder: from rare to a storm.
pub const LADDER: [Ratio; 4] = [
    Ratio::new(1, 1000),
    Ratio::new(1, 100),
    Ratio::new(1, 20),
    Ratio::new(1, 5),
];

impl SwarmPlan {
    /// Draws a swarm over `allowed` kinds from the run seed (stream `"swarm"`).
    pub fn draw(seed: u64, allowed: &[SwarmKind]) -> Self {
        let mut rng = SimRng::new(seed, "swarm");
        SwarmPlan {
            rates: draw_rates(&mut rng, allowed, &LADDER),
        }
    }

    /// Draws a swarm for a short run (a catalog scenario: seconds to minutes of virtual
    /// time, tens to hundreds of operations) over `allowed` kinds: each kind on in about
    /// half the seeds, at least one on, at a rate from the ladder's upper rungs (1/100 to
    /// 1/5). A 1/1000 rate would seldom fire in so short a run: such a draw is a quiet
    /// run in disguise, and quiet runs are what the gate's fixed plans already are.
    pub fn draw_short(seed: u64, allowed: &[SwarmKind]) -> Self {
        let mut rng = SimRng::new(seed, "swarm");
        let upper = &LADDER[1..];
        let mut rates = draw_rates(&mut rng, allowed, upper);
        if rates.is_empty() && !allowed.is_empty() {
            let kind = allowed[rng.below(allowed.len() as u64) as usize];
            rates.insert(kind, upper[rng.below(upper.len() as u64) as usize]);
        }
        SwarmPlan { rates }
    }

    /// The ladder's next rung below `rate` (by value), if any: what a shrinker tries
    /// when it lowers a rate. A rate between rungs steps to the rung under it.
    pub fn lower_rate(rate: Ratio) -> Option<Ratio> {
        let below = |a: Ratio, b: Ratio| {
            u64::from(a.numerator) * u64::from(b.denominator)
                < u64::from(b.numerator) * u64::from(a.denominator)
        };
        LADDER.iter().rev().copied().find(|rung| below(*rung, rate))
    }

    pub fn rate(&self, kind: SwarmKind) -> Ratio {
        self.rates.get(&kind).copied().unwrap_or(Ratio::ZERO)
    }

    /// Sets the devices' swarm knobs on every host of the world.
    pub fn apply(&self, world: &World) {
        let mut net = world.net().options();
        net.reset_rate = self.rate(SwarmKind::NetReset);
        net.delay_rate = self.rate(SwarmKind::NetDelay);
        world.net().set_options(net);
        for name in world.host_names() {
            if let Some(host) = world.host(&name) {
                self.apply_to_host(&host);
            }
        }
        for upstream in world.upstreams() {
            self.apply_to_upstream(&upstream);
        }
        if !self.rates.is_empty() {
            let on: Vec<String> = self
                .rates
                .iter()
                .map(|(k, r)| format!("{k:?}={r}"))
                .collect();
            tracing::info!(target: "sim::swarm", "swarm on: {}", on.join(" "));
        }
    }

    /// Sets one host's device knobs (also for hosts a world adds while a plan runs).
    pub fn apply_to_host(&self, host: &crate::Host) {
        let disk = host.disk();
        let mut options = disk.options();
        options.eio_rate = self.rate(SwarmKind::DiskEio);
        options.bitflip_rate = self.rate(SwarmKind::DiskBitflip);
        options.slow_rate = self.rate(SwarmKind::DiskSlow);
        disk.set_options(options);
        let procs = host.procs();
        let mut options = procs.options();
        options.spawn_fail_rate = self.rate(SwarmKind::ProcSpawnFail);
        options.crash_rate = self.rate(SwarmKind::ProcCrash);
        options.hang_rate = self.rate(SwarmKind::ProcHang);
        options.garble_rate = self.rate(SwarmKind::ProcGarble);
        options.truncate_rate = self.rate(SwarmKind::ProcTruncate);
        options.slow_start_rate = self.rate(SwarmKind::ProcSlowStart);
        procs.set_options(options);
    }

    /// Sets a model API's rates.
    pub fn apply_to_upstream(&self, upstream: &crate::upstream::SimUpstream) {
        let mut options = upstream.options();
        options.rate_limit_rate = self.rate(SwarmKind::UpstreamRateLimit);
        options.error_rate = self.rate(SwarmKind::UpstreamError);
        options.timeout_rate = self.rate(SwarmKind::UpstreamTimeout);
        options.drop_rate = self.rate(SwarmKind::UpstreamDrop);
        options.truncate_rate = self.rate(SwarmKind::UpstreamTruncate);
        options.empty_rate = self.rate(SwarmKind::UpstreamEmpty);
        options.slow_rate = self.rate(SwarmKind::UpstreamSlow);
        upstream.set_options(options);
    }

    /// Turns every swarm fault off (the heal phase).
    pub fn quiet(world: &World) {
        SwarmPlan::default().apply(world);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_run_swarm_has_a_kind_on_each_kind_off_in_some_seeds_and_no_rare_rate() {
        let kinds = [
            SwarmKind::NetDelay,
            SwarmKind::DiskSlow,
            SwarmKind::ProcSlowStart,
        ];
        let mut off = BTreeMap::new();
        for seed in 0..400 {
            let plan = SwarmPlan::draw_short(seed, &kinds);
            assert!(!plan.rates.is_empty(), "seed {seed}: every kind off");
            assert!(
                plan.rates.values().all(|r| *r != LADDER[0]),
                "seed {seed}: a 1/1000 rate in a short run"
            );
            for kind in kinds {
                if !plan.rates.contains_key(&kind) {
                    *off.entry(kind).or_insert(0) += 1;
                }
            }
        }
        for kind in kinds {
            let n = off.get(&kind).copied().unwrap_or(0);
            assert!((100..300).contains(&n), "{kind:?} off in {n} of 400 seeds");
        }
    }

    #[test]
    fn swarms_differ_by_seed_and_repeat_per_seed() {
        let a = SwarmPlan::draw(1, &SwarmKind::ALL);
        assert_eq!(a, SwarmPlan::draw(1, &SwarmKind::ALL));
        let distinct: std::collections::BTreeSet<String> = (0..64)
            .map(|seed| format!("{:?}", SwarmPlan::draw(seed, &SwarmKind::ALL)))
            .collect();
        assert!(
            distinct.len() > 8,
            "64 seeds gave only {} swarms",
            distinct.len()
        );
        let never_on: Vec<SwarmKind> = SwarmKind::ALL
            .into_iter()
            .filter(|k| (0..64).all(|s| SwarmPlan::draw(s, &SwarmKind::ALL).rate(*k).is_zero()))
            .collect();
        assert!(never_on.is_empty(), "kinds never switched on: {never_on:?}");
    }

    #[test]
    fn rates_step_down_the_ladder_and_stop_at_its_foot() {
        assert_eq!(
            SwarmPlan::lower_rate(Ratio::new(1, 5)),
            Some(Ratio::new(1, 20))
        );
        assert_eq!(
            SwarmPlan::lower_rate(Ratio::new(1, 20)),
            Some(Ratio::new(1, 100))
        );
        assert_eq!(
            SwarmPlan::lower_rate(Ratio::new(1, 100)),
            Some(Ratio::new(1, 1000))
        );
        assert_eq!(SwarmPlan::lower_rate(Ratio::new(1, 1000)), None);
        assert_eq!(SwarmPlan::lower_rate(Ratio::ONE), Some(Ratio::new(1, 5)));
        assert_eq!(
            SwarmPlan::lower_rate(Ratio::new(3, 100)),
            Some(Ratio::new(1, 100))
        );
        assert_eq!(
            SwarmPlan::lower_rate(Ratio {
                numerator: 1,
                denominator: 0
            }),
            Some(Ratio::new(1, 5))
        );
    }

    #[test]
    fn kind_names_are_the_serialized_names() {
        for kind in SwarmKind::ALL {
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", kind.name())
            );
        }
    }

    #[test]
    fn only_allowed_kinds_are_drawn() {
        for seed in 0..32 {
            let plan = SwarmPlan::draw(seed, &[SwarmKind::NetReset]);
            assert!(plan.rates.keys().all(|k| *k == SwarmKind::NetReset));
        }
    }
}
