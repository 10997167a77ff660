//! Memory-driven worker restarts of a live session: the restart waits for the answer in
//! flight (core.EC-004), messages sent during it are held and run after (EC-012), and
//! the old worker serves until its replacement is ready (EC-025).

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::plans::{met, on_host, plan_rng};
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::ChannelStage;
use crate::stage::client::SimClient;
use engine::protocol::{ServerEvent, ServerMessage};
use engine::workers::WorkerStatus;
use engine::workers::memory::MemoryPolicy;
use sim::{FaultPlan, World};

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &RESTART_AFTER_ANSWER,
        &MESSAGE_DURING_RESTART,
        &ATOMIC_RESTART,
    ]
}

const LIMIT: u64 = 200 << 20;

/// The channel swarm; workers start in 3 to 6 s from the stage's start (a restart cannot
/// find a replacement ready at once); the session's worker leaks, when the body names
/// it, fast enough that the 5-minute prediction calls for a restart within seconds while
/// it is still far below the limit.
fn leaky_plan(seed: u64) -> FaultPlan {
    let rate = LIMIT / (150 + plan_rng(seed).below(100));
    crate::kit::plans::channel(seed)
        .after("stage-up", 0, on_host::slow_starts(secs(3), secs(6)))
        .after("leak", 0, on_host::leak(Some("{worker}"), rate))
}

/// One client on a session whose workers are watched for memory (limit 200 MiB,
/// restart when growth would reach it within 5 minutes) and start in 3-6 s.
async fn leaky_stage(world: &World) -> Result<(ChannelStage, SimClient, String), Failure> {
    let mut st = ChannelStage::start(world, |s, _| {
        let mut policy = MemoryPolicy::with_limit(LIMIT);
        policy.horizon = secs(300);
        policy.owner_restarts = true;
        s.pool.template.memory = Some(policy);
        s.pool.template.init_timeout = secs(30);
        s.pool.template.connect.initial_wait = secs(2);
        s.pool.template.connect.attempts_max = 30;
        s.pool.template.connect.delay_max = secs(1);
        s.pool.template.connect.total_max = secs(28);
        s.pool.size_target = 1;
        s.answer_pace = Some(ms(500));
    })
    .await?;
    world.mark("stage-up");
    st.ready(secs(60)).await?;
    let token = st.token("ana", "member", secs(3600));
    let d = st.new_delivery();
    let c = st.open(0, &format!("token={token}"), &d).await?;
    Ok((st, c, token))
}

/// Marks the moment the session's worker leaks (the plan says how fast). Returns the
/// worker's name and pid, or `None` when the plan made nothing leak.
async fn leak(st: &mut ChannelStage, session: &str) -> Result<Option<(String, u32)>, Failure> {
    let s = st.session(session)?;
    let name = s
        .worker()
        .ok_or_else(|| Failure::correctness("no worker bound"))?;
    let pid = st
        .manager
        .get(&name)
        .await
        .and_then(|i| i.pid)
        .ok_or_else(|| Failure::correctness(format!("worker {name} has no pid")))?;
    let met = st.world.mark_with("leak", &[("worker", &name)]);
    Ok(met::leak(&met).map(|_| (name, pid)))
}

/// The oracle when the plan made nothing leak: the session keeps its worker.
async fn unleaked(st: &ChannelStage, session: &str, worker: Option<String>) -> Outcome {
    tokio::time::sleep(secs(60)).await;
    let s = st.session(session)?;
    ensure!(
        s.stats().restarts == 0 && s.worker() == worker,
        "a session whose worker did not leak restarted: {:?}",
        s.stats()
    );
    st.check_global()
}

fn states(messages: &[ServerMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match &m.event {
            ServerEvent::Status { state } => Some(state.clone()),
            _ => None,
        })
        .collect()
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
