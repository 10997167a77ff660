//! Network self-checks.

use crate::ensure;
use crate::kit::fail::OrFail;
use crate::scenario::{BodyFuture, Failure, Scenario, converge};
use engine::env::{Env, NetAddr, NetStream};
use sim::World;
use sim::faults::{Fault, FaultAction, FaultPlan, PartitionMode, SwarmKind, SwarmPlan};
use sim::seed::{Ratio, SimRng};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 7000;

pub static PARTITION_HEAL_NO_LOSS: Scenario = Scenario {
    id: "sim.net.partition-heal-no-loss",
    declared_at: crate::declared_here!(),
    title: "A partition healed mid-stream loses and reorders no bytes",
    proves: "A client streams seeded, variable-length messages to a server while a holding \
             partition cuts the link at a seeded time for a seeded duration. Every byte must \
             arrive exactly once and in order, nothing may cross while the cut holds, and the \
             stream must finish within a bound once healed.",
    faults_expected: &["net.partition_hold"],
    cores: &["sim/src/net/partition.rs", "sim/src/net/pipe.rs"],
    sim_time_max: Duration::from_secs(600),
    body: partition_heal_no_loss,
    real: None,
    plan: Some(crate::scenario::Plan::Body(partition_plan)),
};

fn payload(world: &World, purpose: &str, len: usize) -> Vec<u8> {
    let mut rng = world.rng(purpose);
    let mut data = vec![0u8; len];
    rng.fill(&mut data);
    data
}

/// The partition's plan: a holding cut client → server (and back, unless one-way) at a
/// seeded time early in the stream, healed after a seeded duration.
fn partition_plan(seed: u64) -> FaultPlan {
    let mut rng = SimRng::new(seed, "scenario");
    // The body's draw (the stream's length) comes first in this stream.
    let _total = rng.below(256 * 1024);
    // The stream takes at least ~100 ms (64+ paced chunks): the cut lands mid-stream.
    let cut_at_ms = 5 + rng.below(60);
    let cut_ms = 1_000 + rng.below(20_000);
    FaultPlan::default()
        .at(
            cut_at_ms,
            Fault::Partition {
                a: "client".into(),
                b: "server".into(),
                mode: PartitionMode::Hold,
                one_way: rng.below(2) == 0,
            },
        )
        .at(cut_at_ms + cut_ms, Fault::HealAll)
}

/// The windows `[start, end)` in which `plan` holds traffic from `from` to `to`; `end`
/// is the first heal after the cut (`None`: never healed by the plan).
pub(crate) fn hold_windows(plan: &FaultPlan, from: &str, to: &str) -> Vec<(u64, Option<u64>)> {
    let mut actions: Vec<&FaultAction> = plan.actions.iter().collect();
    actions.sort_by_key(|a| a.at_ms);
    let pair = |a: &str, b: &str| (a == from && b == to) || (a == to && b == from);
    let mut windows = Vec::new();
    for (i, action) in actions.iter().enumerate() {
        let Fault::Partition {
            a,
            b,
            mode: PartitionMode::Hold,
            one_way,
        } = &action.fault
        else {
            continue;
        };
        let cuts = (a == from && b == to) || (!one_way && a == to && b == from);
        if !cuts {
            continue;
        }
        let end = actions[i + 1..]
            .iter()
            .find(|later| match &later.fault {
                Fault::HealAll => true,
                Fault::Heal { a, b } => pair(a, b),
                _ => false,
            })
            .map(|later| later.at_ms);
        windows.push((action.at_ms, end));
    }
    windows
}

