//! A session's lifecycle: idle → processing → idle, idle → restarting → idle, and
//! terminated from anywhere. Every transition is checked; an illegal one is an error
//! naming the state and the event, never a silent change.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Idle,
    Processing,
    /// Its worker is being replaced (memory, crash); messages wait.
    Restarting,
    Terminated,
}

impl SessionState {
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Idle => "idle",
            SessionState::Processing => "processing",
            SessionState::Restarting => "restarting",
            SessionState::Terminated => "terminated",
        }
    }
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    QueryStarted,
    QueryFinished,
    /// Restarts begin only between queries (a memory restart waits for the answer).
    RestartBegun,
    RestartDone,
    Terminate,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IllegalTransition {
    pub from: SessionState,
    pub event: SessionEvent,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} session cannot take {:?}", self.from, self.event)
    }
}

/// The state after `event`, or why it is not allowed.
pub(super) fn next(
    from: SessionState,
    event: SessionEvent,
) -> Result<SessionState, IllegalTransition> {
    use SessionEvent as E;
    use SessionState as S;
    match (from, event) {
        (S::Idle, E::QueryStarted) => Ok(S::Processing),
        (S::Processing, E::QueryFinished) => Ok(S::Idle),
        (S::Idle, E::RestartBegun) => Ok(S::Restarting),
        (S::Restarting, E::RestartDone) => Ok(S::Idle),
        (S::Terminated, _) => Err(IllegalTransition { from, event }),
        (_, E::Terminate) => Ok(S::Terminated),
        _ => Err(IllegalTransition { from, event }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionEvent as E;
    use SessionState as S;

    #[test]
    fn the_legal_paths_and_only_those() {
        let all_states = [S::Idle, S::Processing, S::Restarting, S::Terminated];
        let all_events = [
            E::QueryStarted,
            E::QueryFinished,
            E::RestartBegun,
            E::RestartDone,
            E::Terminate,
        ];
        let legal = [
            (S::Idle, E::QueryStarted, S::Processing),
            (S::Processing, E::QueryFinished, S::Idle),
            (S::Idle, E::RestartBegun, S::Restarting),
            (S::Restarting, E::RestartDone, S::Idle),
            (S::Idle, E::Terminate, S::Terminated),
            (S::Processing, E::Terminate, S::Terminated),
            (S::Restarting, E::Terminate, S::Terminated),
        ];
        for s in all_states {
            for e in all_events {
                let expected = legal.iter().find(|(f, ev, _)| *f == s && *ev == e);
                match (next(s, e), expected) {
                    (Ok(to), Some((_, _, want))) => assert_eq!(to, *want),
                    (Err(err), None) => assert!(err.to_string().contains(s.name())),
                    (got, want) => panic!("{s:?} + {e:?}: got {got:?}, expected {want:?}"),
                }
            }
        }
    }
}
