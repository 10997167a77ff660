//! enable.1.2.2: DNS resolution fails. The engine reaches the model API on `upstream-0`
//! by the name `api.model.test`, which the world's resolvers point at it with a TTL
//! drawn from the seed (10 to 40 s). The plan takes the resolvers down phase by phase:
//! all three while the engine starts (nothing cached yet: the pinned address), then
//! back; then the primary (the secondary answers), the secondary too (DNS over HTTPS
//! answers), DoH too (the expired cache answers), and all back (the primary answers and
//! refreshes the cache). Each resolver's fault (NXDOMAIN, SERVFAIL, no answer,
//! unreachable) is drawn from the seed.
//!
//! Chosen where the catalog leaves it open (what a careful platform team ships):
//! - every resolver failure moves on to the next, NXDOMAIN included: the name is the
//!   engine's own configured service, so an NXDOMAIN for it is a broken resolver;
//! - per-resolver timeouts of 2, 2 and 3 s (a lookup gives up after 7 s, inside a
//!   model call's 30 s); stale answers serve up to 24 h past their TTL (RFC 8767);
//! - pinned answers are not cached, so the next lookup asks the resolvers again;
//! - the pinned address is `upstream-0`'s address as the simulated network knows it
//!   (its host name: in a simulated world host names are the addresses, as the
//!   resolvers' records are).
//!
//! Oracles: every query is answered by the model through the chain; in each phase,
//! once the cached answer has expired, the source the faults leave (read from what the
//! marks set going) answers and no other source but the fresh cache does; no lookup
//! fails; the engine's failed questions, by kind, are the faults the resolvers counted;
//! its stale and pinned answers are the ones it reported (`engine::met`). With the plan
//! shrunk away, the primary answers every phase.

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::dns::{Resolvers, check_phase, failures_disagree};
use crate::kit::plans::{channel_upstream, plan_rng};
use crate::scenario::{Failure, Outcome};
use crate::stage::channel::{ChannelStage, UPSTREAM_HOST, with_upstream_named};
use crate::stage::client::SimClient;
use engine::env::ResolverId;
use engine::protocol::ServerEvent;
use engine::upstream::{DnsConfig, DnsStats, UpstreamClient};
use sim::faults::Fault;
use sim::net::DnsFaultKind;
use sim::{FaultPlan, World};
use std::sync::Arc;

/// The model API's name, as the engine is configured to reach it.
const UPSTREAM_NAME: &str = "api.model.test";

crate::kit::channel::scenario!(
    DNS_FAILURE,
    "enable.1.2.2",
    "DNS resolution fails",
    "The model API is reached by name through the engine's resolver chain: with the primary resolver failing the secondary answers, with both failing DNS over HTTPS answers, with all three failing an answer cached past its TTL answers (and is refreshed once a resolver is back), and with all failing and nothing cached (an engine starting) the service's pinned address answers; every query is answered by the model, which resolver answered is counted by the engine and matches the faults the resolvers injected, and no lookup fails.",
    [
        "net.dns_nxdomain",
        "net.dns_servfail",
        "net.dns_timeout",
        "net.dns_outage",
        "dns.stale_answer",
        "dns.pinned_address"
    ],
    cores: [
        "engine/src/upstream/dns/core.rs",
        "engine/src/upstream/dns/mod.rs",
        "engine/src/upstream/http.rs",
    ],
    900,
    dns_failure,
    plan: dns_plan
);

/// The events after the engine is up, in order, each a phase of the body.
const PHASES: [&str; 5] = [
    "resolvers-back",
    "primary-down",
    "secondary-down",
    "doh-down",
    "recovered",
];

