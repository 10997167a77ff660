//! The worker line protocol, both directions: the bytes a supervisor reads from a worker
//! (replies) or a worker reads from its parent (requests), split into lines by the same
//! bounded reader the engine uses.

use super::poll::ready;
use engine::worker::protocol::{LINE_BYTES_MAX, decode_reply, decode_request, encode_line};
use engine::worker::{Line, LineReader};
use serde::Serialize;
use std::fmt::Debug;

/// The most lines one input is read for (a stream of empty lines stays cheap).
const LINES_MAX: usize = 4_096;

/// First byte: direction (even: requests to a worker, odd: replies from one); the rest
/// is the stream.
pub fn worker_protocol(data: &[u8]) {
    let Some((&direction, stream)) = data.split_first() else {
        return;
    };
    let mut reader = LineReader::new(stream);
    for _ in 0..LINES_MAX {
        let line = match ready(reader.next_line()) {
            Ok(Line::Text(line)) => line,
            Ok(Line::TooLong) => continue,
            Ok(Line::Eof) => return,
            Err(e) => panic!("reading from memory failed: {e}"),
        };
        assert!(
            line.len() <= LINE_BYTES_MAX,
            "the reader handed out a {}-byte line; the limit is {LINE_BYTES_MAX}",
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
