//! The model's answer as a stream: very slow (core.EC-110), all at once (EC-111), and
//! two of one user's queries streaming at the same time (EC-101). Every model delta
//! reaches the client as its own numbered message; the channel's global oracle checks
//! that, joined, they are what the worker carried out.

use super::kit::*;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::model::*;
use crate::kit::sessions::*;
use crate::kit::time::ms;
use crate::scenario::{Outcome, Scenario};
use crate::stage::channel::with_upstream;
use engine::protocol::{ErrorCode, ServerEvent};
use engine::upstream::MESSAGES_PATH;
use sim::upstream::UpstreamMode;
use sim::{FaultPlan, World};
use tokio::time::Instant;

pub fn all() -> Vec<&'static Scenario> {
    vec![&VERY_SLOW, &BURST, &PARALLEL_SAME_USER]
}

/// Characters per delta of the local model server's streamed answers.
const DELTA_CHARS: usize = 16;

scenario!(
    VERY_SLOW,
    "core.EC-110",
    "Upstream streams extremely slowly",
    "The model streams one event every 1.5 to 3 s (below 1 token a second): the client gets one upstream_slow warning once the first 10 s window ends, the deltas keep coming in order, and the query is cut at the query timeout (300 s, QUERY_TIMEOUT_SECONDS) with answer_broke_off (discard what came), logged as upstream.query_timeout; the session is kept, and once the model streams at its pace again a query is answered with no warning.",
    ["upstream.trickle"],
    cores: [
        "engine/src/sessions/slow_stream.rs",
        "engine/src/sessions/upstream.rs",
    ],
    900,
    very_slow,
    plan: very_slow_plan
);
/// Streamed answers paced at 1.5 to 3 s an event from the first answer on, until the
/// body marks the recovery.
pub(super) fn very_slow_plan(seed: u64) -> FaultPlan {
    let event_ms = 1_500 + crate::kit::plans::plan_rng(seed).below(1_501);
    crate::kit::plans::channel_upstream(seed)
        .after("answered", 0, mode(UpstreamMode::Trickle { event_ms }))
        .after("recovered", 0, mode(UpstreamMode::Serving))
}
async fn very_slow(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    let client = engine_client(&st)?;
    let timeout = client.config().query_timeout;
    answered(&mut ana, 1, "at full speed").await?;
    let trickle = world.mark("answered");
    // 200 deltas: at the trickle's pace, far past the query timeout.
    let text = "x".repeat(DELTA_CHARS * 200);
    let asked = Instant::now();
    ana.query(&text).await?;
    if trickle.is_empty() {
        let (_, result) = wait_answer(&mut ana, 2).await?;
        ensure!(result == expected_answer(&text), "not answered whole");
        ensure!(
            warnings(&ana, "upstream_slow").is_empty(),
            "a fast stream was called slow"
        );
        return st.check_global();
    }
    let warned = ana
        .until("the slow warning", secs(60), is_warning("upstream_slow"))
        .await?;
    ensure!(
        asked.elapsed() <= secs(45),
        "the slow stream was warned of only after {:?}",
        asked.elapsed()
    );
    ensure!(
        matches!(&warned.event, ServerEvent::Warning { message, .. } if message.contains("slow")),
        "{warned:?}"
    );
    let cut = ana
        .until(
            "the query timeout",
            timeout + secs(60),
            is_error(ErrorCode::AnswerBrokeOff),
        )
        .await?;
    let took = asked.elapsed();
    ensure!(
        took >= timeout && took <= timeout + secs(5),
        "the query was cut after {took:?}, not at the {timeout:?} query timeout"
    );
    ensure!(
        matches!(&cut.event, ServerEvent::Error { message, .. } if message.contains("query timeout") && message.contains("discard")),
        "the user was not told the query timed out and to discard its part: {cut:?}"
    );
    let got = model_deltas(&ana, 2).concat();
    ensure!(
        !got.is_empty() && text.starts_with(&got) && got.len() < text.len(),
        "the slow deltas did not arrive in order as a proper prefix ({} bytes)",
        got.len()
    );
    ensure!(
        warnings(&ana, "upstream_slow").len() == 1
            && st.faults.count("upstream.query_timeout") == 1,
        "the warning was repeated or the timeout not logged"
    );
    ensure!(
        result_of(&ana, 2).is_none(),
        "the cut answer was carried out"
    );
    world.mark("recovered");
    answered(&mut ana, 3, "at full speed again").await?;
    ensure!(
        warnings(&ana, "upstream_slow").len() == 1,
        "the stream at full speed was called slow"
    );
    st.check_global()
}

