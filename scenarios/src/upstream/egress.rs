//! enable.1.2.1: a network partition while sandboxes fetch. Three sessions fetch pages
//! from a simulated outside web server on `outside-0` (`tool:fetch outside-0:80/page/..`)
//! through the engine's egress; the plan partitions `engine-0` from `outside-0` (held
//! or dropped traffic, drawn from the seed) when the body marks `partition`, and heals
//! it when the body marks `heal`, after an outage drawn from the seed (20 to 420 s, so
//! about a quarter of the seeds outlast the 5 min age bound). The sessions keep
//! fetching, one query at a time each, throughout and for 90 s after the heal.
//!
//! Chosen where the catalog leaves it open (what a careful platform team ships):
//! - the buffer's count bound is lowered to 2 here, so three sessions can meet it (the
//!   engine's default is the catalog's 1000; the age bound and the 5 s connect timeout
//!   are the defaults);
//! - probes back off from 1 s to 60 s with full jitter; a request sent but not answered
//!   (a reset by a dropping partition) counts as unreached and is sent again after the
//!   outage (the requests are GETs);
//! - the worker's checkpoint is taken once per outage per session, when its first
//!   request meets egress down, as is the `egress_degraded` warning;
//! - a connection refused by the target (nothing listens) fails that request alone:
//!   the host answered, so egress is not down (before the partition, ana fetches from
//!   a closed port to see it).
//!
//! Oracles: every fetch query ends with its body (carried out by the worker, once, in
//! each session's order) or an `egress_unavailable` error naming a bound (a refusal
//! while the buffer is full, or a wait past the age bound), never silence and never
//! another error; the buffer never held more than its bound and the engine's counts
//! of refusals and expiries are the errors the clients got; the buffered requests went
//! out in the order they entered the buffer (as the outside host saw them arrive);
//! every session whose request met the outage was told `egress_degraded` (once per
//! outage) and its worker's snapshot holds its work before the outage; probes were
//! spaced by their drawn delays, each at most its exponential nominal value, the
//! delays jittered (not the nominal schedule), none connecting before the heal; after
//! the heal egress is restored, every session told is told `egress_restored` and
//! fetches again. With the partition shrunk away, every fetch is answered and nothing
//! degrades.

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::egress::*;
use crate::kit::plans::{channel, plan_rng};
use crate::scenario::{Failure, Outcome};
use crate::stage::channel::{ChannelStage, ENGINE_HOST};
use crate::stage::client::SimClient;
use crate::stage::outside::host_outside;
use engine::egress::Egress;
use engine::protocol::{ErrorCode, ServerEvent};
use sim::faults::{Fault, PartitionMode};
use sim::{FaultPlan, SimRng, World};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const OUTSIDE: &str = "outside-0";
const OUTSIDE_PORT: u16 = 80;
const SNAPSHOT_FILE: &str = "session.snap";
const USERS: [&str; 3] = ["ana", "bo", "cy"];
/// The buffer's count bound in this scenario (see the header).
const BUFFERED_MAX: usize = 2;
/// Fetching goes on this long after the heal.
const AFTER_HEAL: Duration = Duration::from_secs(90);

crate::kit::channel::scenario!(
    EGRESS_PARTITION,
    "enable.1.2.1",
    "Network partition while a sandbox is executing",
    "With the engine cut off from the outside host while sessions fetch: connects time out after 5 s and egress is marked down, requests wait in a buffer bounded by count (a request past it refused with a clear error) and age (one waiting past 5 min fails with a clear error), each session meeting the outage has its worker checkpointed and is told egress is degraded, probes back off exponentially with full jitter, and after the heal egress is restored, the waiting requests go out in order, every fetch gets its body once or a clear error, and the sessions are told egress is back.",
    ["net.partition", "egress.degraded", "egress.checkpoint"],
    cores: [
        "engine/src/egress/buffer.rs",
        "engine/src/egress/probe.rs",
        "engine/src/egress/shell.rs",
        "engine/src/sessions/egress.rs",
    ],
    900,
    egress_partition,
    plan: egress_plan
);