fn partition_heal_no_loss(world: World) -> BodyFuture {
    Box::pin(async move {
        let server = world.add_host("server").env();
        let client = world.add_host("client").env();
        let mut rng = world.rng("scenario");
        let total = 256 * 1024 + rng.below(256 * 1024) as usize;
        let data = payload(&world, "payload", total);
        let plan = world.fault_plan(partition_plan);
        let windows = hold_windows(&plan, "client", "server");
        let mut listener = server.net().bind(PORT).await.map_err(io_failure)?;
        let sender_data = data.clone();
        let sender_env = client.clone();
        let sender = client.spawn("sender", async move {
            let mut s = sender_env
                .net()
                .connect(&NetAddr::new("server", PORT))
                .await?;
            let mut rng_sizes = 1u64;
            let mut offset = 0;
            while offset < sender_data.len() {
                rng_sizes = sim::seed::mix64(rng_sizes);
                let n = (1 + (rng_sizes % 4096) as usize).min(sender_data.len() - offset);
                s.write_all(&sender_data[offset..offset + n]).await?;
                offset += n;
                tokio::time::sleep(Duration::from_micros(1_000 + rng_sizes % 2_000)).await;
            }
            s.shutdown().await?;
            Ok::<_, std::io::Error>(())
        });
        let w = world.clone();
        let faults = async move { plan.execute(&w).await };
        let receive = async {
            let (mut conn, _) = listener.accept().await.map_err(io_failure)?;
            let mut got = Vec::with_capacity(total);
            conn.read_to_end(&mut got).await.map_err(io_failure)?;
            Ok::<_, Failure>((got, world.now_ns() / 1_000_000))
        };
        let (got, ()) = tokio::join!(
            converge("the stream", Duration::from_secs(120), receive),
            faults
        );
        let (got, finished_ms) = got??;
        ensure!(
            got.len() == data.len(),
            "received {} of {} bytes",
            got.len(),
            data.len()
        );
        // A cut that starts while the stream still flows holds it: the stream can only
        // end after the heal (had it ended before, the partition held nothing).
        for (start, end) in &windows {
            if let Some(end) = end
                && finished_ms > *start
            {
                ensure!(
                    finished_ms >= *end,
                    "the stream ended at {finished_ms} ms, before the partition healed at {end} ms"
                );
            }
        }
        if let Some(at) = got.iter().zip(&data).position(|(a, b)| a != b) {
            return Err(Failure::correctness(format!(
                "byte {at} differs: reordered or corrupted"
            )));
        }
        sender.await.or_fail("sender task")?.map_err(io_failure)?;
        Ok(())
    })
}

pub(crate) fn io_failure(e: std::io::Error) -> Failure {
    Failure::correctness(format!("unexpected I/O error: {e}"))
}

pub static RESET_RECONNECT_RESUME: Scenario = Scenario {
    id: "sim.net.reset-reconnect-resume",
    declared_at: crate::declared_here!(),
    title: "Resets mid-stream: a resuming client delivers every record exactly once",
    proves: "A client sends numbered records and the server acknowledges each one; the swarm \
             resets connections on writes (at a seeded rate) and a fixed fault resets them \
             mid-stream. The client reconnects and resends from the last acknowledged number; \
             the server must apply every record exactly once, in order, and the transfer must \
             complete once resets stop.",
    faults_expected: &["net.reset"],
    cores: &[
        "sim/src/net/partition.rs",
        "sim/src/net/pipe.rs",
        "sim/src/faults/swarm.rs",
    ],
    sim_time_max: Duration::from_secs(900),
    body: reset_reconnect_resume,
    real: None,
    plan: Some(crate::scenario::Plan::Body(reset_plan)),
};

const RECORDS: u64 = 400;

async fn read_u64(s: &mut Box<dyn NetStream>) -> std::io::Result<u64> {
    let mut b = [0u8; 8];
    s.read_exact(&mut b).await?;
    Ok(u64::from_le_bytes(b))
}

