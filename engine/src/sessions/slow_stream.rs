//! Whether a streamed answer is too slow to leave unsaid (sans-IO): from its first
//! delta on, the stream is judged window by window; a window with fewer deltas than the
//! minimum (a delta standing for a token) makes the one warning of the query.

use std::time::Duration;

#[derive(Clone, Debug)]
pub(crate) struct SlowStream {
    window: Duration,
    tokens_min: u32,
    /// When the window being judged began (`None` before the first delta).
    window_start: Option<Duration>,
    in_window: u32,
    warned: bool,
}

impl SlowStream {
    pub(crate) fn new(window: Duration, tokens_min: u32) -> Self {
        assert!(!window.is_zero(), "a slow-stream window must be positive");
        SlowStream {
            window,
            tokens_min,
            window_start: None,
            in_window: 0,
            warned: false,
        }
    }

    pub(crate) fn handle_delta(&mut self, now: Duration) {
        self.window_start.get_or_insert(now);
        self.in_window = self.in_window.saturating_add(1);
    }

    /// When the current window is to be judged (`None`: nothing to judge).
    pub(crate) fn next_check(&self) -> Option<Duration> {
        match (self.warned, self.window_start) {
            (false, Some(start)) => Some(start + self.window),
            _ => None,
        }
    }

    /// The window's end came: the warning, if it was too slow.
    pub(crate) fn handle_check(&mut self, now: Duration) -> Option<String> {
        let end = self.next_check()?;
        if now < end {
            return None;
        }
        if self.in_window < self.tokens_min {
            self.warned = true;
            return Some(format!(
                "the model API is slow: {} tokens in the last {} s (below {} a second)",
                self.in_window,
                self.window.as_secs(),
                self.tokens_min as f64 / self.window.as_secs_f64()
            ));
        }
        self.window_start = Some(end);
        self.in_window = 0;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_stream_below_the_rate_is_warned_once_and_a_fast_one_never() {
        let mut slow = SlowStream::new(s(10), 10);
        assert_eq!(
            slow.next_check(),
            None,
            "nothing judged before the first delta"
        );
        for t in 0..5 {
            slow.handle_delta(s(2 * t));
        }
        assert_eq!(slow.next_check(), Some(s(10)));
        assert!(
            slow.handle_check(s(9)).is_none(),
            "not before the window ends"
        );
        assert!(slow.handle_check(s(10)).unwrap().contains("5 tokens"));
        assert_eq!(slow.next_check(), None, "one warning per query");

        let mut fast = SlowStream::new(s(10), 10);
        for window in 0..5u64 {
            for i in 0..10 {
                fast.handle_delta(s(10 * window) + Duration::from_millis(900 * i));
            }
            assert!(fast.handle_check(s(10 * (window + 1))).is_none());
        }
    }
}
