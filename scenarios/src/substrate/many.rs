//! Many faults in one run: the multi-fault self-check, and the run `chaos shrink` is
//! proven on (its plan holds six faults and a swarm; a bug needs only some of them).

use crate::scenario::{BodyFuture, Failure, Scenario, converge};
use engine::env::{Env, NetAddr, NetStream};
use sim::faults::{Fault, FaultPlan, PartitionMode, SwarmKind, SwarmPlan};
use sim::{SimRng, World};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT: &str = "client";
const SERVER: &str = "server";
const PORT: u16 = 7100;
const RECORDS: u64 = 1_000;
/// A request without an answer within this bound is abandoned: the client reconnects.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(400);
/// The client gives up on a connect after this long (and tries again).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The client's pace between records.
const PACE: Duration = Duration::from_millis(10);

pub static MANY_FAULTS_EXACTLY_ONCE: Scenario = Scenario {
    id: "sim.net.many-faults-exactly-once",
    declared_at: crate::declared_here!(),
    title: "Partitions, resets, a pause and swarm resets: every record applied exactly once",
    proves: "A client sends 1000 numbered records to a server that persists each one (a few \
             ms of simulated fsync) before acknowledging it; a request unanswered for 400 ms \
             is abandoned, and the client reconnects and resends from the number the server \
             says it expects next. The seed draws six faults, one per 3 s slot in a seeded \
             order (a two-way and a one-way holding partition, a dropping partition, two \
             connection resets, a pause of the server) and, on half the seeds, swarm resets. \
             The server must apply every record exactly once and in order, even when a record \
             in flight on an abandoned connection arrives beside its resent copy, and the \
             transfer must finish within 120 s once every fault is healed.",
    faults_expected: &["net.partition", "net.reset", "host.pause"],
    cores: &[
        "sim/src/net/partition.rs",
        "sim/src/world/host.rs",
        "sim/src/faults/plan.rs",
        "sim/src/faults/swarm.rs",
    ],
    sim_time_max: Duration::from_secs(900),
    body: many_faults_exactly_once,
    real: None,
    plan: Some(crate::scenario::Plan::Body(many_faults_plan)),
};

/// Six faults, one per 3 s slot (start seeded within the slot's first 0.8 s, lasting
/// 0.3–1.8 s), in a seeded order; swarm resets on half the seeds.
fn many_faults_plan(seed: u64) -> FaultPlan {
    let mut rng = SimRng::new(seed, "plan");
    let mut episodes = [0u8, 1, 2, 3, 3, 4];
    for i in (1..episodes.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        episodes.swap(i, j);
    }
    let mut plan = FaultPlan {
        actions: vec![],
        swarm: SwarmPlan::draw(seed, &[SwarmKind::NetReset]),
        workload: Vec::new(),
    };
    for (slot, episode) in episodes.into_iter().enumerate() {
        let at = 500 + slot as u64 * 3_000 + rng.below(800);
        let until = at + 300 + rng.below(1_500);
        let reversed = episode == 1 && rng.below(2) != 0;
        plan = episode_actions(plan, episode, at, until, reversed);
    }
    plan
}

/// Kinds of [`episode_actions`] (`kind` is taken modulo this).
pub(crate) const EPISODE_KINDS: u8 = 5;

/// One episode between `at` and `until` (ms): 0 a two-way holding partition, 1 a one-way
/// one (server to client when `reversed`), 2 a dropping partition, 3 a reset of the
/// connections, 4 a pause of the server; each with its heal. The fuzzers build plans
/// from the same vocabulary.
pub(crate) fn episode_actions(
    plan: FaultPlan,
    kind: u8,
    at: u64,
    until: u64,
    reversed: bool,
) -> FaultPlan {
    let (a, b) = (CLIENT.to_string(), SERVER.to_string());
    let cut = |mode, one_way, a: String, b: String| Fault::Partition {
        a,
        b,
        mode,
        one_way,
    };
    match kind % EPISODE_KINDS {
        0 => plan
            .at(at, cut(PartitionMode::Hold, false, a.clone(), b.clone()))
            .at(until, Fault::Heal { a, b }),
        1 => {
            let (from, to) = if reversed { (b, a) } else { (a, b) };
            plan.at(at, cut(PartitionMode::Hold, true, from.clone(), to.clone()))
                .at(until, Fault::Heal { a: from, b: to })
        }
        2 => plan
            .at(at, cut(PartitionMode::Drop, false, a.clone(), b.clone()))
            .at(until, Fault::Heal { a, b }),
        3 => plan.at(at, Fault::ResetConnections { a, b }),
        _ => plan
            .at(
                at,
                Fault::PauseHost {
                    host: SERVER.into(),
                },
            )
            .at(
                until,
                Fault::ResumeHost {
                    host: SERVER.into(),
                },
            ),
    }
}

/// The server's state, kept across its restarts (it stands for the persisted log).
#[derive(Default)]
struct Ledger {
    applied: Mutex<Vec<u64>>,
    /// One record is applied at a time, from its check to its persisted append.
    turn: tokio::sync::Mutex<()>,
}

impl Ledger {
    fn next(&self) -> u64 {
        self.applied.lock().expect("ledger").len() as u64
    }

    /// Applies record `n` unless it is already applied (a resent copy).
    async fn apply(&self, n: u64, persist: Duration) {
        let _turn = self.turn.lock().await;
        if n == self.next() {
            tokio::time::sleep(persist).await;
            self.applied.lock().expect("ledger").push(n);
        }
    }
}

async fn read_u64(s: &mut Box<dyn NetStream>) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    s.read_exact(&mut b).await?;
    Ok(u64::from_le_bytes(b))
}

