//! Small helpers the worker scenarios share.

use crate::stage::workers::Stage;
use std::time::Duration;

pub use super::fail::{OrFail, unexpected};

/// Makes every spawn on the simulated host start slowly, by a seeded delay between
/// `min` and `max` (counted as `proc.slow_start`). No-op on a real run.
pub fn slow_starts(stage: &Stage, min: Duration, max: Duration) {
    if let Ok(host) = stage.host() {
        slow_starts_on(host, min, max);
    }
}

/// [`slow_starts`] on a simulated host (before its engine starts, say).
pub fn slow_starts_on(host: &sim::Host, min: Duration, max: Duration) {
    let mut options = host.procs().options();
    options.start_delay_min = min;
    options.start_delay_max = max;
    host.procs().set_options(options);
}

/// Live children of the simulated host (none known on a real run).
pub fn live_pids(stage: &Stage) -> Vec<u32> {
    stage
        .host()
        .map(|h| h.procs().live_pids())
        .unwrap_or_default()
}

/// Zombies of the simulated host.
pub fn zombie_pids(stage: &Stage) -> Vec<u32> {
    stage
        .host()
        .map(|h| h.procs().zombie_pids())
        .unwrap_or_default()
}

/// A sim body and a real body for one scenario logic function.
macro_rules! bodies {
    ($logic:ident, $sim:ident, $real:ident) => {
        fn $sim(world: World) -> BodyFuture {
            Box::pin(async move { $logic(Stage::sim(&world).await?).await })
        }
        fn $real(stage: Stage) -> BodyFuture {
            Box::pin($logic(stage))
        }
    };
}
pub(crate) use bodies;
