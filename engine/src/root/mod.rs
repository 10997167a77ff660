//! The composition root: the one place an engine instance is assembled.
//!
//! [`Engine::start`] builds the workers' manager (with its zombie watchdog), the
//! session store, the model API client, the pre-warm pool (checking each pre-warm
//! against the model API), the distributed session lock (its service, when this
//! instance hosts it, and its client), the sessions that take their workers from the
//! pool and the lock before a resume, and the gateway serving on the environment's
//! network; [`Engine::drain`] and
//! [`Engine::stop`] take it down. `engine serve` calls it on the real environment,
//! every scenario stage on a simulated host: the same wiring, two sets of arguments.
//!
//! **Architecture invariant:** nothing else wires these parts together. A component a
//! scenario proves is one an engine built here runs.

mod config;
mod lock;

pub use config::{EngineConfig, STORE_PATH, StoreChoice};
pub use lock::LockChoice;

use crate::egress::Egress;
use crate::env::{Env, NetAddr, Task};
use crate::gateway::Gateway;
use crate::sessions::lock::{LockServer, SessionLock};
use crate::sessions::{RoleTools, Sessions, SessionsParts, ToolGate, UpstreamCheck, check_store};
use crate::store::{SessionStore, StoreError};
use crate::upstream::{UpstreamClient, UpstreamError, WindowShare};
use crate::workers::{WarmCheck, WarmPool, WorkerManager};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why an engine did not start.
#[derive(Debug)]
pub enum EngineError {
    /// The session store could not be opened.
    Store(StoreError),
    /// The store opened but its start-up check failed (another version, I/O).
    StoreCheck(StoreError),
    /// The gateway's port could not be bound.
    Bind { port: u16, source: std::io::Error },
    /// The lock service this instance hosts could not bind its port.
    LockBind { port: u16, source: std::io::Error },
    /// The lock service could not record on disk that it started (so a later start
    /// could not know it must wait out this one's leases).
    LockMarker {
        path: String,
        source: std::io::Error,
    },
    /// The model API refused the configured key at the start-up check.
    UpstreamKey(UpstreamError),
    /// The model API's TLS configuration does not build (a root that does not parse,
    /// a bad server name).
    UpstreamTls(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Store(e) => write!(f, "session store: {e}"),
            EngineError::StoreCheck(e) => write!(f, "session store check: {e}"),
            EngineError::Bind { port, source } => {
                write!(f, "cannot listen on port {port}: {source}")
            }
            EngineError::LockBind { port, source } => {
                write!(
                    f,
                    "session lock service: cannot listen on port {port}: {source}"
                )
            }
            EngineError::LockMarker { path, source } => write!(
                f,
                "session lock service: cannot record its start in {path:?} \
                 (a later start would not know to wait out this one's leases): {source}"
            ),
            EngineError::UpstreamTls(e) => write!(f, "the model API's TLS configuration: {e}"),
            EngineError::UpstreamKey(e) => write!(
                f,
                "start-up check of the model API: {e}; fix the key (--upstream-key or \
                 ENGINE_UPSTREAM_KEY) and start again"
            ),
        }
    }
}

impl std::error::Error for EngineError {}

/// What a drain did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainReport {
    /// Unclaimed warm workers destroyed.
    pub warm_destroyed: usize,
    /// Live sessions told to end.
    pub sessions_ended: usize,
    /// Sessions still live when the deadline passed (their workers are stopped by
    /// [`Engine::stop`] anyway).
    pub sessions_left: usize,
}

/// One running engine instance.
pub struct Engine {
    env: Env,
    manager: Arc<WorkerManager>,
    sessions: Sessions,
    gateway: Arc<Gateway>,
    store: Option<Arc<SessionStore>>,
    /// The lock service, when this instance hosts it.
    lock_service: Option<LockServer>,
    addr: NetAddr,
    serving: Task<()>,
}

/// How often a drain looks whether the live sessions have ended.
const DRAIN_POLL: Duration = Duration::from_millis(50);

