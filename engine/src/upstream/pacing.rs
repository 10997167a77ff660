//! The pace of calls to the model API, from its rate-limit headers (sans-IO).
//!
//! Each answer may say how many requests the account has left until its window resets
//! (`anthropic-ratelimit-requests-{limit,remaining,reset}`). While more than a fifth
//! is left, calls go at once. Below that, the calls left are spread evenly over the
//! time left, so the account reaches its limit at the reset instead of meeting 429s
//! before it; with none left, calls wait for the reset. One pacer serves every session
//! of an instance (it lives in the shared client), and each call sent counts against
//! the estimate at once, so calls in flight together cannot all take the last slot.

use std::time::Duration;

/// What one answer said of the account's request budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateReport {
    pub limit: u64,
    pub remaining: u64,
    /// From when the answer was read to the window's reset.
    pub reset_in: Duration,
}

/// Pacing starts when at most this share of the limit is left.
pub const NEAR_PERCENT: u64 = 20;

#[derive(Clone, Debug, Default)]
pub struct Pacer {
    /// (limit, requests left by our estimate, when the window resets).
    window: Option<(u64, u64, Duration)>,
    last_sent: Option<Duration>,
}

impl Pacer {
    /// An answer's report, read at `now`. A report for the window already known can
    /// only lower the estimate (answers to calls sent earlier arrive late).
    pub fn handle_report(&mut self, now: Duration, report: RateReport) {
        let reset_at = now + report.reset_in;
        let remaining = match self.window {
            // The same window (resets agree within a second): keep the lower count.
            Some((_, left, at)) if at.abs_diff(reset_at) < Duration::from_secs(1) => {
                left.min(report.remaining)
            }
            _ => report.remaining,
        };
        self.window = Some((report.limit.max(1), remaining, reset_at));
    }

    /// How long a call must wait before it may be sent at `now` (zero: at once).
    pub fn poll_wait(&self, now: Duration) -> Duration {
        let Some((limit, left, reset_at)) = self.window else {
            return Duration::ZERO;
        };
        if now >= reset_at {
            return Duration::ZERO; // a new window: unknown until its first answer
        }
        let time_left = reset_at - now;
        if left == 0 {
            return time_left;
        }
        if left * 100 > limit * NEAR_PERCENT {
            return Duration::ZERO;
        }
        let spacing = time_left / left as u32;
        match self.last_sent {
            // Never past the reset, whatever the last call's time.
            Some(last) => (last + spacing).saturating_sub(now).min(time_left),
            None => Duration::ZERO,
        }
    }

    /// A call was sent at `now`: it counts against the window at once.
    pub fn handle_sent(&mut self, now: Duration) {
        self.last_sent = Some(now);
        if let Some((_, left, reset_at)) = &mut self.window
            && now < *reset_at
        {
            *left = left.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn far_from_the_limit_calls_go_at_once_and_near_it_they_are_spread() {
        let mut p = Pacer::default();
        p.handle_report(
            s(0),
            RateReport {
                limit: 100,
                remaining: 50,
                reset_in: s(60),
            },
        );
        assert_eq!(p.poll_wait(s(0)), Duration::ZERO);
        p.handle_report(
            s(0),
            RateReport {
                limit: 100,
                remaining: 10,
                reset_in: s(60),
            },
        );
        p.handle_sent(s(0));
        // 9 left over 60 s: one every 6.66 s.
        let wait = p.poll_wait(s(0));
        assert!(wait > s(6) && wait < s(7), "{wait:?}");
    }

    #[test]
    fn with_none_left_calls_wait_for_the_reset_then_go() {
        let mut p = Pacer::default();
        p.handle_report(
            s(10),
            RateReport {
                limit: 5,
                remaining: 0,
                reset_in: s(30),
            },
        );
        assert_eq!(p.poll_wait(s(10)), s(30));
        assert_eq!(p.poll_wait(s(40)), Duration::ZERO);
    }

    #[test]
    fn a_late_report_cannot_raise_the_estimate_of_the_same_window() {
        let mut p = Pacer::default();
        p.handle_report(
            s(0),
            RateReport {
                limit: 10,
                remaining: 2,
                reset_in: s(60),
            },
        );
        p.handle_sent(s(0));
        p.handle_sent(s(0));
        p.handle_report(
            s(0),
            RateReport {
                limit: 10,
                remaining: 2,
                reset_in: s(60),
            },
        );
        assert_eq!(
            p.poll_wait(s(1)),
            s(59),
            "both slots taken by calls in flight"
        );
    }
}