/// The server (its host's boot program): a handshake says the next record expected;
/// each record is applied, persisted, then acknowledged.
async fn serve(env: Env, ledger: Arc<Ledger>, seed: u64) {
    let Ok(mut listener) = env.net().bind(PORT).await else {
        return;
    };
    while let Ok((mut conn, _)) = listener.accept().await {
        let ledger = ledger.clone();
        let _conn = env.spawn("conn", async move {
            if conn.write_all(&ledger.next().to_le_bytes()).await.is_err() {
                return;
            }
            while let Ok(n) = read_u64(&mut conn).await {
                let persist = Duration::from_millis(5 + sim::seed::mix64(seed ^ n) % 16);
                ledger.apply(n, persist).await;
                if conn.write_all(&n.to_le_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The client: sends every record, reconnecting whenever a request goes unanswered.
/// Returns the connections it used.
async fn send_records(env: Env) -> Result<u32, Failure> {
    let mut connections = 0u32;
    'connect: loop {
        if connections >= 100_000 {
            return Err(Failure::liveness("the client reconnected 100000 times"));
        }
        connections += 1;
        let server = NetAddr::new(SERVER, PORT);
        let connect = env.net().connect(&server);
        let mut s = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok(s)) => s,
            _ => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(Ok(mut next)) = tokio::time::timeout(REQUEST_TIMEOUT, read_u64(&mut s)).await else {
            continue;
        };
        while next < RECORDS {
            let sent =
                tokio::time::timeout(REQUEST_TIMEOUT, s.write_all(&next.to_le_bytes())).await;
            if !matches!(sent, Ok(Ok(()))) {
                continue 'connect;
            }
            match tokio::time::timeout(REQUEST_TIMEOUT, read_u64(&mut s)).await {
                Ok(Ok(ack)) if ack == next => next += 1,
                Ok(Ok(ack)) => {
                    return Err(Failure::correctness(format!(
                        "ack {ack} for record {next}: the server broke order"
                    )));
                }
                // Unanswered or broken: abandon this connection and resend elsewhere.
                _ => continue 'connect,
            }
            tokio::time::sleep(PACE).await;
        }
        return Ok(connections);
    }
}

/// Ends every fault a plan may have left on: partitions, pauses, crashes, swarm.
fn heal_everything(world: &World) {
    SwarmPlan::quiet(world);
    world.net().heal_all();
    for name in world.host_names() {
        if let Some(host) = world.host(&name) {
            host.resume();
            host.restart();
        }
    }
}

/// What is wrong with the applied sequence, if anything.
fn check_applied(applied: &[u64]) -> Result<(), Failure> {
    if let Some((i, &n)) = applied.iter().enumerate().find(|(i, n)| **n != *i as u64) {
        let what = if n < i as u64 {
            format!("record {n} applied twice")
        } else {
            format!("record {i} never applied")
        };
        return Err(Failure::correctness(format!(
            "{what} ({} applications for {RECORDS} records)",
            applied.len()
        )));
    }
    if applied.len() as u64 != RECORDS {
        return Err(Failure::correctness(format!(
            "server applied {} records, not {RECORDS}",
            applied.len()
        )));
    }
    Ok(())
}

fn many_faults_exactly_once(world: World) -> BodyFuture {
    Box::pin(async move {
        let server = world.add_host(SERVER);
        let client = world.add_host(CLIENT).env();
        let ledger = Arc::new(Ledger::default());
        let seed = world.seed();
        let boot_ledger = ledger.clone();
        server.set_boot(Arc::new(move |env| {
            Box::pin(serve(env, boot_ledger.clone(), seed))
        }));
        let plan = world.fault_plan(many_faults_plan);
        let sender = client.spawn("sender", send_records(client.clone()));
        plan.execute(&world).await;
        heal_everything(&world);
        let connections = converge("the transfer", Duration::from_secs(120), sender)
            .await?
            .map_err(|_| Failure::correctness("the client's sender task died"))??;
        let applied = ledger.applied.lock().expect("ledger").clone();
        check_applied(&applied)?;
        tracing::info!(target: "scenarios", "transfer complete over {connections} connections");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_holds_six_faults_in_their_slots_and_a_swarm_on_some_seeds() {
        for seed in 0..16 {
            let plan = many_faults_plan(seed);
            assert_eq!(plan.actions.len(), 10, "{:?}", plan.describe());
            assert_eq!(sim::faults::shrink::fault_count(&plan), 6);
            assert!(plan.validate(&[CLIENT.into(), SERVER.into()]).is_ok());
            let last = plan.actions.iter().map(|a| a.at_ms).max().unwrap();
            assert!(last < 500 + 6 * 3_000, "last action at {last} ms");
        }
        let swarms = (0..16)
            .filter(|s| !many_faults_plan(*s).swarm.rates.is_empty())
            .count();
        assert!(
            (2..=14).contains(&swarms),
            "{swarms} of 16 seeds have a swarm"
        );
    }

    #[test]
    fn the_oracle_names_a_duplicate_a_gap_and_a_short_count() {
        let twice = [0, 1, 1, 3];
        let err = check_applied(&twice).unwrap_err();
        assert!(
            err.message.starts_with("record 1 applied twice"),
            "{}",
            err.message
        );
        let gap = [0, 2];
        let err = check_applied(&gap).unwrap_err();
        assert!(
            err.message.starts_with("record 1 never applied"),
            "{}",
            err.message
        );
        let short: Vec<u64> = (0..10).collect();
        assert!(check_applied(&short).is_err());
        let all: Vec<u64> = (0..RECORDS).collect();
        assert!(check_applied(&all).is_ok());
    }
}
