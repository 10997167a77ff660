//! The worker's line protocol: one JSON object per line, `\n`-terminated, tagged by its
//! `"type"`. The parent (the supervisor) sends [`Request`]s on the worker's stdin or on
//! its TCP endpoint; the worker answers with [`Reply`]s on the same channel.
//!
//! Decoding is strict (unknown types and unknown fields are errors) so that a parent and
//! a worker of different versions fail loudly instead of silently ignoring a field.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Sent in `Ready`; bumped on any incompatible change of the messages below.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest line either side accepts, without its newline. Longer lines are a
/// protocol error and are discarded up to the next newline.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// Parent → worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Ping {
        id: u64,
    },
    /// Streams one `Event` per whitespace-separated word of `input` (data = the word),
    /// then `Done`.
    Run {
        id: u64,
        input: String,
        /// Milliseconds to wait before each event: the pace of a streamed answer (a
        /// model emitting tokens), so a query has a duration the session can observe.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pace_ms: Option<u64>,
    },
    /// Writes a file of `bytes` bytes named `name` inside the cache directory; replies
    /// `Done` or `Error`.
    WriteCache {
        id: u64,
        name: String,
        bytes: u64,
    },
    /// Reads cache file `name` back (a use: it becomes the most recently used);
    /// replies `Done` or `Error`.
    ReadCache {
        id: u64,
        name: String,
    },
    /// Persists `state` (secrets scrubbed) to the snapshot file and makes it the
    /// worker's session state; replies `Done` or `Error`.
    Snapshot {
        id: u64,
        state: String,
    },
    /// Persists the worker's current session state (the last snapshot's, plus the
    /// input of every `Run` since) to the snapshot file: what the parent asks for
    /// before it stops a worker on its own account (memory at the limit).
    Checkpoint {
        id: u64,
    },
    /// Read-only mode on or off: while on, `WriteCache` is refused with `read_only`
    /// (the parent's answer to a disk near its quota).
    ReadOnly {
        id: u64,
        on: bool,
    },
    Stats {
        id: u64,
    },
    /// Graceful stop (stdin only): the worker replies `Bye` and exits 0.
    Shutdown,
}

/// Worker → parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// The first line a worker writes once it serves requests.
    Ready {
        pid: u32,
        /// The TCP endpoint's port, if the worker listens.
        port: Option<u16>,
        version: u32,
        snapshot: SnapshotState,
    },
    Pong {
        id: u64,
    },
    Event {
        id: u64,
        /// Per request, from 1.
        seq: u64,
        data: String,
        /// `data` is binary, base64-encoded (a `binary:N` word).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        binary: bool,
    },
    Done {
        id: u64,
    },
    /// `id` is `None` when the error is not about one request (a malformed line, bad
    /// arguments, a failed bind).
    Error {
        id: Option<u64>,
        code: ErrorCode,
        message: String,
    },
    Stats {
        id: u64,
        /// Well-formed requests received on every channel, this one included.
        requests: u64,
        /// Lines that were not a request (too long, not UTF-8, not JSON, unknown type).
        malformed_lines: u64,
        /// Cache files evicted to stay under the cache cap.
        #[serde(default)]
        cache_evictions: u64,
    },
    /// Liveness beat on stdout, from 1.
    Heartbeat {
        seq: u64,
    },
    /// The last line of a graceful shutdown.
    Bye,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line was not a request.
    Protocol,
    /// Bad arguments, or a request not allowed on this channel.
    Usage,
    /// The endpoint's port is taken.
    AddrInUse,
    /// ENOSPC.
    NoSpace,
    /// EMFILE or ENFILE.
    TooManyFiles,
    /// A path outside the worker's directories, or EACCES/EPERM.
    AccessDenied,
    /// Any other I/O failure.
    Io,
    /// The worker is stopping and takes no more work.
    ShuttingDown,
    /// The write would take the worker past its disk quota or cache cap.
    QuotaExceeded,
    /// The worker is in read-only mode and writes nothing.
    ReadOnly,
    /// No such cache file.
    NotFound,
}

impl ErrorCode {
    /// The code's wire name (`too_many_files`), the one messages show.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Protocol => "protocol",
            ErrorCode::Usage => "usage",
            ErrorCode::AddrInUse => "addr_in_use",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::TooManyFiles => "too_many_files",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::Io => "io",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::ReadOnly => "read_only",
            ErrorCode::NotFound => "not_found",
        }
    }
}

/// What the worker found in its snapshot file at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    /// No snapshot file configured, or none on disk.
    None,
    /// A valid snapshot was read.
    Restored,
    /// The snapshot was corrupt or unreadable; the worker started clean.
    CorruptFallback,
}

/// Why a line is not a message. The text says which class of problem it is (too long,
/// not UTF-8, not JSON, no or unknown type, bad fields) so a human reading a log knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub message: String,
}

impl ProtocolError {
    fn new(message: impl Into<String>) -> Self {
        ProtocolError {
            message: message.into(),
        }
    }