impl Engine {
    /// Assembles and starts an instance on `env`: workers, store (opened and checked,
    /// or shared), the session lock (its service too, when asked), sessions with their
    /// pre-warm pool, and the gateway listening on `config.port`.
    pub async fn start(env: Env, config: EngineConfig) -> Result<Engine, EngineError> {
        config.check();
        let manager = Arc::new(WorkerManager::new(env.clone(), config.worker_ports));
        manager.start_watchdog(config.watchdog_interval);
        let store = match config.store {
            StoreChoice::None => None,
            StoreChoice::Open { path } => {
                let store =
                    SessionStore::open(env.disk_handle(), &path).map_err(EngineError::Store)?;
                // Once per deployment start, before anything is served.
                let report = check_store(&env, &store).map_err(EngineError::StoreCheck)?;
                tracing::info!(
                    checked = report.checked,
                    orphans = report.orphans.len(),
                    corrupt = report.corrupt.len(),
                    claims_cleared = report.claims_cleared.len(),
                    "session store checked"
                );
                Some(Arc::new(store))
            }
            StoreChoice::Shared(store) => Some(store),
        };
        // Before the pool starts: a lock port that cannot be bound stops the start
        // with nothing else running yet. Before the model API's client too: the lock's
        // service is the state the instances share, their 429 window among it.
        let lock = lock::start_lock(&env, config.lock, &config.sessions.instance).await?;
        let upstream = match config.sessions.upstream.clone() {
            Some(c) => {
                let share = lock
                    .client
                    .clone()
                    .map(|l| WindowShare::new(l, &c.addr, &c.api_key));
                let client = UpstreamClient::try_new_shared(env.clone(), c, share)
                    .map_err(EngineError::UpstreamTls)?;
                Some(client)
            }
            None => None,
        };
        if let Some(up) = &upstream
            && let Err(e) = check_upstream_key(up).await
        {
            // Nothing was granted yet: the next start need not wait out a lease.
            if let Some(service) = &lock.service {
                lock::stop(&env, service).await;
            }
            return Err(e);
        }
        // A pre-warm is kept only if the model API answers for it.
        let check = upstream
            .clone()
            .map(|client| Arc::new(UpstreamCheck(client)) as Arc<dyn WarmCheck>);
        let pool = WarmPool::start_checked(manager.clone(), config.sessions.pool.clone(), check);
        // The tool gate's policies: for now the tools each role may call.
        let gate = ToolGate::open().with(Arc::new(RoleTools {
            role_tools: config.sessions.role_tools.clone(),
        }));
        let parts = SessionsParts {
            pool,
            store: store.clone(),
            upstream,
            gate,
            lock: lock.client,
            // One per engine: every session's outbound requests share its buffer.
            egress: Egress::new(env.clone(), config.sessions.egress.clone()),
        };
        let sessions = Sessions::new(env.clone(), config.sessions, parts);
        sessions.start();
        let gateway = Gateway::new(sessions.clone(), config.gateway);
        let listener = env
            .net()
            .bind(config.port)
            .await
            .map_err(|source| EngineError::Bind {
                port: config.port,
                source,
            })?;
        let addr = listener.local_addr();
        let serving = env.spawn("gateway", crate::gateway::serve(gateway.clone(), listener));
        tracing::info!(%addr, "engine started");
        Ok(Engine {
            env,
            manager,
            sessions,
            gateway,
            store,
            lock_service: lock.service,
            addr,
            serving,
        })
    }

    /// Drains: no new sessions, messages or connections; unclaimed warm workers go;
    /// every live session is told and ended; waits up to `deadline` for them to end.
    pub async fn drain(&self, deadline: Duration) -> DrainReport {
        let warm_destroyed = self.sessions.drain().await;
        let live = self.sessions.live();
        for s in &live {
            self.sessions.end(&s.id, "server shutting down");
        }
        let ended = tokio::time::timeout(deadline, async {
            while self.sessions.live_count() > 0 {
                tokio::time::sleep(DRAIN_POLL).await;
            }
        })
        .await;
        let sessions_left = self.sessions.live_count();
        if ended.is_err() {
            tracing::warn!(
                left = sessions_left,
                "sessions did not end in time: their workers will be stopped"
            );
        }
        DrainReport {
            warm_destroyed,
            sessions_ended: live.len(),
            sessions_left,
        }
    }

    /// Stops serving (the gateway, and the lock service when hosted here) and stops
    /// every worker.
    pub async fn stop(&self) {
        self.serving.abort();
        if let Some(service) = &self.lock_service {
            lock::stop(&self.env, service).await;
        }
        self.manager.stop_all().await;
        tracing::info!(addr = %self.addr, "engine stopped");
    }

    pub fn env(&self) -> &Env {
        &self.env
    }

    /// Where the gateway listens.
    pub fn addr(&self) -> &NetAddr {
        &self.addr
    }

    pub fn workers(&self) -> &Arc<WorkerManager> {
        &self.manager
    }

    /// The pre-warm pool the sessions take their workers from.
    pub fn pool(&self) -> &Arc<WarmPool> {
        self.sessions.pool()
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// The session store, when the instance has one.
    pub fn store(&self) -> Option<&Arc<SessionStore>> {
        self.store.as_ref()
    }

    /// The session lock client a resume takes its lock with, when one is configured.
    pub fn session_lock(&self) -> Option<&Arc<SessionLock>> {
        self.sessions.lock()
    }

    /// The lock service, when this instance hosts it (`LockChoice::Serve`).
    pub fn lock_service(&self) -> Option<&LockServer> {
        self.lock_service.as_ref()
    }
}

/// How long the start-up check of the model API's key may take: an upstream that does
/// not answer in time is left to the breaker, not allowed to hold the start.
const KEY_CHECK_BOUND: Duration = Duration::from_secs(2);

/// One test call at start-up: a refused key stops the start (every session would fail
/// on it later, and trip the breaker for all of them); an unreachable or failing
/// upstream does not, since it may come back.
async fn check_upstream_key(up: &UpstreamClient) -> Result<(), EngineError> {
    match tokio::time::timeout(KEY_CHECK_BOUND, up.probe()).await {
        Ok(Ok(())) => {
            tracing::info!("model API key accepted");
            Ok(())
        }
        Ok(Err(e @ UpstreamError::KeyRejected { .. })) => Err(EngineError::UpstreamKey(e)),
        Ok(Err(e)) => {
            tracing::warn!("model API key not checked at start-up: {e}");
            Ok(())
        }
        Err(_) => {
            tracing::warn!(
                bound_s = KEY_CHECK_BOUND.as_secs(),
                "model API key not checked at start-up: no answer in time"
            );
            Ok(())
        }
    }
}
