//! Sessions kept in the store and resumed on another engine instance: two resumes at
//! once (core.EC-008), damaged data (EC-007) and missing files (EC-019). Every one
//! starts from a session handed over by instance A (a rolling restart: history saved,
//! claim released) and resumed through instances B and C sharing A's store.

use crate::ensure;
use crate::kit::channel::*;
use crate::kit::fail::OrFail;
use crate::kit::plans::plan_rng;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::ENGINE_HOST;
use crate::stage::client::SimClient;
use engine::protocol::ErrorCode;
use sim::{Fault, FaultPlan, World};

pub fn all() -> Vec<&'static Scenario> {
    vec![&CORRUPTED, &CONCURRENT_RESUME, &FILES_GONE]
}

scenario!(
    CONCURRENT_RESUME,
    "core.EC-008",
    "Two resumes of one session at the same moment",
    "Two clients resume the same stored session at once through two engine instances: the store's atomic claim lets exactly one win (it gets the session with its history); the other gets session_already_active suggesting a fork, and its fork on the winner's instance works. The session is never live on two instances.",
    ["sessions.concurrent_resume"],
    cores: [
        "engine/src/store/sessions.rs",
        "engine/src/sessions/durable.rs",
        "engine/src/gateway/server.rs",
    ],
    180,
    concurrent_resume
);
async fn concurrent_resume(world: World) -> Outcome {
    let (mut st, token, id) = handed_over(&world).await?;
    let (b, addr_b) = ready_instance(&st, "b", 8081).await?;
    let (c, addr_c) = ready_instance(&st, "c", 8082).await?;
    let (h0, h1) = (st.client_host(0), st.client_host(1));
    let (e0, e1) = (h0.env(), h1.env());
    let (d0, d1) = (st.new_delivery(), st.new_delivery());
    let query = format!("token={token}&session={id}");
    let (r0, r1) = tokio::join!(
        SimClient::connect(e0.net(), &addr_b, &query, d0),
        SimClient::connect(e1.net(), &addr_c, &query, d1),
    );
    let live_on = [b.get(&id).is_some(), c.get(&id).is_some()];
    ensure!(
        live_on.iter().filter(|l| **l).count() == 1,
        "session {id} live on {live_on:?} (b, c): the claim let two instances in"
    );
    let (winner, loser, winner_addr) = match (r0, r1) {
        (Ok(w), Err(l)) => (w, l, addr_b),
        (Err(l), Ok(w)) => (w, l, addr_c),
        (Ok(_), Ok(_)) => return Err(Failure::correctness("both resumes won")),
        (Err(a), Err(b)) => {
            return Err(Failure::correctness(format!(
                "both resumes lost: {a} / {b}"
            )));
        }
    };
    ensure!(
        winner.session_id == id,
        "the winner got {}",
        winner.session_id
    );
    ensure!(
        refusal_code(&loser) == Some(ErrorCode::SessionAlreadyActive)
            && refusal_text(&loser).contains("fork"),
        "the loser was told: {loser}"
    );
    let restored = if live_on[0] { b.get(&id) } else { c.get(&id) };
    let history = restored.map(|s| s.transcript()).unwrap_or_default();
    ensure!(
        history.iter().any(|l| l == "> remember blue"),
        "the resumed session lost its history: {history:?}"
    );
    let d = st.new_delivery();
    let fork = st
        .open_at(2, &winner_addr, &format!("token={token}&fork={id}"), &d)
        .await?;
    ensure!(fork.session_id != id, "the fork took the parent's id");
    drop(winner);
    st.check_global()
}

