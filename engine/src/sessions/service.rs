//! The session table: admission, the pre-warm pool, creation, resume and fork, role
//! changes, drain. One `Sessions` per engine instance.

use super::admission::{Admission, AdmissionControl};
use super::config::SessionsConfig;
use super::core::SessionCore;
use super::driver::drive;
use super::durable::{Durable, Stored};
use super::egress::watch_egress;
use super::gate::ToolGate;
use super::lock::SessionLock;
use super::session::Session;
use super::upstream::watch_upstream;
use crate::egress::Egress;
use crate::env::Env;
use crate::protocol::ServerEvent;
use crate::store::{SessionStore, StartupReport, StoreError};
use crate::upstream::UpstreamClient;
use crate::workers::{Claim, Priority, WarmPool, WorkerError};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Why a session was not created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// At the limit: try again after this (HTTP 503 with `Retry-After`).
    Full { retry_after: Duration },
    /// Waiting in the creation queue.
    Queued { ticket: u64, position: usize },
    /// The server is shutting down.
    Draining,
    /// No session id could be reserved: the session store cannot be written.
    Unavailable { reason: String },
}

/// How a resume was answered.
pub enum Resumed {
    /// The session is live: attach to it.
    Live(Arc<Session>),
    /// It is not: a new session, and the notice the client gets.
    Fresh {
        session: Arc<Session>,
        notice: String,
    },
    /// It is stored and claimed elsewhere (another instance or connection won).
    Busy { by: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tombstone {
    pub at: Duration,
    pub reason: String,
}

/// A stored session coming back to life: its id, and where its restored stream starts.
struct Restore {
    id: String,
    first_seq_after: u64,
}

pub(crate) struct Table {
    pub(crate) live: BTreeMap<String, Arc<Session>>,
    pub(crate) tombstones: BTreeMap<String, Tombstone>,
    admission: AdmissionControl,
    draining: bool,
    /// Sessions numbered here without a store (with one, the store counts).
    next_session: u64,
    pub(crate) live_peak: usize,
}

pub(crate) struct Shared {
    pub(crate) env: Env,
    /// The store sessions are kept in, when the deployment has one.
    pub(crate) durable: Option<Durable>,
    pub(crate) config: SessionsConfig,
    /// The pre-warm pool: sessions take their workers from it.
    pub(crate) pool: Arc<WarmPool>,
    /// The model API client all sessions share, when one is configured.
    pub(crate) upstream: Option<Arc<UpstreamClient>>,
    /// Asked before each tool call and each model call.
    pub(crate) gate: ToolGate,
    /// The engine's sandbox egress: a session's outbound requests leave through it.
    pub(crate) egress: Arc<Egress>,
    /// Drawn at start: tells this instance's store-less session ids from an earlier
    /// start's.
    boot_tag: u32,
    /// The distributed session lock a resume from the store takes, when configured.
    lock: Option<Arc<SessionLock>>,
    origin: Instant,
    table: Mutex<Table>,
}

impl Shared {
    /// Monotonic time since the table was built (virtual in a simulated world).
    pub(crate) fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    pub(crate) async fn sleep_until(&self, at: Duration) {
        match self.origin.checked_add(at) {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }

    /// A session id never issued before, across restarts too: numbered by a counter in
    /// the store when there is one (the number is durable before the id is used);
    /// without a store, by this instance's counter behind a tag drawn at its start
    /// (nothing of a session survives a restart then, and its id must not either).
    fn new_session_id(&self, t: &mut Table) -> Result<String, CreateError> {
        let instance = self.config.instance.as_str();
        let n = match &self.durable {
            Some(d) => d
                .store
                .next_number(&counter_name(instance), |id| session_number(instance, id))
                .map_err(|e| {
                    tracing::error!("no session id could be reserved: {e}");
                    CreateError::Unavailable {
                        reason: e.to_string(),
                    }
                })?,
            None => {
                t.next_session += 1;
                return Ok(format!(
                    "{}-{:08x}",
                    session_id(instance, t.next_session),
                    self.boot_tag
                ));
            }
        };
        Ok(session_id(instance, n))
    }

    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().expect("session table poisoned")
    }

    /// A worker for a session: a warm one, else a cold start.
    pub(crate) async fn acquire_worker(&self) -> Result<Claim, WorkerError> {
        match self.pool.try_claim(Priority::Normal).await {
            Some(claim) => Ok(claim),
            None => self.cold_start().await,
        }
    }

    pub(crate) async fn cold_start(&self) -> Result<Claim, WorkerError> {
        tracing::warn!("pre-warm pool drained: cold start");
        self.pool.claim_cold(Priority::Normal).await
    }

    /// Writes the session's history and record to the store, if there is one (before
    /// each query, so a resume elsewhere starts from the last question asked; at the end
    /// of a session handed over, unclaimed, so another instance can take it).
    pub(crate) fn persist(&self, session: &Session) {
        let Some(d) = &self.durable else {
            return;
        };
        // Shared entries: taking them costs references, not a copy of the history.
        let (transcript, handed_off) =
            session.with_core(|c| (c.transcript().to_vec(), c.is_handed_off()));
        let saved = d.save(
            &self.env,
            &session.id,
            &session.user,
            session.parent.as_deref(),
            &transcript,
            !handed_off,
        );
        if let Err(e) = saved {
            tracing::warn!(session = %session.id, "session state not persisted: {e}");
        }
    }

    /// A session ended: free its slot, remember it briefly.
    pub(crate) fn forget(&self, session: &Session, reason: &str) {
        if let Some(d) = &self.durable {
            if session.with_core(|c| c.is_handed_off()) {
                // Kept for another instance: the final history, claimed by nobody.
                self.persist(session);
            } else {
                d.forget(&self.env, &session.id);
            }
        }
        let mut t = self.table();
        if t.live.remove(&session.id).is_some() {
            t.admission.release();
        }
        let at = self.now();
        t.tombstones.insert(
            session.id.clone(),
            Tombstone {
                at,
                reason: reason.to_string(),
            },
        );
        let ttl = self.config.tombstone_ttl;
        t.tombstones.retain(|_, s| at.saturating_sub(s.at) <= ttl);
    }
}

/// One engine instance's sessions. Cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    shared: Arc<Shared>,
}

/// What an engine instance gives its sessions (see `Engine::start`).
pub struct SessionsParts {
    pub pool: Arc<WarmPool>,
    /// Sessions are kept in this store (records claimed by `config.instance`, history
    /// files under `session-data/`), resumable by any instance sharing it.
    pub store: Option<Arc<SessionStore>>,
    pub upstream: Option<Arc<UpstreamClient>>,
    /// The tool gate each query's calls pass.
    pub gate: ToolGate,
    /// A resume from the store takes the session's lock here first (see `resume`).
    pub lock: Option<Arc<SessionLock>>,
    /// The engine's sandbox egress (one per engine).
    pub egress: Arc<Egress>,
}

impl Sessions {
    /// The session table of one instance. With a store, call [`Sessions::check_store`]
    /// once per deployment start, before serving.
    pub fn new(env: Env, config: SessionsConfig, parts: SessionsParts) -> Self {
        config.check();
        let durable = parts.store.map(|store| Durable {
            store,
            claimant: format!(
                "{}-{:016x}",
                if config.instance.is_empty() {
                    "engine"
                } else {
                    config.instance.as_str()
                },
                env.random().next_u64()
            ),
            dir: "session-data".to_string(),
        });
        let table = Table {
            live: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            admission: AdmissionControl::new(config.session_limit, config.admission),
            draining: false,
            next_session: 0,
            live_peak: 0,
        };
        Sessions {
            shared: Arc::new(Shared {
                upstream: parts.upstream,
                gate: parts.gate,
                egress: parts.egress,
                boot_tag: env.random().next_u64() as u32,
                lock: parts.lock,
                env,
                durable,
                config,
                pool: parts.pool,
                origin: Instant::now(),
                table: Mutex::new(table),
            }),
        }
    }

