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
        Instant::now().duration_since(self.start).as_nanos() as u64
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
}
