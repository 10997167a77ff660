//! The warm pool's async shell: the filler task and the claim path, carrying out the
//! core's decisions through the worker manager.
//!
//! Every decision and the delivery of its handoffs happen under one lock, so a queued
//! claim can never be served twice or missed between a timeout and a handoff. No lock is
//! held across an await.

use super::decisions::{ClaimDecision, Fill, Handoff, PoolCore, ReleaseDecision, WaitExpiry};
use super::{Freshness, MemberInfo, PoolStats, Priority, WarmPoolConfig};
use crate::env::{BoxFuture, Task};
use crate::workers::name::shorten;
use crate::workers::program::protocol::Request;
use crate::workers::{Worker, WorkerError, WorkerManager, WorkerStatus};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

/// How a claim got its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum ClaimPath {
    /// A fresh idle worker, at once.
    Warm,
    /// After queueing: a release or a newly warmed worker.
    Waited,
    /// Taken from the lower-priority claim `victim` after its session was checkpointed.
    Preempted { victim: u64 },
    /// A worker started for this claim (an SLA warning was emitted); `after_wait` if the
    /// claim queued first and its wait ran out.
    Cold { after_wait: bool },
}

/// Tells a claim holder its worker was taken by a higher-priority claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Revocation {
    pub by_claim: u64,
    /// Time since the pool started.
    pub at: Duration,
    /// The session was checkpointed (the worker's snapshot) before it was taken.
    pub checkpointed: bool,
}

/// Why a pre-warmed worker was not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRefusal {
    pub reason: String,
    /// The upstream is rate limiting: pre-warming pauses for `rate_limit_pause`.
    pub rate_limited: bool,
}

/// Asked about each freshly started pre-warm before the pool keeps it (the engine asks
/// the model API whether it answers). A refusal discards the worker.
pub trait WarmCheck: Send + Sync {
    fn check<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), CheckRefusal>>;
}

/// A worker lent to one claim. Dropping it (or [`WarmPool::release`]) gives it back.
pub struct Claim {
    id: u64,
    priority: Priority,
    name: String,
    worker: Arc<Worker>,
    path: ClaimPath,
    requested_at: Duration,
    granted_at: Duration,
    revoked: watch::Receiver<Option<Revocation>>,
    checkpoint: Arc<Mutex<String>>,
    pool: Weak<PoolInner>,
}

impl Claim {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// The worker's registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    pub fn path(&self) -> ClaimPath {
        self.path
    }

    /// When the claim was made and when it got its worker (time since the pool started).
    pub fn requested_at(&self) -> Duration {
        self.requested_at
    }

    pub fn granted_at(&self) -> Duration {
        self.granted_at
    }

    /// The revocation, if a higher-priority claim took the worker.
    pub fn revocation(&self) -> Option<Revocation> {
        *self.revoked.borrow()
    }

    /// Watches for a revocation.
    pub fn revoked(&self) -> watch::Receiver<Option<Revocation>> {
        self.revoked.clone()
    }

    /// Ends the claim with its worker: stopped and unregistered, never handed out again
    /// (a session's worker holds that session's state).
    pub async fn retire(mut self) {
        let Some(pool) = std::mem::take(&mut self.pool).upgrade() else {
            return;
        };
        let name = {
            let mut state = pool.lock();
            state.claims.remove(&self.id);
            state.core.retire_claim(self.id)
        };
        if let Some(name) = name {
            if let Err(e) = pool.manager.unregister(&name).await {
                tracing::warn!(worker = %shorten(&name), error = %e, "retiring a claimed worker failed");
            }
            pool.lock().core.retired(&name);
        }
        pool.wake.notify_one();
    }

    /// The session state saved (as the worker's snapshot) if this claim is pre-empted.
    pub fn set_checkpoint_state(&self, state: impl Into<String>) {
        *self.checkpoint.lock().expect("checkpoint poisoned") = state.into();
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("id", &self.id)
            .field("priority", &self.priority)
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.release(self.id);
        }
    }
}

