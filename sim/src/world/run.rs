//! Running a world: a fresh thread, a paused seeded runtime, the trace, the budget.

use super::{World, WorldOptions};
use crate::clock::StepClock;
use crate::trace::{self, TraceSink, TraceSummary};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::task::{Poll, Waker};
use tokio::runtime::{Builder, RngSeed, UnhandledPanic};
use tokio::time::Instant;

/// Why a run did not finish its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunAbort {
    /// Something panicked: the body, an engine task (the runtime stops on any task's
    /// panic), or an assertion of the simulator itself.
    Panic(String),
    /// The virtual-time budget ran out before the body finished.
    SimTimeExceeded { budget_ns: u64 },
    /// The run used its whole real-time budget: something spins without letting virtual
    /// time advance (a loop that never awaits, or one that only yields). The world's
    /// thread cannot be stopped from outside; it is left behind, detached. This is the
    /// one outcome that depends on the machine's speed, and it only guards against hangs.
    WallTimeExceeded { budget_ms: u64 },
}

/// Everything a run produced.
#[derive(Debug)]
pub struct RunReport<T> {
    pub seed: u64,
    pub value: Result<T, RunAbort>,
    pub trace: TraceSummary,
    pub sim_time_ns: u64,
    /// Faults that fired, per kind.
    pub faults: BTreeMap<String, u64>,
    /// Of those, the ones a swarm rate drew, per kind.
    pub swarm_faults: BTreeMap<String, u64>,
}

thread_local! {
    /// The last panic message on this thread (set by our panic hook on world threads).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static IN_WORLD: RefCell<bool> = const { RefCell::new(false) };
    /// The waker of the run's top future: a task's panic wakes it, so the run ends at
    /// the panic's instant instead of whenever the body would next have been polled.
    static ABORT_WAKER: RefCell<Option<Waker>> = const { RefCell::new(None) };
}

/// Installs, once per process, a panic hook that records panics of world threads for
/// their report instead of printing them (a sweep would otherwise spray backtraces);
/// other threads keep the previous hook.
fn install_panic_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_WORLD.with(|w| *w.borrow()) {
                let location = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let message = panic_message(info.payload());
                // Keep the first panic: later ones (the runtime shutting down because
                // of it) only repeat that something panicked.
                LAST_PANIC.with(|p| {
                    p.borrow_mut()
                        .get_or_insert_with(|| format!("{message}{location}"));
                });
                ABORT_WAKER.with(|w| {
                    if let Some(waker) = w.borrow().as_ref() {
                        waker.wake_by_ref();
                    }
                });
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// A task of the world panicked (its message is in `LAST_PANIC`).
struct TaskPanicked;

/// Runs `body` in a new world on a new thread and reports what happened.
pub fn run_world<T, F, Fut>(options: WorldOptions, body: F) -> RunReport<T>
where
    T: Send + 'static,
    F: FnOnce(World) -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
{
    install_panic_hook();
    let seed = options.seed;
    #[allow(
        clippy::disallowed_methods,
        reason = "a world owns exactly one OS thread (BRIEF §2); this is where it starts"
    )]
    let wall_time_max = options.wall_time_max;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("world-{seed}"))
        .stack_size(8 * 1024 * 1024)
        .spawn(move || {
            let report = run_here(options, body);
            // The receiver is gone only if the runner gave up on this world.
            let _ = done_tx.send(());
            report
        });
    let aborted = |abort: RunAbort| RunReport {
        seed,
        value: Err(abort),
        trace: TraceSummary::default(),
        sim_time_ns: 0,
        faults: BTreeMap::new(),
        swarm_faults: BTreeMap::new(),
    };
    let handle = match thread {
        Ok(handle) => handle,
        Err(e) => {
            return aborted(RunAbort::Panic(format!(
                "could not start a world thread: {e}"
            )));
        }
    };
    if let Some(budget) = wall_time_max
        && let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(budget)
    {
        // The thread is left running, detached: nothing can stop it from outside.
        return aborted(RunAbort::WallTimeExceeded {
            budget_ms: budget.as_millis() as u64,
        });
    }
    handle.join().unwrap_or_else(|payload| {
        aborted(RunAbort::Panic(format!(
            "world thread died: {}",
            panic_message(&*payload)
        )))
    })
}

