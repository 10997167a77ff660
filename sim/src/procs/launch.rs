//! Spawning: the fork-time faults, the per-child fault plan, and the child's task (slow
//! start, the program, and a watchdog for swarm crashes, hangs and the OOM killer).

use super::child::SimChild;
use super::host::SimProcs;
use super::options::ProcsOptions;
use super::pipe::{OutputFaults, Pipe, Stream};
use super::process::{Descriptors, Phase, ProcShared, SIGNALS_PENDING_MAX};
use super::program::{MemoryGauge, ProgramCtx, Signals};
use crate::seed::SimRng;
use engine::env::{
    BoxFuture, ChildProc, ExitStatus, ProcSpec, ProcessLauncher, Signal, spawn_task,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

const ENOENT: i32 = 2;
const EAGAIN: i32 = 11;

/// The faults one child will meet, drawn at its spawn.
struct ChildPlan {
    start_delay: Duration,
    /// Whether the swarm's slow start added to the start delay.
    slow_start_swarm: bool,
    crash_after: Option<Duration>,
    hang_after: Option<Duration>,
    garble: bool,
    truncate_after: Option<u64>,
    /// Seed of the child's own stream (stdout garbling), drawn only when needed.
    output_seed: Option<u64>,
}

impl ChildPlan {
    /// Draws in a fixed order; a rate of 0 draws nothing, so a kind switched off does not
    /// shift the others.
    fn draw(rng: &mut SimRng, options: &ProcsOptions) -> Self {
        let start_delay = if options.start_delay_max > options.start_delay_min {
            let min = options.start_delay_min.as_nanos() as u64;
            let max = options.start_delay_max.as_nanos() as u64;
            Duration::from_nanos(rng.between(min, max))
        } else {
            options.start_delay_min
        };
        let slow_start_max = options.slow_start_max.as_nanos() as u64;
        let slow_start_swarm = rng.chance(options.slow_start_rate);
        let start_delay = if slow_start_swarm {
            start_delay + Duration::from_nanos(rng.between(0, slow_start_max))
        } else {
            start_delay
        };
        let fault_after_max = options.fault_after_max.as_nanos() as u64;
        let at = |rng: &mut SimRng| Duration::from_nanos(rng.between(0, fault_after_max));
        let crash_after = rng.chance(options.crash_rate).then(|| at(rng));
        let hang_after = rng.chance(options.hang_rate).then(|| at(rng));
        let garble = rng.chance(options.garble_rate);
        let truncate_after = rng
            .chance(options.truncate_rate)
            .then(|| rng.between(0, options.truncate_after_bytes_max));
        let output_seed = (garble || truncate_after.is_some()).then(|| rng.next_u64());
        ChildPlan {
            start_delay,
            slow_start_swarm,
            crash_after,
            hang_after,
            garble,
            truncate_after,
            output_seed,
        }
    }
}

impl ProcessLauncher for SimProcs {
    fn spawn<'a>(&'a self, spec: &'a ProcSpec) -> BoxFuture<'a, io::Result<Box<dyn ChildProc>>> {
        // fork and exec are instantaneous here; slow starts happen in the child's task.
        let result = self.start(spec);
        Box::pin(async move { result })
    }
}

impl SimProcs {
    fn fail_spawn(&self, spec: &ProcSpec, errno: i32, why: &str) -> io::Error {
        let detail = format!("{} on {}: errno {errno} ({why})", spec.program, self.host);
        self.faults.fire("proc.spawn_fail", &detail);
        io::Error::from_raw_os_error(errno)
    }

    fn start(&self, spec: &ProcSpec) -> io::Result<Box<dyn ChildProc>> {
        let mut st = self.lock();
        if let Some((errno, left)) = st.spawn_fails.front_mut() {
            let errno = *errno;
            *left -= 1;
            if *left == 0 {
                st.spawn_fails.pop_front();
            }
            return Err(self.fail_spawn(spec, errno, "planned"));
        }
        let spawn_fail_rate = st.options.spawn_fail_rate;
        if st.rng.chance(spawn_fail_rate) {
            return Err(self.fail_spawn(spec, EAGAIN, "swarm"));
        }
        let program = st
            .programs
            .get(&spec.program)
            .cloned()
            .ok_or_else(|| io::Error::from_raw_os_error(ENOENT))?;
        if let Some(cwd) = &spec.cwd {
            engine::env::check_relative_path(cwd)?;
        }
        let env = st.env.clone().ok_or_else(|| {
            io::Error::other(format!(
                "SimProcs of host {} has no Env: call set_env before spawning",
                self.host
            ))
        })?;
        st.procs
            .retain(|_, p| matches!(p.phase(), Phase::Running | Phase::Exited(_)));
        let live = st
            .procs
            .values()
            .filter(|p| p.phase() == Phase::Running)
            .count();
        if live >= st.options.children_max {
            // The process limit is the system's own behaviour, not an injected fault.
            return Err(io::Error::from_raw_os_error(EAGAIN));
        }
        let options = st.options.clone();
        let plan = ChildPlan::draw(&mut st.rng, &options);
        let pid = st.pid_next;
        st.pid_next = pid.checked_add(1).expect("pid space exhausted");
        tracing::debug!(target: "sim::procs", "pid {pid} spawned: {} {}", spec.program, spec.args.join(" "));

        let bytes_max = options.pipe_bytes_max;
        let (stdin, stdin_r, stdin_w) =
            Pipe::new(pid, Stream::Stdin, bytes_max, self.faults.clone());
        let (stdout, stdout_r, mut stdout_w) =
            Pipe::new(pid, Stream::Stdout, bytes_max, self.faults.clone());
        let (stderr, stderr_r, stderr_w) =
            Pipe::new(pid, Stream::Stderr, bytes_max, self.faults.clone());
        if let Some(seed) = plan.output_seed {
            let rng = SimRng::new(seed, "procs.stdout");
            stdout_w =
                stdout_w.with_faults(OutputFaults::new(rng, plan.garble, plan.truncate_after));
        }
        let (signal_tx, signal_rx) = mpsc::channel(SIGNALS_PENDING_MAX);
        let proc = Arc::new(
            ProcShared::new(
                pid,
                spec.program.clone(),
                Descriptors {
                    stdin,
                    stdout,
                    stderr,
                },
                signal_tx,
                options.resident_bytes_initial,
                options.memory_limit_bytes,
                self.faults.clone(),
            )
            .with_args(spec.args.clone()),
        );
        st.procs.insert(pid, proc.clone());
        drop(st);

        if !plan.start_delay.is_zero() {
            let detail = format!(
                "pid {pid} ({}) starts after {:?}",
                spec.program, plan.start_delay
            );
            if plan.slow_start_swarm {
                self.faults.fire_swarm("proc.slow_start", &detail);
            } else {
                self.faults.fire("proc.slow_start", &detail);
            }
        }
        // A simulated host has no variables of its own to inherit, so `env_clear` changes
        // nothing: the child gets exactly what the parent set.
        let vars = spec.env.clone();
        let ctx = ProgramCtx {
            pid,
            args: spec.args.clone(),
            vars,
            cwd: spec.cwd.clone(),
            stdin: Box::new(stdin_r),
            stdout: Box::new(stdout_w),
            stderr: Box::new(stderr_w),
            env,
            memory: MemoryGauge { proc: proc.clone() },
            signals: Signals {
                proc: proc.clone(),
                rx: signal_rx,
            },
        };
        let task = spawn_task(
            self.tasks.as_ref(),
            "sim.proc",
            run(proc.clone(), program, ctx, plan),
        );
        proc.set_task(task);
        Ok(Box::new(SimChild {
            proc,
            stdin: Some(stdin_w),
            stdout: Some(stdout_r),
            stderr: Some(stderr_r),
        }))
    }
}

/// The child's task: its program (after the slow start) raced against its watchdog.
async fn run(
    proc: Arc<ProcShared>,
    program: super::program::SimProgram,
    ctx: ProgramCtx,
    plan: ChildPlan,
) {
    let start_delay = plan.start_delay;
    let main = Frozen {
        proc: proc.clone(),
        inner: Box::pin(async move {
            if !start_delay.is_zero() {
                tokio::time::sleep(start_delay).await;
            }
            program(ctx).await
        }),
    };
    tokio::select! {
        biased;
        code = main => {
            proc.terminate(ExitStatus::from_code(code));
        }
        () = watchdog(&proc, &plan) => {}
    }
}

/// Fires the planned crash and hang, and plays the OOM killer when memory grows. Returns
/// once the process is dead.
async fn watchdog(proc: &ProcShared, plan: &ChildPlan) {
    let spawned = Instant::now();
    let mut crash_at = plan.crash_after.map(|d| spawned + d);
    let mut hang_at = plan.hang_after.map(|d| spawned + d);
    loop {
        let oom_at = proc.oom_deadline();
        tokio::select! {
            biased;
            () = sleep_until(crash_at) => {
                crash_at = None;
                if proc.swarm_crash_off.load(Ordering::Relaxed) {
                    continue;
                }
                let detail = format!("pid {} ({}) SIGSEGV (swarm)", proc.pid, proc.program);
                if proc.terminate(ExitStatus::from_signal(Signal::Segv.number())) {
                    proc.faults.fire("proc.crash_segv", &detail);
                }
                return;
            }
            () = sleep_until(hang_at) => {
                hang_at = None;
                if !proc.swarm_hang_off.load(Ordering::Relaxed) && proc.hang() {
                    let detail = format!("pid {} ({}) hangs (swarm)", proc.pid, proc.program);
                    proc.faults.fire("proc.hang", &detail);
                }
            }
            () = sleep_until(oom_at) => proc.check_oom(),
            () = proc.memory_changed.notified() => {}
        }
        if proc.phase() != Phase::Running {
            return;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Polls the program only while the process is not hung: a hung process makes no
/// progress at all, whatever wakes it.
struct Frozen {
    proc: Arc<ProcShared>,
    inner: Pin<Box<dyn Future<Output = i32> + Send>>,
}

impl Future for Frozen {
    type Output = i32;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<i32> {
        if self.proc.is_hung() {
            // No waker kept: only a signal (which aborts the task) ends a hang.
            return Poll::Pending;
        }
        self.inner.as_mut().poll(cx)
    }
}
