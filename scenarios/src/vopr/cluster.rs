//! The VOPR's world: an engine host whose boot program starts the engine through the
//! composition root (again after every crash, on the same data directory: a process
//! supervisor restarting `engine serve`), the model API on its own host when the run
//! has one, and one client host per user. A monitor samples the engine's own gauges
//! against its limits.

use super::config::{
    ENGINE_HOST, LOCK_PORT, MESSAGE_CHARS_MAX, PORT, SECRET, TOKEN_SKEW, UPSTREAM_HOST,
    UPSTREAM_KEY, UPSTREAM_PORT, VoprConfig, WORKER_PROGRAM,
};
use super::observer::Observer;
use crate::scenario::Failure;
use crate::stage::client::http;
use engine::env::{Env, NetAddr};
use engine::gateway::{Claims, TokenKeys};
use engine::sessions::lock::SessionLockConfig;
use engine::sessions::{AdmissionMode, QueryMode};
use engine::upstream::{LocalUpstream, UpstreamConfig};
use engine::{Engine, EngineConfig, LockChoice};
use sim::{Host, World};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How often the monitor samples the engine.
const MONITOR_EVERY: Duration = Duration::from_millis(500);
/// `/ready` is asked every this many samples.
const READY_EVERY: u64 = 10;
/// A failed engine start (its store could not be opened: a disk fault) is tried again
/// after this, as a supervisor restarts a process.
const BOOT_RETRY: Duration = Duration::from_secs(2);

/// The engine instance running now, and how many times the host booted one.
#[derive(Default)]
struct Incarnation {
    engine: Option<Arc<Engine>>,
    boots: u64,
    /// Starts that failed, with their errors (a clear error is allowed; a panic is not).
    failed_starts: Vec<String>,
    /// When each start began: a new incarnation knows nothing of the old one's state.
    started_at: Vec<Instant>,
}

pub struct Cluster {
    pub config: VoprConfig,
    pub engine_host: Host,
    pub keys: TokenKeys,
    pub addr: NetAddr,
    pub clients: Vec<Host>,
    pub upstream: Option<Arc<LocalUpstream>>,
    current: Arc<Mutex<Incarnation>>,
}

/// The engine the VOPR runs: the simulation profile with the run's drawn limits.
fn engine_config(config: &VoprConfig, keys: &TokenKeys) -> EngineConfig {
    let mut engine = EngineConfig::simulation(WORKER_PROGRAM, keys.clone());
    engine.port = PORT;
    engine.gateway.message_chars_max = MESSAGE_CHARS_MAX;
    let s = &mut engine.sessions;
    s.session_limit = config.session_limit;
    s.pool.size_target = config.pool_size;
    s.queries = if config.queue_queries {
        QueryMode::Queue
    } else {
        QueryMode::Reject
    };
    s.answer_pace = config.answer_pace;
    s.replay.count = config.replay_count;
    s.outbound_max = config.outbound_max;
    s.limits.idle_timeout = config.idle_timeout;
    s.limits.detached_max = config.detached_max;
    s.limits.first_message_timeout = s.limits.first_message_timeout.min(config.idle_timeout);
    s.admission = AdmissionMode::Refuse {
        retry_after: Duration::from_secs(30),
    };
    if config.upstream {
        let addr = NetAddr::new(UPSTREAM_HOST, UPSTREAM_PORT);
        let mut upstream = UpstreamConfig::new(addr, UPSTREAM_KEY);
        // The operator's "default model overloaded" finds it answered by this one.
        upstream.fallback_model = Some("local-echo-lite".to_string());
        s.upstream = Some(upstream);
    }
    if config.lock {
        engine.lock = LockChoice::Serve {
            port: LOCK_PORT,
            config: SessionLockConfig::standard(),
        };
    }
    engine
}

