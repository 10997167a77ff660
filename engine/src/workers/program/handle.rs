//! One input line → its replies. Shared by stdin and the endpoint's connections, so
//! both channels answer the same request the same way (Shutdown aside).

use super::args::WorkerArgs;
use super::cache::Cache;
use super::errors::code_for;
use super::lines::Line;
use super::protocol::{ErrorCode, ProtocolError, Reply, Request, decode_request, encode_line};
use super::scrub::scrub_secrets;
use super::snapshot;
use crate::env::Env;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Longest session state kept: older `Run` inputs are dropped from its front, so a
/// checkpoint always fits in a snapshot file.
const STATE_BYTES_MAX: usize = super::protocol::LINE_BYTES_MAX;

/// What every channel of one worker shares.
pub(super) struct Shared {
    pub env: Env,
    pub args: WorkerArgs,
    pub cache: Cache,
    /// The session's state: the last snapshot's body (restored or saved), then one line
    /// per `Run` input since. `Checkpoint` persists it.
    state: Mutex<String>,
    /// Well-formed requests, all channels.
    pub requests: AtomicU64,
    /// Lines that were not requests, all channels.
    pub malformed_lines: AtomicU64,
}

impl Shared {
    pub(super) fn new(env: Env, args: WorkerArgs, restored: Option<String>) -> Self {
        let cache = Cache::open(
            &env,
            &args.cache_dir,
            args.cache_cap_bytes,
            args.disk_quota_bytes,
            args.snapshot.clone(),
        );
        Shared {
            env,
            args,
            cache,
            state: Mutex::new(restored.unwrap_or_default()),
            requests: AtomicU64::new(0),
            malformed_lines: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, String> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember_input(&self, input: &str) {
        let mut state = self.state();
        if !state.is_empty() {
            state.push('\n');
        }
        state.push_str(input);
        if state.len() > STATE_BYTES_MAX {
            let excess = state.len() - STATE_BYTES_MAX;
            let cut = (excess..=state.len())
                .find(|&i| state.is_char_boundary(i))
                .unwrap_or(state.len());
            state.drain(..cut);
        }
        debug_assert!(state.len() <= STATE_BYTES_MAX);
    }
}

/// Where a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Channel {
    /// The parent's pipe: the only channel that may stop the worker.
    Stdin,
    /// A connection to the TCP endpoint.
    Endpoint,
}

/// What the channel's loop does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    Continue,
    /// A `Shutdown` arrived on stdin: stop gracefully.
    Shutdown,
}

/// Writes one reply line.
pub(super) async fn send<W: AsyncWrite + Unpin + ?Sized>(
    out: &mut W,
    reply: &Reply,
) -> io::Result<()> {
    out.write_all(encode_line(reply).as_bytes()).await
}

/// Writes one reply line and flushes it.
pub(super) async fn send_now<W: AsyncWrite + Unpin + ?Sized>(
    out: &mut W,
    reply: &Reply,
) -> io::Result<()> {
    send(out, reply).await?;
    out.flush().await
}

/// Answers one line (not `Eof`: the caller's loop ends there). An `Err` is a failure to
/// write the answer: the peer is gone.
pub(super) async fn handle_line<W: AsyncWrite + Unpin + ?Sized>(
    shared: &Shared,
    line: Line,
    channel: Channel,
    out: &mut W,
) -> io::Result<Next> {
    let decoded = match line {
        Line::Text(bytes) => decode_request(&bytes),
        Line::TooLong => Err(ProtocolError::too_long()),
        Line::Eof => return Ok(Next::Continue),
    };
    let request = match decoded {
        Ok(request) => request,
        Err(e) => {
            shared.malformed_lines.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(?channel, error = %e, "malformed line");
            let reply = Reply::Error {
                id: None,
                code: ErrorCode::Protocol,
                message: e.message,
            };
            send_now(out, &reply).await?;
            return Ok(Next::Continue);
        }
    };
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let next = answer(shared, request, channel, out).await?;
    out.flush().await?;
    Ok(next)
}

/// Largest payload a `payload:N` word may ask for.
pub(super) const PAYLOAD_BYTES_MAX: usize = 64 << 20;
/// A payload is streamed in parts of this size (well within a protocol line).
pub const PAYLOAD_PART_BYTES: usize = 16 << 10;

