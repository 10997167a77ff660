//! The upstream's resolver chain (`DnsCore`) against a reference model over random
//! steps (time passing, lookups meeting random resolvers down, answers with random
//! TTLs): resolvers are asked in order up to the first that answers; a fresh cached
//! answer asks no one; with every resolver failing, the expired answer serves within
//! `stale_max` past its TTL, else the pinned address, else the lookup fails; a
//! resolver's answer refreshes the cache and a pinned one never fills it; the counts add
//! up. A chain that skips a resolver, drops the stale answer at its TTL or caches a
//! pinned address fails here.

use engine::env::{Resolved, ResolverId};
use engine::upstream::{DnsConfig, DnsCore, DnsSource, DnsStep};
use proptest::prelude::*;
use std::io;
use std::time::Duration;

const NAME: &str = "api.example";

#[derive(Clone, Debug)]
enum Step {
    Wait {
        secs: u64,
    },
    /// A lookup: which resolvers fail, and the TTL of an answer.
    Lookup {
        down: [bool; 3],
        ttl_secs: u64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0..200u64).prop_map(|secs| Step::Wait { secs }),
        3 => (any::<[bool; 3]>(), 0..120u64)
            .prop_map(|(down, ttl_secs)| Step::Lookup { down, ttl_secs }),
    ]
}

/// The model: the cached answer (its host and when its TTL ends), if any.
#[derive(Clone, Debug, Default)]
struct Model {
    cached: Option<(String, Duration)>,
}

proptest! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_chain_follows_the_model(
        pinned in any::<bool>(),
        stale_max_secs in 1..600u64,
        steps in proptest::collection::vec(step(), 1..80),
    ) {
        let mut config = DnsConfig::new();
        config.stale_max = Duration::from_secs(stale_max_secs);
        if pinned {
            config = config.pin(NAME, &["10.9.9.9"]);
        }
        let stale_max = config.stale_max;
        let mut core = DnsCore::new(config);
        let mut model = Model::default();
        let mut now = Duration::ZERO;
        let mut lookups = 0u64;
        let error = io::Error::other("SERVFAIL");
        for (n, s) in steps.into_iter().enumerate() {
            let Step::Lookup { down, ttl_secs } = s else {
                if let Step::Wait { secs } = s {
                    now += Duration::from_secs(secs);
                }
                continue;
            };
            lookups += 1;
            let host = format!("host-{n}");
            let ttl = Duration::from_secs(ttl_secs);
            // The model's answer.
            let fresh = model.cached.clone().filter(|(_, until)| now < *until);
            let first_up = down.iter().position(|d| !d);
            let (expected, asked_expected) = match (fresh, first_up) {
                (Some((h, _)), _) => (Some((vec![h], DnsSource::Cache)), 0),
                (None, Some(i)) => {
                    model.cached = Some((host.clone(), now + ttl));
                    (Some((vec![host.clone()], DnsSource::Resolver(ResolverId::CHAIN[i]))), i + 1)
                }
                (None, None) => {
                    let stale = model.cached.clone().filter(|(_, until)| now < *until + stale_max);
                    let answer = match stale {
                        Some((h, _)) => Some((vec![h], DnsSource::Stale)),
                        None if pinned => Some((vec!["10.9.9.9".to_string()], DnsSource::Pinned)),
                        None => None,
                    };
                    (answer, 3)
                }
            };
            // The core's answer.
            let mut asked = Vec::new();
            let mut step = core.handle_lookup(now, NAME);
            while let DnsStep::Ask { via, timeout } = step {
                prop_assert!(!timeout.is_zero());
                asked.push(via);
                let i = ResolverId::CHAIN.iter().position(|&r| r == via).unwrap();
                let reply = if down[i] {
                    Err(&error)
                } else {
                    Ok(vec![Resolved { host: host.clone(), ttl }])
                };
                step = core.handle_reply(now, NAME, via, reply);
            }
            prop_assert_eq!(&asked[..], &ResolverId::CHAIN[..asked_expected], "asked in order");
            let got = match step {
                DnsStep::Answer { hosts, source } => Some((hosts, source)),
                DnsStep::Fail => None,
                DnsStep::Ask { .. } => unreachable!(),
            };
            prop_assert_eq!(got, expected);
        }
        let s = core.stats();
        let answered = s.by_primary + s.by_secondary + s.by_over_https
            + s.from_cache + s.stale + s.pinned + s.failed;
        prop_assert_eq!(answered, lookups, "each lookup counted once: {:?}", s);
        prop_assert_eq!(
            s.primary_failures + s.secondary_failures + s.over_https_failures,
            s.nxdomain + s.timed_out + s.other_failures
        );
    }
}