/// What a live claim leaves with the pool.
struct ClaimLink {
    revoke: watch::Sender<Option<Revocation>>,
    checkpoint: Arc<Mutex<String>>,
}

struct PoolState {
    core: PoolCore,
    /// Queued claims' handoff channels.
    waiters: BTreeMap<u64, oneshot::Sender<String>>,
    claims: BTreeMap<u64, ClaimLink>,
}

struct PoolInner {
    manager: Arc<WorkerManager>,
    config: WarmPoolConfig,
    check: Option<Arc<dyn WarmCheck>>,
    origin: Instant,
    state: Mutex<PoolState>,
    /// Wakes the filler (a claim, a release, a config change). `notify_one` keeps a
    /// permit, so a wake-up between a decision and the wait is not lost.
    wake: Notify,
}

/// A warm pool. Dropping it stops the filler; [`WarmPool::shutdown`] also stops the
/// workers.
pub struct WarmPool {
    inner: Arc<PoolInner>,
    filler: Mutex<Option<Task<()>>>,
}

impl WarmPool {
    /// Starts the pool: its filler begins warming workers at once.
    pub fn start(manager: Arc<WorkerManager>, config: WarmPoolConfig) -> Arc<WarmPool> {
        Self::start_checked(manager, config, None)
    }

    /// Starts the pool with a check each pre-warm must pass before it is kept.
    pub fn start_checked(
        manager: Arc<WorkerManager>,
        config: WarmPoolConfig,
        check: Option<Arc<dyn WarmCheck>>,
    ) -> Arc<WarmPool> {
        config.check();
        let inner = Arc::new(PoolInner {
            state: Mutex::new(PoolState {
                core: PoolCore::new(&config),
                waiters: BTreeMap::new(),
                claims: BTreeMap::new(),
            }),
            manager,
            config,
            check,
            origin: Instant::now(),
            wake: Notify::new(),
        });
        let filler = inner
            .manager
            .env()
            .spawn("warm-pool-filler", fill(inner.clone()));
        tracing::info!(pool = %inner.config.name_prefix, size_target = inner.config.size_target, "warm pool started");
        Arc::new(WarmPool {
            inner,
            filler: Mutex::new(Some(filler)),
        })
    }

    /// The worker manager its workers are registered with.
    pub(crate) fn manager(&self) -> &Arc<WorkerManager> {
        &self.inner.manager
    }

    pub fn config(&self) -> &WarmPoolConfig {
        &self.inner.config
    }

    /// The instant the pool started: every `Duration` it reports is measured from it.
    pub fn origin(&self) -> Instant {
        self.inner.origin
    }

    /// Time since the pool started.
    pub fn now(&self) -> Duration {
        self.inner.now()
    }

    pub fn stats(&self) -> PoolStats {
        self.inner.lock().core.stats().clone()
    }

    pub fn members(&self) -> Vec<MemberInfo> {
        let now = self.now();
        self.inner.lock().core.members(now)
    }

    /// Whether member `name` may be handed out now (`None`: not a member).
    pub fn freshness(&self, name: &str) -> Option<Freshness> {
        let now = self.now();
        self.inner.lock().core.freshness(name, now)
    }

    pub fn is_fresh(&self, name: &str) -> Option<bool> {
        self.freshness(name).map(Freshness::is_fresh)
    }

    /// Queued claims, in serving order.
    pub fn waiting(&self) -> Vec<(u64, Priority)> {
        self.inner.lock().core.waiting()
    }

    pub fn config_version(&self) -> u64 {
        self.inner.lock().core.config_version()
    }

