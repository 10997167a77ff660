//! The simulator's own self-checks (`sim.*`): real checks of the substrate that prove
//! the pipeline end to end until engine subsystems bring catalog scenarios. They live
//! outside the catalog: `chaos list --substrate` shows them.

mod clock;
mod disk;
mod host;
pub(crate) mod many;
mod net;
mod procs;

use crate::scenario::Scenario;

/// Every substrate scenario, in a fixed order.
pub fn all() -> Vec<&'static Scenario> {
    vec![
        &net::PARTITION_HEAL_NO_LOSS,
        &net::RESET_RECONNECT_RESUME,
        &net::BACKPRESSURE_BOUNDED,
        &disk::ATOMIC_REPLACE_CRASH,
        &disk::TORN_LOG_RECOVERY,
        &procs::OOM_KILL_STATUS,
        &procs::SEGV_ZOMBIE_REAPED,
        &procs::SIGTERM_GRACE_THEN_KILL,
        &clock::SKEW_DOES_NOT_BEND_TIMEOUTS,
        &host::PAUSE_DELAYS_HEARTBEATS,
        &many::MANY_FAULTS_EXACTLY_ONCE,
    ]
}
