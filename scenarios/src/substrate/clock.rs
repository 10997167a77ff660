//! Clock self-check: wall-clock skew must not bend monotonic time.

use crate::ensure;
use crate::scenario::{BodyFuture, Scenario};
use sim::SimRng;
use sim::World;
use sim::faults::{Fault, FaultAction, FaultPlan};
use std::time::Duration;

const HOST: &str = "skewed";

pub static SKEW_DOES_NOT_BEND_TIMEOUTS: Scenario = Scenario {
    id: "sim.clock.skew-does-not-bend-timeouts",
    declared_at: crate::declared_here!(),
    title: "Clock jumps and drift show in wall time only, never in timeouts",
    proves: "A host's wall clock jumps backwards by a seeded amount and then drifts at a seeded \
             rate while a task on it waits on a monotonic timeout. The wall clock must show \
             the jump and the drift exactly, and the timeout must fire at exactly its virtual \
             deadline: skew reaches only code that reads wall time.",
    faults_expected: &["clock.jump", "clock.drift"],
    cores: &["sim/src/clock.rs"],
    sim_time_max: Duration::from_secs(7200),
    body: skew_does_not_bend_timeouts,
    real: None,
    plan: Some(crate::scenario::Plan::Body(skew_plan)),
};

/// The plan's draws: a backward jump (ms) and a drift rate (ppm). They come first in
/// the scenario's stream; the body draws after them.
fn skew_draws(rng: &mut SimRng) -> (i64, i64) {
    let jump_ms = 1_000 + rng.below(600_000) as i64;
    let ppm = 1 + rng.below(500) as i64;
    (jump_ms, ppm)
}

/// A backward jump at 100 ms, then a drift from 200 ms on.
fn skew_plan(seed: u64) -> FaultPlan {
    let (jump_ms, ppm) = skew_draws(&mut SimRng::new(seed, "scenario"));
    FaultPlan::default()
        .at(
            100,
            Fault::ClockJump {
                host: HOST.into(),
                delta_ms: -jump_ms,
            },
        )
        .at(
            200,
            Fault::ClockDrift {
                host: HOST.into(),
                ppm,
            },
        )
}

/// The skew (ns) `plan` gives `HOST`'s clock at `end_ns`, computed as `SimClock` keeps
/// it: jumps add to the offset; a drift change keeps the drift accumulated so far.
fn expected_skew_ns(plan: &FaultPlan, end_ns: u64) -> i128 {
    let mut actions: Vec<&FaultAction> = plan.actions.iter().collect();
    actions.sort_by_key(|a| a.at_ms);
    let (mut offset, mut ppm, mut since) = (0i128, 0i128, 0u64);
    for action in actions {
        let at_ns = action.at_ms.saturating_mul(1_000_000);
        if at_ns > end_ns {
            break;
        }
        match &action.fault {
            Fault::ClockJump { host, delta_ms } if host == HOST => {
                offset += i128::from(delta_ms.saturating_mul(1_000_000));
            }
            Fault::ClockDrift { host, ppm: rate } if host == HOST => {
                offset += i128::from(at_ns - since) * ppm / 1_000_000;
                since = at_ns;
                ppm = i128::from(*rate);
            }
            _ => {}
        }
    }
    offset + i128::from(end_ns - since) * ppm / 1_000_000
}

fn skew_does_not_bend_timeouts(world: World) -> BodyFuture {
    Box::pin(async move {
        let host = world.add_host(HOST);
        let mut rng = world.rng("scenario");
        let _plan_draws = skew_draws(&mut rng);
        let plan = world.fault_plan(skew_plan);
        let env = host.env();
        let wall_before = env.wall_unix_ms();
        let timeout = Duration::from_secs(60 + rng.below(600));
        let t0 = tokio::time::Instant::now();
        let w = world.clone();
        let timed = async {
            tokio::time::sleep(timeout).await;
            t0.elapsed()
        };
        let ((), waited) = tokio::join!(plan.execute(&w), timed);
        ensure!(waited == timeout, "a {timeout:?} timeout took {waited:?}");
        // Read when both the timeout and the plan are done (a plan may act later).
        let end_ns = t0.elapsed().as_nanos() as u64;
        let wall_after = i128::from(env.wall_unix_ms());
        let expected_ms = (i128::from(wall_before) * 1_000_000
            + i128::from(end_ns)
            + expected_skew_ns(&plan, end_ns))
            / 1_000_000;
        ensure!(
            (wall_after - expected_ms).abs() <= 1,
            "wall clock reads {wall_after}, expected {expected_ms} (plan: {})",
            plan.describe().join("; ")
        );
        Ok(())
    })
}
