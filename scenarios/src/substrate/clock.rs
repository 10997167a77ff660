//! Clock self-check: wall-clock skew must not bend monotonic time.

use crate::ensure;
use crate::scenario::{BodyFuture, Scenario};
use sim::World;
use sim::faults::{Fault, FaultPlan};
use std::time::Duration;

pub static SKEW_DOES_NOT_BEND_TIMEOUTS: Scenario = Scenario {
    id: "sim.clock.skew-does-not-bend-timeouts",
    title: "Clock jumps and drift show in wall time only, never in timeouts",
    proves: "A host's wall clock jumps backwards by a seeded amount and then drifts at a seeded \
             rate while a task on it waits on a monotonic timeout. The wall clock must show \
             the jump and the drift exactly, and the timeout must fire at exactly its virtual \
             deadline: skew reaches only code that reads wall time.",
    faults_expected: &["clock.jump", "clock.drift"],
    sim_time_max: Duration::from_secs(7200),
    body: skew_does_not_bend_timeouts,
    real: None,
};

fn skew_does_not_bend_timeouts(world: World) -> BodyFuture {
    Box::pin(async move {
        let host = world.add_host("skewed");
        let mut rng = world.rng("scenario");
        let jump_ms = 1_000 + rng.below(600_000) as i64;
        let ppm = 1 + rng.below(500) as i64;
        let plan = FaultPlan::default()
            .at(
                100,
                Fault::ClockJump {
                    host: "skewed".into(),
                    delta_ms: -jump_ms,
                },
            )
            .at(
                200,
                Fault::ClockDrift {
                    host: "skewed".into(),
                    ppm,
                },
            );
        let env = host.env();
        let wall_before = env.wall_unix_ms();
        let timeout = Duration::from_secs(60 + rng.below(600));
        let t0 = tokio::time::Instant::now();
        let w = world.clone();
        let ((), ()) = tokio::join!(plan.execute(&w), tokio::time::sleep(timeout));
        let waited = t0.elapsed();
        ensure!(waited == timeout, "a {timeout:?} timeout took {waited:?}");
        let wall_after = env.wall_unix_ms() as i64;
        let drift_ms = (timeout.as_millis() as i64 - 200) * ppm / 1_000_000;
        let expected = wall_before as i64 + timeout.as_millis() as i64 - jump_ms + drift_ms;
        ensure!(
            (wall_after - expected).abs() <= 1,
            "wall clock reads {wall_after}, expected {expected} (jump -{jump_ms} ms, drift {ppm} ppm)"
        );
        Ok(())
    })
}
