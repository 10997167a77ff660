//! Which model answers, and with what: unknown and retired models (core.EC-099), the
//! fallback model (EC-102), a resumed conversation moving to another model (EC-103)
//! and beta features (EC-113). Options are the query's (`options` of a `query`
//! frame); the engine knows `local-echo-1` (its default), `local-echo-2` and
//! `local-echo-lite`, and two betas. The faults are the simulated model API's modes
//! (a model retired or overloaded, a beta withdrawn) and the network's reset.

use super::kit::*;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::model::*;
use crate::kit::sessions::*;
use crate::scenario::{Outcome, Scenario};
use crate::stage::channel::with_upstream;
use engine::protocol::{ErrorCode, ServerEvent};
use engine::upstream::{LocalUpstream, UpstreamRequest};
use serde_json::json;
use sim::upstream::UpstreamMode;
use sim::{FaultPlan, World};

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &UNKNOWN_MODEL,
        &FALLBACK_MODEL,
        &RESUMED_OTHER_MODEL,
        &UNKNOWN_BETA,
    ]
}

const DEFAULT: &str = "local-echo-1";
const OTHER: &str = "local-echo-2";
const LITE: &str = "local-echo-lite";
const BETA: &str = "echo-tools-2026-01-01";

/// The latest messages call whose query starts `text`.
fn call_for(up: &LocalUpstream, text: &str) -> Option<UpstreamRequest> {
    calls_for(up, text).pop()
}

scenario!(
    UNKNOWN_MODEL,
    "core.EC-099",
    "Requested model does not exist",
    "A query naming a model the engine does not know is answered by the default model, with a model_unknown warning when its options are built (no call to the unknown name); a model the engine knows but the API has retired slips through: that query fails with model_not_found, the session is kept, and its next query goes to the default model and is answered.",
    ["upstream.model_retired"],
    cores: [
        "engine/src/sessions/model_call.rs",
        "engine/src/sessions/upstream.rs",
        "engine/src/upstream/client/mod.rs",
    ],
    300,
    unknown_model,
    plan: unknown_model_plan
);
/// `local-echo-2` retired at the API once the body marks it.
fn unknown_model_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed).after(
        "retire",
        0,
        mode(UpstreamMode::ModelRetired {
            model: OTHER.to_string(),
        }),
    )
}
async fn unknown_model(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    let up = upstream_of(&st)?;
    query_with(
        &mut ana,
        "who answers",
        json!({ "model": "gpt-imaginary-9" }),
    )
    .await?;
    let (_, result) = wait_answer(&mut ana, 1).await?;
    ensure!(
        result == expected_answer("who answers"),
        "not answered: {result:?}"
    );
    let warned = warnings(&ana, "model_unknown");
    ensure!(
        warned.len() == 1 && warned[0].contains("gpt-imaginary-9") && warned[0].contains(DEFAULT),
        "the unknown model drew no warning naming it and the default: {warned:?}"
    );
    let call = call_for(&up, "who answers");
    ensure!(
        call.as_ref().and_then(|c| c.model.as_deref()) == Some(DEFAULT),
        "the unknown model's query did not go to the default: {call:?}"
    );
    let retired = !world.mark("retire").is_empty();
    query_with(&mut ana, "the retired one", json!({ "model": OTHER })).await?;
    if !retired {
        let (_, result) = wait_answer(&mut ana, 2).await?;
        ensure!(result == expected_answer("the retired one"), "{result:?}");
        return st.check_global();
    }
    let e = ana
        .until(
            "model not found",
            secs(60),
            is_error(ErrorCode::ModelNotFound),
        )
        .await?;
    ensure!(
        matches!(&e.event, ServerEvent::Error { message, .. } if message.contains(OTHER) && message.contains("session is kept")),
        "the failure does not name the model or keep the session: {e:?}"
    );
    ensure!(
        st.sessions.get(&ana.session_id).is_some() && result_of(&ana, 2).is_none(),
        "the session did not survive, or the query was answered anyway"
    );
    answered(&mut ana, 3, "back to the default").await?;
    let call = call_for(&up, "back to the default");
    ensure!(
        call.as_ref().and_then(|c| c.model.as_deref()) == Some(DEFAULT),
        "after model_not_found the session still asks the retired model: {call:?}"
    );
    st.check_global()
}

