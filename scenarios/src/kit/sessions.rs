//! Helpers the session scenarios share: sessions handed over between engine instances
//! (a rolling restart), their stored files and history, the instances that resume
//! them, and the model API a stage hosts.

use super::channel::*;
use crate::ensure;
use crate::scenario::Failure;
use crate::stage::channel::ChannelStage;
use crate::stage::client::SimClient;
use engine::env::{NetAddr, OpenMode};
use engine::protocol::ServerEvent;
use engine::sessions::Sessions;
use engine::upstream::{LocalUpstream, MODELS_PATH};
use sim::World;
use std::sync::Arc;
use tokio::time::Instant;

/// A session of `ana` on instance A with one question in its history, handed over:
/// its record stays in the store, unclaimed. Returns the stage, the token, the id.
pub async fn handed_over(world: &World) -> Result<(ChannelStage, String, String), Failure> {
    let (st, mut c, token) = one_client(world, |_, _| {}).await?;
    c.query("remember blue").await?;
    c.until("a result", secs(30), is_result).await?;
    let id = c.session_id.clone();
    let moved = st.sessions.hand_off();
    ensure!(moved == 1, "{moved} sessions handed over");
    c.until(
        "session_ended",
        secs(10),
        |m| matches!(&m.event, ServerEvent::SessionEnded { reason } if reason.contains("resume")),
    )
    .await?;
    released(&st, &id).await?;
    Ok((st, token, id))
}

/// Waits until session `id`'s record is in the store, claimed by nobody.
pub async fn released(st: &ChannelStage, id: &str) -> Result<(), Failure> {
    st.eventually(&format!("{id}'s claim is released"), secs(10), || {
        st.store
            .get(id)
            .is_ok_and(|r| r.is_some_and(|r| r.claimed_by.is_none()))
    })
    .await
}

/// Starts engine instance `name` on `port` sharing the stage's store; waits until it
/// is ready.
pub async fn ready_instance(
    st: &ChannelStage,
    name: &str,
    port: u16,
) -> Result<(Sessions, NetAddr), Failure> {
    let instance = st.instance(name, port).await?;
    let (sessions, addr) = (instance.sessions().clone(), instance.addr().clone());
    st.eventually(&format!("instance {name} ready"), secs(60), || {
        sessions.is_ready()
    })
    .await?;
    Ok((sessions, addr))
}

/// Where a stored session's data file lives.
pub fn data_path(id: &str) -> String {
    format!("session-data/{id}.json")
}

/// The notice of a client's welcome (empty when none).
pub fn notice_of(c: &SimClient) -> String {
    match &c.welcome.event {
        ServerEvent::Welcome { notice, .. } => notice.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

/// The model API the stage hosts.
pub fn upstream_of(st: &ChannelStage) -> Result<Arc<LocalUpstream>, Failure> {
    st.upstream
        .clone()
        .ok_or_else(|| Failure::correctness("the stage hosts no upstream"))
}

/// When the first pre-warm check met 429 (the pause starts from its answer).
pub fn first_refused_check(up: &LocalUpstream) -> Result<Instant, Failure> {
    up.requests()
        .iter()
        .find(|r| r.path == MODELS_PATH && r.status == 429)
        .map(|r| r.at)
        .ok_or_else(|| Failure::correctness("no pre-warm check met the rate limit"))
}

/// No worker refused as rate limited serves any live session.
pub fn refused_never_bound(st: &ChannelStage) -> Result<(), Failure> {
    let (_, refused) = st.sessions.prewarm_rate_limited();
    for s in st.sessions.live() {
        if let Some(w) = s.worker() {
            ensure!(
                !refused.contains(&w),
                "session {} got worker {w}, refused as rate limited",
                s.id
            );
        }
    }
    Ok(())
}

/// Waits for query `query`'s result and returns its deltas and text.
pub async fn wait_answer(
    client: &mut SimClient,
    query: u64,
) -> Result<(Vec<String>, String), Failure> {
    client
        .until(
            "the answer",
            secs(60),
            |m| matches!(m.event, ServerEvent::Result { query: q, .. } if q == query),
        )
        .await?;
    let (deltas, result) = answer_of(client, query);
    Ok((deltas, result.unwrap_or_default()))
}

/// The stored history of session `id` (written before each query) holds `line`.
pub fn history_holds(st: &ChannelStage, id: &str, line: &str) -> Result<(), Failure> {
    let record = st
        .store
        .get(id)
        .map_err(|e| Failure::correctness(format!("read record {id}: {e}")))?
        .ok_or_else(|| Failure::correctness(format!("session {id} is not stored")))?;
    let disk = st.env.disk();
    let file = disk
        .open(&record.data_path, OpenMode::Read)
        .map_err(|e| Failure::correctness(format!("open {}: {e}", record.data_path)))?;
    let len = file.len().unwrap_or(0) as usize;
    let mut bytes = vec![0u8; len];
    let read = file.read_at(&mut bytes, 0).unwrap_or(0);
    let history: Vec<String> = serde_json::from_slice(&bytes[..read]).unwrap_or_default();
    ensure!(
        history.iter().any(|l| l == line),
        "the stored history of {id} lacks {line:?}: {history:?}"
    );
    Ok(())
}

/// Sessions whose worker leaks memory (the plan says when and how fast), watched by the
/// engine's memory policy.
pub mod leaky {
    use super::*;
    use crate::kit::plans::{met, on_host, plan_rng};
    use crate::scenario::Outcome;
    use engine::workers::memory::MemoryPolicy;
    use sim::FaultPlan;

    /// The memory limit of a leaky stage's workers.
    pub const LIMIT: u64 = 200 << 20;

    /// The channel swarm; workers start in 3 to 6 s from the stage's start (a restart cannot
    /// find a replacement ready at once); the session's worker leaks, when the body names
    /// it, fast enough that the 5-minute prediction calls for a restart within seconds while
    /// it is still far below the limit.
    pub fn leaky_plan(seed: u64) -> FaultPlan {
        let rate = LIMIT / (150 + plan_rng(seed).below(100));
        crate::kit::plans::channel(seed)
            .after("stage-up", 0, on_host::slow_starts(secs(3), secs(6)))
            .after("leak", 0, on_host::leak(Some("{worker}"), rate))
    }

    /// One client on a session whose workers are watched for memory (limit 200 MiB,
    /// restart when growth would reach it within 5 minutes) and start in 3-6 s.
    pub async fn leaky_stage(world: &World) -> Result<(ChannelStage, SimClient, String), Failure> {
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
    pub async fn leak(
        st: &mut ChannelStage,
        session: &str,
    ) -> Result<Option<(String, u32)>, Failure> {
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
        Ok(met::leak_of(&met, &name).map(|_| (name, pid)))
    }

    /// The oracle when the plan made nothing leak: the session keeps its worker.
    pub async fn unleaked(st: &ChannelStage, session: &str, worker: Option<String>) -> Outcome {
        tokio::time::sleep(secs(60)).await;
        let s = st.session(session)?;
        ensure!(
            s.stats().restarts == 0 && s.worker() == worker,
            "a session whose worker did not leak restarted: {:?}",
            s.stats()
        );
        st.check_global()
    }
}
