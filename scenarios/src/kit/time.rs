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

/// A point in time or a span: what [`between`] compares.
pub trait Span: Copy + PartialOrd + std::fmt::Debug {
    /// `self - earlier`, or zero if `earlier` is later.
    fn since(self, earlier: Self) -> Duration;
}

impl Span for Duration {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_sub(earlier)
    }
}

impl Span for tokio::time::Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
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