fn run_here<T, F, Fut>(options: WorldOptions, body: F) -> RunReport<T>
where
    F: FnOnce(World) -> Fut,
    Fut: Future<Output = T>,
{
    IN_WORLD.with(|w| *w.borrow_mut() = true);
    LAST_PANIC.with(|p| *p.borrow_mut() = None);
    let seed = options.seed;
    let mut seed_bytes = [0u8; 16];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    seed_bytes[8..].copy_from_slice(b"tokio-rt");
    let runtime = Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .rng_seed(RngSeed::from_bytes(&seed_bytes))
        // A task's panic is caught by tokio and ends the run through `LAST_PANIC` (see
        // the top future below). `ShutdownRuntime` would drop every task from inside the
        // scheduler while it holds its core, and a task whose drop wakes another (a
        // child's signal channel) then panics during cleanup, which aborts the process.
        .unhandled_panic(UnhandledPanic::Ignore)
        // Paused time moves only while the runtime parks: the cached clock reading of
        // `clock::virtual_now` is stale from then on.
        .on_thread_unpark(StepClock::runtime_unparked)
        .build()
        .expect("a current-thread runtime with time always builds");
    let start = runtime.block_on(async { Instant::now() });
    let sink = options
        .trace
        .then(|| TraceSink::new(start, options.trace_lines_max));
    let budget = options.sim_time_max;
    let world = World::new(options, start, sink.clone());
    let route = trace::route_to(sink.clone(), world.faults().clone());
    let driver = world.clone();
    // From here on, reads of the clock on this thread happen inside the runtime.
    let step_clock = StepClock::start(start);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(async move {
            let run = tokio::time::timeout(budget, body(driver));
            let mut run = std::pin::pin!(run);
            std::future::poll_fn(|cx| {
                if LAST_PANIC.with(|p| p.borrow().is_some()) {
                    return Poll::Ready(Err(TaskPanicked));
                }
                ABORT_WAKER.with(|w| *w.borrow_mut() = Some(cx.waker().clone()));
                run.as_mut().poll(cx).map(Ok)
            })
            .await
        })
    }));
    ABORT_WAKER.with(|w| *w.borrow_mut() = None);
    drop(step_clock);
    let sim_time_ns = {
        let _enter = runtime.enter();
        Instant::now().duration_since(start).as_nanos() as u64
    };
    let value = match outcome {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(_elapsed))) => Err(RunAbort::SimTimeExceeded {
            budget_ns: budget.as_nanos() as u64,
        }),
        Ok(Err(TaskPanicked)) => Err(RunAbort::Panic(
            LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "a task panicked".to_string()),
        )),
        Err(payload) => {
            let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
            Err(RunAbort::Panic(
                recorded.unwrap_or_else(|| panic_message(&*payload)),
            ))
        }
    };
    if let Err(RunAbort::Panic(message)) = &value {
        // Inside the runtime, so the line is stamped with the run's virtual time (outside
        // it, tokio's clock would read the real one and the trace hash would vary).
        let _enter = runtime.enter();
        tracing::error!(target: "sim::world", "run aborted by a panic: {message}");
    }
    let faults = world.faults().snapshot();
    let swarm_faults = world.faults().swarm_snapshot();
    // The trace ends with the run. What happens while the runtime is torn down (tasks
    // dropped, children killed) follows tokio's task-list order, which depends on
    // process-wide task ids, so it would differ between runs in one process.
    drop(route);
    world.teardown();
    // Drop the world (and the tasks' runtime) before reading the trace's final state.
    drop(world);
    drop(runtime);
    RunReport {
        seed,
        value,
        trace: sink.map(|s| s.summary()).unwrap_or_default(),
        sim_time_ns,
        faults,
        swarm_faults,
    }
}