scenario!(
    BURST,
    "core.EC-111",
    "Burst of streamed messages arrives at once",
    "The model's whole streamed answer (about 250 deltas) arrives in one write: the engine forwards the deltas to the client one message each, in order, each once, through its bounded queues (the session's outbound bound holds while the client reads slowly), and the worker carries out exactly the joined answer.",
    ["upstream.burst"],
    cores: [
        "engine/src/upstream/stream/mod.rs",
        "engine/src/sessions/upstream.rs",
    ],
    300,
    burst,
    plan: burst_plan
);
/// Streamed answers in one write from the first answer on.
fn burst_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed).after("answered", 0, mode(UpstreamMode::Burst))
}
async fn burst(world: World) -> Outcome {
    let (mut st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    answered(&mut ana, 1, "before the burst").await?;
    let bursting = !world.mark("answered").is_empty();
    let text = words(500, "b");
    ana.query(&text).await?;
    // The client reads late: the burst waits in the engine's bounded queues.
    tokio::time::sleep(ms(500 + st.rng.below(2_000))).await;
    let (_, result) = wait_answer(&mut ana, 2).await?;
    ensure!(
        result == expected_answer(&text),
        "the burst's answer was not carried out whole"
    );
    let deltas = model_deltas(&ana, 2);
    let expected = text.len().div_ceil(DELTA_CHARS);
    ensure!(
        deltas.len() == expected && deltas.iter().all(|d| d.len() <= DELTA_CHARS),
        "{} model deltas for {} bytes (expected {expected}, one message each)",
        deltas.len(),
        text.len()
    );
    answer_is_model(&ana, 2, &text)?;
    ensure!(
        !bursting || st.faults.count("upstream.burst") >= 1,
        "the burst was planned but never sent"
    );
    st.check_global()
}

scenario!(
    PARALLEL_SAME_USER,
    "core.EC-101",
    "Parallel upstream queries for the same user",
    "One user has two sessions (two tabs) and sends a query on each at once while the model answers slowly: both calls are in flight together, independent on the upstream side; each session gets its own answer's deltas only, in order, and its own result.",
    ["upstream.slow"],
    cores: ["engine/src/sessions/upstream.rs", "engine/src/upstream/client/streamed.rs"],
    300,
    parallel_same_user,
    plan: parallel_plan
);
/// Every call answered 2 to 5 s late once both tabs are open.
fn parallel_plan(seed: u64) -> FaultPlan {
    let delay_ms = 2_000 + crate::kit::plans::plan_rng(seed).below(3_001);
    crate::kit::plans::channel_upstream(seed).after(
        "both-open",
        0,
        mode(UpstreamMode::Slow { delay_ms }),
    )
}
async fn parallel_same_user(world: World) -> Outcome {
    let (mut st, mut tab1, token) = one_client(&world, |s, _| with_upstream(s)).await?;
    let up = upstream_of(&st)?;
    let d = st.new_delivery();
    let mut tab2 = st.open(1, &format!("token={token}"), &d).await?;
    ensure!(
        tab1.session_id != tab2.session_id,
        "the two tabs share a session"
    );
    let slow = !world.mark("both-open").is_empty();
    let (one, two) = (words(12, "left"), words(12, "right"));
    tab1.query(&one).await?;
    tab2.query(&two).await?;
    let (_, r1) = wait_answer(&mut tab1, 1).await?;
    let (_, r2) = wait_answer(&mut tab2, 1).await?;
    ensure!(
        r1 == expected_answer(&one) && r2 == expected_answer(&two),
        "the answers crossed: {r1:?} / {r2:?}"
    );
    answer_is_model(&tab1, 1, &one)?;
    answer_is_model(&tab2, 1, &two)?;
    if slow {
        let calls: Vec<_> = up
            .requests()
            .into_iter()
            .filter(|r| r.path == MESSAGES_PATH)
            .collect();
        ensure!(
            calls.len() == 2 && calls[1].at < calls[0].at + secs(2),
            "the two queries' calls were not in flight together: {calls:?}"
        );
    }
    st.check_global()
}