/// One word of a `run` input as the parts of the answer: the word itself, or for
/// `payload:N` (a tool that returns a big result) N bytes of generated text in parts
/// of [`PAYLOAD_PART_BYTES`]. The parts are made one at a time as they are taken, so a
/// worker sending a payload of megabytes holds one part of it, not the whole.
pub fn expand_word(word: &str) -> WordParts {
    let sized = |prefix: &str| {
        word.strip_prefix(prefix)
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=PAYLOAD_BYTES_MAX).contains(n))
    };
    let (size, binary) = match (sized("payload:"), sized("binary:")) {
        (Some(size), _) => (size, false),
        (None, Some(size)) => (size, true),
        (None, None) => return WordParts::one(word.to_string()),
    };
    WordParts {
        word: None,
        next: 0,
        size,
        binary,
    }
}

/// The parts of one word of a `run` input ([`expand_word`]), made as they are taken.
#[derive(Clone, Debug)]
pub struct WordParts {
    /// A plain word: its one part.
    word: Option<String>,
    /// A payload: the offset of its next part, and its size.
    next: usize,
    size: usize,
    /// `binary:N`: N bytes of binary data (a tool returning an image, say), each part
    /// base64-encoded on the line protocol.
    binary: bool,
}

impl WordParts {
    /// A single part.
    fn one(part: String) -> WordParts {
        WordParts {
            word: Some(part),
            next: 0,
            size: 0,
            binary: false,
        }
    }

    /// Its parts are binary data, base64-encoded.
    pub fn is_binary(&self) -> bool {
        self.binary
    }
}

/// Byte `i` of a `binary:N` word: every value 0..=255 occurs, most of them not UTF-8.
pub fn binary_byte(i: usize) -> u8 {
    (i.wrapping_mul(167) ^ (i >> 8)) as u8
}

impl Iterator for WordParts {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if let Some(word) = self.word.take() {
            return Some(word);
        }
        if self.next >= self.size {
            return None;
        }
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        // Built from the repeating alphabet, bytes first: a char-by-char String and a
        // lossy re-decoding of each part cost a visible share of the gate's CPU.
        let (start, end) = (self.next, (self.next + PAYLOAD_PART_BYTES).min(self.size));
        self.next = end;
        if self.binary {
            let part: Vec<u8> = (start..end).map(binary_byte).collect();
            return Some(data_encoding::BASE64.encode(&part));
        }
        let part: Vec<u8> = (start..end).map(|i| ALPHABET[i % ALPHABET.len()]).collect();
        Some(String::from_utf8(part).expect("the alphabet is ASCII"))
    }
}

/// `cache:NAME:BYTES`: write a cache file of BYTES bytes named NAME.
fn cache_word(word: &str) -> Option<(&str, u64)> {
    let (name, bytes) = word.strip_prefix("cache:")?.rsplit_once(':')?;
    Some((name, bytes.parse().ok()?))
}

async fn answer<W: AsyncWrite + Unpin + ?Sized>(
    shared: &Shared,
    request: Request,
    channel: Channel,
    out: &mut W,
) -> io::Result<Next> {
    match request {
        Request::Ping { id } => send(out, &Reply::Pong { id }).await?,
        Request::Run { id, input, pace_ms } => {
            shared.remember_input(&input);
            let mut seq = 0;
            for word in input.split_whitespace() {
                let parts = match cache_word(word) {
                    // A tool that leaves a file behind (a shell snapshot): it goes
                    // through the cache, so the quota and eviction apply.
                    Some((name, bytes)) => {
                        let part = match shared.cache.write(&shared.env, name, bytes).await {
                            Ok(()) => format!("cached:{name}"),
                            Err((code, _)) => format!("cache_refused:{name}:{}", code.name()),
                        };
                        WordParts::one(part)
                    }
                    None => expand_word(word),
                };
                let binary = parts.is_binary();
                for data in parts {
                    seq += 1;
                    if let Some(ms) = pace_ms.filter(|ms| *ms > 0) {
                        out.flush().await?;
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    }
                    let event = Reply::Event {
                        id,
                        seq,
                        data,
                        binary,
                    };
                    send(out, &event).await?;
                }
            }
            send(out, &Reply::Done { id }).await?;
        }
        Request::WriteCache { id, name, bytes } => {
            let result = shared.cache.write(&shared.env, &name, bytes).await;
            send(out, &done_or_error(id, "cache write", result)).await?;
        }
        Request::ReadCache { id, name } => {
            let result = shared.cache.read(&shared.env, &name).await.map(|_| ());
            send(out, &done_or_error(id, "cache read", result)).await?;
        }
        Request::Snapshot { id, state } => {
            let reply = take_snapshot(shared, id, &state).await;
            if reply == (Reply::Done { id }) {
                *shared.state() = state;
            }
            send(out, &reply).await?;
        }
        Request::Checkpoint { id } => {
            let state = shared.state().clone();
            let reply = take_snapshot(shared, id, &state).await;
            send(out, &reply).await?;
        }
        Request::ReadOnly { id, on } => {
            shared.cache.set_read_only(on);
            send(out, &Reply::Done { id }).await?;
        }
        Request::Stats { id } => {
            let reply = Reply::Stats {
                id,
                requests: shared.requests.load(Ordering::Relaxed),
                malformed_lines: shared.malformed_lines.load(Ordering::Relaxed),
                cache_evictions: shared.cache.evictions(),
            };
            send(out, &reply).await?;
        }
        Request::Shutdown => match channel {
            Channel::Stdin => return Ok(Next::Shutdown),
            Channel::Endpoint => {
                let reply = Reply::Error {
                    id: None,
                    code: ErrorCode::Usage,
                    message: "shutdown is only accepted on stdin, from the parent".to_string(),
                };
                send(out, &reply).await?;
            }
        },
    }
    Ok(Next::Continue)
}

