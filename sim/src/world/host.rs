//! Hosts: named machines of a world, each with its own tasks, clock, disk, processes
//! and network endpoint, which crash, restart and pause together.

use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::procs::SimProcs;
use crate::trace;
use engine::env::{Admission, BoxFuture, Env, TaskGate};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};
use tokio::task::AbortHandle;

/// A boot program: what a host runs when it starts and after every restart.
pub type BootFn = Arc<dyn Fn(Env) -> BoxFuture<'static, ()> + Send + Sync>;

/// Liveness of one host, shared by its spawner and every task it spawned.
pub(crate) struct HostGate {
    pub(crate) name: Arc<str>,
    pub(crate) index: usize,
    up: AtomicBool,
    paused: AtomicBool,
    /// Bumped on every pause: lets a task tell whether it already queued its waker.
    pauses: AtomicU64,
    /// Bumped on every crash: a task from an older incarnation never runs again.
    incarnation: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
    paused_wakers: Mutex<Vec<Waker>>,
}

impl HostGate {
    pub(crate) fn new(name: &str, index: usize) -> Arc<Self> {
        Arc::new(HostGate {
            name: Arc::from(name),
            index,
            up: AtomicBool::new(true),
            paused: AtomicBool::new(false),
            pauses: AtomicU64::new(0),
            incarnation: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
            paused_wakers: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Kills every task of the host. Returns how many were still alive.
    pub(crate) fn crash(&self) -> usize {
        self.up.store(false, Ordering::Relaxed);
        self.paused.store(false, Ordering::Relaxed);
        self.incarnation.fetch_add(1, Ordering::Relaxed);
        let tasks = std::mem::take(&mut *self.tasks.lock().expect("gate poisoned"));
        let alive = tasks.iter().filter(|t| !t.is_finished()).count();
        for task in tasks {
            task.abort();
        }
        // Wake paused tasks so they notice they belong to a dead incarnation.
        self.wake_paused();
        alive
    }

    pub(crate) fn restart(&self) {
        self.up.store(true, Ordering::Relaxed);
    }

    pub(crate) fn pause(&self) {
        self.pauses.fetch_add(1, Ordering::Relaxed);
        self.paused.store(true, Ordering::Relaxed);
    }

    pub(crate) fn resume(&self) {
        self.paused.store(false, Ordering::Relaxed);
        self.wake_paused();
    }

    fn wake_paused(&self) {
        let wakers = std::mem::take(&mut *self.paused_wakers.lock().expect("gate poisoned"));
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Every task of a host passes its gate on each poll: it does not run while the host is
/// paused, never runs again once the host crashed, and marks the host as current for the
/// trace while it runs.
impl TaskGate for HostGate {
    fn start(&self) -> Option<u64> {
        self.is_up()
            .then(|| self.incarnation.load(Ordering::Relaxed))
    }

    fn admit(&self, incarnation: u64, parked_in: &mut u64, cx: &Context<'_>) -> Admission {
        // A crash aborts every tracked task, so this holds today; it keeps a task of a
        // dead incarnation from ever running should one escape the list.
        if self.incarnation.load(Ordering::Relaxed) != incarnation {
            return Admission::Gone;
        }
        if !self.is_paused() {
            return Admission::Run;
        }
        // A task polled again during one pause must not queue its waker twice.
        let pause = self.pauses.load(Ordering::Relaxed);
        if *parked_in != pause {
            *parked_in = pause;
            self.paused_wakers
                .lock()
                .expect("gate poisoned")
                .push(cx.waker().clone());
        }
        Admission::Wait
    }

    fn enter(&self) -> usize {
        trace::enter_host(self.index)
    }

    fn leave(&self, previous: usize) {
        trace::leave_host(previous);
    }

    fn track(&self, task: AbortHandle) {
        let mut tasks = self.tasks.lock().expect("gate poisoned");
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|t| !t.is_finished());
        }
        tasks.push(task);
    }
}

/// What the world keeps per host.
pub(crate) struct HostShared {
    pub(crate) index: usize,
    pub(crate) ip: String,
    pub(crate) gate: Arc<HostGate>,
    pub(crate) env: Env,
    pub(crate) clock: Arc<SimClock>,
    pub(crate) disk: Arc<SimDisk>,
    pub(crate) procs: Arc<SimProcs>,
    pub(crate) boot: Mutex<Option<BootFn>>,
}
