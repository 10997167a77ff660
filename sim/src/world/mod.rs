//! The world: one simulated run, its hosts and devices (the composition root).
//!
//! A world runs on its own OS thread, on one tokio `current_thread` runtime whose time
//! is paused and auto-advances to the next timer whenever nothing is runnable, and
//! whose internal RNG is seeded from the run seed (BRIEF §2). Nothing in it reads the
//! real clock, real randomness or the OS, so a seed fixes the whole run.

mod env;
mod host;
mod plan;
mod run;

pub use host::BootFn;
pub use run::{RunAbort, RunReport, run_world};

use crate::clock::{ClockOptions, SimClock};
use crate::disk::{DiskOptions, SimDisk};
use crate::faults::{FaultCounters, FaultPlan};
use crate::net::{HostNet, NetOptions, SimNet};
use crate::procs::{ProcsOptions, SimProcs};
use crate::seed::SimRng;
use crate::trace::TraceSink;
use crate::upstream::{SimUpstream, UpstreamOptions};
use engine::env::{Env, EnvParts, TaskGate};
use host::{HostGate, HostShared};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Settings of one world.
#[derive(Clone, Debug)]
pub struct WorldOptions {
    /// The run seed: every random draw of the run derives from it.
    pub seed: u64,
    pub net: NetOptions,
    /// Disk settings every new host starts with.
    pub disk: DiskOptions,
    /// Process settings every new host starts with.
    pub procs: ProcsOptions,
    /// Virtual-time budget of the run: past it the run is aborted as a liveness failure.
    pub sim_time_max: Duration,
    /// Real-time budget of the run (`None`: unbounded): a guard against a run that
    /// spins without letting virtual time advance, so a sweep or a CI gate never hangs.
    pub wall_time_max: Option<Duration>,
    /// Record a trace at all (benchmarks turn it off to measure the bare substrate).
    pub trace: bool,
    /// Trace events kept for printing; later ones are only hashed.
    pub trace_lines_max: usize,
    /// A fault plan that replaces the one the scenario would draw from the seed
    /// (`chaos shrink` tries candidates this way; `chaos repro` replays a shrunk plan).
    /// `None`: the body uses its own plan (see `World::fault_plan`).
    pub fault_plan: Option<FaultPlan>,
}

impl WorldOptions {
    /// A quiet world: LAN latencies, no swarm faults, one simulated hour of budget.
    pub fn new(seed: u64) -> Self {
        WorldOptions {
            seed,
            net: NetOptions::lan(),
            disk: DiskOptions::quiet(),
            procs: ProcsOptions::quiet(),
            sim_time_max: Duration::from_secs(3600),
            wall_time_max: Some(Duration::from_secs(300)),
            trace: true,
            trace_lines_max: 20_000,
            fault_plan: None,
        }
    }
}

pub(crate) struct WorldInner {
    seed: u64,
    options: WorldOptions,
    start: Instant,
    hosts: Mutex<Vec<Arc<HostShared>>>,
    net: Arc<SimNet>,
    faults: FaultCounters,
    trace: Option<TraceSink>,
    /// The plan `start_plan` set going, if any.
    plan: Mutex<Option<plan::ActivePlan>>,
    /// The simulated model APIs, by host.
    upstreams: Mutex<std::collections::BTreeMap<String, Arc<SimUpstream>>>,
}

/// Handle to the running world. Cheap to clone; only valid on the world's thread.
#[derive(Clone)]
pub struct World {
    inner: Arc<WorldInner>,
}

impl World {
    pub(crate) fn new(options: WorldOptions, start: Instant, trace: Option<TraceSink>) -> Self {
        let faults = FaultCounters::default();
        let net = SimNet::new(
            options.net.clone(),
            SimRng::new(options.seed, "net"),
            faults.clone(),
            start,
        );
        World {
            inner: Arc::new(WorldInner {
                seed: options.seed,
                options,
                start,
                hosts: Mutex::new(Vec::new()),
                net,
                faults,
                trace,
                plan: Mutex::new(None),
                upstreams: Mutex::new(std::collections::BTreeMap::new()),
            }),
        }
    }

    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// A named random stream of this run (one per purpose: see `seed`).
    pub fn rng(&self, purpose: &str) -> SimRng {
        SimRng::new(self.inner.seed, purpose)
    }

    /// Virtual nanoseconds since the world started.
    pub fn now_ns(&self) -> u64 {
        crate::clock::virtual_ns_since(self.inner.start)
    }