    /// From now on only workers started with `version` are fresh; the others are
    /// replaced on a rolling basis (idle ones) or retired when released (claimed ones).
    pub fn set_config_version(&self, version: u64) {
        let old = {
            let mut state = self.inner.lock();
            let old = state.core.config_version();
            state.core.set_config_version(version);
            old
        };
        tracing::info!(pool = %self.inner.config.name_prefix, old, new = version, "configuration version changed: older workers are stale");
        self.inner.wake.notify_one();
    }

    /// A worker for a claim of `priority` (see the module documentation for the order
    /// of preferences).
    pub async fn claim(&self, priority: Priority) -> Result<Claim, WorkerError> {
        self.inner.claim(priority).await
    }

    /// Gives the claim's worker back (the same as dropping the claim).
    pub fn release(&self, claim: Claim) {
        drop(claim);
    }

    /// A fresh idle worker for a claim of `priority`, or `None` at once (counted as the
    /// pool running dry): never waits, never starts one.
    pub async fn try_claim(&self, priority: Priority) -> Option<Claim> {
        // Bounded: each pass either returns or loses one member that was not ready.
        loop {
            let requested_at = self.now();
            let (id, name) = {
                let mut state = self.inner.lock();
                let id = state.core.next_claim_id();
                (id, state.core.try_claim(requested_at, id, priority))
            };
            self.inner.wake.notify_one();
            let name = name?;
            if let Some(claim) = self
                .inner
                .hand_out(id, priority, &name, ClaimPath::Warm, requested_at)
                .await
            {
                return Some(claim);
            }
        }
    }

    /// A worker started for a claim of `priority` (a cold start, with an SLA warning).
    pub async fn claim_cold(&self, priority: Priority) -> Result<Claim, WorkerError> {
        let requested_at = self.now();
        let (id, name) = {
            let mut state = self.inner.lock();
            let id = state.core.next_claim_id();
            (id, state.core.cold_claim())
        };
        tracing::warn!(pool = %self.inner.prefix(), claim = id, ?priority, worker = %name, "SLA warning: no warm worker for the claim; cold start");
        self.inner.cold_start(id, priority, &name).await?;
        let path = ClaimPath::Cold { after_wait: false };
        match self
            .inner
            .hand_out(id, priority, &name, path, requested_at)
            .await
        {
            Some(claim) => Ok(claim),
            None => Err(WorkerError::NotRegistered { name }),
        }
    }

    /// Whether at least one pre-warm ever succeeded (the engine's readiness).
    pub fn is_ready(&self) -> bool {
        self.inner.lock().core.is_ready()
    }

    /// Fresh idle workers now.
    pub fn depth(&self) -> usize {
        let now = self.now();
        self.inner.lock().core.depth(now)
    }

    /// A plugin set changed: from now on only workers of `version` are fresh, and every
    /// idle older one is stopped now. Returns how many.
    pub async fn invalidate(&self, version: u64) -> usize {
        let names = self.inner.lock().core.invalidate(version);
        tracing::info!(pool = %self.inner.prefix(), version, stale = names.len(), "pool invalidated: stale idle workers retired");
        self.retire_all(&names).await;
        self.inner.wake.notify_one();
        names.len()
    }

    /// Shutdown: nothing more is started and every idle worker is stopped now (claimed
    /// ones keep serving). Returns how many went.
    ///
    /// The pool stops filling when this is called; the returned future stops the idle
    /// workers (so a caller can announce the drain before waiting for them).
    pub fn drain(&self) -> impl Future<Output = usize> + Send + '_ {
        let names = self.inner.lock().core.drain();
        async move {
            self.retire_all(&names).await;
            names.len()
        }
    }

    async fn retire_all(&self, names: &[String]) {
        for name in names {
            if let Err(e) = self.inner.manager.unregister(name).await {
                tracing::warn!(worker = %shorten(name), error = %e, "retiring a pool worker failed");
            }
            self.inner.lock().core.retired(name);
        }
    }

    /// Stops the filler and every member (claims still held keep their handles, but
    /// their workers are stopped).
    pub async fn shutdown(&self) {
        if let Some(filler) = self.filler.lock().expect("filler poisoned").take() {
            filler.abort();
        }
        let names: Vec<String> = {
            let now = self.now();
            self.inner
                .lock()
                .core
                .members(now)
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        for name in names {
            if let Err(e) = self.inner.manager.unregister(&name).await {
                tracing::warn!(worker = %shorten(&name), error = %e, "pool shutdown: unregister failed");
            }
            self.inner.lock().core.retired(&name);
        }
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        if let Some(filler) = self.filler.lock().expect("filler poisoned").take() {
            filler.abort();
        }
    }
}