impl Cluster {
    pub async fn start(world: &World, config: VoprConfig) -> Result<Arc<Cluster>, Failure> {
        let mut net = world.net().options();
        net.latency_max = config.latency_max.max(net.latency_min);
        world.net().set_options(net);
        let engine_host = world.add_host(ENGINE_HOST);
        crate::stage::install_worker(engine_host.procs(), WORKER_PROGRAM);
        let mut disk = engine_host.disk().options();
        disk.latency_max = config.disk_latency_max;
        engine_host.disk().set_options(disk);
        let mut procs = engine_host.procs().options();
        procs.start_delay_max = config.start_delay_max.max(procs.start_delay_min);
        engine_host.procs().set_options(procs);
        let upstream = if config.upstream {
            Some(
                crate::stage::host_upstream(world, UPSTREAM_HOST, UPSTREAM_PORT, UPSTREAM_KEY)
                    .await?,
            )
        } else {
            None
        };
        let clients = (0..config.users.len())
            .map(|i| world.add_host(&format!("client-{i}")))
            .collect();
        let keys = TokenKeys::new(SECRET, TOKEN_SKEW);
        let current = Arc::new(Mutex::new(Incarnation::default()));
        let engine_config = engine_config(&config, &keys);
        let slot = current.clone();
        engine_host.set_boot(Arc::new(move |env: Env| {
            let config = engine_config.clone();
            let slot = slot.clone();
            Box::pin(boot(env, config, slot))
        }));
        Ok(Arc::new(Cluster {
            config,
            engine_host,
            keys,
            addr: NetAddr::new(ENGINE_HOST, PORT),
            clients,
            upstream,
            current,
        }))
    }

    /// The engine running now (`None` while the host is down or starting).
    pub fn engine(&self) -> Option<Arc<Engine>> {
        if !self.engine_host.is_up() {
            return None;
        }
        self.current
            .lock()
            .expect("incarnation poisoned")
            .engine
            .clone()
    }

    /// While the engine host is down after a crash: whether the crashed engine had
    /// ended session `id` itself before it (a tombstone says why; a session killed by
    /// the crash leaves none, as no task of a dead host runs again).
    pub fn ended_before_crash(&self, id: &str) -> bool {
        let current = self.current.lock().expect("incarnation poisoned");
        current
            .engine
            .as_ref()
            .is_some_and(|engine| engine.sessions().tombstone(id).is_some())
    }

    pub fn boots(&self) -> u64 {
        self.current.lock().expect("incarnation poisoned").boots
    }

    /// When each engine start began, in order.
    pub fn starts(&self) -> Vec<Instant> {
        self.current
            .lock()
            .expect("incarnation poisoned")
            .started_at
            .clone()
    }

    pub fn failed_starts(&self) -> Vec<String> {
        self.current
            .lock()
            .expect("incarnation poisoned")
            .failed_starts
            .clone()
    }

    /// The engine's live sessions, for a failure message: id, attached, state.
    pub fn describe_sessions(&self) -> String {
        let Some(engine) = self.engine() else {
            return "no engine".to_string();
        };
        let sessions: Vec<String> = engine
            .sessions()
            .live()
            .iter()
            .map(|s| {
                format!(
                    "{}{} {}",
                    s.id,
                    if s.is_attached() { "+" } else { "-" },
                    s.state()
                )
            })
            .collect();
        format!("{} live: {}", sessions.len(), sessions.join(", "))
    }

    /// Whether the engine is at its session limit with a client on every session.
    pub fn full_of_clients(&self) -> bool {
        let Some(engine) = self.engine() else {
            return false;
        };
        let live = engine.sessions().live();
        live.len() >= self.config.session_limit && live.iter().all(|s| s.is_attached())
    }

    /// The engine host's wall clock (what token expiry is judged by).
    pub fn engine_wall_ms(&self) -> u64 {
        self.engine_host.env().wall_unix_ms()
    }

    /// A token for user `user`, valid for `ttl` from the engine's clock.
    pub fn token(&self, user: usize, ttl: Duration) -> (String, u64) {
        let u = &self.config.users[user];
        let exp = self.engine_wall_ms() / 1000 + ttl.as_secs();
        let token = self.keys.issue(&Claims {
            sub: u.name.clone(),
            role: u.role.to_string(),
            exp,
        });
        (token, exp)
    }

