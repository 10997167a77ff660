//! The stage of the session and channel scenarios: an engine host `engine-0` serving
//! the real gateway (axum over hyper) on port 8080 of the simulated network, with
//! sessions backed by the real worker program as simulated processes, and client hosts
//! that open WebSockets to it. The global oracles of every such run live here.

use crate::kit::fail::OrFail;
use crate::scenario::Failure;
use crate::stage::client::{
    ConnectError, Delivery, SharedDelivery, SimClient, http, http_streamed,
};
use engine::env::{Env, NetAddr};
use engine::gateway::{Claims, Gateway, GatewayConfig, TokenKeys};
use engine::sessions::{Sessions, SessionsConfig};
use engine::store::SessionStore;
use engine::upstream::{DnsConfig, LocalUpstream, TlsIdentity, UpstreamConfig};
use engine::workers::{PortRange, WorkerManager};
use engine::{Engine, EngineConfig, LockChoice, StoreChoice};
use sim::{FaultCounters, Host, SimRng, World};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const ENGINE_HOST: &str = "engine-0";
pub const PORT: u16 = 8080;
const WORKER_PROGRAM: &str = "/usr/bin/worker";
const SECRET: &[u8] = b"scenario-secret";
pub const STORE_PATH: &str = engine::STORE_PATH;
pub const UPSTREAM_HOST: &str = "upstream-0";
const UPSTREAM_PORT: u16 = 443;
const UPSTREAM_KEY: &str = "scenario-api-key";

/// Sends every query to the model API on `upstream-0` first (the stage hosts it).
pub fn with_upstream(sessions: &mut SessionsConfig) {
    let addr = NetAddr::new(UPSTREAM_HOST, UPSTREAM_PORT);
    sessions.upstream = Some(UpstreamConfig::new(addr, UPSTREAM_KEY));
}

/// Like [`with_upstream`], the model API reached by the DNS name `name` (the body
/// points it at `upstream-0` with `SimNet::dns_record`), resolved by the engine's
/// resolver chain configured by `dns`.
pub fn with_upstream_named(sessions: &mut SessionsConfig, name: &str, dns: DnsConfig) {
    let mut config = UpstreamConfig::new(NetAddr::new(name, UPSTREAM_PORT), UPSTREAM_KEY);
    config.dns = Some(dns);
    sessions.upstream = Some(config);
}

pub struct ChannelStage {
    pub world: World,
    /// The simulated engine host.
    pub host: Host,
    /// The engine instance on it, built by the composition root.
    pub engine: Engine,
    pub env: Env,
    pub sessions: Sessions,
    pub manager: Arc<WorkerManager>,
    /// The session store (redb on the engine host's simulated disk).
    pub store: Arc<SessionStore>,
    pub gateway: Arc<Gateway>,
    pub keys: TokenKeys,
    pub addr: NetAddr,
    pub faults: FaultCounters,
    pub rng: SimRng,
    /// The model API on `upstream-0`, when the configuration has one (`with_upstream`);
    /// each refusal its mode causes counts as an `upstream.*` fault.
    pub upstream: Option<Arc<LocalUpstream>>,
    clients: Vec<Host>,
    /// Every delivery record handed out, for the global oracle.
    deliveries: Mutex<Vec<SharedDelivery>>,
}

/// The simulation profile on port 8080 with the scenarios' token keys.
pub fn stage_config(keys: &TokenKeys) -> EngineConfig {
    let mut config = EngineConfig::simulation(WORKER_PROGRAM, keys.clone());
    config.port = PORT;
    config
}

impl ChannelStage {
    /// Builds the stage; `tweak` adjusts the configuration first.
    pub async fn start(
        world: &World,
        tweak: impl FnOnce(&mut SessionsConfig, &mut GatewayConfig),
    ) -> Result<ChannelStage, Failure> {
        Self::start_over(world, None, tweak).await
    }

    /// Builds the stage with its model API serving TLS as `identity` (the engine's
    /// `UpstreamConfig::tls`, set by `tweak`, says what it trusts).
    pub async fn start_tls(
        world: &World,
        identity: TlsIdentity,
        tweak: impl FnOnce(&mut SessionsConfig, &mut GatewayConfig),
    ) -> Result<ChannelStage, Failure> {
        Self::start_over(world, Some(identity), tweak).await
    }

