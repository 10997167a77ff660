//! One simulated process as the kernel sees it: its phase (running, zombie, reaped), its
//! task, its descriptors, its memory and its signal dispositions. Shared by the parent's
//! handle, the program's context and the host's process table.

use super::pipe::Pipe;
use crate::faults::FaultCounters;
use engine::env::Task;
use engine::env::{ExitStatus, Signal};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Duration, Instant};

/// `ESRCH`: no such process (reaped, or vanished with its host).
pub(crate) const ESRCH: i32 = 3;
/// `ECHILD`: `wait` on a child that is not ours any more (it vanished in a host crash).
pub(crate) const ECHILD: i32 = 10;
/// Standard signals coalesce while pending; this bounds the queue of handled ones.
pub(crate) const SIGNALS_PENDING_MAX: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Running,
    /// Exited, status not collected yet: a zombie.
    Exited(ExitStatus),
    /// Status collected by the parent; the pid is gone.
    Reaped(ExitStatus),
    /// Its host crashed: no status for anyone.
    Vanished,
}

/// Resident memory: a base set by the program plus a linear leak since `since`.
struct Memory {
    base: u64,
    growth_per_s: u64,
    since: Instant,
}

impl Memory {
    fn at(&self, now: Instant) -> u64 {
        let elapsed_ns = now.saturating_duration_since(self.since).as_nanos();
        let grown = u128::from(self.growth_per_s) * elapsed_ns / 1_000_000_000;
        u64::try_from(u128::from(self.base) + grown).unwrap_or(u64::MAX)
    }

    /// First instant at which `at` exceeds `limit`, if the memory grows at all.
    fn over_limit_at(&self, limit: u64) -> Option<Instant> {
        if self.base > limit {
            return Some(self.since);
        }
        if self.growth_per_s == 0 {
            return None;
        }
        let needed = u128::from(limit - self.base + 1) * 1_000_000_000;
        let ns = needed.div_ceil(u128::from(self.growth_per_s));
        let ns = u64::try_from(ns).ok()?;
        self.since.checked_add(Duration::from_nanos(ns))
    }
}

/// The child's ends of its three pipes, to close at exit.
pub(crate) struct Descriptors {
    pub(crate) stdin: Pipe,
    pub(crate) stdout: Pipe,
    pub(crate) stderr: Pipe,
}

struct ProcState {
    phase: Phase,
    hung: bool,
    task: Option<Task<()>>,
    /// Handlers for SIGTERM, SIGINT and SIGHUP are installed.
    handling_signals: bool,
    signal_tx: Option<mpsc::Sender<Signal>>,
    descriptors: Option<Descriptors>,
    memory: Memory,
}

pub(crate) struct ProcShared {
    pub(crate) pid: u32,
    pub(crate) program: String,
    /// The arguments it was started with: a plan picks its targets by them
    /// (`--name w`), since it cannot know pids.
    pub(crate) args: Vec<String>,
    state: Mutex<ProcState>,
    ended: watch::Sender<bool>,
    pub(crate) faults: FaultCounters,
    memory_limit_bytes: AtomicU64,
    /// Wakes the child's watchdog when memory or its limit changed.
    pub(crate) memory_changed: Notify,
    /// A swarm crash or hang drawn at spawn is called off when the host's options turn
    /// that kind off later (a heal): "quiet" means no swarm fault fires after it.
    pub(crate) swarm_crash_off: AtomicBool,
    pub(crate) swarm_hang_off: AtomicBool,
}

impl ProcShared {
    pub(crate) fn new(
        pid: u32,
        program: String,
        descriptors: Descriptors,
        signal_tx: mpsc::Sender<Signal>,
        resident_bytes_initial: u64,
        memory_limit_bytes: u64,
        faults: FaultCounters,
    ) -> Self {
        ProcShared {
            pid,
            program,
            args: Vec::new(),
            state: Mutex::new(ProcState {
                phase: Phase::Running,
                hung: false,
                task: None,
                handling_signals: false,
                signal_tx: Some(signal_tx),
                descriptors: Some(descriptors),
                memory: Memory {
                    base: resident_bytes_initial,
                    growth_per_s: 0,
                    since: Instant::now(),
                },
            }),
            ended: watch::channel(false).0,
            faults,
            memory_limit_bytes: AtomicU64::new(memory_limit_bytes),
            memory_changed: Notify::new(),
            swarm_crash_off: AtomicBool::new(false),
            swarm_hang_off: AtomicBool::new(false),
        }
    }

    /// The same process, started with `args`.
    pub(crate) fn with_args(mut self, args: Vec<String>) -> Self {
        self.args = args;
        self
    }

