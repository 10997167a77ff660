//! A query's agent loop at its limits: the turn limit met exactly (core.EC-096) and the
//! session's spending cap reached mid-query (EC-097). The echo model becomes an agent
//! on `use:read*N rest`: it asks for the `read` tool N times (the session's worker runs
//! it), then answers with the last tool result. What the model API served is read back
//! from its own log (`LocalUpstream::requests`: each call's query, turns and usage), so
//! the oracles count calls and money independently of the engine's bookkeeping.
//!
//! Choices where the catalog leaves one: a turn is one model call; a tool round asked
//! for on the last allowed turn is not run (its result could not be sent back); an
//! incomplete result is an error saying what to do, then the result with subtype
//! `error_max_turns` / `error_max_budget_usd` carrying what the model said so far. The
//! cap is per session (a query option that stays, as the model does); a call is
//! checked before it goes, so the cap is passed by at most the one call that crossed it.

use super::kit::calls_for;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::model::*;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::with_upstream;
use crate::stage::client::SimClient;
use engine::protocol::{ErrorCode, ServerEvent, Usd};
use engine::upstream::ModelLimits;
use serde_json::json;
use sim::World;

pub fn all() -> Vec<&'static Scenario> {
    vec![&TURN_LIMIT, &SPENDING_CAP]
}

/// The result of query `query` with its subtype, once it came.
pub(super) async fn result_with_subtype(
    client: &mut SimClient,
    query: u64,
) -> Result<(String, Option<String>), Failure> {
    let m = client
        .until(
            "the result",
            secs(120),
            |m| matches!(m.event, ServerEvent::Result { query: q, .. } if q == query),
        )
        .await?;
    match m.event {
        ServerEvent::Result { text, subtype, .. } => Ok((text, subtype)),
        _ => unreachable!("matched a result"),
    }
}

scenario!(
    TURN_LIMIT,
    "core.EC-096",
    "max_turns reached exactly",
    "A query whose model needs exactly max_turns calls (two tool rounds, then its answer, with max_turns 3) is answered whole; one that needs a call more stops at the third call without running the tool it asked for: the user is told (max_turns, raise the limit or continue in a new query) and gets the incomplete result with subtype error_max_turns; no call goes past the limit; the same work in a new query with a higher limit is answered.",
    ["upstream.query_incomplete"],
    cores: [
        "engine/src/sessions/agent/turns.rs",
        "engine/src/sessions/agent/mod.rs",
        "engine/src/sessions/agent/tools.rs",
    ],
    300,
    turn_limit,
    plan: crate::kit::plans::channel_upstream
);
async fn turn_limit(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    let up = upstream_of(&st)?;
    let tools = |max_turns: u32| json!({ "tools": ["read"], "max_turns": max_turns });
    let exact = "use:read*2 alpha beta";
    query_with(&mut ana, exact, tools(3)).await?;
    let (text, subtype) = result_with_subtype(&mut ana, 1).await?;
    ensure!(
        text == "alpha beta" && subtype.is_none(),
        "a query needing exactly max_turns calls was not answered whole: {text:?} {subtype:?}"
    );
    let calls = calls_for(&up, exact);
    ensure!(calls.len() == 3, "{} calls for 3 turns", calls.len());
    let over = "use:read*3 gamma delta";
    query_with(&mut ana, over, tools(3)).await?;
    let told = ana
        .until("the turn limit", secs(120), is_error(ErrorCode::MaxTurns))
        .await?;
    ensure!(
        matches!(&told.event, ServerEvent::Error { message, .. }
            if message.contains("max_turns") && message.contains("new query")),
        "the user was not told how to go on: {told:?}"
    );
    let (text, subtype) = result_with_subtype(&mut ana, 2).await?;
    ensure!(
        subtype.as_deref() == Some("error_max_turns") && text.is_empty(),
        "the incomplete result is not marked: {text:?} {subtype:?}"
    );
    let calls = calls_for(&up, over);
    ensure!(
        calls.len() == 3,
        "{} calls for a query limited to 3 turns",
        calls.len()
    );
    // The third call carried two tool rounds back (a use and a result each, past its
    // first call's turns): the third tool was never run.
    let (first, last) = (calls[0].turns, calls[2].turns);
    ensure!(
        last == first + 4 && calls[2].tool_results.len() == 1,
        "the last call carried {last} turns (the first {first})"
    );
    query_with(&mut ana, over, tools(4)).await?;
    let (text, subtype) = result_with_subtype(&mut ana, 3).await?;
    ensure!(
        text == "gamma delta" && subtype.is_none(),
        "with a higher limit the work was not finished: {text:?} {subtype:?}"
    );
    ensure!(
        st.sessions.get(&ana.session_id).is_some(),
        "the session did not survive the turn limit"
    );
    st.check_global()
}

