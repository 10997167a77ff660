//! The query timeout bounds a whole agent query (`sim.upstream.agent-query-deadline`, a
//! self-check outside the catalog beside core.EC-110 and EC-011's QUERY_TIMEOUT_SECONDS):
//! a slow model whose every turn ends well within the timeout still cannot stretch a
//! query of many turns past it.
//!
//! Chosen: the deadline starts with the query (compaction and tool rounds count), a call
//! is never sent past it, and the query that meets it fails like a single slow answer
//! does (the session kept, nothing carried out).

use super::agent::result_with_subtype;
use super::kit::*;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::model::*;
use crate::kit::sessions::*;
use crate::scenario::{Outcome, Scenario};
use crate::stage::channel::with_upstream;
use engine::protocol::{ErrorCode, ServerEvent};
use serde_json::json;
use sim::World;
use std::time::Duration;
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&AGENT_DEADLINE]
}

/// The query timeout of this run (the standard's 300 s would take 40 slow turns).
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Tool rounds the slow query asks for: at the trickle's pace, several times the timeout.
const ROUNDS: u32 = 12;

scenario!(
    AGENT_DEADLINE,
    "sim.upstream.agent-query-deadline",
    "The query timeout bounds a whole agent query, not each of its turns",
    "With a 60 s query timeout and the model streaming one event every 1.5 to 3 s, a query asking for 12 tool rounds (each turn well within 60 s, the whole far past it) is cut at 60 s (at most 5 s later), after at least two of its calls, with an error naming the query timeout; nothing is carried out, no call goes out after the cut, and once the model is fast again the session answers.",
    ["upstream.trickle"],
    cores: [
        "engine/src/sessions/agent/mod.rs",
        "engine/src/sessions/upstream.rs",
    ],
    600,
    agent_deadline,
    // EC-110's: streamed answers paced from the first answer on, until the recovery.
    plan: super::streaming::very_slow_plan
);
async fn agent_deadline(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| {
        with_upstream(s);
        if let Some(up) = &mut s.upstream {
            up.query_timeout = QUERY_TIMEOUT;
        }
    })
    .await?;
    let up = upstream_of(&st)?;
    answered(&mut ana, 1, "at full speed").await?;
    let trickle = world.mark("answered");
    let text = format!("use:read*{ROUNDS} the slow agent");
    let options = json!({ "tools": ["read"], "max_turns": ROUNDS + 1 });
    let asked = Instant::now();
    query_with(&mut ana, &text, options).await?;
    if trickle.is_empty() {
        let (answer, subtype) = result_with_subtype(&mut ana, 2).await?;
        ensure!(
            answer == "the slow agent" && subtype.is_none(),
            "the agent query was not answered whole: {answer:?} {subtype:?}"
        );
        return st.check_global();
    }
    let cut = ana
        .until("the query timeout", QUERY_TIMEOUT + secs(60), |m| {
            matches!(
                &m.event,
                ServerEvent::Error {
                    code: ErrorCode::AnswerBrokeOff | ErrorCode::UpstreamUnavailable,
                    ..
                }
            )
        })
        .await?;
    let took = asked.elapsed();
    let calls = calls_for(&up, &text);
    ensure!(
        took >= QUERY_TIMEOUT && took <= QUERY_TIMEOUT + secs(5),
        "the agent query was cut after {took:?} ({} calls), not at its {QUERY_TIMEOUT:?} timeout",
        calls.len()
    );
    ensure!(
        matches!(&cut.event, ServerEvent::Error { message, .. } if message.contains("query timeout")),
        "the user was not told the query timed out: {cut:?}"
    );
    ensure!(
        calls.len() >= 2 && calls.len() <= ROUNDS as usize,
        "{} calls: the deadline did not fall inside a later turn",
        calls.len()
    );
    let last = calls
        .iter()
        .map(|c| c.at)
        .max()
        .expect("at least two calls");
    ensure!(
        last <= asked + QUERY_TIMEOUT,
        "a call went out {:?} after the query's start, past its timeout",
        last - asked
    );
    ensure!(
        result_of(&ana, 2).is_none(),
        "the cut query was carried out"
    );
    world.mark("recovered");
    answered(&mut ana, 3, "at full speed again").await?;
    st.check_global()
}