    /// The store's start-up check: records whose files are gone are purged, corrupt
    /// ones archived, stale claims cleared. `None` without a store.
    pub fn check_store(&self) -> Option<Result<StartupReport, StoreError>> {
        let d = self.shared.durable.as_ref()?;
        Some(super::durable::check_store(&self.shared.env, &d.store))
    }

    pub fn config(&self) -> &SessionsConfig {
        &self.shared.config
    }

    pub fn env(&self) -> &Env {
        &self.shared.env
    }

    pub fn now(&self) -> Duration {
        self.shared.now()
    }

    /// Starts the sessions' background work: the watch that tells sessions when egress
    /// is back after an outage and, with a model API, the same for it.
    pub fn start(&self) {
        let watch = watch_egress(self.shared.clone(), self.shared.egress.clone());
        self.shared.env.spawn("egress-watch", watch);
        if let Some(up) = &self.shared.upstream {
            let watch = watch_upstream(self.shared.clone(), up.clone());
            self.shared.env.spawn("upstream-watch", watch);
        }
    }

    /// The engine's sandbox egress.
    pub fn egress(&self) -> &Arc<Egress> {
        &self.shared.egress
    }

    /// The pre-warm pool sessions take their workers from.
    pub fn pool(&self) -> &Arc<WarmPool> {
        &self.shared.pool
    }