    async fn start_over(
        world: &World,
        identity: Option<TlsIdentity>,
        tweak: impl FnOnce(&mut SessionsConfig, &mut GatewayConfig),
    ) -> Result<ChannelStage, Failure> {
        let host = world.add_host(ENGINE_HOST);
        crate::stage::install_worker(host.procs(), WORKER_PROGRAM);
        let env = host.env();
        let keys = TokenKeys::new(SECRET, Duration::from_secs(30));
        let mut config = stage_config(&keys);
        tweak(&mut config.sessions, &mut config.gateway);
        let upstream = match &config.sessions.upstream {
            Some(_) => Some(
                crate::stage::host_upstream_over(
                    world,
                    UPSTREAM_HOST,
                    UPSTREAM_PORT,
                    UPSTREAM_KEY,
                    identity,
                )
                .await?,
            ),
            None => None,
        };
        let keys = config.gateway.keys.clone();
        let engine = Engine::start(env.clone(), config)
            .await
            .or_fail("start the engine")?;
        let store = engine
            .store()
            .cloned()
            .ok_or_else(|| Failure::correctness("the engine has no session store"))?;
        Ok(ChannelStage {
            world: world.clone(),
            host,
            env,
            sessions: engine.sessions().clone(),
            manager: engine.workers().clone(),
            store,
            gateway: engine.gateway().clone(),
            keys,
            addr: engine.addr().clone(),
            engine,
            faults: world.faults().clone(),
            rng: world.rng("scenario"),
            upstream,
            clients: Vec::new(),
            deliveries: Mutex::new(Vec::new()),
        })
    }

    /// A second engine instance on the engine host, serving on `port` and sharing the
    /// session store (two instances behind one load balancer).
    pub async fn instance(&self, name: &str, port: u16) -> Result<Engine, Failure> {
        self.instance_with(name, port, LockChoice::None).await
    }

    /// Like `instance`, with the session lock `lock` (hosting the lock service, or
    /// using one).
    pub async fn instance_with(
        &self,
        name: &str,
        port: u16,
        lock: LockChoice,
    ) -> Result<Engine, Failure> {
        self.instance_configured(name, port, |c| c.lock = lock)
            .await
            .or_fail(&format!("start instance {name}"))
    }

    /// Starts a second instance like `instance`, `tweak` adjusting its configuration
    /// first; the start's own error is returned (a start that must fail).
    pub async fn instance_configured(
        &self,
        name: &str,
        port: u16,
        tweak: impl FnOnce(&mut EngineConfig),
    ) -> Result<Engine, engine::EngineError> {
        let mut config = stage_config(&self.keys);
        tweak(&mut config);
        config.port = port;
        config.sessions.instance = name.to_string();
        config.sessions.pool.template.dir = format!("{}-{name}", config.sessions.pool.template.dir);
        // Each instance's workers get ports of their own (20000 + 1000 per port above
        // the first instance's).
        config.worker_ports = PortRange {
            first: 20_000 + 1_000 * port.saturating_sub(PORT),
            last: 20_999 + 1_000 * port.saturating_sub(PORT),
        };
        config.store = StoreChoice::Shared(self.store.clone());
        Engine::start(self.env.clone(), config).await
    }

    /// A client host (`client-N`), created on first use.
    pub fn client_host(&mut self, n: usize) -> Host {
        while self.clients.len() <= n {
            let name = format!("client-{}", self.clients.len());
            self.clients.push(self.world.add_host(&name));
        }
        self.clients[n].clone()
    }

    /// A token for `user` with `role`, valid for `valid_for` from the engine's clock.
    pub fn token(&self, user: &str, role: &str, valid_for: Duration) -> String {
        let exp = (self.env.wall_unix_ms() / 1000) + valid_for.as_secs();
        self.keys.issue(&Claims {
            sub: user.to_string(),
            role: role.to_string(),
            exp,
        })
    }

    pub fn new_delivery(&self) -> SharedDelivery {
        let d: SharedDelivery = Arc::new(Mutex::new(Delivery::default()));
        self.deliveries
            .lock()
            .expect("deliveries poisoned")
            .push(d.clone());
        d
    }

    /// Opens a socket from client host `n` with `query` (`token=…&session=…`).
    pub async fn connect(
        &mut self,
        n: usize,
        query: &str,
        delivery: &SharedDelivery,
    ) -> Result<SimClient, ConnectError> {
        let addr = self.addr.clone();
        self.connect_to(n, &addr, query, delivery).await
    }

    /// Like `connect`, to the instance at `addr` (see `instance`).
    pub async fn connect_to(
        &mut self,
        n: usize,
        addr: &NetAddr,
        query: &str,
        delivery: &SharedDelivery,
    ) -> Result<SimClient, ConnectError> {
        let env = self.client_host(n).env();
        SimClient::connect(env.net(), addr, query, delivery.clone()).await
    }

