//! Memory-driven worker restarts of a live session: the restart waits for the answer in
//! flight (core.EC-004), messages sent during it are held and run after (EC-012), and
//! the old worker serves until its replacement is ready (EC-025).

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::sessions::leaky::*;
use crate::scenario::{Failure, Outcome, Scenario};
use engine::protocol::ServerEvent;
use engine::workers::WorkerStatus;
use sim::World;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &RESTART_AFTER_ANSWER,
        &MESSAGE_DURING_RESTART,
        &ATOMIC_RESTART,
    ]
}

scenario!(
    RESTART_AFTER_ANSWER,
    "core.EC-004",
    "Session memory grows toward its cap during a query",
    "A worker leaking during an answer is flagged from its growth rate (predicting the limit 5 minutes ahead) long before the limit; the session finishes the answer intact, tells the user it is restarting, moves to a new worker and carries on.",
    ["proc.leak"],
    cores: [
        "engine/src/workers/memory.rs",
        "engine/src/sessions/core/queries.rs",
        "engine/src/sessions/driver.rs",
    ],
    300,
    restart_after_answer,
    plan: leaky_plan
);
async fn restart_after_answer(world: World) -> Outcome {
    let (mut st, mut c, _) = leaky_stage(&world).await?;
    let answer = words(20, "m");
    c.query(&answer).await?;
    deltas(&mut c, 2).await?;
    let id = c.session_id.clone();
    let worker = st.session(&id)?.worker();
    let Some((old, pid)) = leak(&mut st, &id).await? else {
        c.until("the result", secs(60), is_result).await?;
        answer_is(&c, 1, &answer)?;
        return unleaked(&st, &id, worker).await;
    };
    let s = st.session(&id)?;
    c.until("the result", secs(60), is_result).await?;
    answer_is(&c, 1, &answer)?;
    c.until("restarting", secs(30), is_status("restarting"))
        .await?;
    c.until("idle again", secs(60), is_status("idle")).await?;
    let d = c.delivery.lock().expect("delivery").messages.clone();
    let result = d.iter().position(is_result);
    let restarting = d.iter().position(is_status("restarting"));
    ensure!(
        result < restarting,
        "the restart began before the answer was finished"
    );
    let resident = st.host.procs().resident_bytes(pid).unwrap_or(0);
    ensure!(
        resident < LIMIT / 2,
        "restarted only at {resident} bytes of {LIMIT}: no early prediction"
    );
    let new = s.worker().unwrap_or_default();
    ensure!(
        new != old && s.stats().restarts == 1,
        "no restart: {:?}",
        s.stats()
    );
    c.query("on the new worker").await?;
    c.until("a result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    MESSAGE_DURING_RESTART,
    "core.EC-012",
    "Messages sent while the session is restarting",
    "Messages sent while the session restarts (even with second queries otherwise refused) are held, then run in order once the restart completes; the client sees the explicit states processing, idle, restarting, idle.",
    ["proc.leak"],
    cores: [
        "engine/src/sessions/core/queries.rs",
        "engine/src/sessions/lifecycle.rs",
        "engine/src/sessions/driver.rs",
    ],
    300,
    message_during_restart,
    plan: leaky_plan
);
async fn message_during_restart(world: World) -> Outcome {
    let (mut st, mut c, _) = leaky_stage(&world).await?;
    c.query(&words(6, "a")).await?;
    deltas(&mut c, 1).await?;
    let id = c.session_id.clone();
    let worker = st.session(&id)?.worker();
    if leak(&mut st, &id).await?.is_none() {
        c.until("the result", secs(60), is_result).await?;
        return unleaked(&st, &id, worker).await;
    }
    c.until("restarting", secs(60), is_status("restarting"))
        .await?;
    let held = 1 + st.rng.below(3);
    for i in 0..held {
        c.query(&format!("held {i}")).await?;
    }
    for _ in 0..held {
        c.until("a held message's result", secs(60), is_result)
            .await?;
    }
    let d = c.delivery.lock().expect("delivery").messages.clone();
    let order = states(&d);
    let restart_done = order
        .iter()
        .enumerate()
        .position(|(i, s)| s == "idle" && order[..i].contains(&"restarting".to_string()))
        .ok_or_else(|| Failure::correctness(format!("no idle after restarting: {order:?}")))?;
    ensure!(
        order[..restart_done + 1] == ["processing", "idle", "restarting", "idle"],
        "states {order:?}"
    );
    for i in 0..held {
        answer_is(&c, 2 + i, &format!("held {i}"))?;
    }
    let first_held_delta = d
        .iter()
        .position(|m| matches!(m.event, ServerEvent::Delta { query: 2, .. }));
    let back_idle = d
        .iter()
        .enumerate()
        .filter(|(_, m)| is_status("idle")(m))
        .nth(1)
        .map(|(i, _)| i);
    ensure!(
        first_held_delta > back_idle,
        "a held message ran before the restart completed"
    );
    st.check_global()
}

scenario!(
    ATOMIC_RESTART,
    "core.EC-025",
    "Message during a proactive OOM-avoidance restart",
    "While the replacement worker starts, the old one is still alive and ready (the restart is atomic), the user sees the restarting status, and a message sent meanwhile is queued and answered after; the old worker is stopped only then.",
    ["proc.leak"],
    cores: ["engine/src/sessions/driver.rs", "engine/src/sessions/core/queries.rs"],
    300,
    atomic_restart,
    plan: leaky_plan
);
async fn atomic_restart(world: World) -> Outcome {
    let (mut st, mut c, _) = leaky_stage(&world).await?;
    c.query("warm up").await?;
    c.until("a result", secs(30), is_result).await?;
    let id = c.session_id.clone();
    let worker = st.session(&id)?.worker();
    let Some((old, _)) = leak(&mut st, &id).await? else {
        return unleaked(&st, &id, worker).await;
    };
    c.until("restarting", secs(60), is_status("restarting"))
        .await?;
    let during = st.manager.get(&old).await;
    ensure!(
        during.is_some_and(|i| matches!(i.status, WorkerStatus::Ready { .. })),
        "the old worker was gone before its replacement was ready"
    );
    c.query("sent during the restart").await?;
    let queued = c
        .until("queued or answered", secs(60), |m| {
            matches!(m.event, ServerEvent::Queued { .. }) || is_result(m)
        })
        .await?;
    ensure!(
        matches!(queued.event, ServerEvent::Queued { .. }),
        "the message was not queued: {queued:?}"
    );
    c.until("its result", secs(60), is_result).await?;
    answer_is(&c, 2, "sent during the restart")?;
    let s = st.session(&id)?;
    ensure!(
        s.stats().restarts == 1 && s.worker().as_deref() != Some(old.as_str()),
        "no restart happened: {:?}",
        s.stats()
    );
    let after = st.manager.get(&old).await;
    ensure!(
        !after.is_some_and(|i| matches!(i.status, WorkerStatus::Ready { .. })),
        "the old worker still runs after the restart"
    );
    st.check_global()
}