    /// The model API client, when one is configured.
    pub fn upstream(&self) -> Option<&Arc<UpstreamClient>> {
        self.shared.upstream.as_ref()
    }

    /// The session lock client, when one is configured.
    pub fn lock(&self) -> Option<&Arc<SessionLock>> {
        self.shared.lock.as_ref()
    }

    /// Pre-warms refused because the model API was rate limiting: how many, and the
    /// names of the latest such workers (disposed, never handed to a session).
    pub fn prewarm_rate_limited(&self) -> (u64, Vec<String>) {
        let stats = self.shared.pool.stats();
        (stats.rate_limited, stats.refused)
    }

    /// Readiness: at least one pre-warm succeeded.
    pub fn is_ready(&self) -> bool {
        self.shared.pool.is_ready()
    }

    pub fn pool_depth(&self) -> usize {
        self.shared.pool.depth()
    }

    /// (times drained, workers invalidated, pre-warm failures).
    pub fn pool_counters(&self) -> (u64, u64, u64) {
        let stats = self.shared.pool.stats();
        (stats.drained, stats.invalidated, stats.prewarm_failed)
    }

    /// Whether no session can be admitted now (every place under the limit is taken).
    pub fn is_full(&self) -> bool {
        self.live_count() >= self.shared.config.session_limit
    }

    pub fn live_count(&self) -> usize {
        self.shared.table().live.len()
    }

    pub fn live_peak(&self) -> usize {
        self.shared.table().live_peak
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.shared.table().live.get(id).cloned()
    }

    pub fn live(&self) -> Vec<Arc<Session>> {
        self.shared.table().live.values().cloned().collect()
    }

    /// Why a session that is gone ended, while it is remembered.
    pub fn tombstone(&self, id: &str) -> Option<Tombstone> {
        // Pruned only when another session ends: an old one must not answer past its
        // time just because nothing ended since.
        let (now, ttl) = (self.now(), self.config().tombstone_ttl);
        self.shared
            .table()
            .tombstones
            .get(id)
            .filter(|t| now.saturating_sub(t.at) <= ttl)
            .cloned()
    }

    pub fn is_draining(&self) -> bool {
        self.shared.table().draining
    }

    /// Admits a new session for `user`, or says why not. `ticket`: a queued creator
    /// asking again.
    pub fn create(
        &self,
        user: &str,
        role: &str,
        ticket: Option<u64>,
    ) -> Result<Arc<Session>, CreateError> {
        self.create_with(user, role, ticket, None, Vec::new(), None)
    }

