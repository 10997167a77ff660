//! The oracles of the egress scenario (`enable.1.2.1`, `upstream/egress.rs`): what
//! the clients saw of their fetches, the engine's egress stats and the outside host's
//! log, judged against the bounds and the probe schedule.

use crate::ensure;
use crate::kit::channel::{expected_answer, ms};
use crate::kit::files::snapshot_at;
use crate::scenario::{Failure, Outcome};
use crate::stage::channel::ChannelStage;
use crate::stage::client::SimClient;
use crate::stage::outside::{OutsideLog, page_body};
use engine::egress::{Egress, EgressStats};
use engine::protocol::{ErrorCode, ServerEvent};
use engine::workers::retry::exponential_delay;
use std::time::Duration;

/// One fetch query as its client saw it.
#[derive(Debug)]
pub struct Fetched {
    pub user: &'static str,
    pub query: u64,
    pub page: String,
    /// The result's text, or the error's message.
    pub outcome: Result<String, String>,
}

/// Each fetch got its page (carried out once by the worker) or an error naming a
/// bound; the engine's counts are those errors; the buffer stayed within its bound.
/// (`bound`: the buffer's count bound.)
pub fn judge_outcomes(fetched: &[Fetched], stats: &EgressStats, bound: usize) -> Outcome {
    let (mut refused, mut expired) = (0u64, 0u64);
    for f in fetched {
        match &f.outcome {
            Ok(text) => ensure!(
                *text == expected_answer(&page_body(&f.page)),
                "{} query {} ({}): {text:?} is not the page",
                f.user,
                f.query,
                f.page
            ),
            Err(e) if e.contains("refused") => refused += 1,
            Err(e) if e.contains("waited") => expired += 1,
            Err(e) => return Err(Failure::correctness(format!("{f:?}: unexpected {e}"))),
        }
    }
    ensure!(
        stats.buffered_peak <= bound,
        "the buffer held {} requests, over its bound {bound}",
        stats.buffered_peak
    );
    ensure!(
        stats.refused_full == refused && stats.expired == expired,
        "the engine refused {} and expired {} requests; the clients were told of {refused} and {expired}",
        stats.refused_full,
        stats.expired
    );
    Ok(())
}

/// The buffered requests were answered in the order they entered the buffer, and the
/// outside host first saw them in that order.
pub fn judge_order(stats: &EgressStats, outside: &OutsideLog) -> Outcome {
    let sent = &stats.sent_from_buffer;
    let mut entered = stats.buffered_order.iter();
    ensure!(
        sent.iter().all(|n| entered.any(|m| m == n)),
        "sent from the buffer {sent:?}, not in the order they entered {:?}",
        stats.buffered_order
    );
    let arrivals = outside.arrivals();
    let mut first_seen: Vec<u64> = Vec::new();
    for n in arrivals.iter().filter(|n| sent.contains(n)) {
        if !first_seen.contains(n) {
            first_seen.push(*n);
        }
    }
    ensure!(
        first_seen == *sent,
        "the outside host first saw the buffered requests as {first_seen:?}, sent {sent:?}"
    );
    Ok(())
}

/// Probes were spaced by their drawn delays, each at most its exponential nominal
/// value, jittered; none connected before the heal (or at all, unhealed).
pub fn judge_probes(
    stats: &EgressStats,
    egress: &Egress,
    heal_at: Duration,
    healed: bool,
) -> Outcome {
    let c = egress.config();
    let slack = ms(2);
    for p in &stats.probes {
        let d = p.delay;
        let nominal = exponential_delay(c.probe_first, c.probe_factor, c.probe_cap, d.attempt);
        ensure!(
            d.nominal == nominal && d.delay <= nominal,
            "probe {p:?}: its delay is not within the exponential rule ({nominal:?})"
        );
        ensure!(
            p.started_at + slack >= d.from + d.delay,
            "probe {p:?} started before its delay was over"
        );
        if p.connected {
            ensure!(
                healed && p.ended_at >= heal_at,
                "probe {p:?} connected across the partition (healed at {heal_at:?}: {healed})"
            );
        }
    }
    let delays: Vec<_> = stats.probes.iter().map(|p| p.delay).collect();
    if delays.len() >= 2 {
        ensure!(
            delays.iter().any(|d| d.delay < d.nominal),
            "{} probes, each after exactly its nominal delay: no jitter ({delays:?})",
            delays.len()
        );
    }
    Ok(())
}

/// A session whose request met the outage was told so once per outage and its worker
/// checkpointed; once egress is back it is told so.
/// (`snapshot_file`: the workers' snapshot, in their directories.)
pub async fn judge_told(
    st: &ChannelStage,
    c: &SimClient,
    user: &str,
    stats: &EgressStats,
    healed: bool,
    snapshot_file: &str,
) -> Outcome {
    let (degraded, restored, met_outage) = {
        let d = c.delivery.lock().expect("delivery poisoned");
        let kind = |k: &str| {
            d.messages
                .iter()
                .filter(|m| matches!(&m.event, ServerEvent::Warning { kind, .. } if kind == k))
                .count() as u64
        };
        let met = d.messages.iter().any(|m| {
            matches!(
                &m.event,
                ServerEvent::Error {
                    code: ErrorCode::EgressUnavailable,
                    ..
                }
            )
        });
        (kind("egress_degraded"), kind("egress_restored"), met)
    };
    ensure!(
        degraded <= stats.outages && restored <= degraded,
        "{user}: told degraded {degraded} and restored {restored} times in {} outages",
        stats.outages
    );
    if met_outage {
        ensure!(
            degraded >= 1,
            "{user}'s fetch failed, yet it was never told egress is degraded"
        );
    }
    if degraded == 0 {
        return Ok(());
    }
    if healed {
        ensure!(
            restored == degraded,
            "{user}: told degraded {degraded} times, restored {restored} times"
        );
    }
    // The checkpoint: the worker's snapshot holds the page it carried out before.
    let session = st.session(&c.session_id)?;
    let worker = session
        .worker()
        .ok_or_else(|| Failure::correctness(format!("{user}'s session has no worker")))?;
    let worker = st
        .manager
        .worker(&worker)
        .await
        .map_err(|e| Failure::correctness(format!("{user}'s worker: {e}")))?;
    let path = format!("{}/{snapshot_file}", worker.config().dir);
    let state = snapshot_at(st.env.disk(), &path)?;
    let first = page_body(&format!("{user}-1"));
    ensure!(
        state.contains(&first),
        "{user}'s worker was not checkpointed: its snapshot {state:?} lacks {first:?}"
    );
    Ok(())
}
