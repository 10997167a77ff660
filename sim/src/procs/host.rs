//! `SimProcs`: one host's process table, installed programs and fault plan.

use super::options::{ProcsOptions, ScriptedBehaviour};
use super::process::{Phase, ProcShared};
use super::program::SimProgram;
use crate::faults::FaultCounters;
use crate::seed::SimRng;
use engine::env::{Env, Signal, TaskGate};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// The first pid of every host; pids then increase and are never reused in a run.
pub(crate) const PID_FIRST: u32 = 1000;
/// Planned spawn failures a host holds at once (a bound on the plan queue).
const SPAWN_FAILS_PLANNED_MAX: usize = 64;

/// The simulated child processes of one host: implements the engine's
/// [`engine::env::ProcessLauncher`]. See the module documentation for the fault contract.
pub struct SimProcs {
    pub(crate) host: String,
    /// The host's task gate (`None` in unit tests without a world).
    pub(crate) tasks: Option<Arc<dyn TaskGate>>,
    pub(crate) faults: FaultCounters,
    pub(crate) state: Mutex<HostState>,
}

pub(crate) struct HostState {
    pub(crate) options: ProcsOptions,
    pub(crate) rng: SimRng,
    pub(crate) env: Option<Env>,
    pub(crate) programs: BTreeMap<String, SimProgram>,
    /// Every process not yet reaped (pruned at spawn).
    pub(crate) procs: BTreeMap<u32, Arc<ProcShared>>,
    pub(crate) pid_next: u32,
    /// Planned spawn failures: (errno, how many more spawns it fails).
    pub(crate) spawn_fails: VecDeque<(i32, u32)>,
}