    fn create_with(
        &self,
        user: &str,
        role: &str,
        ticket: Option<u64>,
        parent: Option<String>,
        transcript: Vec<Arc<String>>,
        restore: Option<Restore>,
    ) -> Result<Arc<Session>, CreateError> {
        let shared = &self.shared;
        let now = shared.now();
        let session = {
            let mut t = shared.table();
            if t.draining {
                return Err(CreateError::Draining);
            }
            let admitted = match ticket {
                Some(ticket) if t.admission.try_admit(ticket) => true,
                Some(ticket) => match t.admission.position(ticket) {
                    Some(position) => return Err(CreateError::Queued { ticket, position }),
                    None => false,
                },
                None => false,
            };
            if !admitted {
                let limit = shared.config.session_limit;
                match t.admission.request() {
                    Admission::Admitted => {}
                    Admission::Queued { ticket, position } => {
                        crate::met!(
                            "sessions.cap_reached",
                            "{} of {limit} sessions live: the create waits at position {position}",
                            t.live.len()
                        );
                        return Err(CreateError::Queued { ticket, position });
                    }
                    Admission::Refused { retry_after } => {
                        crate::met!(
                            "sessions.cap_reached",
                            "{} of {limit} sessions live: the create is refused (retry after {} s)",
                            t.live.len(),
                            retry_after.as_secs()
                        );
                        return Err(CreateError::Full { retry_after });
                    }
                }
            }
            let mut settings = shared.config.session_settings();
            let restored = restore.is_some();
            let id = match restore {
                Some(r) => {
                    settings.first_seq_after = r.first_seq_after;
                    r.id
                }
                None => match shared.new_session_id(&mut t) {
                    Ok(id) => id,
                    Err(e) => {
                        t.admission.release();
                        return Err(e);
                    }
                },
            };
            let mut core = SessionCore::new(settings, role.to_string(), transcript, now);
            if restored {
                core.handle_restored(now);
            }
            let session = Arc::new(Session::new(id.clone(), user.to_string(), parent, core));
            t.live.insert(id, session.clone());
            t.live_peak = t.live_peak.max(t.live.len());
            assert!(
                t.live.len() <= shared.config.session_limit,
                "admission let the session count exceed its limit"
            );
            session
        };
        shared.persist(&session);
        let driver_shared = shared.clone();
        let driven = session.clone();
        shared.env.spawn("session", drive(driver_shared, driven));
        Ok(session)
    }

    /// Resume `id`: the live session, or a fresh one with a notice saying why. With a
    /// store and a session lock, a session not live here is looked up, checked and
    /// claimed under its lock (`resume_lock`); a lock not taken in time is `Busy`.
    pub async fn resume(&self, id: &str, user: &str, role: &str) -> Result<Resumed, CreateError> {
        match (&self.shared.durable, &self.shared.lock) {
            (Some(_), Some(lock)) if self.get(id).is_none() => {
                super::resume_lock::resume(self.clone(), lock.clone(), id, user, role).await
            }
            _ => self.resume_now(id, user, role),
        }
    }

    /// The resume itself, in one synchronous step (`resume_lock` runs it under the lock).
    pub(super) fn resume_now(
        &self,
        id: &str,
        user: &str,
        role: &str,
    ) -> Result<Resumed, CreateError> {
        if let Some(s) = self.get(id) {
            return Ok(Resumed::Live(s));
        }
        let stored = self
            .shared
            .durable
            .as_ref()
            .map(|d| d.resume(&self.shared.env, id, user));
        match stored {
            None | Some(Stored::Absent) => {}
            Some(Stored::Claimed { by }) => {
                crate::met!(
                    "sessions.concurrent_resume",
                    "resume of {id} refused: the store's claim is held by {by}"
                );
                return Ok(Resumed::Busy { by });
            }
            Some(Stored::Damaged { notice }) => {
                let session = self.create(user, role, None)?;
                return Ok(Resumed::Fresh { session, notice });
            }
            Some(Stored::Restored {
                transcript,
                first_seq_after,
            }) => {
                let restore = Restore {
                    id: id.to_string(),
                    first_seq_after,
                };
                let restored = self.create_with(user, role, None, None, transcript, Some(restore));
                if restored.is_err()
                    && let Some(d) = &self.shared.durable
                {
                    d.release(id);
                }
                return restored.map(Resumed::Live);
            }
        }
        let notice = match self.tombstone(id) {
            Some(t) => format!(
                "session {id} ended ({}); a new session was started",
                t.reason
            ),
            None => format!("session {id} was not found; a new session was started"),
        };
        tracing::info!(
            session = id,
            "resume of a session that is not live: {notice}"
        );
        crate::met!("client.resume_missing", "resume of {id}: {notice}");
        let session = self.create(user, role, None)?;
        Ok(Resumed::Fresh { session, notice })
    }