    /// The error for a line longer than [`LINE_BYTES_MAX`] (the line reader reports those
    /// without handing the bytes over).
    pub fn too_long() -> Self {
        ProtocolError::new(format!(
            "line is too long: the limit is {LINE_BYTES_MAX} bytes"
        ))
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// Encodes one message as a line: JSON and a `\n`.
pub fn encode_line<T: Serialize>(msg: &T) -> String {
    match serde_json::to_string(msg) {
        Ok(mut line) => {
            line.push('\n');
            line
        }
        // Our messages have no maps with non-string keys and no fallible `Serialize`, so
        // this cannot happen; if it ever does, the peer still gets a well-formed line.
        Err(e) => {
            let error = Reply::Error {
                id: None,
                code: ErrorCode::Protocol,
                message: format!("could not encode a message: {e}"),
            };
            serde_json::to_string(&error)
                .map(|line| line + "\n")
                .unwrap_or_else(|_| {
                    "{\"type\":\"error\",\"id\":null,\"code\":\"protocol\",\"message\":\"encoding failed\"}\n"
                        .to_string()
                })
        }
    }
}

pub fn decode_request(line: &[u8]) -> Result<Request, ProtocolError> {
    decode(line, "request")
}

pub fn decode_reply(line: &[u8]) -> Result<Reply, ProtocolError> {
    decode(line, "reply")
}

/// Longest piece of peer input quoted back in an error message.
const QUOTE_CHARS_MAX: usize = 64;
/// Longest decoder detail in an error message (it may quote peer input).
const DETAIL_CHARS_MAX: usize = 256;

fn decode<T: DeserializeOwned>(line: &[u8], what: &str) -> Result<T, ProtocolError> {
    // Tolerate the line ending if a caller passes it along (and a CRLF peer).
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > LINE_BYTES_MAX {
        return Err(ProtocolError::too_long());
    }
    let text = std::str::from_utf8(line).map_err(|e| {
        ProtocolError::new(format!(
            "line is not UTF-8: invalid byte at offset {}",
            e.valid_up_to()
        ))
    })?;
    // Parse in two steps so the error says whether the JSON or the message was wrong.
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new(format!("line is not JSON: {e}")))?;
    let kind = match value.get("type") {
        Some(serde_json::Value::String(kind)) => quote(kind),
        Some(_) => {
            return Err(ProtocolError::new(format!(
                "{what} has a \"type\" that is not a string"
            )));
        }
        None if value.is_object() => {
            return Err(ProtocolError::new(format!("{what} has no \"type\" field")));
        }
        None => {
            return Err(ProtocolError::new(format!(
                "{what} is not a JSON object: expected {{\"type\": ...}}"
            )));
        }
    };
    T::deserialize(value).map_err(|e| {
        // serde quotes the offending field or value whole; the peer chose it, so cut it.
        let detail = cut(&e.to_string(), DETAIL_CHARS_MAX);
        if detail.starts_with("unknown variant") {
            ProtocolError::new(format!("unknown {what} type {kind}"))
        } else {
            ProtocolError::new(format!("bad {what} of type {kind}: {detail}"))
        }
    })
}

/// `text` quoted for an error message, cut to [`QUOTE_CHARS_MAX`] characters.
fn quote(text: &str) -> String {
    format!("{:?}", cut(text, QUOTE_CHARS_MAX))
}

/// `text` cut to `chars_max` characters, with `…` when something was cut.
fn cut(text: &str, chars_max: usize) -> String {
    let mut cut: String = text.chars().take(chars_max).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_names_are_the_wire_names() {
        use ErrorCode::*;
        for code in [
            Protocol,
            Usage,
            AddrInUse,
            NoSpace,
            TooManyFiles,
            AccessDenied,
            Io,
            ShuttingDown,
            QuotaExceeded,
            ReadOnly,
            NotFound,
        ] {
            let wire = serde_json::to_string(&code).expect("serializes");
            assert_eq!(wire, format!("\"{}\"", code.name()));
        }
    }

    fn every_request() -> Vec<Request> {
        vec![
            Request::Ping { id: 1 },
            Request::Run {
                id: 2,
                input: "a b  c\n\"quoted\" ünïcode".to_string(),
                pace_ms: None,
            },
            Request::WriteCache {
                id: 3,
                name: "blob".to_string(),
                bytes: u64::MAX,
            },
            Request::Snapshot {
                id: 4,
                state: "line one\nline two".to_string(),
            },
            Request::Stats { id: 5 },
            Request::Shutdown,
        ]
    }

    fn every_reply() -> Vec<Reply> {
        vec![
            Reply::Ready {
                pid: 42,
                port: Some(8080),
                version: PROTOCOL_VERSION,
                snapshot: SnapshotState::CorruptFallback,
            },
            Reply::Ready {
                pid: 1,
                port: None,
                version: PROTOCOL_VERSION,
                snapshot: SnapshotState::None,
            },
            Reply::Pong { id: 1 },
            Reply::Event {
                id: 2,
                seq: 1,
                data: "word".to_string(),
                binary: false,
            },
            Reply::Done { id: 2 },
            Reply::Error {
                id: None,
                code: ErrorCode::TooManyFiles,
                message: "m".to_string(),
            },
            Reply::Error {
                id: Some(3),
                code: ErrorCode::ShuttingDown,
                message: String::new(),
            },
            Reply::Stats {
                id: 5,
                requests: 7,
                malformed_lines: 2,
                cache_evictions: 0,
            },
            Reply::Heartbeat { seq: 9 },
            Reply::Bye,
        ]
    }

    #[test]
    fn every_message_round_trips_as_one_line() {
        for request in every_request() {
            let line = encode_line(&request);
            assert!(line.ends_with('\n'));
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert_eq!(decode_request(line.as_bytes()), Ok(request));
        }
        for reply in every_reply() {
            let line = encode_line(&reply);
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert_eq!(decode_reply(line.as_bytes()), Ok(reply));
        }
    }

    #[test]
    fn the_wire_format_is_pinned() {
        assert_eq!(
            encode_line(&Request::WriteCache {
                id: 3,
                name: "n".to_string(),
                bytes: 10
            }),
            "{\"type\":\"write_cache\",\"id\":3,\"name\":\"n\",\"bytes\":10}\n"
        );
        assert_eq!(
            encode_line(&Reply::Error {
                id: None,
                code: ErrorCode::AddrInUse,
                message: "x".to_string()
            }),
            "{\"type\":\"error\",\"id\":null,\"code\":\"addr_in_use\",\"message\":\"x\"}\n"
        );
        assert_eq!(encode_line(&Request::Shutdown), "{\"type\":\"shutdown\"}\n");
        assert_eq!(
            decode_reply(
                br#"{"type":"ready","pid":7,"port":null,"version":1,"snapshot":"restored"}"#
            ),
            Ok(Reply::Ready {
                pid: 7,
                port: None,
                version: 1,
                snapshot: SnapshotState::Restored
            })
        );
    }

    #[test]
    fn a_crlf_line_is_accepted() {
        assert_eq!(
            decode_request(b"{\"type\":\"ping\",\"id\":1}\r\n"),
            Ok(Request::Ping { id: 1 })
        );
    }

    fn request_error(line: &[u8]) -> String {
        decode_request(line).unwrap_err().message
    }

    #[test]
    fn each_malformed_class_says_what_was_wrong() {
        assert!(request_error(b"{\"type\":\"ping\",\"id\":1,\xff}").contains("not UTF-8"));
        assert!(request_error(b"ping 1").contains("not JSON"));
        assert!(request_error(b"").contains("not JSON"));
        assert!(request_error(b"{\"type\":\"ping\"").contains("not JSON"));
        assert!(request_error(b"[1,2]").contains("not a JSON object"));
        assert!(request_error(b"{\"id\":1}").contains("no \"type\""));
        assert!(request_error(b"{\"type\":7}").contains("not a string"));
        let unknown = request_error(b"{\"type\":\"reboot\",\"id\":1}");
        assert!(
            unknown.contains("unknown request type \"reboot\""),
            "{unknown}"
        );
        let missing = request_error(b"{\"type\":\"ping\"}");
        assert!(
            missing.contains("bad request of type \"ping\""),
            "{missing}"
        );
        assert!(missing.contains("missing field `id`"), "{missing}");
        let extra = request_error(b"{\"type\":\"ping\",\"id\":1,\"admin\":true}");
        assert!(extra.contains("unknown field `admin`"), "{extra}");
        let wrong = request_error(b"{\"type\":\"ping\",\"id\":-1}");
        assert!(wrong.contains("bad request"), "{wrong}");
        let long = vec![b' '; LINE_BYTES_MAX + 1];
        assert!(request_error(&long).contains("too long"));
        assert!(ProtocolError::too_long().to_string().contains("too long"));
    }

    #[test]
    fn a_reply_is_not_a_request() {
        let line = encode_line(&Reply::Pong { id: 1 });
        assert!(request_error(line.as_bytes()).contains("unknown request type \"pong\""));
    }

    #[test]
    fn quoted_input_is_cut_short() {
        let name = "x".repeat(10_000);
        let line = format!("{{\"type\":\"{name}\"}}");
        let message = request_error(line.as_bytes());
        assert!(message.len() < 200, "{message}");
        assert!(message.contains('…'));
    }

    #[test]
    fn a_long_unknown_field_is_cut_short_too() {
        // Found by the worker_protocol fuzz target: serde's "unknown field" detail
        // quoted the peer's field name whole, so one line could log 64 KiB.
        let field = "x".repeat(10_000);
        let line = format!("{{\"type\":\"ping\",\"{field}\":1}}");
        let message = request_error(line.as_bytes());
        assert!(message.len() < 400, "{} bytes: {message}", message.len());
        assert!(message.contains("unknown field") && message.contains('…'));
    }
}