/// Removes a queued claim from the queue if its caller goes away while it waits.
struct QueueGuard<'a> {
    inner: &'a PoolInner,
    id: u64,
    armed: bool,
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut state = self.inner.lock();
            state.core.cancel_wait(self.id);
            state.waiters.remove(&self.id);
            // A worker handed over just before the caller went away goes back.
            self.inner.release_locked(&mut state, self.id);
            drop(state);
            self.inner.wake.notify_one();
        }
    }
}

impl PoolInner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().expect("warm pool poisoned")
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn prefix(&self) -> &str {
        &self.config.name_prefix
    }

    /// Sends each handoff to its queued claim; a claim that went away gives the worker
    /// straight back (which may hand it to the next one).
    fn deliver(&self, state: &mut PoolState, first: Option<Handoff>) {
        let mut next = first;
        // Bounded: each failed delivery removes one waiter.
        while let Some(handoff) = next.take() {
            let sent = match state.waiters.remove(&handoff.claim) {
                Some(tx) => tx.send(handoff.name.clone()).is_ok(),
                None => false,
            };
            if !sent {
                tracing::info!(pool = %self.prefix(), claim = handoff.claim, "queued claim went away; worker back to the pool");
                let now = self.now();
                match state.core.release(now, handoff.claim) {
                    ReleaseDecision::HandOver(h) => next = Some(h),
                    ReleaseDecision::Retire { name, .. } => {
                        state.core.retired(&name);
                        self.retire_later(name);
                    }
                    ReleaseDecision::Idle | ReleaseDecision::Ignored => {}
                }
            }
        }
    }

    /// Stops and unregisters `name` in the background (the core already forgot it).
    fn retire_later(&self, name: String) {
        let manager = self.manager.clone();
        drop(self.manager.env().spawn("warm-pool-retire", async move {
            if let Err(e) = manager.unregister(&name).await {
                tracing::warn!(worker = %shorten(&name), error = %e, "retiring a pool worker failed");
            }
        }));
    }

    /// Registers the handoff channel of a claim the core just queued, under the same
    /// lock as the decision, so no handoff can come before the channel exists.
    fn queue_channel(
        state: &mut PoolState,
        id: u64,
        decision: &ClaimDecision,
    ) -> Option<oneshot::Receiver<String>> {
        if !matches!(decision, ClaimDecision::Wait { .. }) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        state.waiters.insert(id, tx);
        Some(rx)
    }

    fn release(&self, id: u64) {
        let mut state = self.lock();
        state.claims.remove(&id);
        self.release_locked(&mut state, id);
        drop(state);
        self.wake.notify_one();
    }

    fn release_locked(&self, state: &mut PoolState, id: u64) {
        let now = self.now();
        match state.core.release(now, id) {
            ReleaseDecision::Idle => {
                tracing::info!(pool = %self.prefix(), claim = id, "worker released to the pool");
            }
            ReleaseDecision::Retire { name, freshness } => {
                tracing::info!(pool = %self.prefix(), claim = id, worker = %name, ?freshness, "released worker is stale: retiring it");
                state.core.retired(&name);
                self.retire_later(name);
            }
            ReleaseDecision::HandOver(handoff) => {
                tracing::info!(pool = %self.prefix(), claim = id, to = handoff.claim, worker = %handoff.name, "released worker handed to a queued claim");
                self.deliver(state, Some(handoff));
            }
            ReleaseDecision::Ignored => {}
        }
    }

    async fn claim(self: &Arc<Self>, priority: Priority) -> Result<Claim, WorkerError> {
        let requested_at = self.now();
        let (id, mut decision, mut queued) = {
            let mut state = self.lock();
            let id = state.core.next_claim_id();
            let decision = state.core.claim(requested_at, id, priority);
            let queued = Self::queue_channel(&mut state, id, &decision);
            (id, decision, queued)
        };
        // Bounded: every pass either returns or removes a member (lost, pre-emption
        // abandoned), or moves from the queue to a cold start; all finitely often.
        loop {
            let (name, path) = match decision {
                ClaimDecision::Grant { name } => (name, ClaimPath::Warm),
                ClaimDecision::Preempt { name, victim } => {
                    match self.preempt(id, &name, victim).await {
                        Ok(()) => (name, ClaimPath::Preempted { victim }),
                        Err(why) => {
                            tracing::warn!(pool = %self.prefix(), claim = id, worker = %name, victim, why = %why, "pre-emption abandoned: the victim keeps its worker");
                            let now = self.now();
                            let mut state = self.lock();
                            decision = state.core.preempt_failed(now, &name, id, priority);
                            queued = Self::queue_channel(&mut state, id, &decision);
                            continue;
                        }
                    }
                }
                ClaimDecision::Wait { position } => {
                    let rx = queued.take().expect("a queued claim has its channel");
                    match self.wait(id, priority, position, rx).await {
                        Ok(name) => (name, ClaimPath::Waited),
                        Err((next, rx)) => {
                            decision = next;
                            queued = rx;
                            continue;
                        }
                    }
                }
                ClaimDecision::ColdStart { name } => {
                    let after_wait = self.now() > requested_at;
                    tracing::warn!(pool = %self.prefix(), claim = id, ?priority, worker = %name, after_wait, "SLA warning: no warm worker for the claim; cold start");
                    self.cold_start(id, priority, &name).await?;
                    (name, ClaimPath::Cold { after_wait })
                }
            };
            match self.hand_out(id, priority, &name, path, requested_at).await {
                Some(claim) => return Ok(claim),
                None => {
                    let now = self.now();
                    let mut state = self.lock();
                    decision = state.core.claim(now, id, priority);
                    queued = Self::queue_channel(&mut state, id, &decision);
                }
            }
        }
    }

    /// Waits for a handoff to queued claim `id` up to `wait_max`. `Err` carries the next
    /// decision after a vain wait (a cold start).
    async fn wait(
        self: &Arc<Self>,
        id: u64,
        priority: Priority,
        position: usize,
        mut rx: oneshot::Receiver<String>,
    ) -> Result<String, (ClaimDecision, Option<oneshot::Receiver<String>>)> {
        let mut guard = QueueGuard {
            inner: self,
            id,
            armed: true,
        };
        tracing::info!(pool = %self.prefix(), claim = id, ?priority, position, wait_max_ms = self.config.wait_max.as_millis() as u64, "no warm worker: claim queued");
        self.wake.notify_one();
        let waited = tokio::time::timeout(self.config.wait_max, &mut rx).await;
        guard.armed = false;
        if let Ok(Ok(name)) = waited {
            return Ok(name);
        }
        let mut state = self.lock();
        state.waiters.remove(&id);
        match state.core.wait_expired(id) {
            WaitExpiry::AlreadyServed => match rx.try_recv() {
                Ok(name) => Ok(name),
                // Served, yet no name: cannot happen (handoffs are sent under this
                // lock); decide afresh rather than trust it.
                Err(_) => {
                    let decision = state.core.claim(self.now(), id, priority);
                    let queued = Self::queue_channel(&mut state, id, &decision);
                    Err((decision, queued))
                }
            },
            WaitExpiry::ColdStart { name } => {
                tracing::warn!(pool = %self.prefix(), claim = id, wait_ms = self.config.wait_max.as_millis() as u64, "queued claim waited in vain");
                Err((ClaimDecision::ColdStart { name }, None))
            }
        }
    }

    /// Checkpoints the victim's session on `name`, then gives `name` to claim `id`.
    async fn preempt(self: &Arc<Self>, id: u64, name: &str, victim: u64) -> Result<(), String> {
        let worker = self.manager.worker(name).await.map_err(|e| e.to_string())?;
        let state = {
            let state = self.lock();
            state
                .claims
                .get(&victim)
                .map(|c| c.checkpoint.lock().expect("checkpoint poisoned").clone())
                .unwrap_or_default()
        };
        tracing::info!(pool = %self.prefix(), claim = id, victim, worker = %name, "pre-empting: checkpointing the victim's session first");
        let request = Request::Snapshot { id: victim, state };
        match tokio::time::timeout(self.config.checkpoint_timeout, worker.request(request)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("checkpoint failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "checkpoint not done within {} ms",
                    self.config.checkpoint_timeout.as_millis()
                ));
            }
        }
        let at = self.now();
        let mut state = self.lock();
        if let Some(revoked) = state.core.preempt_done(name, id)
            && let Some(link) = state.claims.remove(&revoked)
        {
            link.revoke.send_replace(Some(Revocation {
                by_claim: id,
                at,
                checkpointed: true,
            }));
            tracing::warn!(pool = %self.prefix(), claim = id, victim = revoked, worker = %name, "pre-empted a lower-priority claim after its checkpoint");
        }
        Ok(())
    }

    async fn cold_start(
        self: &Arc<Self>,
        id: u64,
        priority: Priority,
        name: &str,
    ) -> Result<(), WorkerError> {
        let version = self.lock().core.config_version();
        let result = self.start_worker(name, version).await;
        let now = self.now();
        match result {
            Ok(()) => {
                self.lock().core.cold_ready(now, name, id, priority);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(pool = %self.prefix(), claim = id, worker = %name, error = %e, "cold start failed");
                self.discard(name).await;
                self.lock().core.cold_failed(name);
                Err(e)
            }
        }
    }

    /// Registers and starts `name` with the template in its own directory.
    async fn start_worker(&self, name: &str, version: u64) -> Result<(), WorkerError> {
        let mut config = self.config.template.clone();
        config.config_version = version;
        config.dir = if config.dir.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", config.dir)
        };
        self.manager.register(name, config).await?;
        self.manager.start(name).await
    }

    /// Unregisters a worker whose start failed (its process, if any, was already
    /// killed and handed to the reaper by its supervisor).
    async fn discard(&self, name: &str) {
        if let Err(e) = self.manager.unregister(name).await {
            tracing::debug!(worker = %shorten(name), error = %e, "discarding a failed worker");
        }
    }

    /// Builds the claim for `name`, after checking the worker is really ready. `None`:
    /// it is not (it crashed while idle), so it left the pool and the claim is decided
    /// again.
    async fn hand_out(
        self: &Arc<Self>,
        id: u64,
        priority: Priority,
        name: &str,
        path: ClaimPath,
        requested_at: Duration,
    ) -> Option<Claim> {
        let worker = match self.manager.worker(name).await {
            Ok(worker) if matches!(worker.status(), WorkerStatus::Ready { .. }) => worker,
            other => {
                let status = other.as_ref().map(|w| w.status().to_string());
                tracing::warn!(pool = %self.prefix(), claim = id, worker = %name, ?status, "pool worker not ready when handed out; replacing it");
                self.lock().core.member_lost(name);
                self.retire_later(name.to_string());
                self.wake.notify_one();
                return None;
            }
        };
        let (revoke, revoked) = watch::channel(None);
        let checkpoint = Arc::new(Mutex::new(String::new()));
        self.lock().claims.insert(
            id,
            ClaimLink {
                revoke,
                checkpoint: checkpoint.clone(),
            },
        );
        let granted_at = self.now();
        tracing::info!(pool = %self.prefix(), claim = id, ?priority, worker = %name, ?path, waited_ms = (granted_at - requested_at).as_millis() as u64, "claim granted");
        self.wake.notify_one();
        Some(Claim {
            id,
            priority,
            name: name.to_string(),
            worker,
            path,
            requested_at,
            granted_at,
            revoked,
            checkpoint,
            pool: Arc::downgrade(self),
        })
    }
}

