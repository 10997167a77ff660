//! Helpers of the warm-pool scenarios: the pool's configuration, claims with a bound,
//! the pre-warm rhythm oracle, and samplers that watch the supervisor's statuses and the
//! host's processes while the pool works.

use super::fail::OrFail;
use super::time::{eventually, ms, secs};
use super::workers::live_pids;
use crate::ensure;
use crate::scenario::{Failure, Outcome};
use crate::stage::workers::{Stage, WORKER_PROGRAM_SIM, worker_config};
use engine::env::Task;
use engine::workers::pool::{AttemptOutcome, Backoff, MemberState, PrewarmAttempt};
use engine::workers::retry::RetryPolicy;
use engine::workers::{Claim, Priority, WarmPool, WarmPoolConfig, WorkerError, WorkerStatus};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The pool's workers keep their session snapshot here (relative to their directory).
pub const SNAPSHOT_FILE: &str = "session.snap";
pub const STAGGER: Duration = Duration::from_secs(5);
/// Slack for "at this instant": the timer wheel ticks in milliseconds, and a handoff or
/// a kill takes a few scheduler turns.
pub const INSTANT_SLACK: Duration = Duration::from_millis(5);
/// The supervisor's time from a process's first instruction to `Ready`: the worker's
/// endpoint is first tried 0.6 s after spawn (the connect schedule), plus network latency.
pub const READY_AFTER_START_MAX: Duration = Duration::from_millis(1_000);

/// A pool of `size` workers running the stage's worker program with a snapshot file.
pub fn pool_config(size: usize) -> WarmPoolConfig {
    let mut template = worker_config(WORKER_PROGRAM_SIM, "pool");
    template.args = vec!["--snapshot".to_string(), SNAPSHOT_FILE.to_string()];
    // A pre-warm may start slowly: poll the endpoint for the whole init timeout (the
    // default schedule gives up after 3.6 s), so only the init timeout ends a slow start.
    template.connect = RetryPolicy {
        attempts_max: 1_000,
        delay_max: ms(200),
        total_max: template.init_timeout + secs(10),
        ..RetryPolicy::endpoint_connect()
    };
    let mut config = WarmPoolConfig::new("pool", template);
    config.size_target = size;
    config.stagger = STAGGER;
    config
}

/// Waits until the pool has warmed `count` workers.
pub async fn warmed(pool: &WarmPool, count: u64, bound: Duration) -> Outcome {
    eventually("the pool's warm-up", bound, ms(10), || {
        pool.stats().prewarm_ready >= count
    })
    .await
}

pub async fn claim(pool: &WarmPool, priority: Priority, bound: Duration) -> Result<Claim, Failure> {
    match tokio::time::timeout(bound, pool.claim(priority)).await {
        Err(_) => Err(Failure::liveness(format!(
            "a {priority:?} claim got no worker within {} s",
            bound.as_secs()
        ))),
        Ok(result) => result.or_fail(&format!("{priority:?} claim")),
    }
}

/// Spawns `task`, which makes a `priority` claim on the pool.
pub fn claim_in_background(
    stage: &Stage,
    pool: &Arc<WarmPool>,
    task: &'static str,
    priority: Priority,
) -> Task<Result<Claim, WorkerError>> {
    let pool = pool.clone();
    stage
        .env
        .spawn(task, async move { pool.claim(priority).await })
}

/// Checks that consecutive pre-warm attempts never overlap and that each starts exactly
/// `pause` after the previous one ended (the stagger, or the backoff after failures).
pub fn check_rhythm(attempts: &[PrewarmAttempt], backoff: &Backoff) -> Outcome {
    let mut failures_in_a_row = 0;
    for pair in attempts.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let Some(ended) = before.ended_at else {
            return Err(Failure::correctness(format!(
                "attempt {} started at {:?} while {} (started {:?}) was still starting",
                after.name, after.started_at, before.name, before.started_at
            )));
        };
        let pause = match &before.outcome {
            AttemptOutcome::Ready => {
                failures_in_a_row = 0;
                STAGGER
            }
            AttemptOutcome::Failed { .. } => {
                failures_in_a_row += 1;
                backoff.delay(failures_in_a_row).max(STAGGER)
            }
            AttemptOutcome::InProgress => unreachable!("an ended attempt has an outcome"),
        };
        let gap = after.started_at.saturating_sub(ended);
        ensure!(
            after.started_at >= ended + pause && gap <= pause + INSTANT_SLACK,
            "{} started {gap:?} after {} ended ({:?}); the pause must be {pause:?}",
            after.name,
            before.name,
            before.outcome
        );
    }
    Ok(())
}

/// Starts seen by sampling: the most workers starting at once (the supervisor's
/// statuses), and when each process first appeared on the host.
#[derive(Default)]
pub struct Starts {
    pub starting_max: usize,
    pub first_seen: BTreeMap<u32, Duration>,
}

