//! Whether a failed model call is tried again, and after how long (sans-IO).
//!
//! Transient failures (a 5xx, an overloaded model, no answer in time, a connection
//! reset) are retried a bounded number of times, each after an exponential delay with
//! full jitter (the one backoff rule, `workers::retry`), so many sessions failing
//! together spread their retries out. Never once a byte of the answer was streamed:
//! the user has seen it, and a second answer would repeat or contradict it. A 429 is
//! not retried here either: the instance's rate-limit window holds every session back
//! together, and the user is told.

use super::error::UpstreamError;
use crate::workers::retry::{RetryPolicy, RetrySchedule};
use std::time::Duration;

/// The upstream's retry schedule: 3 retries after delays of up to 0.5, 1 and 2 s (full
/// jitter: each drawn from zero to its nominal value), within 10 s in all.
pub fn upstream_retry_policy() -> RetryPolicy {
    RetryPolicy {
        initial_wait: Duration::ZERO,
        delay_first: Duration::from_millis(500),
        factor: 2,
        delay_max: Duration::from_secs(8),
        attempts_max: 3,
        total_max: Duration::from_secs(10),
        jitter_percent: 100,
    }
}

/// What to do after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryVerdict {
    /// Try again after this long.
    After(Duration),
    /// Give the error to the caller.
    GiveUp(GiveUpReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUpReason {
    /// The failure is not one a retry can fix (rate limiting, an open breaker, an
    /// unusable answer).
    NotTransient,
    /// Part of the answer already reached the session.
    Streamed,
    /// The retries, the time allowed for their delays or the call's deadline are spent.
    Exhausted,
}

/// The retries of one model call.
#[derive(Clone, Debug)]
pub struct CallRetry {
    schedule: RetrySchedule,
}

impl CallRetry {
    pub fn new(policy: RetryPolicy) -> Self {
        CallRetry {
            schedule: RetrySchedule::new(policy),
        }
    }

    /// Retries handed out so far.
    pub fn retries(&self) -> u32 {
        self.schedule.attempts()
    }

    /// An attempt failed with `error` after `streamed_bytes` bytes of its answer were
    /// forwarded; `random` is a fresh draw for the jitter; `remaining` is what is left of
    /// the call's deadline (a retry that could not start before it is not made).
    pub fn handle_failure(
        &mut self,
        error: &UpstreamError,
        streamed_bytes: usize,
        random: u64,
        remaining: Duration,
    ) -> RetryVerdict {
        if streamed_bytes > 0 {
            return RetryVerdict::GiveUp(GiveUpReason::Streamed);
        }
        if !error.is_transient() {
            return RetryVerdict::GiveUp(GiveUpReason::NotTransient);
        }
        // A retry past the deadline is not made, nor counted.
        let mut schedule = self.schedule.clone();
        match schedule.next_delay(random) {
            Some(delay) if delay < remaining => {
                self.schedule = schedule;
                RetryVerdict::After(delay)
            }
            Some(_) | None => RetryVerdict::GiveUp(GiveUpReason::Exhausted),
        }
    }
}
