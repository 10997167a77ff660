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
    /// What one extension asked for by the user adds to the duration.
    pub extension: Duration,
    /// How many extensions a session may have.
    pub extensions_max: u32,
    /// A session no client is attached to for this long is parked: it ends here, its
    /// worker and its place under the session limit freed, its record kept in the store
    /// so its owner can resume it later (an abandoned tab must not hold a worker for the
    /// whole idle timeout).
    pub detached_max: Duration,
}

impl SessionLimits {
    /// 4 hours, 30 s of grace, 5 minutes to a first message, 30 minutes idle, at most
    /// two extensions of an hour, parked after 10 minutes without a client.
    pub const DEFAULT: SessionLimits = SessionLimits {
        duration: Duration::from_secs(4 * 3600),
        grace: Duration::from_secs(30),
        first_message_timeout: Duration::from_secs(300),
        idle_timeout: Duration::from_secs(1800),
        extension: Duration::from_secs(3600),
        extensions_max: 2,
        detached_max: Duration::from_secs(600),
    };

    pub fn check(&self) {
        assert!(
            !self.duration.is_zero(),
            "session duration must be positive"
        );
        assert!(
            !self.detached_max.is_zero(),
            "detached_max must be positive"
        );
        assert!(
            self.first_message_timeout <= self.idle_timeout,
            "the first-message timeout must not exceed the idle timeout"
        );
    }

    /// The warning goes out at 90% of the duration (after `extensions` extensions).
    pub fn warn_at(&self, extensions: u32) -> Duration {
        self.extended(extensions) / 10 * 9
    }

    /// The duration after `extensions` extensions.
    pub fn extended(&self, extensions: u32) -> Duration {
        self.duration + self.extension * extensions
    }
}

/// What a limit asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum LimitAction {
    /// Tell the client the session ends in `remaining`.
    Warn { remaining: Duration },
    /// The session ends now, because of `limit`.
    End { limit: Limit },
}

/// The limit that ends a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Limit {
    /// The duration (with its extensions) is over and no query runs.
    Duration,
    /// The duration is over and the grace of the running query too.
    DurationGrace,
    /// The user never sent a first message.
    FirstMessage,
    Idle,
}

impl Limit {
    /// Why the session ended, as its client is told.
    pub(super) fn reason(self) -> &'static str {
        match self {
            Limit::Duration => "session duration limit reached",
            Limit::DurationGrace => {
                "session duration limit reached (grace for the running query over)"
            }
            Limit::FirstMessage => "no first message within the first-message timeout",
            Limit::Idle => "idle timeout",
        }
    }

    /// Says that the engine met this limit (it ends a session).
    pub(super) fn met(self) {
        let reason = self.reason();
        match self {
            Limit::Duration | Limit::DurationGrace => {
                crate::met!("sessions.duration_limit", "the session ends: {reason}")
            }
            Limit::FirstMessage => crate::met!("client.silent", "the session ends: {reason}"),
            Limit::Idle => crate::met!("sessions.idle_timeout", "the session ends: {reason}"),
        }
    }
}

/// One session's limit bookkeeping; times are since an arbitrary monotonic origin.
#[derive(Clone, Debug)]
pub(super) struct LimitClock {
    limits: SessionLimits,
    created: Duration,
    last_message: Option<Duration>,
    warned: bool,
    extensions: u32,
}

impl LimitClock {
    pub(super) fn new(limits: SessionLimits, created: Duration) -> Self {
        limits.check();
        LimitClock {
            limits,
            created,
            last_message: None,
            warned: false,
            extensions: 0,
        }
    }

    pub(super) fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// The user asked for more time: the end moves by one extension and a new warning
    /// goes out at 90% of the longer duration. `None`: no extension is left.
    pub(super) fn extend(&mut self, now: Duration) -> Option<Duration> {
        if self.extensions >= self.limits.extensions_max {
            return None;
        }
        self.extensions += 1;
        self.warned = false;
        let end = self.created + self.limits.extended(self.extensions);
        Some(end.saturating_sub(now))
    }

    pub(super) fn extensions(&self) -> u32 {
        self.extensions
    }

    pub(super) fn on_message(&mut self, now: Duration) {
        self.last_message = Some(now);
    }

    /// The next action and when it is due. `processing`: a query is in flight (it gets
    /// the grace period past the duration, and idle timeouts do not apply).
    pub(super) fn next(&self, processing: bool) -> (Duration, LimitAction) {
        let l = &self.limits;
        let duration = l.extended(self.extensions);
        let end = self.created + duration;
        let warn_at = l.warn_at(self.extensions);
        let mut due = if !self.warned {
            (
                self.created + warn_at,
                LimitAction::Warn {
                    remaining: duration - warn_at,
                },
            )
        } else if processing {
            (
                end + l.grace,
                LimitAction::End {
                    limit: Limit::DurationGrace,
                },
            )
        } else {
            (
                end,
                LimitAction::End {
                    limit: Limit::Duration,
                },
            )
        };
        if !processing {
            let (at, limit) = match self.last_message {
                None => (self.created + l.first_message_timeout, Limit::FirstMessage),
                Some(t) => (t + l.idle_timeout, Limit::Idle),
            };
            if at < due.0 {
                due = (at, LimitAction::End { limit });
            }
        }
        due
    }

    /// Records that the action due at `now` was applied.
    pub(super) fn applied(&mut self, action: &LimitAction) {
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
            extension: S(500),
            extensions_max: 2,
            detached_max: S(10_000),
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
                    limit: Limit::FirstMessage
                }
            )
        );
        c.on_message(S(10));
        assert_eq!(
            c.next(false),
            (S(210), LimitAction::End { limit: Limit::Idle })
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

    #[test]
    fn extensions_move_the_end_and_warn_again_at_most_twice() {
        let mut c = LimitClock::new(limits(), S(0));
        c.on_message(S(850));
        let (_, warn) = c.next(false);
        c.applied(&warn);
        assert_eq!(c.extend(S(950)), Some(S(550)), "end moves to 1500");
        c.on_message(S(1340));
        assert_eq!(
            c.next(false),
            (S(1350), LimitAction::Warn { remaining: S(150) }),
            "a new warning at 90% of 1500"
        );
        assert_eq!(c.extend(S(960)), Some(S(1040)));
        assert_eq!(c.extend(S(970)), None, "two extensions at most");
        assert_eq!(c.extensions(), 2);
    }
}
