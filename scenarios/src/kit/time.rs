//! Durations and waiting in (virtual) time.

use crate::scenario::Failure;
use std::time::Duration;

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
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

/// Awaits `future` for at most `bound` of (virtual) time; fails the liveness phase
/// otherwise.
pub async fn within<T>(
    what: &str,
    bound: Duration,
    future: impl std::future::Future<Output = T>,
) -> Result<T, Failure> {
    let done = tokio::time::timeout(bound, future).await;
    done.map_err(|_| Failure::liveness(format!("{what} took more than {} s", bound.as_secs())))
}

/// A point in time or a span: what [`between`] compares.
pub trait Span: Copy + PartialOrd + std::fmt::Debug {
    /// `self - earlier`, or zero if `earlier` is later.
    fn since(self, earlier: Self) -> Duration;
    /// `self - d` (a span saturates at zero).
    fn minus(self, d: Duration) -> Self;
    fn plus(self, d: Duration) -> Self;
}

impl Span for Duration {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_sub(earlier)
    }
    fn minus(self, d: Duration) -> Self {
        self.saturating_sub(d)
    }
    fn plus(self, d: Duration) -> Self {
        self + d
    }
}

impl Span for tokio::time::Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
    fn minus(self, d: Duration) -> Self {
        self - d
    }
    fn plus(self, d: Duration) -> Self {
        self + d
    }
}

/// Timer resolution on a simulated host: tokio's timers have 1 ms resolution, so a delay
/// armed for `d` is observed within `TICK` of `d`.
pub const TICK: Duration = Duration::from_millis(2);

/// The standard "on time" oracle: `at` is due in `lo..=hi`, observed no earlier than one
/// [`TICK`] before `lo` and no later than `slack` after `hi`.
pub fn on_time<T: Span>(what: &str, at: T, lo: T, hi: T, slack: Duration) -> Result<(), Failure> {
    between(what, at, lo.minus(TICK), hi.plus(slack))
}

/// The standard timing oracle: fails unless `lo <= at <= hi` ("`what`: 3ms before the
/// window", with the window's width).
pub fn between<T: Span>(what: &str, at: T, lo: T, hi: T) -> Result<(), Failure> {
    let off = if at < lo {
        format!("{:?} before", lo.since(at))
    } else if at > hi {
        format!("{:?} after", at.since(hi))
    } else {
        return Ok(());
    };
    Err(Failure::correctness(format!(
        "{what}: {off} the window ({:?} wide)",
        hi.since(lo)
    )))
}