/// Partitions the engine from the outside host (held or dropped, from the seed) when
/// the body marks `partition`; heals it when the body marks `heal`.
fn egress_plan(seed: u64) -> FaultPlan {
    let mode = if plan_rng(seed).below(2) == 0 {
        PartitionMode::Hold
    } else {
        PartitionMode::Drop
    };
    let pair = || (ENGINE_HOST.to_string(), OUTSIDE.to_string());
    let (a, b) = pair();
    let partition = Fault::Partition {
        a,
        b,
        mode,
        one_way: false,
    };
    let (a, b) = pair();
    channel(seed)
        .after("partition", 0, partition)
        .after("heal", 0, Fault::Heal { a, b })
}

async fn egress_partition(world: World) -> Outcome {
    let outside = host_outside(&world, OUTSIDE, OUTSIDE_PORT).await?;
    let mut st = ChannelStage::start(&world, |s, _| {
        s.egress.buffered_max = BUFFERED_MAX;
        s.pool.template.args = vec!["--snapshot".to_string(), SNAPSHOT_FILE.to_string()];
        for tools in s.role_tools.values_mut() {
            tools.push("fetch".to_string());
        }
    })
    .await?;
    st.ready(secs(90)).await?;
    let egress = st.sessions.egress().clone();
    let mut clients = Vec::new();
    for (n, user) in USERS.into_iter().enumerate() {
        let token = st.token(user, "member", secs(3600));
        let d = st.new_delivery();
        clients.push((user, st.open(n, &format!("token={token}"), &d).await?));
    }
    // Before the outage: every session's first fetch is answered.
    let mut fetched = Vec::new();
    for (user, c) in clients.iter_mut() {
        fetched.push(fetch(c, user, 1, OUTSIDE_PORT, &egress).await?);
    }
    ensure!(
        fetched.iter().all(|f| f.outcome.is_ok()),
        "a fetch failed before any fault: {fetched:?}"
    );
    // A port where nothing listens fails that fetch alone: egress stays up.
    let (user, ana) = &mut clients[0];
    let f = fetch(ana, user, 2, OUTSIDE_PORT + 1, &egress).await?;
    ensure!(
        f.outcome
            .as_ref()
            .is_err_and(|e| e.contains("refused the connection"))
            && egress.is_up()
            && egress.stats().outages == 0,
        "a fetch from a closed port: {f:?}, egress {:?}",
        egress.stats()
    );

    let partitioned = world
        .mark("partition")
        .iter()
        .any(|f| matches!(f, Fault::Partition { .. }));
    let outage = secs(20 + world.rng("egress-outage").below(401));
    let start = Instant::now();
    let stop = start + outage + AFTER_HEAL;
    let mut heal_at = None;
    let mut healed = false;
    let mark_heal = async {
        tokio::time::sleep(outage).await;
        heal_at = Some(egress.now());
        healed = world
            .mark("heal")
            .iter()
            .any(|f| matches!(f, Fault::Heal { .. }));
    };
    let [(u0, c0), (u1, c1), (u2, c2)] = &mut clients[..] else {
        return Err(Failure::correctness("three clients expected"));
    };
    let mut rngs = USERS.map(|u| world.rng(&format!("egress-gaps-{u}")));
    let [r0, r1, r2] = &mut rngs;
    let (_, l0, l1, l2) = tokio::join!(
        mark_heal,
        keep_fetching(c0, u0, r0, stop, &egress),
        keep_fetching(c1, u1, r1, stop, &egress),
        keep_fetching(c2, u2, r2, stop, &egress),
    );
    for l in [l0, l1, l2] {
        fetched.extend(l?);
    }
    let heal_at = heal_at.unwrap_or_default();
    let healed = healed || !partitioned;

    world.quiet("judging egress");
    if healed {
        // Egress is back (a probe connects within its capped delay and timeout), every
        // session fetches again.
        st.eventually("egress restored", secs(70), || egress.is_up())
            .await?;
        for (user, c) in clients.iter_mut() {
            let last = fetched.iter().filter(|f| f.user == *user).map(|f| f.query);
            let f = fetch(c, user, last.max().unwrap_or(0) + 1, OUTSIDE_PORT, &egress).await?;
            ensure!(f.outcome.is_ok(), "after the heal: {f:?}");
            fetched.push(f);
        }
    }
    let stats = egress.stats();
    judge_outcomes(&fetched, &stats, BUFFERED_MAX)?;
    judge_order(&stats, &outside)?;
    judge_probes(&stats, &egress, heal_at, healed)?;
    if !partitioned {
        // The baseline: nothing degraded, every fetch answered.
        ensure!(
            stats.outages == 0 && stats.probes.is_empty() && stats.buffered == 0,
            "no partition, yet egress degraded: {stats:?}"
        );
        ensure!(
            fetched.iter().all(|f| f.outcome.is_ok()),
            "no partition, yet a fetch failed: {fetched:?}"
        );
    } else {
        ensure!(
            stats.outages >= 1,
            "the partition was never noticed: {stats:?}"
        );
    }
    for (user, c) in &clients {
        judge_told(&st, c, user, &stats, healed, SNAPSHOT_FILE).await?;
    }
    st.check_global()
}