    /// The fault plan of this run: the one the world was given (`WorldOptions::fault_plan`),
    /// else `default(seed)`, the plan the scenario draws from its seed. Call it once the
    /// hosts exist: a given plan is checked against them (a plan naming a host this
    /// world lacks is a bug of whoever built it, so the run stops with a panic that
    /// names the host).
    pub fn fault_plan(&self, default: impl FnOnce(u64) -> FaultPlan) -> FaultPlan {
        match &self.inner.options.fault_plan {
            None => default(self.inner.seed),
            Some(plan) => {
                if let Err(e) = plan.validate(&self.host_names()) {
                    panic!("the given fault plan does not fit this world: {e}");
                }
                tracing::info!(
                    target: "sim::faults",
                    "fault plan given to the run ({} actions, {} swarm kinds), not drawn from the seed",
                    plan.actions.len(),
                    plan.swarm.rates.len()
                );
                plan.clone()
            }
        }
    }

    pub fn net(&self) -> &Arc<SimNet> {
        &self.inner.net
    }

    pub fn faults(&self) -> &FaultCounters {
        &self.inner.faults
    }

    /// Trace events so far (0 when tracing is off).
    pub fn trace_events(&self) -> u64 {
        self.inner.trace.as_ref().map_or(0, TraceSink::events)
    }

    /// Adds a host named `name` with the world's default device options.
    pub fn add_host(&self, name: &str) -> Host {
        self.add_host_with(name, ClockOptions::default())
    }

    /// Adds a host whose wall clock starts skewed as `clock` says.
    pub fn add_host_with(&self, name: &str, clock: ClockOptions) -> Host {
        assert!(
            !name.is_empty() && name.len() <= 64 && !name.contains(['/', ':', ' ']),
            "host name {name:?} must be 1..=64 characters without '/', ':' or spaces"
        );
        let mut hosts = self.inner.hosts.lock().expect("hosts poisoned");
        if hosts.iter().any(|h| &*h.gate.name == name) {
            // Release the lock first: a panic must not poison the world for its teardown.
            drop(hosts);
            panic!("host {name:?} added twice");
        }
        let ordinal = hosts.len();
        assert!(ordinal < 250 * 250, "too many hosts");
        let ip = format!("10.0.{}.{}", ordinal / 250, ordinal % 250 + 1);
        let index = self.inner.net.add_host(name, &ip);
        assert_eq!(index, ordinal, "net and world host indices agree");
        let seed = self.inner.seed;
        let options = &self.inner.options;
        let gate = HostGate::new(name, index);
        if let Some(trace) = &self.inner.trace {
            trace.add_host(index, name);
        }
        let tasks: Arc<dyn TaskGate> = gate.clone();
        let clock = Arc::new(SimClock::new(self.inner.start, clock));
        let disk = Arc::new(SimDisk::new(
            name,
            options.disk.clone(),
            SimRng::new(seed, &format!("disk/{name}")),
            self.inner.faults.for_host(name),
        ));
        let procs = Arc::new(SimProcs::new(
            name,
            options.procs.clone(),
            SimRng::new(seed, &format!("procs/{name}")),
            self.inner.faults.for_host(name),
            Some(tasks.clone()),
        ));
        let env = Env::new(EnvParts {
            host: name.to_string(),
            clock: clock.clone(),
            random: Arc::new(env::SimRandom(Mutex::new(SimRng::new(
                seed,
                &format!("host/{name}"),
            )))),
            tasks: Some(tasks),
            net: Arc::new(HostNet::new(self.inner.net.clone(), index)),
            disk: disk.clone(),
            procs: procs.clone(),
        });
        procs.set_env(env.clone());
        let shared = Arc::new(HostShared {
            index,
            ip,
            gate,
            env,
            clock,
            disk,
            procs,
            boot: Mutex::new(None),
        });
        hosts.push(shared.clone());
        drop(hosts);
        tracing::debug!(target: "sim::host", host = name, "host added, address {}", shared.ip);
        let host = Host {
            world: self.clone(),
            shared,
        };
        if let Some(swarm) = self.swarm_in_force() {
            swarm.apply_to_host(&host);
        }
        host
    }

    /// Installs the simulated model API on `host` (its server asks it how to answer
    /// each call): quiet options, or the swarm's rates when a plan runs one.
    pub fn install_upstream(&self, host: &Host) -> Arc<SimUpstream> {
        let name = host.name().to_string();
        let device = Arc::new(SimUpstream::new(
            &name,
            UpstreamOptions::quiet(),
            SimRng::new(self.inner.seed, &format!("upstream/{name}")),
            self.inner.faults.for_host(&name),
        ));
        let previous = self
            .inner
            .upstreams
            .lock()
            .expect("upstreams poisoned")
            .insert(name.clone(), device.clone());
        assert!(previous.is_none(), "a model API installed twice on {name}");
        if let Some(swarm) = self.swarm_in_force() {
            swarm.apply_to_upstream(&device);
        }
        device
    }