fn record_server(env: &Env, applied: std::sync::Arc<std::sync::Mutex<Vec<u64>>>) {
    let server = env.clone();
    let _accept = env.spawn("accept", async move {
        let Ok(mut listener) = server.net().bind(PORT).await else {
            return;
        };
        while let Ok((mut conn, _)) = listener.accept().await {
            let applied = applied.clone();
            let _conn = server.spawn("conn", async move {
                // Handshake: tell the client the next number we expect.
                let next = applied.lock().expect("applied").len() as u64;
                if conn.write_all(&next.to_le_bytes()).await.is_err() {
                    return;
                }
                while let Ok(n) = read_u64(&mut conn).await {
                    {
                        let mut applied = applied.lock().expect("applied");
                        // Duplicates (resent after a lost ack) are acknowledged, not applied.
                        if n == applied.len() as u64 {
                            applied.push(n);
                        }
                    }
                    if conn.write_all(&n.to_le_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
}

/// Resets at a seeded swarm rate per write (never off), plus one fixed reset of the
/// client's connection at a seeded time mid-stream.
fn reset_plan(seed: u64) -> FaultPlan {
    let mut swarm = SwarmPlan::draw(seed, &[SwarmKind::NetReset]);
    // The edge case needs resets: the swarm decides how many, never none.
    swarm
        .rates
        .entry(SwarmKind::NetReset)
        .or_insert(Ratio::new(1, 100));
    let mut rng = SimRng::new(seed, "scenario");
    FaultPlan {
        actions: vec![],
        swarm,
        workload: Vec::new(),
    }
    .at(
        50 + rng.below(500),
        Fault::ResetConnections {
            a: "client".into(),
            b: "server".into(),
        },
    )
}

fn reset_reconnect_resume(world: World) -> BodyFuture {
    Box::pin(async move {
        let server = world.add_host("server").env();
        let client = world.add_host("client").env();
        let applied = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        record_server(&server, applied.clone());
        let plan = world.fault_plan(reset_plan);
        let heal_at = Duration::from_secs(20);
        let w = world.clone();
        let faults = async move {
            plan.execute(&w).await;
            let now = Duration::from_nanos(w.now_ns());
            tokio::time::sleep(heal_at.saturating_sub(now)).await;
            SwarmPlan::quiet(&w);
        };
        let sender = async {
            let mut reconnects = 0u32;
            'connect: loop {
                assert!(reconnects < 100_000, "reconnect loop is bounded");
                reconnects += 1;
                let mut s = match client.net().connect(&NetAddr::new("server", PORT)).await {
                    Ok(s) => s,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(mut next) = read_u64(&mut s).await else {
                    continue;
                };
                while next < RECORDS {
                    if s.write_all(&next.to_le_bytes()).await.is_err() {
                        continue 'connect;
                    }
                    match read_u64(&mut s).await {
                        Ok(ack) if ack == next => next += 1,
                        Ok(ack) => panic!("ack {ack} for record {next}: the server broke order"),
                        Err(_) => continue 'connect,
                    }
                }
                return reconnects;
            }
        };
        let (reconnects, ()) = tokio::join!(
            converge("the transfer", Duration::from_secs(300), sender),
            faults
        );
        let reconnects = reconnects?;
        let applied = applied.lock().expect("applied").clone();
        let expected: Vec<u64> = (0..RECORDS).collect();
        ensure!(
            applied == expected,
            "server applied {} records, not 0..{RECORDS} once each in order",
            applied.len()
        );
        tracing::info!(target: "scenarios", "transfer complete after {reconnects} connections");
        Ok(())
    })
}

pub static BACKPRESSURE_BOUNDED: Scenario = Scenario {
    id: "sim.net.backpressure-bounded",
    declared_at: crate::declared_here!(),
    title: "A stalled reader stalls its writer instead of growing buffers",
    proves: "A producer writes far more than a connection's in-flight bound to a consumer \
             that pauses reading for a seeded time. While it pauses, the producer must be \
             blocked with at most the bound in flight; when reading resumes, every byte \
             arrives in order.",
    faults_expected: &["host.pause"],
    cores: &["sim/src/net/pipe.rs", "sim/src/world/host.rs"],
    sim_time_max: Duration::from_secs(600),
    body: backpressure_bounded,
    real: None,
    plan: None,
};

fn backpressure_bounded(world: World) -> BodyFuture {
    Box::pin(async move {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let bound = world.net().options().in_flight_bytes_max as u64;
        let consumer = world.add_host("consumer");
        let producer = world.add_host("producer").env();
        let mut rng = world.rng("scenario");
        // Far more than can cross before the pause: the pause always finds the producer busy.
        let total = bound * (32 + rng.below(32));
        let pause_at_ms = 2 + rng.below(10);
        let pause_ms = 1_000 + rng.below(10_000);
        let written = Arc::new(AtomicU64::new(0));
        let read = Arc::new(AtomicU64::new(0));
        let env = consumer.env();
        let mut listener = env.net().bind(PORT).await.map_err(io_failure)?;
        let reader_count = read.clone();
        let reader = env.spawn("consumer", async move {
            let (mut conn, _) = listener.accept().await?;
            let mut buf = vec![0u8; 8192];
            loop {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(true);
                }
                if buf[..n].iter().any(|b| *b != 0xAB) {
                    return Ok(false);
                }
                reader_count.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        let w = written.clone();
        let _producer = producer.spawn("producer", {
            let producer = producer.clone();
            async move {
                let mut s = producer
                    .net()
                    .connect(&NetAddr::new("consumer", PORT))
                    .await?;
                let chunk = vec![0xAB; 1024];
                let mut sent = 0;
                while sent < total {
                    s.write_all(&chunk).await?;
                    sent += chunk.len() as u64;
                    w.store(sent, Ordering::Relaxed);
                }
                s.shutdown().await?;
                Ok::<_, std::io::Error>(())
            }
        });
        tokio::time::sleep(Duration::from_millis(pause_at_ms)).await;
        consumer.pause();
        let read_at_pause = read.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        let (w_now, r_now) = (
            written.load(Ordering::Relaxed),
            read.load(Ordering::Relaxed),
        );
        ensure!(r_now == read_at_pause, "the paused consumer kept reading");
        ensure!(
            w_now <= r_now + bound,
            "producer ran {} bytes ahead of a paused consumer; the bound is {bound}",
            w_now - r_now
        );
        ensure!(
            w_now < total,
            "the producer finished while the consumer was paused"
        );
        consumer.resume();
        let clean = converge("draining the stream", Duration::from_secs(60), reader)
            .await?
            .or_fail("consumer task")?
            .map_err(io_failure)?;
        ensure!(clean, "the consumer saw corrupted bytes");
        ensure!(
            read.load(Ordering::Relaxed) == total,
            "consumer read {} of {total} bytes",
            read.load(Ordering::Relaxed)
        );
        Ok(())
    })
}
