//! Host self-check: a paused host's tasks stop, and resume where they were.

use crate::ensure;
use crate::kit::fail::OrFail;
use crate::scenario::{BodyFuture, Failure, Scenario, converge};
use engine::env::NetAddr;
use sim::World;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub static PAUSE_DELAYS_HEARTBEATS: Scenario = Scenario {
    id: "sim.host.pause-delays-heartbeats",
    declared_at: crate::declared_here!(),
    title: "A paused host sends no heartbeats and resumes them afterwards",
    proves: "A host sends a heartbeat every 100 ms to a monitor. It is paused for a seeded time \
             (a stop-the-world pause). The monitor must see a gap at least as long as the \
             pause and no heartbeat during it, and heartbeats must resume, numbered without a \
             gap, once the host resumes.",
    faults_expected: &["host.pause"],
    cores: &["sim/src/world/host.rs"],
    sim_time_max: Duration::from_secs(600),
    body: pause_delays_heartbeats,
    real: None,
    plan: None,
};

fn pause_delays_heartbeats(world: World) -> BodyFuture {
    Box::pin(async move {
        let sender = world.add_host("sender");
        let monitor = world.add_host("monitor").env();
        let mut listener = monitor.net().bind(9).await.or_fail("bind")?;
        let env = sender.env();
        let _beats = env.spawn("heartbeat", {
            let env = env.clone();
            async move {
                let mut s = env.net().connect(&NetAddr::new("monitor", 9)).await?;
                for n in 0u64.. {
                    s.write_all(&n.to_le_bytes()).await?;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok::<_, std::io::Error>(())
            }
        });
        let (mut conn, _) = listener.accept().await.or_fail("accept")?;
        let mut rng = world.rng("scenario");
        let pause = Duration::from_millis(500 + rng.below(20_000));
        let pause_at = Duration::from_millis(300 + rng.below(2_000));
        let s2 = sender.clone();
        let pauser = async move {
            tokio::time::sleep(pause_at).await;
            s2.pause();
            tokio::time::sleep(pause).await;
            s2.resume();
        };
        let watch = async {
            let start = tokio::time::Instant::now();
            let mut last = start;
            let mut gap_max = Duration::ZERO;
            let mut expected = 0u64;
            let deadline = pause_at + pause + Duration::from_secs(2);
            while start.elapsed() < deadline {
                let mut b = [0u8; 8];
                conn.read_exact(&mut b).await.or_fail("read")?;
                let n = u64::from_le_bytes(b);
                ensure!(n == expected, "heartbeat {n} arrived, expected {expected}");
                expected += 1;
                let now = tokio::time::Instant::now();
                gap_max = gap_max.max(now - last);
                last = now;
                if expected > 10_000 {
                    break;
                }
            }
            Ok::<_, Failure>(gap_max)
        };
        let (gap, ()) = tokio::join!(
            converge(
                "heartbeats",
                pause_at + pause + Duration::from_secs(30),
                watch
            ),
            pauser
        );
        let gap = gap??;
        // Sends are at least the pause apart, but the last heartbeat before it may travel
        // slower than the first after it: arrivals may be closer by the latency spread.
        let net = world.net().options();
        let spread = net.latency_max.saturating_sub(net.latency_min);
        ensure!(
            gap + spread >= pause,
            "largest heartbeat gap {gap:?} is shorter than the {pause:?} pause, less the \
             {spread:?} latency spread"
        );
        ensure!(
            gap <= pause + Duration::from_millis(120),
            "largest gap {gap:?} is much longer than the {pause:?} pause"
        );
        Ok(())
    })
}
