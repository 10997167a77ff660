//! SimClock: one host's wall clock.
//!
//! Fault contract: a host's wall clock reads `epoch + virtual time + offset + drift`,
//! where the offset can jump forwards or backwards at any time and the drift is a rate
//! in parts per million. Monotonic time (`tokio::time`) is never skewed: only code that
//! reads wall time (token expiry, timestamps) sees skew, exactly as on real machines
//! whose NTP misbehaves. A correct engine must not order events or measure durations
//! with the wall clock.
//!
//! Crash semantics: the clock survives a crash (it is hardware); its skew stays.

use engine::env::WallClock;
use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Wall time of virtual time zero: 2026-01-01T00:00:00Z, fixed so traces read the same
/// on every machine.
pub const EPOCH_UNIX_NS: u64 = 1_767_225_600_000_000_000;

/// SimClock settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockOptions {
    /// Initial offset from true time, in nanoseconds (negative: behind).
    pub offset_ns: i64,
    /// Drift rate in parts per million (positive: runs fast).
    pub drift_ppm: i64,
}

pub struct SimClock {
    start: Instant,
    state: Mutex<ClockState>,
}

struct ClockState {
    /// Offset including every jump and the drift accumulated before `drift_since_ns`.
    offset_ns: i64,
    drift_ppm: i64,
    /// Virtual time at which the current drift rate started.
    drift_since_ns: u64,
}

impl SimClock {
    pub fn new(start: Instant, options: ClockOptions) -> Self {
        SimClock {
            start,
            state: Mutex::new(ClockState {
                offset_ns: options.offset_ns,
                drift_ppm: options.drift_ppm,
                drift_since_ns: 0,
            }),
        }
    }

    fn elapsed_ns(&self) -> u64 {
        virtual_now().duration_since(self.start).as_nanos() as u64
    }

    /// Current skew from true time, in nanoseconds.
    pub fn skew_ns(&self) -> i64 {
        let elapsed = self.elapsed_ns();
        let state = self.state.lock().expect("clock poisoned");
        skew(&state, elapsed)
    }

    /// Wall time in nanoseconds since the Unix epoch (saturating at 0).
    pub fn now_unix_ns(&self) -> u64 {
        let elapsed = self.elapsed_ns();
        let state = self.state.lock().expect("clock poisoned");
        let wall =
            i128::from(EPOCH_UNIX_NS) + i128::from(elapsed) + i128::from(skew(&state, elapsed));
        wall.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Steps the clock by `delta_ns` (negative: backwards).
    pub fn jump(&self, delta_ns: i64) {
        let mut state = self.state.lock().expect("clock poisoned");
        state.offset_ns = state.offset_ns.saturating_add(delta_ns);
    }

    /// Changes the drift rate from now on; drift accumulated so far is kept.
    pub fn set_drift_ppm(&self, drift_ppm: i64) {
        let elapsed = self.elapsed_ns();
        let mut state = self.state.lock().expect("clock poisoned");
        state.offset_ns = skew(&state, elapsed);
        state.drift_since_ns = elapsed;
        state.drift_ppm = drift_ppm;
    }
}

/// The virtual time as this world's thread last read it, valid until the runtime parks.
struct StepNow {
    /// A world's thread (its world started at `start`): readings are cached.
    on: Cell<bool>,
    start: Cell<Option<Instant>>,
    /// This step's reading; `None` until read (or always, when off).
    now: Cell<Option<Instant>>,
    /// `now - start` in nanoseconds, valid with `now`.
    since_start_ns: Cell<u64>,
    /// `now` was read while the runtime parked, after its clock moved (see
    /// [`StepClock::read_while_parked`]): the park's end keeps it.
    read_while_parked: Cell<bool>,
}

impl StepNow {
    /// Reads tokio's clock, and caches the reading when on.
    #[cold]
    fn refresh(&self) -> Instant {
        let now = Instant::now();
        self.cache(now);
        now
    }

    fn cache(&self, now: Instant) {
        if self.on.get() {
            self.now.set(Some(now));
            let start = self.start.get().expect("a world's thread knows its start");
            self.since_start_ns
                .set(now.duration_since(start).as_nanos() as u64);
        }
    }
}

thread_local! {
    static STEP_NOW: StepNow = const {
        StepNow {
            on: Cell::new(false),
            start: Cell::new(None),
            now: Cell::new(None),
            since_start_ns: Cell::new(0),
            read_while_parked: Cell::new(false),
        }
    };
}

/// `tokio::time::Instant::now()`, read once per scheduler step on a world's thread.
///
/// Why: reading tokio's paused clock locks it (through the runtime's thread-local
/// context), the largest single cost of the network's hot path; and paused time only
/// moves while the runtime parks (auto-advance), never while a task runs. So a world's
/// runtime marks the reading stale after every park ([`StepClock::runtime_unparked`],
/// its `on_thread_unpark` hook) and the first read of a step caches it. Elsewhere (no
/// [`StepClock`] on this thread) this is tokio's clock, read every time.
#[inline]
pub fn virtual_now() -> Instant {
    STEP_NOW.with(|step| match step.now.get() {
        Some(now) => now,
        None => step.refresh(),
    })
}

/// Nanoseconds of virtual time since `start`: [`virtual_now`]`() - start`, without the
/// subtraction when `start` is the world's own start (its trace and `World::now_ns`).
#[inline]
pub fn virtual_ns_since(start: Instant) -> u64 {
    STEP_NOW.with(|step| {
        let now = match step.now.get() {
            Some(now) => now,
            None => step.refresh(),
        };
        if step.on.get() && step.start.get() == Some(start) {
            step.since_start_ns.get()
        } else {
            now.duration_since(start).as_nanos() as u64
        }
    })
}

/// Turns on [`virtual_now`]'s cache on this thread while it lives. Held by a world's
/// thread around its runtime's `block_on`, whose runtime calls
/// [`StepClock::runtime_unparked`] after every park; with that hook missing, the cache
/// would freeze time, so both come together in `world::run`.
pub(crate) struct StepClock(());

impl StepClock {
    /// `start`: the world's virtual time zero.
    pub(crate) fn start(start: Instant) -> Self {
        STEP_NOW.with(|step| {
            step.start.set(Some(start));
            step.now.set(None);
            step.on.set(true);
        });
        StepClock(())
    }