    /// Samples the engine's gauges against its limits until the run ends.
    pub async fn monitor(self: Arc<Self>, observer: Arc<Observer>, control: Env) {
        let limit = self.config.session_limit;
        // Workers: one per live session, the pool's warm ones, and a replacement or a
        // retiring one per session at most while a restart or an end is under way.
        let workers_max = 2 * limit + self.config.pool_size + 2;
        // A session without a client is parked after `detached_max`; allow a running
        // query's interrupt (60 s), a paused host (20 s at most) and the sampling.
        let reclaim_bound = self.config.detached_max + Duration::from_secs(60 + 20 + 10);
        // Per session: since when no client was seen on it, its connection count then (a
        // client that came back between two samples counts as back) and its stream
        // epoch (a session parked and restored between two samples is a new one: its
        // stream is numbered past the old one's, see `durable::restored_seq_base`).
        let mut unattached_since: BTreeMap<String, (Duration, u64, u64)> = BTreeMap::new();
        let mut samples = 0u64;
        let mut boots = self.boots();
        loop {
            tokio::time::sleep(MONITOR_EVERY).await;
            samples += 1;
            let Some(engine) = self.engine() else {
                unattached_since.clear();
                continue;
            };
            // A restart between two samples: a session restored under the same id is a
            // new incarnation, with its own wait for a client.
            if self.boots() != boots {
                boots = self.boots();
                unattached_since.clear();
            }
            let now = engine.sessions().now();
            let sessions = engine.sessions().live();
            unattached_since.retain(|id, _| sessions.iter().any(|s| &s.id == id));
            for s in &sessions {
                let past = s.calls_past_cap();
                if past > 0 {
                    observer.violation(format!(
                        "session {} sent {past} model calls after its spending cap was spent",
                        s.id
                    ));
                }
                let connections = s.stats().connections;
                let epoch = s.last_seq() >> 32;
                let came_back = unattached_since
                    .get(&s.id)
                    .is_some_and(|&(_, seen, was)| seen != connections || was != epoch);
                if s.is_attached() || self.engine_host.is_paused() || came_back {
                    unattached_since.remove(&s.id);
                    continue;
                }
                let (since, _, _) =
                    *unattached_since
                        .entry(s.id.clone())
                        .or_insert((now, connections, epoch));
                if now.saturating_sub(since) > reclaim_bound {
                    observer.violation(format!(
                        "session {} has had no client for {} s and was not reclaimed (parked after {} s; it is {}, ending: {:?}, worker {:?})",
                        s.id,
                        now.saturating_sub(since).as_secs(),
                        self.config.detached_max.as_secs(),
                        s.state(),
                        s.end_reason(),
                        s.worker()
                    ));
                    unattached_since.remove(&s.id);
                }
            }
            if samples.is_multiple_of(READY_EVERY) {
                self.check_ready(&engine, &observer, &control).await;
            }
            let live = engine.sessions().live_count();
            if live > limit {
                observer.violation(format!("{live} live sessions, above the limit of {limit}"));
            }
            let active = engine
                .workers()
                .list()
                .await
                .iter()
                .filter(|w| w.status.is_active())
                .count();
            if active > workers_max {
                observer.violation(format!(
                    "{active} workers active, above {workers_max} (limit {limit} sessions, pool {})",
                    self.config.pool_size
                ));
            }
        }
    }
}

impl Cluster {
    /// `/ready` must not say ready while no session can be admitted.
    async fn check_ready(&self, engine: &Engine, observer: &Observer, control: &Env) {
        let limit = self.config.session_limit;
        let full_before = engine.sessions().live_count() >= limit;
        let asked = tokio::time::timeout(
            Duration::from_secs(5),
            http(control.net(), &self.addr, "GET", "/ready", &[]),
        )
        .await;
        let full_after = engine.sessions().live_count() >= limit;
        if let Ok(Ok((200, _, _))) = asked
            && full_before
            && full_after
            && self.engine_host.is_up()
        {
            observer.violation(format!(
                "/ready answered 200 with all {limit} sessions taken: no session can be admitted"
            ));
        }
        observer.count("ready checks");
    }
}

/// The engine host's boot program: start the engine, again until it starts.
async fn boot(env: Env, config: EngineConfig, slot: Arc<Mutex<Incarnation>>) {
    slot.lock().expect("incarnation poisoned").engine = None;
    loop {
        {
            let mut s = slot.lock().expect("incarnation poisoned");
            s.boots += 1;
            s.started_at.push(Instant::now());
        }
        match Engine::start(env.clone(), config.clone()).await {
            Ok(engine) => {
                slot.lock().expect("incarnation poisoned").engine = Some(Arc::new(engine));
                return;
            }
            Err(e) => {
                tracing::warn!(target: "scenarios", "the engine did not start: {e}");
                slot.lock()
                    .expect("incarnation poisoned")
                    .failed_starts
                    .push(e.to_string());
                tokio::time::sleep(BOOT_RETRY).await;
            }
        }
    }
}
