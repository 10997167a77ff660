//! A session's time limits as a pure core: given its history and `now`, what is due
//! next and when. The async shell sleeps until the deadline and applies the action.

use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Longest a session may live (before extensions).
    pub duration: Duration,
    /// Extra time an in-flight query gets once the duration is reached.
    pub grace: Duration,
    /// A session whose user never sends a first message is reclaimed after this.
    pub first_message_timeout: Duration,
    /// A session with no message for this long is reclaimed.
    pub idle_timeout: Duration,
}

impl SessionLimits {
    /// 4 hours, 30 s of grace, 5 minutes to a first message, 30 minutes idle.
    pub const DEFAULT: SessionLimits = SessionLimits {
        duration: Duration::from_secs(4 * 3600),
        grace: Duration::from_secs(30),
        first_message_timeout: Duration::from_secs(300),
        idle_timeout: Duration::from_secs(1800),
    };

    pub fn check(&self) {
        assert!(
            !self.duration.is_zero(),
            "session duration must be positive"
        );
        assert!(
            self.first_message_timeout <= self.idle_timeout,
            "the first-message timeout must not exceed the idle timeout"
        );
    }

    /// The warning goes out at 90% of the duration.
    pub fn warn_at(&self) -> Duration {
        self.duration / 10 * 9
    }
}

/// What a limit asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitAction {
    /// Tell the client the session ends in `remaining`.
    Warn { remaining: Duration },
    /// The session ends now, for `reason`.
    End { reason: &'static str },
}

/// One session's limit bookkeeping; times are since an arbitrary monotonic origin.
#[derive(Clone, Debug)]
pub struct LimitClock {
    limits: SessionLimits,
    created: Duration,
    last_message: Option<Duration>,
    warned: bool,
}

impl LimitClock {
    pub fn new(limits: SessionLimits, created: Duration) -> Self {
        limits.check();
        LimitClock {
            limits,
            created,
            last_message: None,
            warned: false,
        }
    }

    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    pub fn on_message(&mut self, now: Duration) {
        self.last_message = Some(now);
    }

    /// The next action and when it is due. `processing`: a query is in flight (it gets
    /// the grace period past the duration, and idle timeouts do not apply).
    pub fn next(&self, processing: bool) -> (Duration, LimitAction) {
        let l = &self.limits;
        let end = self.created + l.duration;
        let mut due = if !self.warned {
            (
                self.created + l.warn_at(),
                LimitAction::Warn {
                    remaining: l.duration - l.warn_at(),
                },
            )
        } else if processing {
            (
                end + l.grace,
                LimitAction::End {
                    reason: "session duration limit reached (grace for the running query over)",
                },
            )
        } else {
            (
                end,
                LimitAction::End {
                    reason: "session duration limit reached",
                },
            )
        };
        if !processing {
            let (at, reason) = match self.last_message {
                None => (
                    self.created + l.first_message_timeout,
                    "no first message within the first-message timeout",
                ),
                Some(t) => (t + l.idle_timeout, "idle timeout"),
            };
            if at < due.0 {
                due = (at, LimitAction::End { reason });
            }
        }
        due
    }

    /// Records that the action due at `now` was applied.
    pub fn applied(&mut self, action: &LimitAction) {
        if let LimitAction::Warn { .. } = action {
            self.warned = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn limits() -> SessionLimits {
        SessionLimits {
            duration: S(1000),
            grace: S(30),
            first_message_timeout: S(50),
            idle_timeout: S(200),
        }
    }

    #[test]
    fn first_message_then_idle_then_duration() {
        let mut c = LimitClock::new(limits(), S(0));
        assert_eq!(
            c.next(false),
            (
                S(50),
                LimitAction::End {
                    reason: "no first message within the first-message timeout"
                }
            )
        );
        c.on_message(S(10));
        assert_eq!(
            c.next(false),
            (
                S(210),
                LimitAction::End {
                    reason: "idle timeout"
                }
            )
        );
        c.on_message(S(800));
        let (at, warn) = c.next(false);
        assert_eq!(
            (at, &warn),
            (S(900), &LimitAction::Warn { remaining: S(100) })
        );
        c.applied(&warn);
        assert_eq!(c.next(false).0, S(1000));
        assert_eq!(c.next(true).0, S(1030), "a running query gets the grace");
    }
}