impl Starts {
    pub async fn sample(&mut self, stage: &Stage, pool: &WarmPool) {
        let starting = stage
            .manager
            .list()
            .await
            .iter()
            .filter(|w| matches!(w.status, WorkerStatus::Starting { .. }))
            .count();
        self.starting_max = self.starting_max.max(starting);
        for pid in live_pids(stage) {
            self.first_seen.entry(pid).or_insert_with(|| pool.now());
        }
    }

    /// Samples every 10 ms while `going` holds; with a `bound`, fails the liveness phase
    /// (`what` did not happen) when it still holds after it.
    pub async fn sample_while(
        &mut self,
        stage: &Stage,
        pool: &WarmPool,
        bound: Option<(Duration, &str)>,
        going: impl Fn(&WarmPool) -> bool,
    ) -> Outcome {
        let deadline = bound.map(|(b, _)| pool.now() + b);
        while going(pool) {
            if let (Some(deadline), Some((b, what))) = (deadline, bound)
                && pool.now() > deadline
            {
                return Err(Failure::liveness(format!(
                    "{what} did not happen within {} s",
                    b.as_secs()
                )));
            }
            self.sample(stage, pool).await;
            tokio::time::sleep(ms(10)).await;
        }
        Ok(())
    }
}

/// What the scenario saw of each worker, by its own sampling (not the pool's bookkeeping).
#[derive(Default)]
pub struct Seen {
    /// First time each worker's status was seen Ready.
    pub ready: BTreeMap<String, Duration>,
    pub starting_max: usize,
    /// During a rolling refresh: the stale workers that may be retired, and the version
    /// their replacements have.
    pub rolling: Option<(Vec<String>, u64)>,
    /// The most stale workers seen retired beyond the replacements seen ready, plus one.
    pub retired_ahead_max: usize,
}

impl Seen {
    pub async fn sample(&mut self, stage: &Stage, pool: &WarmPool) {
        let now = pool.now();
        let workers = stage.manager.list().await;
        let mut starting = 0;
        let mut ready_new = 0;
        for w in &workers {
            match w.status {
                WorkerStatus::Ready { .. } => {
                    self.ready.entry(w.name.clone()).or_insert(now);
                }
                WorkerStatus::Starting { .. } => starting += 1,
                _ => {}
            }
        }
        self.starting_max = self.starting_max.max(starting);
        if let Some((stale, version)) = &self.rolling {
            // Replacements ever seen ready (one may have been handed out since).
            for w in &workers {
                if w.config_version == *version && self.ready.contains_key(&w.name) {
                    ready_new += 1;
                }
            }
            let retired = stale
                .iter()
                .filter(|name| !workers.iter().any(|w| &w.name == *name))
                .count();
            self.retired_ahead_max = self
                .retired_ahead_max
                .max(retired.saturating_sub(ready_new));
        }
    }

    /// Samples every 100 ms until `done` holds, for at most `bound`.
    pub async fn until(
        &mut self,
        stage: &Stage,
        pool: &WarmPool,
        what: &str,
        bound: Duration,
        mut done: impl FnMut(&WarmPool) -> bool,
    ) -> Outcome {
        let deadline = pool.now() + bound;
        loop {
            self.sample(stage, pool).await;
            if done(pool) {
                return Ok(());
            }
            if pool.now() >= deadline {
                return Err(Failure::liveness(format!(
                    "{what} did not happen within {} s",
                    bound.as_secs()
                )));
            }
            tokio::time::sleep(ms(100)).await;
        }
    }

    /// A claim's worker must be fresh by the scenario's own clock and the pool's version.
    pub fn check_handed_out(&self, pool: &WarmPool, c: &Claim, max_age: Duration) -> Outcome {
        let version = c.worker().config().config_version;
        ensure!(
            version == pool.config_version(),
            "claim {} got {} of config version {version}; the current one is {}",
            c.id(),
            c.name(),
            pool.config_version()
        );
        if let Some(ready) = self.ready.get(c.name()) {
            let age = c.granted_at().saturating_sub(*ready);
            ensure!(
                age <= max_age,
                "claim {} got {} aged {age:?} (ready since {ready:?}); the maximum age is {max_age:?}",
                c.id(),
                c.name()
            );
        }
        ensure!(
            pool.is_fresh(c.name()) == Some(true)
                || c.worker().config().config_version != pool.config_version(),
            "claim {} got {}, which the pool itself calls {:?}",
            c.id(),
            c.name(),
            pool.freshness(c.name())
        );
        Ok(())
    }
}

/// Whether the pool holds exactly `size` members, all idle and fresh.
pub fn settled(pool: &WarmPool, size: usize) -> bool {
    pool.members().len() == size && idle_fresh(pool) == size
}

/// Members idle and fresh.
pub fn idle_fresh(pool: &WarmPool) -> usize {
    pool.members()
        .iter()
        .filter(|m| m.state == MemberState::Idle && m.freshness.is_fresh())
        .count()
}

pub fn stale_members(pool: &WarmPool, version: u64) -> Vec<String> {
    pool.members()
        .into_iter()
        .filter(|m| m.config_version != version)
        .map(|m| m.name)
        .collect()
}
