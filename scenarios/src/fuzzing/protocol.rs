//! The worker line protocol, both directions: the bytes a supervisor reads from a worker
//! (replies) or a worker reads from its parent (requests), split into lines by the same
//! bounded reader the engine uses.

use super::poll::ready;
use engine::workers::program::protocol::{
    LINE_BYTES_MAX, decode_reply, decode_request, encode_line,
};
use engine::workers::program::{Line, LineReader};
use serde::Serialize;
use std::fmt::Debug;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// The most lines one input is read for (a stream of empty lines stays cheap).
const LINES_MAX: usize = 4_096;

/// Three header bytes, then the stream: direction (even: requests to a worker, odd:
/// replies from one); the line limit (0: the real 64 KiB, else that many bytes, so short
/// inputs reach the too-long paths); the most bytes one read returns (0: no cap). The
/// reader's lines must equal a plain split of the stream (a line over the limit is one
/// `TooLong`), and every line must decode or be refused cleanly.
pub fn worker_protocol(data: &[u8]) {
    let [direction, limit, step, stream @ ..] = data else {
        return;
    };
    let limit = match *limit {
        0 => LINE_BYTES_MAX,
        n => usize::from(n),
    };
    let step = match *step {
        0 => usize::MAX,
        n => usize::from(n),
    };
    let mut expected = expected_lines(stream, limit).into_iter();
    let mut reader = LineReader::with_limit(Trickle { rest: stream, step }, limit);
    for index in 0..LINES_MAX {
        let got = match ready(reader.next_line()) {
            Ok(line) => line,
            Err(e) => panic!("reading from memory failed: {e}"),
        };
        let want = expected.next().unwrap_or(Line::Eof);
        assert!(
            got == want,
            "line {index}: the reader gave {}, a plain split gives {}",
            describe(&got),
            describe(&want)
        );
        let line = match got {
            Line::Text(line) => line,
            Line::TooLong => continue,
            Line::Eof => return,
        };
        assert!(
            line.len() <= limit,
            "the reader handed out a {}-byte line; the limit is {limit}",
            line.len()
        );
        assert!(
            !line.contains(&b'\n'),
            "the reader handed out a line holding a newline"
        );
        if direction % 2 == 0 {
            check_decoded(&line, decode_request(&line), decode_request);
        } else {
            check_decoded(&line, decode_reply(&line), decode_reply);
        }
    }
}

/// The lines of `stream` by a plain split on `\n` (a last line without one counts), a
/// line over the limit standing as `TooLong`: what the bounded reader must produce.
fn expected_lines(stream: &[u8], limit: usize) -> Vec<Line> {
    let mut lines: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .map(|l| {
            if l.len() > limit {
                Line::TooLong
            } else {
                Line::Text(l.to_vec())
            }
        })
        .collect()
}

/// In-memory input handed out at most `step` bytes per read, as a pipe might.
struct Trickle<'a> {
    rest: &'a [u8],
    step: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.step.min(self.rest.len()).min(buf.remaining());
        let (head, tail) = self.rest.split_at(n);
        buf.put_slice(head);
        self.rest = tail;
        Poll::Ready(Ok(()))
    }
}

fn describe(line: &Line) -> String {
    match line {
        Line::Text(bytes) => format!("a {}-byte line", bytes.len()),
        Line::TooLong => "too long".to_string(),
        Line::Eof => "the end".to_string(),
    }
}

/// An accepted message encodes to one line that decodes to the same message; a refused
/// one has a message that says why, short enough to log.
fn check_decoded<T, E>(line: &[u8], decoded: Result<T, E>, decode: impl Fn(&[u8]) -> Result<T, E>)
where
    T: Serialize + PartialEq + Debug,
    E: std::fmt::Display,
{
    match decoded {
        Ok(message) => {
            let encoded = encode_line(&message);
            assert!(
                encoded.ends_with('\n') && encoded.matches('\n').count() == 1,
                "{message:?} encoded to {encoded:?}, not one line"
            );
            match decode(encoded.as_bytes()) {
                Ok(again) => assert_eq!(again, message, "round trip of {line:?}"),
                Err(e) => {
                    panic!("{message:?} encoded to {encoded:?}, which decodes to an error: {e}")
                }
            }
        }
        Err(e) => {
            let text = e.to_string();
            assert!(!text.is_empty(), "an error without a message for {line:?}");
            assert!(
                text.len() <= 1_024,
                "a {}-byte error message for one line: {text}",
                text.len()
            );
        }
    }
}