fn done_or_error(id: u64, what: &str, result: Result<(), (ErrorCode, String)>) -> Reply {
    match result {
        Ok(()) => Reply::Done { id },
        Err((code, message)) => {
            tracing::warn!(?code, error = %message, "{what} failed");
            Reply::Error {
                id: Some(id),
                code,
                message,
            }
        }
    }
}

async fn take_snapshot(shared: &Shared, id: u64, state: &str) -> Reply {
    let Some(path) = shared.args.snapshot.as_deref() else {
        return Reply::Error {
            id: Some(id),
            code: ErrorCode::Usage,
            message: "no snapshot file: the worker was started without --snapshot".to_string(),
        };
    };
    let (body, scrubbed) = scrub_secrets(state);
    tracing::info!(path, scrubbed, bytes = body.len(), "saving snapshot");
    match snapshot::save(&shared.env, path, &body).await {
        Ok(()) => Reply::Done { id },
        Err(e) => {
            tracing::warn!(path, error = %e, "snapshot save failed");
            Reply::Error {
                id: Some(id),
                code: code_for(&e),
                message: format!("saving snapshot {path:?}: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_word_expands_to_its_size_in_parts_of_the_part_size() {
        let parts: Vec<String> =
            expand_word(&format!("payload:{}", 2 * PAYLOAD_PART_BYTES + 5)).collect();
        let sizes: Vec<usize> = parts.iter().map(String::len).collect();
        assert_eq!(sizes, [PAYLOAD_PART_BYTES, PAYLOAD_PART_BYTES, 5]);
        let whole = parts.concat();
        assert!(whole.starts_with("abcdefghijklmnopqrstuvwxyz0123456789abc"));
        // The alphabet runs on across parts.
        let at = PAYLOAD_PART_BYTES;
        assert_eq!(
            whole.as_bytes()[at],
            b"abcdefghijklmnopqrstuvwxyz0123456789"[at % 36]
        );
        assert_eq!(expand_word("word").collect::<Vec<_>>(), ["word"]);
        assert_eq!(expand_word("payload:0").collect::<Vec<_>>(), ["payload:0"]);
        let binary = expand_word(&format!("binary:{}", PAYLOAD_PART_BYTES + 1));
        assert!(binary.is_binary());
        let parts: Vec<Vec<u8>> = binary
            .map(|p| data_encoding::BASE64.decode(p.as_bytes()).expect("base64"))
            .collect();
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [PAYLOAD_PART_BYTES, 1]
        );
        assert!(std::str::from_utf8(&parts[0]).is_err(), "binary, not text");
        assert_eq!(parts[1][0], binary_byte(PAYLOAD_PART_BYTES));
        let too_big = format!("payload:{}", PAYLOAD_BYTES_MAX + 1);
        assert_eq!(
            expand_word(&too_big).collect::<Vec<_>>(),
            std::slice::from_ref(&too_big)
        );
    }
}