/// The filler: keeps `size_target` fresh idle workers, one start at a time, staggered;
/// retires stale and surplus idle workers on the same rhythm.
async fn fill(inner: Arc<PoolInner>) {
    loop {
        let now = inner.now();
        let decision = inner.lock().core.next_fill(now);
        match decision {
            Fill::Start {
                name,
                config_version,
            } => {
                tracing::info!(pool = %inner.prefix(), worker = %name, config_version, "pre-warming a worker");
                let result = inner.start_worker(&name, config_version).await;
                let refused = match (&result, &inner.check) {
                    (Ok(()), Some(check)) => check.check(&name).await.err(),
                    _ => None,
                };
                let now = inner.now();
                match result {
                    Ok(()) if refused.is_some() => {
                        let refusal = refused.expect("checked above");
                        inner.discard(&name).await;
                        let mut state = inner.lock();
                        state.core.prewarm_refused(
                            now,
                            &name,
                            &refusal.reason,
                            refusal.rate_limited,
                        );
                        let retry_in = state.core.prewarm_next_at().saturating_sub(now);
                        tracing::warn!(pool = %inner.prefix(), worker = %name, reason = %refusal.reason, rate_limited = refusal.rate_limited, retry_in_ms = retry_in.as_millis() as u64, "pre-warm not kept: its check was refused");
                    }
                    Ok(()) if inner.lock().core.retire_if_draining(&name) => {
                        tracing::info!(pool = %inner.prefix(), worker = %name, "pre-warm ready while draining: retired");
                        if let Err(e) = inner.manager.unregister(&name).await {
                            tracing::warn!(worker = %shorten(&name), error = %e, "retiring a pool worker failed");
                        }
                        inner.lock().core.retired(&name);
                    }
                    Ok(()) => {
                        tracing::info!(pool = %inner.prefix(), worker = %name, "pre-warmed worker ready");
                        let mut state = inner.lock();
                        let handoff = state.core.prewarm_ready(now, &name);
                        inner.deliver(&mut state, handoff);
                    }
                    Err(e) => {
                        inner.discard(&name).await;
                        let mut state = inner.lock();
                        state.core.prewarm_failed(now, &name, &e.to_string());
                        let retry_in = state.core.prewarm_next_at().saturating_sub(now);
                        tracing::warn!(pool = %inner.prefix(), worker = %name, error = %e, retry_in_ms = retry_in.as_millis() as u64, "pre-warm failed; a fresh attempt follows after the backoff");
                    }
                }
            }
            Fill::Retire { name, reason } => {
                tracing::info!(pool = %inner.prefix(), worker = %name, ?reason, "retiring an idle pool worker");
                if let Err(e) = inner.manager.unregister(&name).await {
                    tracing::warn!(worker = %shorten(&name), error = %e, "retiring a pool worker failed");
                }
                inner.lock().core.retired(&name);
            }
            Fill::WaitUntil(at) => {
                // Never a deadline already passed: the filler would spin without letting
                // (virtual) time advance.
                let deadline = inner.origin + at.max(now + Duration::from_millis(1));
                tokio::select! {
                    biased;
                    () = inner.wake.notified() => {}
                    () = tokio::time::sleep_until(deadline) => {}
                }
            }
            Fill::Idle => inner.wake.notified().await,
        }
    }
}