scenario!(
    FALLBACK_MODEL,
    "core.EC-102",
    "Fallback model used because the primary is unavailable",
    "The primary model is overloaded (529 for every call to it, after its retries): the configured fallback model answers the query, the switch is logged (upstream.fallback), and the client is shown a model_fallback warning naming both models before the fallback's deltas; the breaker stays closed (the API answered); once the primary recovers, it answers again without a warning.",
    ["upstream.overloaded"],
    cores: [
        "engine/src/upstream/client/streamed.rs",
        "engine/src/sessions/upstream.rs",
    ],
    300,
    fallback_model,
    plan: fallback_plan
);
/// The default model overloaded from the first answer on, until the body marks it back.
fn fallback_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed)
        .after(
            "answered",
            0,
            mode(UpstreamMode::ModelOverloaded {
                model: DEFAULT.to_string(),
            }),
        )
        .after("recovered", 0, mode(UpstreamMode::Serving))
}
async fn fallback_model(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| {
        with_upstream(s);
        if let Some(up) = &mut s.upstream {
            up.fallback_model = Some(LITE.to_string());
        }
    })
    .await?;
    let up = upstream_of(&st)?;
    let client = engine_client(&st)?;
    answered(&mut ana, 1, "the primary answers").await?;
    let overloaded = !world.mark("answered").is_empty();
    answered(&mut ana, 2, "who answers now").await?;
    let fell_back = warnings(&ana, "model_fallback");
    let call = call_for(&up, "who answers now");
    let answered_by = call.as_ref().and_then(|c| c.model.clone());
    if !overloaded {
        ensure!(
            fell_back.is_empty() && answered_by.as_deref() == Some(DEFAULT),
            "a fallback with the primary serving: {fell_back:?} {call:?}"
        );
        return st.check_global();
    }
    ensure!(
        answered_by.as_deref() == Some(LITE),
        "the answer did not come from the fallback model: {call:?}"
    );
    ensure!(
        fell_back.len() == 1 && fell_back[0].contains(DEFAULT) && fell_back[0].contains(LITE),
        "the client was not shown the switch naming both models: {fell_back:?}"
    );
    // The warning comes before the fallback's first delta.
    {
        let d = ana.delivery.lock().expect("delivery poisoned");
        let position =
            |is: &dyn Fn(&ServerEvent) -> bool| d.messages.iter().position(|m| is(&m.event));
        let warned = position(
            &|e| matches!(e, ServerEvent::Warning { kind, .. } if kind == "model_fallback"),
        );
        let first = position(&|e| matches!(e, ServerEvent::ModelDelta { query: 2, .. }));
        ensure!(
            warned.is_some() && first.is_some() && warned < first,
            "the switch was shown after the fallback's answer began"
        );
    }
    ensure!(
        st.faults.count("upstream.fallback") >= 1 && client.stats().fallbacks >= 1,
        "the switch to the fallback was not logged"
    );
    ensure!(!client.is_open(), "an overloaded model opened the breaker");
    world.mark("recovered");
    answered(&mut ana, 3, "the primary again").await?;
    let call = call_for(&up, "the primary again");
    ensure!(
        call.as_ref().and_then(|c| c.model.as_deref()) == Some(DEFAULT)
            && warnings(&ana, "model_fallback").len() == 1,
        "after the recovery the primary did not answer alone: {call:?}"
    );
    st.check_global()
}

