//! The stage worker scenarios play on: an engine host with the worker program
//! installed, a worker manager, and the means to inject process faults. The same
//! scenario logic runs on a simulated host (every fault available) or, for the
//! reality check, on this machine with the real worker binary (`chaos run ID --real`).

use crate::kit::fail::OrFail;
use crate::scenario::Failure;
use engine::env::{Env, Signal};
use engine::gateway::TokenKeys;
use engine::workers::{PortRange, WorkerConfig, WorkerManager};
use engine::{Engine, EngineConfig, StoreChoice};
use sim::{FaultCounters, Host, SimRng, World};
use std::sync::Arc;
use std::time::Duration;

/// Where the simulated host keeps the worker binary.
pub const WORKER_PROGRAM_SIM: &str = "/usr/bin/worker";
/// The simulated engine host, as plans name it.
pub const HOST: &str = "engine-0";
/// How often the zombie watchdog sweeps.
pub const WATCHDOG_INTERVAL: Duration = Duration::from_secs(5);

pub struct Stage {
    pub env: Env,
    /// The engine on the host, built by the composition root (no store, no pre-warm:
    /// these scenarios drive its workers directly).
    pub engine: Engine,
    pub manager: Arc<WorkerManager>,
    /// The worker program to run.
    pub program: String,
    pub faults: FaultCounters,
    /// Scenario randomness, from the run seed.
    pub rng: SimRng,
    /// The simulated host; `None` on a real run.
    host: Option<Host>,
    /// The simulated world, whose plan the scenario's marks trigger; `None` on a real run.
    world: Option<World>,
}

/// The token secret of the stage's gateway (nothing connects to it here).
const SECRET: &[u8] = b"workers-stage-secret";

/// The simulation profile for a workers stage: worker endpoints in `ports`, the
/// gateway on any free port, no session store and no pre-warm (the scenarios start
/// the workers they need).
pub fn workers_config(program: &str, ports: PortRange) -> EngineConfig {
    let keys = TokenKeys::new(SECRET, Duration::from_secs(30));
    let mut config = EngineConfig::simulation(program, keys);
    config.worker_ports = ports;
    config.watchdog_interval = WATCHDOG_INTERVAL;
    config.store = StoreChoice::None;
    config.sessions.pool.size_target = 0;
    config
}

/// Starts an engine for a workers stage (also after a host restart, on the new
/// incarnation's environment).
pub async fn start_engine(env: Env, config: EngineConfig) -> Result<Engine, Failure> {
    Engine::start(env, config).await.or_fail("start the engine")
}

impl Stage {
    /// A simulated engine host `engine-0` with the worker installed.
    pub async fn sim(world: &World) -> Result<Stage, Failure> {
        Ok(Self::sim_with(world, |_, _, _| ()).await?.0)
    }

    /// Like [`Stage::sim`], with `prepare` run first: on the host before its engine
    /// starts (faults that must be in place from the first spawn), with the scenario's
    /// random stream, on the engine's configuration (a pool to warm, say). Returns what
    /// `prepare` returns beside the stage.
    pub async fn sim_with<R>(
        world: &World,
        prepare: impl FnOnce(&Host, &mut SimRng, &mut EngineConfig) -> R,
    ) -> Result<(Stage, R), Failure> {
        let host = world.add_host(HOST);
        crate::stage::install_worker(host.procs(), WORKER_PROGRAM_SIM);
        let env = host.env();
        let mut rng = world.rng("scenario");
        let mut config = workers_config(WORKER_PROGRAM_SIM, PortRange::DEFAULT);
        let prepared = prepare(&host, &mut rng, &mut config);
        let engine = start_engine(env.clone(), config).await?;
        let stage = Stage {
            env,
            manager: engine.workers().clone(),
            engine,
            program: WORKER_PROGRAM_SIM.to_string(),
            faults: world.faults().clone(),
            rng,
            host: Some(host),
            world: Some(world.clone()),
        };
        Ok((stage, prepared))
    }

    /// This machine: the real environment and the real worker binary. `faults` counts
    /// what the real environment met (the caller routes `engine::met` events there).
    pub async fn real(
        env: Env,
        program: String,
        seed: u64,
        faults: FaultCounters,
    ) -> Result<Stage, Failure> {
        let ports = PortRange {
            first: 41_000,
            last: 41_999,
        };
        let engine = start_engine(env.clone(), workers_config(&program, ports)).await?;
        Ok(Stage {
            env,
            manager: engine.workers().clone(),
            engine,
            program,
            faults,
            rng: SimRng::new(seed, "scenario"),
            host: None,
            world: None,
        })
    }

    /// After the simulated host restarted: the old engine died with it; a new one takes
    /// over on the new incarnation.
    pub async fn restart_engine(&mut self) -> Result<(), Failure> {
        let config = workers_config(&self.program, PortRange::DEFAULT);
        self.engine = start_engine(self.env.clone(), config).await?;
        self.manager = self.engine.workers().clone();
        Ok(())
    }

    /// Marks `event` in the run (`World::mark`): the faults of the scenario's plan
    /// triggered by it apply; returns them (none on a real run, or when the plan has
    /// none for it). The body judges the engine against the faults it met.
    pub fn mark(&self, event: &str) -> Vec<sim::Fault> {
        self.world
            .as_ref()
            .map(|w| w.mark(event))
            .unwrap_or_default()
    }

    pub fn is_real(&self) -> bool {
        self.host.is_none()
    }

    /// The simulated host, for faults only a simulated device can inject.
    pub fn host(&self) -> Result<&Host, Failure> {
        self.host
            .as_ref()
            .ok_or_else(|| Failure::correctness("this scenario needs a simulated host".to_string()))
    }

    /// A worker configuration running the stage's worker program in its own directory.
    pub fn config(&self, name: &str) -> WorkerConfig {
        worker_config(&self.program, name)
    }

    /// Sends `signal` to process `pid` from outside, as the kernel or an operator
    /// would. The process device counts it, not the stage: the simulated one when the
    /// signal is sent (`SimProcs::kill_with`), the real environment when the engine
    /// reaps a child ended by a signal it did not send (`proc.crash_segv` for SIGSEGV,
    /// `proc.kill` otherwise).
    pub fn kill(&self, pid: u32, signal: Signal) -> bool {
        match &self.host {
            Some(host) => host.procs().kill_with(pid, signal),
            None => real_kill(pid, signal),
        }
    }
}

#[allow(
    unsafe_code,
    reason = "the reality check kills a real child the way the kernel would; kill(2) has no safe wrapper in libc"
)]
fn real_kill(pid: u32, signal: Signal) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe { libc::kill(pid, signal.number()) == 0 }
}

/// A worker configuration running `program` in a directory of its own for `name`.
pub fn worker_config(program: &str, name: &str) -> WorkerConfig {
    let mut hash = sim::seed::Fnv::default();
    hash.bytes(name.as_bytes());
    WorkerConfig::new(program, format!("workers/w{:016x}", hash.0))
}