/// The cap of the spending-cap scenario, and the query that would spend far more.
const CAP_MICROS: u64 = 4_500;
const LONG_WORK: &str = "use:read*50 one two three four five six seven eight nine ten \
    eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty";

scenario!(
    SPENDING_CAP,
    "core.EC-097",
    "Spending cap max_budget_usd reached mid-query",
    "A session capped at $0.0045 runs a query whose model would make 51 calls: the user is warned once when 80 % of the cap is spent, the query stops before the first call past the cap with budget_exceeded and an incomplete result (subtype error_max_budget_usd), and the spend the model API served (its own usage log, priced) passes the cap by less than the one call that crossed it and equals the engine's count; the session's next query is refused without a call, and once the cap is raised a query is answered.",
    ["upstream.budget_exceeded"],
    cores: [
        "engine/src/sessions/agent/budget.rs",
        "engine/src/sessions/agent/mod.rs",
        "engine/src/upstream/limits.rs",
    ],
    300,
    spending_cap,
    plan: crate::kit::plans::channel_upstream
);
async fn spending_cap(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    let up = upstream_of(&st)?;
    let cap = Usd::from_micros(CAP_MICROS);
    let options = json!({ "tools": ["read"], "max_turns": 100, "max_budget_usd": cap.dollars() });
    query_with(&mut ana, LONG_WORK, options).await?;
    let told = ana
        .until(
            "budget_exceeded",
            secs(240),
            is_error(ErrorCode::BudgetExceeded),
        )
        .await?;
    ensure!(
        matches!(&told.event, ServerEvent::Error { message, .. } if message.contains("budget_exceeded")),
        "{told:?}"
    );
    let (_, subtype) = result_with_subtype(&mut ana, 1).await?;
    ensure!(
        subtype.as_deref() == Some("error_max_budget_usd"),
        "the stopped query's result is not marked: {subtype:?}"
    );
    // The spend, call by call, from what the model API served.
    let prices = ModelLimits::new();
    let calls = calls_for(&up, LONG_WORK);
    let mut costs = Vec::new();
    for c in &calls {
        let usage = c
            .usage
            .ok_or_else(|| Failure::correctness("a served call without usage"))?;
        costs.push(
            prices
                .cost(c.model.as_deref().unwrap_or_default(), usage)
                .micros,
        );
    }
    let spent: u64 = costs.iter().sum();
    let before_last: u64 = spent - costs.last().copied().unwrap_or(0);
    ensure!(
        calls.len() < 51 && spent >= CAP_MICROS && before_last < CAP_MICROS,
        "the query did not stop at the cap: {} calls, {spent} µ$ spent, {before_last} before the last",
        calls.len()
    );
    let session = st
        .sessions
        .get(&ana.session_id)
        .ok_or_else(|| Failure::correctness("the session is gone"))?;
    let counted = session.spent().micros;
    ensure!(
        counted == spent,
        "the engine counted {counted} µ$, the API served {spent} µ$"
    );
    let warned = warnings(&ana, "budget_warning");
    ensure!(
        warned.len() == 1,
        "{} warnings at 80 % of the cap",
        warned.len()
    );
    // The 80 % mark was crossed by a served call before the cap was.
    ensure!(
        before_last * 100 >= CAP_MICROS * 80 || spent * 100 >= CAP_MICROS * 80,
        "warned though 80 % was never spent"
    );
    let next = "one more thing";
    query_with(&mut ana, next, json!({})).await?;
    let (_, subtype) = result_with_subtype(&mut ana, 2).await?;
    ensure!(
        subtype.as_deref() == Some("error_max_budget_usd") && calls_for(&up, next).is_empty(),
        "a query past the cap was not refused before its call: {subtype:?}"
    );
    let raised = json!({ "max_budget_usd": 1.0 });
    query_with(&mut ana, "raised cap", raised).await?;
    let (text, subtype) = result_with_subtype(&mut ana, 3).await?;
    ensure!(
        text == "raised cap" && subtype.is_none(),
        "a raised cap did not let the session go on: {text:?} {subtype:?}"
    );
    st.check_global()
}