    /// The runtime parked, so tokio may have advanced paused time: read it again,
    /// unless it was read during this park, after the clock moved.
    pub(crate) fn runtime_unparked() {
        STEP_NOW.with(|step| {
            if !step.read_while_parked.replace(false) {
                step.now.set(None);
            }
        });
    }

    /// Reads tokio's clock from inside the runtime's park, where tokio fires timers
    /// (after it advanced paused time, before the park ends), and keeps the reading for
    /// the tasks this park wakes. Only for a timer's waker that tokio fires when time
    /// reaches it (the network's delivery alarm, always armed in the future): tokio
    /// fires every timer due in the same park that advanced time to it, so this never
    /// runs in a park that ends without the hook (a yield). Called anywhere else, the
    /// next park's end would keep a reading that park may have made stale.
    pub(crate) fn read_while_parked() -> Instant {
        let now = Instant::now();
        STEP_NOW.with(|step| {
            if step.on.get() {
                step.cache(now);
                step.read_while_parked.set(true);
            }
        });
        now
    }
}

impl Drop for StepClock {
    fn drop(&mut self) {
        STEP_NOW.with(|step| {
            step.on.set(false);
            step.start.set(None);
            step.now.set(None);
            step.read_while_parked.set(false);
        });
    }
}

fn skew(state: &ClockState, elapsed_ns: u64) -> i64 {
    let drifting = i128::from(elapsed_ns.saturating_sub(state.drift_since_ns));
    let drift = drifting * i128::from(state.drift_ppm) / 1_000_000;
    (i128::from(state.offset_ns) + drift).clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl WallClock for SimClock {
    fn now(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.now_unix_ns())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime")
    }

    #[test]
    fn wall_time_follows_virtual_time_offset_and_drift() {
        paused().block_on(async {
            let clock = SimClock::new(Instant::now(), ClockOptions::default());
            assert_eq!(clock.now_unix_ns(), EPOCH_UNIX_NS);
            tokio::time::sleep(Duration::from_secs(10)).await;
            assert_eq!(clock.now_unix_ns(), EPOCH_UNIX_NS + 10_000_000_000);

            clock.jump(-30_000_000_000);
            assert_eq!(clock.skew_ns(), -30_000_000_000);
            assert!(
                clock.now_unix_ns() < EPOCH_UNIX_NS,
                "a backward jump moves wall time back"
            );

            clock.set_drift_ppm(1_000); // 1 ms per second fast
            tokio::time::sleep(Duration::from_secs(100)).await;
            assert_eq!(clock.skew_ns(), -30_000_000_000 + 100_000_000);
            clock.set_drift_ppm(0);
            tokio::time::sleep(Duration::from_secs(100)).await;
            assert_eq!(
                clock.skew_ns(),
                -30_000_000_000 + 100_000_000,
                "drift so far is kept"
            );
        });
    }

    #[test]
    fn wall_time_saturates_instead_of_wrapping() {
        paused().block_on(async {
            let clock = SimClock::new(Instant::now(), ClockOptions::default());
            clock.jump(i64::MIN);
            clock.jump(i64::MIN);
            assert_eq!(clock.now_unix_ns(), 0);
        });
    }

    #[test]
    fn the_cached_reading_follows_virtual_time_across_parks() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .on_thread_unpark(StepClock::runtime_unparked)
            .build()
            .expect("runtime");
        let start = runtime.block_on(async { Instant::now() });
        let step = StepClock::start(start);
        runtime.block_on(async {
            assert_eq!(virtual_now(), start);
            for ms in [1, 3, 7, 250] {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                assert_eq!(virtual_now(), Instant::now(), "stale after a {ms} ms sleep");
            }
            tokio::task::yield_now().await;
            assert_eq!(virtual_now(), Instant::now());
            assert_eq!(virtual_now() - start, Duration::from_millis(261));
            assert_eq!(virtual_ns_since(start), 261_000_000);
            let later = start + Duration::from_millis(11);
            assert_eq!(
                virtual_ns_since(later),
                250_000_000,
                "another origin subtracts"
            );
        });
        drop(step);
        assert!(
            STEP_NOW.with(|step| !step.on.get() && step.now.get().is_none()),
            "the cache is off once the world's thread lets go of it"
        );
    }
}
