//! The stage worker scenarios play on: an engine host with the worker program
//! installed, a worker manager, and the means to inject process faults. The same
//! scenario logic runs on a simulated host (every fault available) or, for the
//! reality check, on this machine with the real worker binary (`chaos run ID --real`).

use crate::scenario::Failure;
use engine::env::{Env, Signal};
use engine::workers::{PortRange, WorkerConfig, WorkerManager};
use sim::{FaultCounters, Host, SimRng, World};
use std::sync::Arc;
use std::time::Duration;

/// Where the simulated host keeps the worker binary.
pub const WORKER_PROGRAM_SIM: &str = "/usr/bin/worker";
/// How often the zombie watchdog sweeps.
pub const WATCHDOG_INTERVAL: Duration = Duration::from_secs(5);

pub struct Stage {
    pub env: Env,
    pub manager: Arc<WorkerManager>,
    /// The worker program to run.
    pub program: String,
    pub faults: FaultCounters,
    /// Scenario randomness, from the run seed.
    pub rng: SimRng,
    /// The simulated host; `None` on a real run.
    host: Option<Host>,
}

impl Stage {
    /// A simulated engine host `engine-0` with the worker installed.
    pub fn sim(world: &World) -> Stage {
        let host = world.add_host("engine-0");
        crate::stage::install_worker(host.procs(), WORKER_PROGRAM_SIM);
        let env = host.env();
        let manager = Arc::new(WorkerManager::new(env.clone(), PortRange::DEFAULT));
        manager.start_watchdog(WATCHDOG_INTERVAL);
        Stage {
            env,
            manager,
            program: WORKER_PROGRAM_SIM.to_string(),
            faults: world.faults().clone(),
            rng: world.rng("scenario"),
            host: Some(host),
        }
    }

    /// This machine: the real environment and the real worker binary.
    pub fn real(env: Env, program: String, seed: u64) -> Stage {
        let manager = Arc::new(WorkerManager::new(
            env.clone(),
            PortRange {
                first: 41_000,
                last: 41_999,
            },
        ));
        manager.start_watchdog(WATCHDOG_INTERVAL);
        Stage {
            env,
            manager,
            program,
            faults: FaultCounters::default(),
            rng: SimRng::new(seed, "scenario"),
            host: None,
        }
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
        let mut hash = sim::seed::Fnv::default();
        hash.bytes(name.as_bytes());
        WorkerConfig::new(self.program.clone(), format!("workers/w{:016x}", hash.0))
    }

    /// Sends `signal` to process `pid` from outside, as the kernel or an operator
    /// would. Counted as a fault (`proc.crash_segv` for SIGSEGV, `proc.kill` otherwise).
    pub fn kill(&self, pid: u32, signal: Signal) -> bool {
        match &self.host {
            Some(host) => host.procs().kill_with(pid, signal),
            None => real_kill(&self.faults, pid, signal),
        }
    }
}

#[allow(
    unsafe_code,
    reason = "the reality check kills a real child the way the kernel would; kill(2) has no safe wrapper in libc"
)]
fn real_kill(faults: &FaultCounters, pid: u32, signal: Signal) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let sent = unsafe { libc::kill(pid, signal.number()) } == 0;
    if sent {
        let kind = if signal == Signal::Segv {
            "proc.crash_segv"
        } else {
            "proc.kill"
        };
        faults.fire(kind, &format!("pid {pid}: {}", signal.name()));
    }
    sent
}

/// Waits until `check` holds, polling every `step` of (virtual) time, for at most
/// `bound`; fails the liveness phase otherwise.
pub async fn eventually(
    what: &str,
    bound: Duration,
    step: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if check() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::liveness(format!(
                "{what} did not happen within {} ms",
                bound.as_millis()
            )));
        }
        tokio::time::sleep(step).await;
    }
}