    /// A new session with a copy of `id`'s history as of now; the two then diverge.
    pub fn fork(&self, id: &str, user: &str, role: &str) -> Result<Arc<Session>, ForkError> {
        let parent = self.get(id).ok_or(ForkError::NotFound)?;
        let transcript = parent.transcript_shared();
        let fork = self
            .create_with(user, role, None, Some(id.to_string()), transcript, None)
            .map_err(ForkError::Create)?;
        crate::met!(
            "client.fork",
            "{} forked from {id} (attached elsewhere: {}) with its history",
            fork.id,
            parent.is_attached()
        );
        Ok(fork)
    }

    /// The user's role changed: every live session of theirs applies it to its next
    /// tool call and is told which tools it lost.
    pub async fn set_role(&self, user: &str, role: &str) {
        let now = self.now();
        let new_tools = self.shared.config.tools_of(role);
        for s in self.live().into_iter().filter(|s| s.user == user) {
            let old = s.with_core(|c| c.handle_role_changed(role));
            let removed: Vec<String> = self
                .shared
                .config
                .tools_of(&old)
                .into_iter()
                .filter(|t| !new_tools.contains(t))
                .collect();
            if !removed.is_empty() {
                crate::met!(
                    "auth.role_downgrade",
                    "session {} of {user}: {old} -> {role}, tools withdrawn: {removed:?}",
                    s.id
                );
            }
            s.publish(
                now,
                ServerEvent::PermissionsChanged {
                    role: role.to_string(),
                    removed_tools: removed,
                },
            )
            .await;
        }
    }

    /// The plugin set or configuration changed: warm workers are stale.
    pub async fn invalidate_pool(&self, version: u64) -> usize {
        self.shared.pool.invalidate(version).await
    }

    /// Starts draining: no new sessions or messages; warm workers are destroyed.
    /// Returns how many warm workers went.
    pub async fn drain(&self) -> usize {
        // The flag goes up before anyone is told: a message racing the announcement
        // is refused, never half accepted (core.EC-047).
        let live = {
            let mut t = self.shared.table();
            t.draining = true;
            t.live.len()
        };
        crate::met!(
            "engine.shutdown",
            "draining: new sessions and messages refused, {live} live sessions told"
        );
        let warm_retired = self.shared.pool.drain();
        let grace = self.shared.config.limits.grace;
        for s in self.live() {
            s.publish(
                self.now(),
                ServerEvent::SessionEnding {
                    remaining_ms: grace.as_millis() as u64,
                    reason: "the server is shutting down".to_string(),
                },
            )
            .await;
        }
        let destroyed = warm_retired.await;
        tracing::info!(
            destroyed,
            "draining: unclaimed pre-warmed workers destroyed"
        );
        destroyed
    }

    /// Hands every live session over to the other instances sharing the store (a
    /// rolling restart): each ends here with its history saved and its claim released,
    /// so its client can resume it elsewhere. Returns how many. Without a store,
    /// nothing can be handed over: 0.
    pub fn hand_off(&self) -> usize {
        if self.shared.durable.is_none() {
            return 0;
        }
        let live = self.live();
        for s in &live {
            s.with_core(|c| c.handle_handed_off());
            s.request_end("moved to another instance: resume it to continue");
        }
        live.len()
    }

    /// Ends session `id` (operator action, shutdown).
    pub fn end(&self, id: &str, reason: &str) {
        if let Some(s) = self.get(id) {
            s.request_end(reason);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForkError {
    NotFound,
    Create(CreateError),
}

/// Session `n` of instance `instance`: `s000042`, or `a-s000042` for instance `a`.
fn session_id(instance: &str, n: u64) -> String {
    match instance {
        "" => format!("s{n:06}"),
        instance => format!("{instance}-s{n:06}"),
    }
}

/// The number in a session id of instance `instance` (`None`: another instance's, or
/// not a numbered id).
fn session_number(instance: &str, id: &str) -> Option<u64> {
    let rest = match instance {
        "" => id,
        instance => id.strip_prefix(instance)?.strip_prefix('-')?,
    };
    rest.strip_prefix('s')?.parse().ok()
}

/// The store counter numbering instance `instance`'s sessions.
fn counter_name(instance: &str) -> String {
    format!("sessions:{instance}")
}