    /// Like `connect`, failing the run on an error.
    pub async fn open(
        &mut self,
        n: usize,
        query: &str,
        delivery: &SharedDelivery,
    ) -> Result<SimClient, Failure> {
        let addr = self.addr.clone();
        self.open_at(n, &addr, query, delivery).await
    }

    /// Like `connect_to`, failing the run on an error.
    pub async fn open_at(
        &mut self,
        n: usize,
        addr: &NetAddr,
        query: &str,
        delivery: &SharedDelivery,
    ) -> Result<SimClient, Failure> {
        self.connect_to(n, addr, query, delivery)
            .await
            .or_fail(&format!("connect {query:?} to {addr}"))
    }

    /// Reconnects client host `n` to `session` from where `delivery` is (`last_seq`).
    pub async fn reconnect(
        &mut self,
        n: usize,
        token: &str,
        session: &str,
        delivery: &SharedDelivery,
    ) -> Result<SimClient, ConnectError> {
        let last = delivery.lock().expect("delivery poisoned").last_seq();
        let query = format!("token={token}&session={session}&last_seq={last}");
        self.connect(n, &query, delivery).await
    }

    /// The live session `id`, failing the run when it is gone.
    pub fn session(&self, id: &str) -> Result<Arc<engine::sessions::Session>, Failure> {
        self.sessions
            .get(id)
            .ok_or_else(|| Failure::correctness(format!("session {id} is not live")))
    }

    /// Waits until `check` holds, looking every 10 ms of simulated time.
    pub async fn eventually(
        &self,
        what: &str,
        bound: Duration,
        check: impl FnMut() -> bool,
    ) -> Result<(), Failure> {
        crate::kit::time::eventually(what, bound, Duration::from_millis(10), check).await
    }

    pub async fn http(
        &mut self,
        n: usize,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, String, String), Failure> {
        let host = self.client_host(n);
        let env = host.env();
        http(env.net(), &self.addr, method, path, headers).await
    }

    /// [`Self::http`] with the body handed to `on_body` in pieces as it arrives
    /// ([`http_streamed`]): the status and the head.
    pub async fn http_streamed(
        &mut self,
        n: usize,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        on_body: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<(u16, String), Failure> {
        let host = self.client_host(n);
        let env = host.env();
        http_streamed(env.net(), &self.addr, method, path, headers, on_body).await
    }

    /// Waits until the pool has a warm worker (readiness).
    pub async fn ready(&self, bound: Duration) -> Result<(), Failure> {
        crate::kit::time::eventually(
            "pre-warm readiness",
            bound,
            Duration::from_millis(50),
            || self.sessions.is_ready(),
        )
        .await
    }

    /// The oracles every run of these scenarios must satisfy.
    pub fn check_global(&self) -> Result<(), Failure> {
        for d in self.deliveries.lock().expect("deliveries poisoned").iter() {
            let d = d.lock().expect("delivery poisoned");
            d.check()?;
            crate::kit::model::check_model_deltas(&d)?;
        }
        let config = self.sessions.config();
        let peak = self.sessions.live_peak();
        if peak > config.session_limit {
            return Err(Failure::correctness(format!(
                "{peak} live sessions at once, above the limit of {}",
                config.session_limit
            )));
        }
        for s in self.sessions.live() {
            let past = s.calls_past_cap();
            if past > 0 {
                return Err(Failure::correctness(format!(
                    "session {}: {past} model calls sent after its spending cap was spent",
                    s.id
                )));
            }
            let st = s.stats();
            let attached = st.connections as i64 - st.replaced as i64 - st.detaches as i64;
            if attached > 1 || attached != i64::from(s.is_attached()) {
                return Err(Failure::correctness(format!(
                    "session {}: {attached} connections attached at once ({st:?})",
                    s.id
                )));
            }
            if st.log_bytes_peak > config.replay.bytes {
                return Err(Failure::correctness(format!(
                    "session {}: replay log held {} bytes, above its bound {}",
                    s.id, st.log_bytes_peak, config.replay.bytes
                )));
            }
            if st.outbound_peak > config.outbound_max {
                return Err(Failure::correctness(format!(
                    "session {}: {} messages waited for the connection, above the bound {}",
                    s.id, st.outbound_peak, config.outbound_max
                )));
            }
            let (_, entries) = s.log_usage();
            if entries > config.replay.count {
                return Err(Failure::correctness(format!(
                    "session {}: replay log holds {entries} messages, above its bound {}",
                    s.id, config.replay.count
                )));
            }
        }
        Ok(())
    }
}
