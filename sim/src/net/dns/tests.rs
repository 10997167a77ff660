use super::*;
use crate::world::{WorldOptions, run_world};
use engine::env::NetAddr;

const TTL: Duration = Duration::from_secs(30);

/// Asks `via` for `name` from host "a" of a world with host "b" and its record.
fn ask_with(
    fault: Option<(ResolverId, DnsFaultKind)>,
    via: ResolverId,
    name: &'static str,
) -> (
    io::Result<Vec<Resolved>>,
    Duration,
    std::collections::BTreeMap<String, u64>,
) {
    let report = run_world(WorldOptions::new(7), move |world| async move {
        let a = world.add_host("a");
        world.add_host("b");
        world.net().dns_record("api.example", "b", TTL);
        if let Some((at, kind)) = fault {
            world.net().dns_fault(at, kind);
        }
        let started = tokio::time::Instant::now();
        let answer = a.env().net().resolve(via, name).await;
        (answer, started.elapsed())
    });
    let (answer, took) = report.value.expect("the world ran");
    (answer, took, report.faults)
}

#[test]
fn a_healthy_resolver_answers_with_the_record_and_its_ttl() {
    let (answer, took, faults) = ask_with(None, ResolverId::Primary, "API.example");
    let answer = answer.expect("answered");
    assert_eq!(
        answer,
        vec![Resolved {
            host: "b".into(),
            ttl: TTL
        }]
    );
    assert!(took <= Duration::from_millis(31), "{took:?}");
    assert!(faults.is_empty(), "no fault: {faults:?}");
}

#[test]
fn an_unknown_name_is_an_honest_nxdomain_not_a_fault() {
    let (answer, _, faults) = ask_with(None, ResolverId::Secondary, "nope.example");
    assert_eq!(answer.unwrap_err().kind(), io::ErrorKind::NotFound);
    assert!(faults.is_empty(), "{faults:?}");
}

#[test]
fn each_fault_fails_its_resolver_with_its_kind_and_counts_once() {
    for kind in DnsFaultKind::ALL {
        let fault = Some((ResolverId::Primary, kind));
        let (answer, took, faults) = ask_with(fault, ResolverId::Primary, "api.example");
        let error = answer.expect_err("a faulty resolver fails");
        let expected = match kind {
            DnsFaultKind::Nxdomain => io::ErrorKind::NotFound,
            DnsFaultKind::Servfail => io::ErrorKind::Other,
            DnsFaultKind::Timeout => io::ErrorKind::TimedOut,
            DnsFaultKind::Outage => io::ErrorKind::ConnectionRefused,
        };
        assert_eq!(error.kind(), expected, "{kind:?}: {error}");
        if kind == DnsFaultKind::Timeout {
            assert_eq!(took, Duration::from_secs(5), "a timeout takes the timeout");
        } else {
            assert!(took <= Duration::from_millis(31), "{kind:?} took {took:?}");
        }
        assert_eq!(faults.get(kind.counter()), Some(&1), "{kind:?}: {faults:?}");
        assert_eq!(faults.len(), 1, "{kind:?}: {faults:?}");
    }
}

#[test]
fn a_fault_touches_only_its_resolver_and_ends_on_recovery() {
    let fault = Some((ResolverId::Primary, DnsFaultKind::Outage));
    let (answer, _, faults) = ask_with(fault, ResolverId::OverHttps, "api.example");
    assert!(answer.is_ok(), "DoH is not the one down");
    assert!(faults.is_empty(), "{faults:?}");
    let report = run_world(WorldOptions::new(7), |world| async move {
        let a = world.add_host("a");
        world.add_host("b");
        world.net().dns_record("api.example", "b", TTL);
        world
            .net()
            .dns_fault(ResolverId::Secondary, DnsFaultKind::Servfail);
        let first = a
            .env()
            .net()
            .resolve(ResolverId::Secondary, "api.example")
            .await;
        world.net().dns_recover(ResolverId::Secondary);
        let second = a
            .env()
            .net()
            .resolve(ResolverId::Secondary, "api.example")
            .await;
        (first.is_err(), second.is_ok())
    });
    assert_eq!(report.value, Ok((true, true)));
    assert_eq!(report.faults.get("net.dns_servfail"), Some(&1));
}

#[test]
fn the_resolved_host_is_one_a_connect_reaches() {
    let report = run_world(WorldOptions::new(3), |world| async move {
        let a = world.add_host("a");
        let b = world.add_host("b");
        world.net().dns_record("api.example", "b", TTL);
        let mut listener = b.env().net().bind(443).await.expect("bind");
        let resolved = a
            .env()
            .net()
            .resolve(ResolverId::Primary, "api.example")
            .await
            .expect("resolved");
        let addr = NetAddr::new(resolved[0].host.clone(), 443);
        let connected = a.env().net().connect(&addr).await;
        let accepted = listener.accept().await;
        (connected.is_ok(), accepted.is_ok())
    });
    assert_eq!(report.value, Ok((true, true)));
}

#[test]
fn answer_latencies_come_from_the_seed() {
    let took = |seed| {
        run_world(WorldOptions::new(seed), |world| async move {
            let a = world.add_host("a");
            world.add_host("b");
            world.net().dns_record("api.example", "b", TTL);
            let started = tokio::time::Instant::now();
            let _ = a
                .env()
                .net()
                .resolve(ResolverId::Primary, "api.example")
                .await;
            started.elapsed()
        })
        .value
        .expect("ran")
    };
    assert_eq!(took(11), took(11), "the same seed, the same latency");
}
