//! Hosts: named machines of a world, each with its own tasks, clock, disk, processes
//! and network endpoint, which crash, restart and pause together.

use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::procs::SimProcs;
use crate::trace;
use engine::env::{BoxFuture, Env, Spawner};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tokio::task::{AbortHandle, JoinHandle};

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

/// A task of a host: does not run while the host is paused, never runs again once the
/// host crashed, and marks the host as current for the trace while it runs.
struct GatedTask {
    gate: Arc<HostGate>,
    incarnation: u64,
    /// The pause (by count) in which this task last queued its waker.
    parked_in: u64,
    future: BoxFuture<'static, ()>,
}

impl Future for GatedTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.gate.incarnation.load(Ordering::Relaxed) != self.incarnation {
            return Poll::Ready(());
        }
        if self.gate.is_paused() {
            // A task polled again during one pause must not queue its waker twice.
            let pause = self.gate.pauses.load(Ordering::Relaxed);
            if self.parked_in != pause {
                self.parked_in = pause;
                self.gate
                    .paused_wakers
                    .lock()
                    .expect("gate poisoned")
                    .push(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let index = self.gate.index;
        trace::with_host(index, || self.future.as_mut().poll(cx))
    }
}

/// Spawns tasks that belong to one host.
pub(crate) struct SimSpawner {
    pub(crate) gate: Arc<HostGate>,
}

impl Spawner for SimSpawner {
    #[allow(
        clippy::disallowed_methods,
        reason = "the simulated spawner is the seam: it ties the task to its host"
    )]
    fn spawn(&self, name: &'static str, future: BoxFuture<'static, ()>) -> JoinHandle<()> {
        if !self.gate.is_up() {
            tracing::debug!(target: "sim::host", "task {name} not started: host is down");
            return tokio::spawn(async {});
        }
        let task = GatedTask {
            gate: self.gate.clone(),
            incarnation: self.gate.incarnation.load(Ordering::Relaxed),
            parked_in: 0,
            future,
        };
        let handle = tokio::spawn(task);
        let mut tasks = self.gate.tasks.lock().expect("gate poisoned");
        if tasks.len() >= 64 && tasks.len().is_power_of_two() {
            tasks.retain(|t| !t.is_finished());
        }
        tasks.push(handle.abort_handle());
        handle
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
