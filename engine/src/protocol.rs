//! The client channel's messages: JSON text frames over a WebSocket, tagged by `"type"`,
//! carrying the protocol version `v`.
//!
//! Decoding is forgiving where forward compatibility needs it (an unknown `type` is a
//! typed, non-fatal error) and strict elsewhere (a known type with bad fields is
//! `invalid_message`). Every failure is an [`ErrorCode`] the client can act on; nothing
//! a client sends can make the server panic.

use serde::{Deserialize, Serialize};

/// Carried in every server message; a client may send it too (another value is refused).
pub const PROTOCOL_VERSION: u32 = 1;

/// Client → server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// A user message: starts a query (or queues it, or is refused while one runs).
    Query {
        text: String,
        /// How the model is asked (model, beta features); absent: the engine's defaults.
        #[serde(default, skip_serializing_if = "QueryOptions::is_default")]
        options: QueryOptions,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        v: Option<u32>,
    },
    /// Stops the running query; a no-op when none runs.
    Interrupt {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        v: Option<u32>,
    },
    /// A fresh token over the open socket (answer to `refresh_required`).
    RefreshToken {
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        v: Option<u32>,
    },
    /// Everything up to `seq` was received: the server may trim its replay log there.
    Ack {
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        v: Option<u32>,
    },
    /// More time for the session (answer to `session_ending`), a limited number of
    /// times.
    Extend {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        v: Option<u32>,
    },
}

/// A query's options, as the client asks for them. The engine builds the model call's
/// options from these: a model or beta name it does not know is replaced (the default
/// model) or left out (the beta), with a `warning` to the client, never a failure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryOptions {
    /// The model to answer (the engine's default when absent). Once given, it stays the
    /// session's model for later queries, until another is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Beta features to ask the model API for (`anthropic-beta`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub betas: Vec<String>,
    /// The tools the model may ask the engine to run for this query (`read`);
    /// none: the model answers in one turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// The most model calls (turns) this query may take (the engine's default when
    /// absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    /// The session's spending cap, in US dollars: from now on its queries stop once it
    /// is spent. Once given, it stays the session's cap until another is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<Usd>,
    /// A JSON schema the final answer must match (structured output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
}

/// An amount of US dollars, held in millionths (exact arithmetic, deterministic); on
/// the wire a JSON number of dollars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd {
    pub micros: u64,
}

impl Usd {
    pub fn from_micros(micros: u64) -> Self {
        Usd { micros }
    }

    pub fn dollars(self) -> f64 {
        self.micros as f64 / 1e6
    }
}

impl std::fmt::Display for Usd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${:.6}", self.dollars())
    }
}

impl Serialize for Usd {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dollars = f64::deserialize(d)?;
        // A billion dollars bounds the millionths well inside u64.
        if !(0.0..=1e9).contains(&dollars) {
            return Err(serde::de::Error::custom(format!(
                "an amount of dollars must be between 0 and 1e9, not {dollars}"
            )));
        }
        Ok(Usd {
            micros: (dollars * 1e6).round() as u64,
        })
    }
}

impl QueryOptions {
    pub fn is_default(&self) -> bool {
        self == &QueryOptions::default()
    }
}

impl ClientMessage {
    const TYPES: [&'static str; 5] = ["query", "interrupt", "refresh_token", "ack", "extend"];

    fn version(&self) -> Option<u32> {
        match self {
            ClientMessage::Query { v, .. }
            | ClientMessage::Interrupt { v }
            | ClientMessage::Extend { v }
            | ClientMessage::RefreshToken { v, .. }
            | ClientMessage::Ack { v, .. } => *v,
        }
    }
}

/// Why a client frame was not acted on (the `code` of an `error` message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    UnknownMessageType,
    InvalidMessage,
    UnsupportedVersion,
    BinaryNotSupported,
    MessageTooLarge,
    QueryInProgress,
    TokenExpired,
    Unauthorized,
    RateLimited,
    ServerShuttingDown,
    InvalidSequence,
    SessionNotFound,
    SessionAlreadyActive,
    ReplayGap,
    ToolDenied,
    SessionEnded,
    WorkerUnavailable,
    ExtensionRefused,
    /// The model API is rate limiting: the query failed, the session is kept.
    UpstreamRateLimited,
    /// The model API cannot be reached: the query failed, the session is kept, and a
    /// status `upstream_available` follows when it is back.
    UpstreamUnavailable,
    /// The model's streamed answer broke off: the query failed, the deltas it sent are
    /// to be discarded, the session is kept and the query may be sent again.
    AnswerBrokeOff,
    /// The model asked for does not exist at the model API: the query failed, the
    /// session is kept.
    ModelNotFound,
    /// The model API refused the request as invalid (an unsupported beta feature, say):
    /// the query failed, the session is kept.
    UpstreamRejected,
    /// What was asked for (a stored result, say) does not exist.
    NotFound,
    /// The query used its `max_turns` model calls: its result is incomplete; raise the
    /// limit or continue in a new query.
    MaxTurns,
    /// The session's spending cap is spent: the query stopped, its result is incomplete.
    BudgetExceeded,
    /// The final answer still did not match the output schema after the retries: the
    /// unstructured answer follows.
    StructuredOutputInvalid,
    /// An outbound request (a `fetch`) failed: egress stayed down past the age bound,
    /// its buffer was full, or the target was bad or answered an error. The query
    /// failed, the session is kept.
    EgressUnavailable,
}