    fn lock(&self) -> MutexGuard<'_, ProcState> {
        self.state.lock().expect("sim process poisoned")
    }

    pub(crate) fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// Hands over the program's task; aborts it at once if the process already ended.
    pub(crate) fn set_task(&self, task: Task<()>) {
        let mut st = self.lock();
        if st.phase == Phase::Running {
            st.task = Some(task);
        } else {
            drop(st);
            task.abort();
        }
    }

    /// Ends a running process with `status`: its descriptors close at once, its task is
    /// aborted, its parent can reap the status. Returns false if it was not running.
    pub(crate) fn terminate(&self, status: ExitStatus) -> bool {
        let ended = self.end(Phase::Exited(status));
        if ended {
            tracing::debug!(target: "sim::procs", "pid {} ({}) ended: {status}", self.pid, self.program);
        }
        ended
    }

    /// The process disappears with its host: no status is ever reported.
    pub(crate) fn vanish(&self) {
        let was_running = self.end(Phase::Vanished);
        if !was_running {
            let mut st = self.lock();
            if matches!(st.phase, Phase::Exited(_)) {
                st.phase = Phase::Vanished;
            }
        }
        self.ended.send_replace(true);
    }

    fn end(&self, phase: Phase) -> bool {
        let (task, descriptors) = {
            let mut st = self.lock();
            if st.phase != Phase::Running {
                return false;
            }
            st.phase = phase;
            st.signal_tx = None;
            (st.task.take(), st.descriptors.take())
        };
        if let Some(d) = descriptors {
            d.stdin.close_reader();
            d.stdout.close_writer();
            d.stderr.close_writer();
        }
        if let Some(task) = task {
            // From inside the task itself this takes effect at its next await.
            task.abort();
        }
        self.ended.send_replace(true);
        true
    }

    /// Collects the status of an exited child (once it is reaped, again and again).
    pub(crate) fn try_reap(&self) -> io::Result<Option<ExitStatus>> {
        let mut st = self.lock();
        match st.phase {
            Phase::Running => Ok(None),
            Phase::Exited(status) => {
                st.phase = Phase::Reaped(status);
                Ok(Some(status))
            }
            Phase::Reaped(status) => Ok(Some(status)),
            Phase::Vanished => Err(io::Error::from_raw_os_error(ECHILD)),
        }
    }

    /// Waits until the process is no longer running.
    pub(crate) async fn ended(&self) {
        let mut rx = self.ended.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|ended| *ended).await;
    }

    /// `kill(pid, signal)`: a zombie takes it without effect; a reaped or vanished
    /// process gives `ESRCH`. Handled signals are queued for the program.
    pub(crate) fn deliver(&self, signal: Signal) -> io::Result<()> {
        let queued = {
            let st = self.lock();
            match st.phase {
                Phase::Exited(_) => return Ok(()),
                Phase::Reaped(_) | Phase::Vanished => {
                    return Err(io::Error::from_raw_os_error(ESRCH));
                }
                Phase::Running => {}
            }
            let handleable = matches!(signal, Signal::Term | Signal::Int | Signal::Hup);
            if handleable && st.handling_signals {
                // A full queue means the same signals are already pending: they coalesce.
                if let Some(tx) = &st.signal_tx {
                    let _ = tx.try_send(signal);
                }
                true
            } else {
                false
            }
        };
        if !queued {
            self.terminate(ExitStatus::from_signal(signal.number()));
        }
        Ok(())
    }

    pub(crate) fn set_handling_signals(&self, handling: bool) {
        self.lock().handling_signals = handling;
    }

    /// Stops the process making progress. False if it is not running or already hung.
    pub(crate) fn hang(&self) -> bool {
        let mut st = self.lock();
        if st.phase != Phase::Running || st.hung {
            return false;
        }
        st.hung = true;
        true
    }

    pub(crate) fn is_hung(&self) -> bool {
        self.lock().hung
    }

    pub(crate) fn resident_bytes(&self) -> io::Result<u64> {
        let st = self.lock();
        match st.phase {
            Phase::Running => Ok(st.memory.at(Instant::now())),
            _ => Err(io::Error::from_raw_os_error(ESRCH)),
        }
    }

    /// Sets the resident bytes and the leak rate (`None` keeps the current rate).
    pub(crate) fn set_memory(&self, bytes: Option<u64>, growth_per_s: Option<u64>) {
        {
            let mut st = self.lock();
            let now = Instant::now();
            st.memory.base = bytes.unwrap_or_else(|| st.memory.at(now));
            st.memory.since = now;
            if let Some(rate) = growth_per_s {
                st.memory.growth_per_s = rate;
            }
        }
        self.memory_changed.notify_one();
        self.check_oom();
    }

    pub(crate) fn set_memory_limit(&self, limit: u64) {
        self.memory_limit_bytes.store(limit, Ordering::Relaxed);
        self.memory_changed.notify_one();
        self.check_oom();
    }

    /// When the memory will cross the limit, if it grows.
    pub(crate) fn oom_deadline(&self) -> Option<Instant> {
        let limit = self.memory_limit_bytes.load(Ordering::Relaxed);
        let st = self.lock();
        if st.phase != Phase::Running {
            return None;
        }
        st.memory.over_limit_at(limit)
    }

    /// The OOM killer: over the limit means SIGKILL.
    pub(crate) fn check_oom(&self) {
        let limit = self.memory_limit_bytes.load(Ordering::Relaxed);
        let resident = {
            let st = self.lock();
            if st.phase != Phase::Running {
                return;
            }
            st.memory.at(Instant::now())
        };
        if resident > limit && self.terminate(ExitStatus::from_signal(Signal::Kill.number())) {
            let detail = format!(
                "pid {} ({}) resident {resident} bytes over the limit {limit}: SIGKILL",
                self.pid, self.program
            );
            self.faults.fire("proc.oom_kill", &detail);
        }
    }
}