/// Sends query `query` (the session's queries are numbered from 1, one at a time
/// here), fetching page `{user}-{query}` from `port`, and waits for its end: the
/// result, or an `egress_unavailable` error (any other error fails the run), then the
/// idle status.
async fn fetch(
    c: &mut SimClient,
    user: &'static str,
    query: u64,
    port: u16,
    egress: &Arc<Egress>,
) -> Result<Fetched, Failure> {
    let page = format!("{user}-{query}");
    c.query(&format!("tool:fetch {OUTSIDE}:{port}/page/{page}"))
        .await?;
    // A waiting request ends by the age bound at the latest, then one exchange.
    let c_ = egress.config();
    let bound = c_.age_max + c_.exchange_timeout + c_.probe_cap + secs(30);
    let end = c
        .until("the fetch's end", bound, |m| {
            matches!(m.event, ServerEvent::Result { query: q, .. } if q == query)
                || matches!(m.event, ServerEvent::Error { .. })
        })
        .await?;
    let outcome = match end.event {
        ServerEvent::Result { text, .. } => Ok(text),
        ServerEvent::Error {
            code: ErrorCode::EgressUnavailable,
            message,
        } => Err(message),
        other => return Err(Failure::correctness(format!("{user} {page}: {other:?}"))),
    };
    c.until("idle", secs(30), is_status("idle")).await?;
    Ok(Fetched {
        user,
        query,
        page,
        outcome,
    })
}

/// Fetches one page after another (a seeded pause between them, longer after a
/// refusal) until `stop`.
async fn keep_fetching(
    c: &mut SimClient,
    user: &'static str,
    rng: &mut SimRng,
    stop: Instant,
    egress: &Arc<Egress>,
) -> Result<Vec<Fetched>, Failure> {
    let mut out = Vec::new();
    // Ana's query 2 was the closed port's.
    let mut n = if user == USERS[0] { 3 } else { 2 };
    while Instant::now() < stop {
        let f = fetch(c, user, n, OUTSIDE_PORT, egress).await?;
        let refused = f.outcome.as_ref().is_err_and(|e| e.contains("refused"));
        out.push(f);
        n += 1;
        // At least the gateway's per-user refill (one message per 3 s): the clients
        // stay within their rate limit.
        let pause = if refused {
            10_000 + rng.below(20_001)
        } else {
            3_000 + rng.below(3_001)
        };
        tokio::time::sleep(ms(pause)).await;
    }
    Ok(out)
}