/// A decoding failure: its code and a short detail (at most [`DETAIL_CHARS_MAX`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub detail: String,
}

/// Error details quote client input; this bounds what one frame can make us log or send.
pub const DETAIL_CHARS_MAX: usize = 200;

fn frame_error(code: ErrorCode, detail: impl AsRef<str>) -> FrameError {
    let detail: String = detail.as_ref().chars().take(DETAIL_CHARS_MAX).collect();
    FrameError { code, detail }
}

/// Decodes one text frame of at most `chars_max` characters (the limit is inclusive).
pub fn decode_client(text: &str, chars_max: usize) -> Result<ClientMessage, FrameError> {
    // Bytes bound characters from above: only long frames pay for counting.
    if text.len() > chars_max && text.chars().count() > chars_max {
        return Err(frame_error(
            ErrorCode::MessageTooLarge,
            format!("frames are limited to {chars_max} characters"),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| frame_error(ErrorCode::InvalidJson, e.to_string()))?;
    let kind = value.get("type").and_then(|t| t.as_str()).ok_or_else(|| {
        frame_error(
            ErrorCode::InvalidMessage,
            "a message needs a string \"type\"",
        )
    })?;
    if !ClientMessage::TYPES.contains(&kind) {
        return Err(frame_error(
            ErrorCode::UnknownMessageType,
            format!("unknown message type {kind:?} (ignored)"),
        ));
    }
    let message: ClientMessage = serde_json::from_value(value)
        .map_err(|e| frame_error(ErrorCode::InvalidMessage, e.to_string()))?;
    match message.version() {
        Some(v) if v != PROTOCOL_VERSION => Err(frame_error(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {v}; this server speaks {PROTOCOL_VERSION}"),
        )),
        _ => Ok(message),
    }
}

/// Server → client: what happened. Wrapped in a [`ServerMessage`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerEvent {
    /// The first message of every connection.
    Welcome {
        session_id: String,
        /// The connection resumed an existing stream (`last_seq` given).
        resumed: bool,
        /// Why the session is not the one asked for (missing, corrupted…).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        notice: Option<String>,
        /// This connection's stream continues after this number: 0 for the first
        /// connection of a new session, the server's last number for another tab
        /// joining a live one, the client's `last_seq` (or the end of a gap) for a
        /// reconnect.
        last_seq: u64,
    },
    /// The session's lifecycle state changed (`idle`, `processing`, `restarting`).
    Status {
        state: String,
    },
    /// The message was queued behind the running query, at this position.
    Queued {
        query: u64,
        position: u32,
    },
    /// One streamed part of the model's answer to a query, in order, before the worker
    /// carries it out. An `answer_broke_off` error for the query says to discard them.
    ModelDelta {
        query: u64,
        text: String,
        /// The model call (turn) of the query it belongs to, from 1 (absent: 1). A
        /// query's result is its last turn's answer: a new turn's deltas replace the
        /// earlier ones (a structured answer asked for again, say).
        #[serde(default = "first_turn", skip_serializing_if = "is_first_turn")]
        turn: u32,
    },
    /// Something the user should know that did not stop the query (`kind`:
    /// `model_unknown`, `beta_unknown`, `model_fallback`, `upstream_slow`,
    /// `tool_unknown`, `budget_warning`, `context_compacted`, `structured_output_retry`,
    /// `egress_degraded`, `egress_restored`).
    Warning {
        kind: String,
        message: String,
    },
    /// One streamed part of a query's answer.
    Delta {
        query: u64,
        text: String,
    },
    /// A query's final answer. `truncated`: `text` is a prefix; the whole answer is at
    /// `GET /sessions/{session}/results/{query}`. `subtype` says why an answer is not
    /// the one asked for (`error_max_turns`, `error_max_budget_usd`,
    /// `error_max_structured_output_retries`): it comes after the error saying so.
    Result {
        query: u64,
        text: String,
        truncated: bool,
        bytes: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subtype: Option<String>,
    },
    /// The running query was interrupted.
    Interrupted {
        query: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// The token expires soon: send `refresh_token` over this socket.
    RefreshRequired {
        expires_in_ms: u64,
    },
    TokenRefreshed {
        expires_unix_s: u64,
    },
    /// The session ends in `remaining_ms` (duration limit, shutdown).
    SessionEnding {
        remaining_ms: u64,
        reason: String,
    },
    SessionEnded {
        reason: String,
    },
    /// An extension was granted: the session now ends in `remaining_ms`.
    SessionExtended {
        remaining_ms: u64,
        extensions_left: u32,
    },
    /// The user's role changed: these tools are no longer allowed.
    PermissionsChanged {
        role: String,
        removed_tools: Vec<String>,
    },
    /// This connection was replaced by a newer one for the same session.
    Replaced {
        reason: String,
    },
}

fn first_turn() -> u32 {
    1
}

fn is_first_turn(turn: &u32) -> bool {
    *turn == 1
}

/// One server message: version, sequence number and event. `seq` is present on every
/// message of a session's stream (gap-free from 1, replayable); it is absent only on the
/// last message of a connection that is being refused or displaced (`replaced`,
/// `invalid_sequence`, `session_not_found`), which belongs to no session stream, on the
/// `session_ended` of a stream whose 64-bit numbers ran out, and on a `replay_gap`
/// notice, which a connection gets before the stream goes on past messages no longer
/// held. A session restored from the store after a restart numbers on from `k * 2^32`
/// (its k-th restore): a client holding a number from before is behind, gets a
/// `replay_gap` for what it may have missed, and keeps its session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMessage {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(flatten)]
    pub event: ServerEvent,
}

impl ServerMessage {
    pub fn sequenced(seq: u64, event: ServerEvent) -> Self {
        ServerMessage {
            v: PROTOCOL_VERSION,
            seq: Some(seq),
            event,
        }
    }

    pub fn control(event: ServerEvent) -> Self {
        ServerMessage {
            v: PROTOCOL_VERSION,
            seq: None,
            event,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }

    pub fn decode(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("bad server message: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_decode_with_typed_errors() {
        assert_eq!(
            decode_client(r#"{"type":"query","text":"hi"}"#, 100),
            Ok(ClientMessage::Query {
                text: "hi".into(),
                options: QueryOptions::default(),
                v: None
            })
        );
        let code = |t: &str| decode_client(t, 100).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownMessageType);
        assert_eq!(code(r#"{"text":"x"}"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"query"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code(r#"{"type":"interrupt","v":2}"#),
            ErrorCode::UnsupportedVersion
        );
        assert_eq!(code("[1,2]"), ErrorCode::InvalidMessage);
    }

    #[test]
    fn the_size_limit_is_inclusive_and_counts_characters() {
        let frame = |n: usize| format!(r#"{{"type":"query","text":"{}"}}"#, "é".repeat(n));
        let exact = frame(10);
        let limit = exact.chars().count();
        assert!(
            exact.len() > limit,
            "multi-byte characters make bytes exceed chars"
        );
        assert!(decode_client(&exact, limit).is_ok());
        assert_eq!(
            decode_client(&frame(11), limit).unwrap_err().code,
            ErrorCode::MessageTooLarge
        );
    }

    #[test]
    fn details_are_bounded() {
        let long_type = format!(r#"{{"type":"{}"}}"#, "x".repeat(10_000));
        let e = decode_client(&long_type, 1_000_000).unwrap_err();
        assert!(e.detail.chars().count() <= DETAIL_CHARS_MAX);
    }

    #[test]
    fn server_messages_round_trip_with_version_and_seq() {
        let m = ServerMessage::sequenced(
            7,
            ServerEvent::Result {
                query: 1,
                text: "x".into(),
                truncated: true,
                bytes: 10,
                subtype: None,
            },
        );
        let text = m.encode();
        assert!(text.contains(r#""v":1"#) && text.contains(r#""seq":7"#));
        assert_eq!(ServerMessage::decode(&text), Ok(m));
        let c = ServerMessage::control(ServerEvent::Replaced { reason: "x".into() });
        assert!(!c.encode().contains("seq"));
    }
}