scenario!(
    CORRUPTED,
    "core.EC-007",
    "Resume of a session whose stored data is corrupted",
    "A stored session's data file is damaged on disk; its resume checks the data against the record's checksum first, archives the session, starts a new one and tells the user why.",
    ["disk.corrupt_data"],
    cores: [
        "engine/src/sessions/durable.rs",
        "engine/src/store/sessions.rs",
        "engine/src/store/checksum.rs",
    ],
    180,
    corrupted,
    plan: corrupted_plan
);
/// The channel swarm; once the session is handed over, one bit of its data file flips.
fn corrupted_plan(seed: u64) -> FaultPlan {
    let mut rng = plan_rng(seed);
    let flip = Fault::FlipBit {
        host: ENGINE_HOST.into(),
        path: data_path("{session}"),
        offset: rng.next_u64(),
        bit: rng.below(8) as u8,
    };
    crate::kit::plans::channel(seed).after("handed-over", 0, flip)
}
async fn corrupted(world: World) -> Outcome {
    let (mut st, token, id) = handed_over(&world).await?;
    let flips = st.faults.count("disk.bitflip");
    world.mark_with("handed-over", &[("session", &id)]);
    let damaged = st.faults.count("disk.bitflip") > flips;
    let (_, addr_b) = ready_instance(&st, "b", 8081).await?;
    let d = st.new_delivery();
    let mut c = st
        .open_at(0, &addr_b, &format!("token={token}&session={id}"), &d)
        .await?;
    if !damaged {
        // Nothing flipped: the session resumes as it was.
        ensure!(c.session_id == id, "an intact session did not resume");
        c.query("carry on").await?;
        c.until("a result", secs(30), is_result).await?;
        return st.check_global();
    }
    let notice = notice_of(&c);
    ensure!(
        c.session_id != id && notice.contains("archived") && notice.contains("new session"),
        "resume of a damaged session: id {}, notice {notice:?}",
        c.session_id
    );
    let archived = st.store.archived().or_fail("archive")?;
    ensure!(
        archived.iter().any(|a| a.id == id),
        "the damaged session was not archived"
    );
    ensure!(
        st.store.get(&id).is_ok_and(|r| r.is_none()),
        "the damaged record is still live in the store"
    );
    c.query("fresh start").await?;
    c.until("a result", secs(30), is_result).await?;
    st.check_global()
}

scenario!(
    FILES_GONE,
    "core.EC-019",
    "Session metadata present but its files gone",
    "A stored session whose data file vanished: its resume finds the files missing before anything else, purges the record and starts a new session with a notice; a deployment's start-up check purges the other orphaned records.",
    ["disk.files_lost"],
    cores: ["engine/src/sessions/durable.rs", "engine/src/store/startup.rs"],
    180,
    files_gone,
    plan: files_gone_plan
);
/// The channel swarm; once both sessions are handed over, their data files vanish.
fn files_gone_plan(seed: u64) -> FaultPlan {
    let remove = |which: &str| Fault::RemoveFile {
        host: ENGINE_HOST.into(),
        path: data_path(&format!("{{{which}}}")),
    };
    crate::kit::plans::channel(seed)
        .after("handed-over", 0, remove("session"))
        .after("handed-over", 0, remove("orphan"))
}
async fn files_gone(world: World) -> Outcome {
    let (mut st, token, id) = handed_over(&world).await?;
    // A second stored session, never resumed, loses its files too.
    let d = st.new_delivery();
    let mut other = st.open(1, &format!("token={token}"), &d).await?;
    other.query("second").await?;
    other.until("a result", secs(30), is_result).await?;
    let orphan = other.session_id.clone();
    st.sessions.hand_off();
    released(&st, &orphan).await?;
    world.mark_with("handed-over", &[("session", &id), ("orphan", &orphan)]);
    // What the plan removed, as the disk says.
    let gone = |id: &str| st.env.disk().metadata(&data_path(id)).is_err();
    let (id_gone, orphan_gone) = (gone(&id), gone(&orphan));
    let (b, addr_b) = ready_instance(&st, "b", 8081).await?;
    let d = st.new_delivery();
    let mut c = st
        .open_at(0, &addr_b, &format!("token={token}&session={id}"), &d)
        .await?;
    let notice = notice_of(&c);
    if id_gone {
        ensure!(
            c.session_id != id && notice.contains("files are gone"),
            "resume without files: id {}, notice {notice:?}",
            c.session_id
        );
        ensure!(
            st.store.get(&id).is_ok_and(|r| r.is_none()),
            "the record without files was kept"
        );
    } else {
        ensure!(
            c.session_id == id,
            "a session with its files did not resume"
        );
    }
    c.query("fresh start").await?;
    c.until("a result", secs(30), is_result).await?;
    let report = b
        .check_store()
        .ok_or_else(|| Failure::correctness("no store"))?
        .or_fail("start-up check")?;
    let expected: Vec<String> = if orphan_gone { vec![orphan] } else { vec![] };
    ensure!(
        report.orphans == expected,
        "start-up check purged {:?}, expected {expected:?}",
        report.orphans
    );
    st.check_global()
}