    /// The simulated model API on the host named `name`, if one is installed.
    pub fn upstream(&self, name: &str) -> Option<Arc<SimUpstream>> {
        let upstreams = self.inner.upstreams.lock().expect("upstreams poisoned");
        upstreams.get(name).cloned()
    }

    /// Every simulated model API, in host-name order.
    pub fn upstreams(&self) -> Vec<Arc<SimUpstream>> {
        let upstreams = self.inner.upstreams.lock().expect("upstreams poisoned");
        upstreams.values().cloned().collect()
    }

    /// The host named `name`, if the world has one.
    pub fn host(&self, name: &str) -> Option<Host> {
        let hosts = self.inner.hosts.lock().expect("hosts poisoned");
        hosts
            .iter()
            .find(|h| &*h.gate.name == name)
            .map(|shared| Host {
                world: self.clone(),
                shared: shared.clone(),
            })
    }

    /// Breaks the reference cycles between hosts and their devices (a host's `Env`
    /// holds its processes, which hold the `Env` for their children) so a finished
    /// world is freed. Called by `run_world` after the body.
    pub(crate) fn teardown(&self) {
        let hosts = std::mem::take(&mut *self.inner.hosts.lock().expect("hosts poisoned"));
        for host in hosts {
            host.procs.clear_env();
            *host.boot.lock().expect("boot poisoned") = None;
        }
    }

    pub fn host_names(&self) -> Vec<String> {
        let hosts = self.inner.hosts.lock().expect("hosts poisoned");
        hosts.iter().map(|h| h.gate.name.to_string()).collect()
    }
}

/// Handle to one host of a world.
#[derive(Clone)]
pub struct Host {
    world: World,
    shared: Arc<HostShared>,
}

impl Host {
    pub fn name(&self) -> &str {
        &self.shared.gate.name
    }

    pub fn ip(&self) -> &str {
        &self.shared.ip
    }

    /// The engine environment of this host.
    pub fn env(&self) -> Env {
        self.shared.env.clone()
    }

    pub fn clock(&self) -> &SimClock {
        &self.shared.clock
    }

    pub fn disk(&self) -> &SimDisk {
        &self.shared.disk
    }

    pub fn procs(&self) -> &SimProcs {
        &self.shared.procs
    }

    pub fn is_up(&self) -> bool {
        self.shared.gate.is_up()
    }

    pub fn is_paused(&self) -> bool {
        self.shared.gate.is_paused()
    }

    /// Sets the program this host runs at boot, and runs it now if the host is up.
    pub fn set_boot(&self, boot: BootFn) {
        *self.shared.boot.lock().expect("boot poisoned") = Some(boot.clone());
        if self.is_up() {
            self.run_boot(boot);
        }
    }

    fn run_boot(&self, boot: BootFn) {
        let env = self.env();
        let future = boot(env.clone());
        // The boot task's result is not awaited: it lives as long as the host.
        let _boot_task = env.spawn("boot", future);
    }

    /// Crashes the host: its tasks die, its connections reset, its children die and its
    /// disk loses what was not synced. A crashed host stays down until `restart`.
    pub fn crash(&self) {
        if !self.is_up() {
            return;
        }
        let tasks = self.shared.gate.crash();
        self.world.net().crash_host(self.shared.index);
        self.shared.procs.crash();
        self.shared.disk.crash();
        self.world.faults().for_host(self.name()).fire(
            "host.crash",
            &format!("host {} crashed ({tasks} live tasks killed)", self.name()),
        );
    }

    /// Restarts a crashed host and runs its boot program.
    pub fn restart(&self) {
        if self.is_up() {
            return;
        }
        self.shared.gate.restart();
        self.world.net().restart_host(self.shared.index);
        tracing::info!(target: "sim::host", "host {} restarted", self.name());
        let boot = self.shared.boot.lock().expect("boot poisoned").clone();
        if let Some(boot) = boot {
            self.run_boot(boot);
        }
    }

    /// Freezes the host's tasks (a long GC pause, a stopped VM) until `resume`.
    pub fn pause(&self) {
        if self.is_up() && !self.is_paused() {
            self.shared.gate.pause();
            self.world
                .faults()
                .for_host(self.name())
                .fire("host.pause", &format!("host {} paused", self.name()));
        }
    }

    pub fn resume(&self) {
        if self.is_paused() {
            self.shared.gate.resume();
            tracing::info!(target: "sim::host", "host {} resumed", self.name());
        }
    }
}

#[cfg(test)]
mod tests;
