use super::*;

const TTL: Duration = Duration::from_secs(30);
const NAME: &str = "api.example";

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn core_with_pin() -> DnsCore {
    let mut config = DnsConfig::new();
    config.pinned.insert(NAME.into(), vec!["10.0.0.9".into()]);
    DnsCore::new(config)
}

fn answer(host: &str) -> Result<Vec<Resolved>, &'static io::Error> {
    Ok(vec![Resolved {
        host: host.into(),
        ttl: TTL,
    }])
}

fn servfail() -> io::Error {
    io::Error::other("SERVFAIL")
}

/// Runs one lookup at `now`, each resolver in `down` failing, the others answering
/// `host`; returns the final step and the resolvers asked.
fn lookup(
    core: &mut DnsCore,
    now: Duration,
    down: &[ResolverId],
    host: &str,
) -> (DnsStep, Vec<ResolverId>) {
    let mut asked = Vec::new();
    let mut step = core.handle_lookup(now, NAME);
    let error = servfail();
    while let DnsStep::Ask { via, .. } = step {
        asked.push(via);
        let reply = if down.contains(&via) {
            Err(&error)
        } else {
            answer(host)
        };
        step = core.handle_reply(now, NAME, via, reply);
    }
    (step, asked)
}

fn source(step: &DnsStep) -> Option<DnsSource> {
    match step {
        DnsStep::Answer { source, .. } => Some(*source),
        _ => None,
    }
}

#[test]
fn resolvers_are_asked_in_order_until_one_answers() {
    use ResolverId::*;
    let mut core = core_with_pin();
    let (step, asked) = lookup(&mut core, secs(0), &[Primary, Secondary], "b");
    assert_eq!(asked, vec![Primary, Secondary, OverHttps]);
    assert_eq!(source(&step), Some(DnsSource::Resolver(OverHttps)));
    let stats = core.stats();
    assert_eq!((stats.by_over_https, stats.primary_failures), (1, 1));
    assert_eq!(stats.secondary_failures, 1);
}

#[test]
fn a_fresh_answer_is_cached_for_its_ttl_only() {
    let mut core = core_with_pin();
    lookup(&mut core, secs(0), &[], "b");
    let (step, asked) = lookup(&mut core, secs(29), &[], "c");
    assert!(asked.is_empty());
    assert_eq!(
        step,
        DnsStep::Answer {
            hosts: vec!["b".into()],
            source: DnsSource::Cache
        }
    );
    let (step, asked) = lookup(&mut core, secs(30), &[], "c");
    assert_eq!(asked, vec![ResolverId::Primary], "expired: asked again");
    assert_eq!(
        source(&step),
        Some(DnsSource::Resolver(ResolverId::Primary))
    );
}

#[test]
fn an_expired_answer_serves_while_all_fail_and_is_refreshed_after() {
    let mut core = core_with_pin();
    lookup(&mut core, secs(0), &[], "b");
    let (step, asked) = lookup(&mut core, secs(100), &ResolverId::CHAIN, "x");
    assert_eq!(asked.len(), 3, "every resolver was asked first");
    assert_eq!(
        step,
        DnsStep::Answer {
            hosts: vec!["b".into()],
            source: DnsSource::Stale
        },
        "stale beats pinned"
    );
    let (step, _) = lookup(&mut core, secs(101), &[ResolverId::Primary], "c");
    assert_eq!(
        source(&step),
        Some(DnsSource::Resolver(ResolverId::Secondary))
    );
    let (step, asked) = lookup(&mut core, secs(102), &ResolverId::CHAIN, "x");
    assert!(asked.is_empty(), "the refreshed answer is fresh");
    assert_eq!(
        step,
        DnsStep::Answer {
            hosts: vec!["c".into()],
            source: DnsSource::Cache
        }
    );
}

#[test]
fn without_a_cache_the_pinned_address_answers_and_is_not_cached() {
    let mut core = core_with_pin();
    let (step, _) = lookup(&mut core, secs(0), &ResolverId::CHAIN, "x");
    assert_eq!(
        step,
        DnsStep::Answer {
            hosts: vec!["10.0.0.9".into()],
            source: DnsSource::Pinned
        }
    );
    let (step, asked) = lookup(&mut core, secs(1), &[], "b");
    assert_eq!(asked, vec![ResolverId::Primary], "pinned is no cache entry");
    assert_eq!(
        source(&step),
        Some(DnsSource::Resolver(ResolverId::Primary))
    );
}

#[test]
fn staleness_is_bounded_and_an_unpinned_name_then_fails() {
    let mut core = DnsCore::new(DnsConfig::new());
    lookup(&mut core, secs(0), &[], "b");
    let stale_max = DnsConfig::new().stale_max;
    let too_late = TTL + stale_max;
    let (step, _) = lookup(&mut core, too_late, &ResolverId::CHAIN, "x");
    assert_eq!(step, DnsStep::Fail);
    assert_eq!(core.stats().failed, 1);
}

#[test]
fn failures_are_counted_by_kind_and_an_empty_answer_is_a_failure() {
    let mut core = DnsCore::new(DnsConfig::new());
    let nx = io::Error::new(io::ErrorKind::NotFound, "NXDOMAIN");
    let timeout = io::Error::from(io::ErrorKind::TimedOut);
    core.handle_lookup(secs(0), NAME);
    core.handle_reply(secs(0), NAME, ResolverId::Primary, Err(&nx));
    core.handle_reply(secs(0), NAME, ResolverId::Secondary, Err(&timeout));
    let last = core.handle_reply(secs(0), NAME, ResolverId::OverHttps, Ok(vec![]));
    assert_eq!(last, DnsStep::Fail);
    let s = core.stats();
    assert_eq!((s.nxdomain, s.timed_out, s.other_failures), (1, 1, 1));
}

#[test]
fn names_are_case_insensitive() {
    let mut core = core_with_pin();
    lookup(&mut core, secs(0), &[], "b");
    let step = core.handle_lookup(secs(1), "API.Example");
    assert_eq!(source(&step), Some(DnsSource::Cache));
}