impl SimProcs {
    pub fn new(
        host: &str,
        options: ProcsOptions,
        rng: SimRng,
        faults: FaultCounters,
        tasks: Option<Arc<dyn TaskGate>>,
    ) -> Self {
        options.check();
        SimProcs {
            host: host.to_string(),
            tasks,
            faults,
            state: Mutex::new(HostState {
                options,
                rng,
                env: None,
                programs: BTreeMap::new(),
                procs: BTreeMap::new(),
                pid_next: PID_FIRST,
                spawn_fails: VecDeque::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HostState> {
        self.state.lock().expect("sim procs poisoned")
    }

    /// The host's environment, handed to every child. Call it once the host's `Env` is
    /// built; spawning before fails. The `Env` usually holds this `SimProcs`, so the two
    /// keep each other alive until [`SimProcs::clear_env`].
    pub fn set_env(&self, env: Env) {
        self.lock().env = Some(env);
    }

    /// Drops the host's environment (breaks the `Env` ↔ `SimProcs` cycle at the end of a
    /// run). Spawning fails until the next `set_env`.
    pub fn clear_env(&self) {
        self.lock().env = None;
    }

    /// Installs a program binary at `path` (replacing any there).
    pub fn install(&self, path: &str, program: SimProgram) {
        self.lock().programs.insert(path.to_string(), program);
    }

    /// Installs a scripted child at `path`.
    pub fn install_script(&self, path: &str, script: ScriptedBehaviour) {
        self.install(path, super::script::program(script));
    }

    /// The options in force.
    pub fn options(&self) -> ProcsOptions {
        self.lock().options.clone()
    }

    /// New options for later spawns; a new memory limit applies to running children at
    /// once (lowering it below a child's memory OOM-kills it now).
    pub fn set_options(&self, options: ProcsOptions) {
        options.check();
        let limit = options.memory_limit_bytes;
        let (crash_off, hang_off) = (options.crash_rate.is_zero(), options.hang_rate.is_zero());
        let running: Vec<Arc<ProcShared>> = {
            let mut st = self.lock();
            st.options = options;
            st.procs.values().cloned().collect()
        };
        for proc in running {
            proc.set_memory_limit(limit);
            if crash_off {
                proc.swarm_crash_off.store(true, Ordering::Relaxed);
            }
            if hang_off {
                proc.swarm_hang_off.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Host crash: every child vanishes at once (tasks aborted, pipes closed, no status
    /// reported to anyone: a surviving `wait` gets `ECHILD`). Installed programs and the
    /// pid counter survive; pids are not reused.
    pub fn crash(&self) {
        let procs = std::mem::take(&mut self.lock().procs);
        for proc in procs.into_values() {
            proc.vanish();
        }
    }

    /// The next `count` spawns fail with `errno` (`ENOENT` 2, `EACCES` 13, `EAGAIN` 11…),
    /// after any failures planned before. Each one is counted as `proc.spawn_fail`.
    pub fn fail_next_spawn(&self, errno: i32, count: u32) {
        let mut st = self.lock();
        assert!(
            st.spawn_fails.len() < SPAWN_FAILS_PLANNED_MAX,
            "more than {SPAWN_FAILS_PLANNED_MAX} planned spawn failures on host {}",
            self.host
        );
        if count > 0 {
            st.spawn_fails.push_back((errno, count));
        }
    }

    /// Drops the planned spawn failures not yet consumed (a plan's heal phase: a failure
    /// planned inside a fault window must not outlive it).
    pub fn clear_planned_spawn_failures(&self) {
        self.lock().spawn_fails.clear();
    }

    /// Sends `signal` to a running child from outside (the OOM killer, an operator, a
    /// crash): returns false if no such child is running. Counted as `proc.crash_segv`
    /// for SIGSEGV, `proc.kill` for any other signal.
    pub fn kill_with(&self, pid: u32, signal: Signal) -> bool {
        let Some(proc) = self.running(pid) else {
            return false;
        };
        let kind = if signal == Signal::Segv {
            "proc.crash_segv"
        } else {
            "proc.kill"
        };
        let detail = format!(
            "pid {pid} ({}) on {}: {}",
            proc.program,
            self.host,
            signal.name()
        );
        self.faults.fire(kind, &detail);
        // A running process takes any signal.
        let _ = proc.deliver(signal);
        true
    }

    /// The child stops making progress (never polled again) until a signal ends it.
    /// Returns false if no such child is running or it already hangs. Counted as
    /// `proc.hang`.
    pub fn hang(&self, pid: u32) -> bool {
        let Some(proc) = self.running(pid) else {
            return false;
        };
        if !proc.hang() {
            return false;
        }
        let detail = format!("pid {pid} ({}) on {} hangs", proc.program, self.host);
        self.faults.fire("proc.hang", &detail);
        true
    }

    /// The child starts leaking: its resident memory grows by `bytes_per_s` bytes per
    /// second of virtual time from now on (0 stops the growth; what leaked stays), until
    /// the host's memory limit gets it OOM-killed. Returns false if no such child is
    /// running. Counted as `proc.leak` (a rate of 0 counts nothing).
    pub fn leak(&self, pid: u32, bytes_per_s: u64) -> bool {
        let Some(proc) = self.running(pid) else {
            return false;
        };
        if bytes_per_s > 0 {
            let detail = format!(
                "pid {pid} ({}) on {} leaks {bytes_per_s} bytes/s",
                proc.program, self.host
            );
            self.faults.fire("proc.leak", &detail);
        }
        proc.set_memory(None, Some(bytes_per_s));
        true
    }

    /// Resident memory of a running child (what `/proc/PID/statm` reports), or `None`
    /// if no such child is running.
    pub fn resident_bytes(&self, pid: u32) -> Option<u64> {
        self.running(pid)?.resident_bytes().ok()
    }

    /// Pids of running children (hung ones included), ascending.
    pub fn live_pids(&self) -> Vec<u32> {
        self.pids_in(|phase| phase == Phase::Running)
    }

    /// Pids of running children started with argument `arg` (all of them for `None`),
    /// ascending: how a plan, which cannot know pids, names its targets.
    pub fn live_pids_with_arg(&self, arg: Option<&str>) -> Vec<u32> {
        let st = self.lock();
        st.procs
            .values()
            .filter(|p| p.phase() == Phase::Running)
            .filter(|p| arg.is_none_or(|a| p.args.iter().any(|x| x == a)))
            .map(|p| p.pid)
            .collect()
    }

    /// Pids of children that exited and were not reaped yet, ascending.
    pub fn zombie_pids(&self) -> Vec<u32> {
        self.pids_in(|phase| matches!(phase, Phase::Exited(_)))
    }

    fn pids_in(&self, keep: impl Fn(Phase) -> bool) -> Vec<u32> {
        let st = self.lock();
        st.procs
            .values()
            .filter(|p| keep(p.phase()))
            .map(|p| p.pid)
            .collect()
    }

    fn running(&self, pid: u32) -> Option<Arc<ProcShared>> {
        let proc = self.lock().procs.get(&pid).cloned()?;
        (proc.phase() == Phase::Running).then_some(proc)
    }
}
