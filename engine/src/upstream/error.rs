use std::fmt;
use std::time::Duration;

/// Why an upstream call gave no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// 429, or a call held back inside the rate-limit window a 429 opened.
    RateLimited { retry_after: Duration },
    /// Not reached, no answer within the timeout, or a 5xx.
    Unavailable { detail: String },
    /// The breaker is open: not even tried.
    CircuitOpen { retry_in: Duration },
    /// An answer we cannot use (bad status, bad JSON, too large).
    Malformed { detail: String },
    /// The caller stopped taking the streamed answer (its query was interrupted).
    Abandoned,
    /// The API refused the engine's key (401 or 403): a configuration error, which no
    /// retry and no waiting fixes.
    KeyRejected { status: u16, detail: String },
    /// The API does not know the model asked for (404).
    ModelNotFound { model: String, detail: String },
    /// The API refused the request as invalid (400: an unsupported beta feature, say).
    Rejected { status: u16, detail: String },
    /// The streamed answer broke off after `partial_bytes` bytes reached the caller:
    /// they are to be discarded; not retried (the user saw them), but the query may be
    /// sent again.
    BrokeOff {
        partial_bytes: usize,
        detail: String,
    },
}

impl UpstreamError {
    /// Whether trying again soon may succeed: the upstream was unreachable, did not
    /// answer in time, failed with a 5xx or dropped the connection.
    pub fn is_transient(&self) -> bool {
        matches!(self, UpstreamError::Unavailable { .. })
    }

    /// When trying again makes sense, if the error says.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            UpstreamError::RateLimited { retry_after } => Some(*retry_after),
            UpstreamError::CircuitOpen { retry_in } => Some(*retry_in),
            _ => None,
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::RateLimited { retry_after } => write!(
                f,
                "the model API is rate limiting: retry in {} s",
                retry_after.as_secs().max(1)
            ),
            UpstreamError::Unavailable { detail } => {
                write!(f, "the model API is unavailable: {detail}")
            }
            UpstreamError::CircuitOpen { retry_in } => write!(
                f,
                "the model API is unavailable (circuit open, next try in {} s)",
                retry_in.as_secs().max(1)
            ),
            UpstreamError::Malformed { detail } => {
                write!(f, "the model API gave an unusable answer: {detail}")
            }
            UpstreamError::Abandoned => f.write_str("the streamed answer was no longer wanted"),
            UpstreamError::KeyRejected { status, detail } => write!(
                f,
                "the model API refused the engine's API key (HTTP {status}): {detail}"
            ),
            UpstreamError::ModelNotFound { model, detail } => {
                write!(f, "the model API has no model {model:?}: {detail}")
            }
            UpstreamError::Rejected { status, detail } => {
                write!(
                    f,
                    "the model API refused the request (HTTP {status}): {detail}"
                )
            }
            UpstreamError::BrokeOff {
                partial_bytes,
                detail,
            } => write!(
                f,
                "the model's answer broke off after {partial_bytes} bytes ({detail})"
            ),
        }
    }
}

impl std::error::Error for UpstreamError {}