scenario!(
    RESUMED_OTHER_MODEL,
    "core.EC-103",
    "Conversation resumed with a different model",
    "A client's connection is reset mid-answer; it resumes its session (last_seq) and gets the rest once; its next query names another model: that model answers, and the call carries the whole conversation so far (every earlier turn, oldest first), so the context is kept; the session's later queries stay on the new model.",
    ["net.reset"],
    cores: [
        "engine/src/sessions/model_call.rs",
        "engine/src/sessions/upstream.rs",
    ],
    300,
    resumed_other_model,
    plan: resumed_plan
);
/// The client's connection reset when the body marks it (mid-answer).
fn resumed_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::reset_client_at(crate::kit::plans::channel_upstream(seed), "mid-answer")
}
async fn resumed_other_model(world: World) -> Outcome {
    let (mut st, mut ana, token) = one_client(&world, |s, _| {
        with_upstream(s);
        s.answer_pace = Some(ms(100));
    })
    .await?;
    let up = upstream_of(&st)?;
    answered(&mut ana, 1, "first words of the conversation").await?;
    let long = words(20, "w");
    ana.query(&long).await?;
    deltas(&mut ana, 2).await?;
    let (d, id, _) = reset_and_leave(&world, &st, ana).await?;
    let mut ana = crate::kit::fail::OrFail::or_fail(
        st.reconnect(0, &token, &id, &d).await,
        "resume the session",
    )?;
    ana.until("the rest of the answer", secs(60), is_result)
        .await?;
    answer_is(&ana, 2, &long)?;
    query_with(&mut ana, "now on another model", json!({ "model": OTHER })).await?;
    let (_, result) = wait_answer(&mut ana, 3).await?;
    ensure!(
        result == expected_answer("now on another model"),
        "{result:?}"
    );
    let call = call_for(&up, "now on another model");
    let Some(call) = call else {
        return Err(crate::scenario::Failure::correctness(
            "no call for the third query",
        ));
    };
    ensure!(
        call.model.as_deref() == Some(OTHER),
        "the other model did not answer: {call:?}"
    );
    ensure!(
        call.turns == 5 && call.first_head.as_deref() == Some("first words of the conversation"),
        "the call did not carry the conversation (5 turns from the first query): {call:?}"
    );
    answered(&mut ana, 4, "and it stays").await?;
    let call = call_for(&up, "and it stays");
    ensure!(
        call.as_ref().and_then(|c| c.model.as_deref()) == Some(OTHER)
            && call.as_ref().is_some_and(|c| c.turns == 7),
        "the session did not stay on the new model with its context: {call:?}"
    );
    st.check_global()
}

scenario!(
    UNKNOWN_BETA,
    "core.EC-113",
    "Unsupported beta feature requested",
    "A query asking for a beta feature the engine does not know gets a beta_unknown warning when its options are built, and the name is left out of the call (the known one goes); a beta the engine knows but the API has withdrawn is forwarded, and the API's refusal fails the query with upstream_rejected while the session is kept and answers its next query.",
    ["upstream.beta_retired"],
    cores: [
        "engine/src/sessions/model_call.rs",
        "engine/src/upstream/client/mod.rs",
        "engine/src/sessions/upstream.rs",
    ],
    300,
    unknown_beta,
    plan: unknown_beta_plan
);
/// The known beta withdrawn at the API once the body marks it.
fn unknown_beta_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed).after(
        "withdrawn",
        0,
        mode(UpstreamMode::BetaRetired {
            beta: BETA.to_string(),
        }),
    )
}
async fn unknown_beta(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    let up = upstream_of(&st)?;
    let betas = json!({ "betas": [BETA, "time-travel-2099-01-01"] });
    query_with(&mut ana, "with betas", betas.clone()).await?;
    let (_, result) = wait_answer(&mut ana, 1).await?;
    ensure!(result == expected_answer("with betas"), "{result:?}");
    let warned = warnings(&ana, "beta_unknown");
    ensure!(
        warned.len() == 1 && warned[0].contains("time-travel-2099-01-01"),
        "the unknown beta drew no warning: {warned:?}"
    );
    let call = call_for(&up, "with betas");
    ensure!(
        call.as_ref().is_some_and(|c| c.betas == [BETA]),
        "the call did not carry exactly the known beta: {call:?}"
    );
    let withdrawn = !world.mark("withdrawn").is_empty();
    query_with(&mut ana, "the withdrawn beta", betas).await?;
    if !withdrawn {
        let (_, result) = wait_answer(&mut ana, 2).await?;
        ensure!(
            result == expected_answer("the withdrawn beta"),
            "{result:?}"
        );
        return st.check_global();
    }
    let e = ana
        .until(
            "the refusal",
            secs(60),
            is_error(ErrorCode::UpstreamRejected),
        )
        .await?;
    ensure!(
        matches!(&e.event, ServerEvent::Error { message, .. } if message.contains("HTTP 400") && message.contains("session is kept")),
        "the refusal does not say the API refused it or that the session is kept: {e:?}"
    );
    answered(&mut ana, 3, "without betas").await?;
    st.check_global()
}
