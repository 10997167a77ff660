//! Why an outbound request got no answer: each a clear error the session passes on.

use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressError {
    /// The target is not `[http://]HOST:PORT[/PATH]`.
    BadTarget { target: String, why: String },
    /// Egress is down and the buffer holds its bound already.
    BufferFull { bound: usize },
    /// Egress stayed down longer than a request may wait.
    Expired { waited: Duration, bound: Duration },
    /// The target's host refused the connection (nothing listens there): the network
    /// is up, so this fails the request alone and does not mark egress down.
    Refused { target: String },
    /// The outside host answered with a status other than 2xx.
    Status { status: u16 },
    /// The answer is longer than the bound.
    TooLarge { bound: usize },
    /// The engine stopped waiting for it (its host is going away).
    Abandoned,
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgressError::BadTarget { target, why } => {
                write!(f, "bad egress target {target:?}: {why}")
            }
            EgressError::BufferFull { bound } => write!(
                f,
                "egress is down and {bound} requests already wait for it: request refused"
            ),
            EgressError::Expired { waited, bound } => write!(
                f,
                "egress stayed down: the request waited {} s, longer than the {} s allowed",
                waited.as_secs(),
                bound.as_secs()
            ),
            EgressError::Refused { target } => {
                write!(f, "{target} refused the connection: nothing listens there")
            }
            EgressError::Status { status } => write!(f, "the outside host answered {status}"),
            EgressError::TooLarge { bound } => {
                write!(f, "the outside host's answer is over {bound} bytes")
            }
            EgressError::Abandoned => f.write_str("the request was abandoned by the engine"),
        }
    }
}

impl std::error::Error for EgressError {}
