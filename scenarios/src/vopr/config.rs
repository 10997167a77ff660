//! What a VOPR run's world looks like, drawn from its seed within realistic ranges
//! (TigerBeetle's rule: a run is its seed; the configuration is part of what it draws).

use sim::SimRng;
use std::time::Duration;

/// The engine host (an engine instance, its store and workers; crashes and restarts on
/// the same data directory).
pub const ENGINE_HOST: &str = "engine-0";
/// The model API's host, when the run has one.
pub const UPSTREAM_HOST: &str = "upstream-0";
pub const PORT: u16 = 8080;
pub const UPSTREAM_PORT: u16 = 443;
pub const UPSTREAM_KEY: &str = "vopr-api-key";
pub const WORKER_PROGRAM: &str = "/usr/bin/worker";
pub const SECRET: &[u8] = b"vopr-token-secret";
/// Where the engine hosts the session lock service, when the run has one.
pub const LOCK_PORT: u16 = 7300;
/// The gateway's frame size limit, in characters.
pub const MESSAGE_CHARS_MAX: usize = 100_000;
/// The gateway's accepted clock difference for token expiry.
pub const TOKEN_SKEW: Duration = Duration::from_secs(30);
/// The safety phase: workload and faults happen inside this window.
pub const SAFETY_MS: u64 = 12 * 60 * 1000;
/// After the heal, every tab in use must be answered within this: longer than a
/// parked session's longest wait (6 min), since a place under the limit may only free
/// up when an abandoned session is parked.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(480);

/// One simulated user.
#[derive(Clone, Debug)]
pub struct UserConfig {
    pub name: String,
    pub role: &'static str,
    /// How long the user's tokens are valid; short ones expire during the run.
    pub token_ttl: Duration,
}

/// The run's world, as its seed draws it.
#[derive(Clone, Debug)]
pub struct VoprConfig {
    pub users: Vec<UserConfig>,
    pub session_limit: usize,
    pub pool_size: usize,
    pub queue_queries: bool,
    pub answer_pace: Option<Duration>,
    pub replay_count: usize,
    pub outbound_max: usize,
    pub idle_timeout: Duration,
    /// A session without a client for this long is parked (its worker freed).
    pub detached_max: Duration,
    pub upstream: bool,
    /// Network latency between hosts (one way), at most.
    pub latency_max: Duration,
    /// Simulated disk latency, at most.
    pub disk_latency_max: Duration,
    /// Worker processes start this slowly, at most.
    pub start_delay_max: Duration,
    /// The engine hosts the session lock service (its resumes take it, and lock
    /// holders on the client hosts share it).
    pub lock: bool,
}

impl VoprConfig {
    /// The world of run `seed` (stream `vopr/config`).
    pub fn draw(seed: u64) -> Self {
        let mut rng = SimRng::new(seed, "vopr/config");
        let users = (0..2 + rng.below(5))
            .map(|i| UserConfig {
                name: format!("user{i}"),
                role: match rng.below(6) {
                    0 => "viewer",
                    1 => "admin",
                    _ => "member",
                },
                token_ttl: if rng.below(3) == 0 {
                    Duration::from_secs(120 + rng.below(480))
                } else {
                    Duration::from_secs(4 * 3600)
                },
            })
            .collect();
        let replay_count = 20 + rng.below(180) as usize;
        VoprConfig {
            users,
            session_limit: 3 + rng.below(10) as usize,
            pool_size: rng.below(3) as usize,
            queue_queries: rng.below(2) == 0,
            answer_pace: (rng.below(2) == 0).then(|| Duration::from_millis(10 + rng.below(90))),
            replay_count,
            outbound_max: replay_count.min(10 + rng.below(90) as usize),
            idle_timeout: Duration::from_secs(600 + rng.below(3000)),
            detached_max: Duration::from_secs(60 + rng.below(300)),
            upstream: rng.below(2) == 0,
            latency_max: Duration::from_micros(200 + rng.below(20_000)),
            disk_latency_max: Duration::from_micros(rng.below(5_000)),
            start_delay_max: Duration::from_millis(rng.below(3_000)),
            // Drawn last: the draws above stay what they were before locks came.
            lock: rng.below(2) == 0,
        }
    }
}