/// All resolvers down while the engine starts, back; then down one by one, and back.
fn dns_plan(seed: u64) -> FaultPlan {
    let mut rng = plan_rng(seed);
    let mut down = |resolver| Fault::DnsFault {
        resolver,
        fault: DnsFaultKind::ALL[rng.below(DnsFaultKind::ALL.len() as u64) as usize],
    };
    let recover = |resolver| Fault::DnsRecover { resolver };
    let mut plan = channel_upstream(seed);
    for resolver in ResolverId::CHAIN {
        plan = plan
            .after("engine-starting", 0, down(resolver))
            .after("resolvers-back", 0, recover(resolver))
            .after("recovered", 0, recover(resolver));
    }
    plan.after("primary-down", 0, down(ResolverId::Primary))
        .after("secondary-down", 0, down(ResolverId::Secondary))
        .after("doh-down", 0, down(ResolverId::OverHttps))
}

async fn dns_failure(world: World) -> Outcome {
    let ttl = secs(10 + world.rng("dns-ttl").below(31));
    world.net().dns_record(UPSTREAM_NAME, UPSTREAM_HOST, ttl);
    let mut resolvers = Resolvers::default();
    resolvers.apply(&world.mark("engine-starting"));
    let expected = resolvers.expected();
    let dns = DnsConfig::new().pin(UPSTREAM_NAME, &[UPSTREAM_HOST]);
    let mut st =
        ChannelStage::start(&world, |s, _| with_upstream_named(s, UPSTREAM_NAME, dns)).await?;
    st.ready(secs(90)).await?;
    let client = st
        .sessions
        .upstream()
        .cloned()
        .ok_or_else(|| Failure::correctness("the engine has no upstream client"))?;
    let token = st.token("ana", "member", secs(3600));
    let d = st.new_delivery();
    let mut ana = st.open(0, &format!("token={token}"), &d).await?;
    let mut asked = 0u64;
    ask(&mut ana, &mut asked, "while the engine started").await?;
    check_phase("start", &DnsStats::default(), &stats(&client)?, expected)?;
    resolvers.answered(expected);

    for phase in PHASES {
        resolvers.apply(&world.mark(phase));
        let expected = resolvers.expected();
        // A lookup begun before the mark ends within the chain's 7 s.
        tokio::time::sleep(secs(8)).await;
        let before = stats(&client)?;
        // Every answer cached before now has expired by then.
        tokio::time::sleep(ttl + secs(1)).await;
        ask(&mut ana, &mut asked, phase).await?;
        check_phase(phase, &before, &stats(&client)?, expected)?;
        resolvers.answered(expected);
    }

    world.quiet("judging the counts");
    let faults = world.faults().clone();
    let agree = st
        .eventually("the engine's failures match the faults", secs(30), || {
            stats(&client).is_ok_and(|s| failures_disagree(&s, &faults).is_none())
        })
        .await;
    let last = stats(&client)?;
    if agree.is_err() {
        let why = failures_disagree(&last, &faults).unwrap_or_default();
        return Err(Failure::correctness(why));
    }
    ensure!(last.failed == 0, "{} lookups failed: {last:?}", last.failed);
    ensure!(
        faults.count("dns.stale_answer") == last.stale
            && faults.count("dns.pinned_address") == last.pinned,
        "the engine reported {} stale and {} pinned answers, counted {last:?}",
        faults.count("dns.stale_answer"),
        faults.count("dns.pinned_address")
    );
    st.check_global()
}

fn stats(client: &Arc<UpstreamClient>) -> Result<DnsStats, Failure> {
    client
        .dns_stats()
        .ok_or_else(|| Failure::correctness("the upstream is not resolved by name"))
}

/// Asks the next query and waits for the model's answer to it.
async fn ask(ana: &mut SimClient, asked: &mut u64, text: &str) -> Result<(), Failure> {
    *asked += 1;
    let query = *asked;
    ana.query(text).await?;
    ana.until(
        "the model's answer",
        secs(120),
        |m| matches!(m.event, ServerEvent::Result { query: q, .. } if q == query),
    )
    .await?;
    let (_, answer) = answer_of(ana, query);
    let answer = answer.unwrap_or_default();
    ensure!(
        answer.contains(text),
        "query {query} ({text}) was not answered by the model: {answer:?}"
    );
    Ok(())
}
