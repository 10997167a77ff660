//! `upstream_stream`: the body of a streamed model answer, as the upstream client decodes
//! it (server-sent events parsed by `eventsource-stream`, then the engine's
//! `StreamAssembler`). The first byte picks how the body is cut into network reads
//! (1 to 256 bytes each) and the answer's bound (64 bytes times the byte, at least 64);
//! the rest is the body.
//!
//! Checks: decoding never panics; the text forwarded is exactly what the assembler
//! counts and never past the bound; an answer is whole only after `message_stop`, and
//! nothing is accepted after it; for a body of valid UTF-8, how it is cut into reads
//! changes nothing (every delta, and how the stream ends).

use super::poll::ready;
use engine::upstream::{StreamAssembler, StreamError, StreamStep, StreamSummary};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;

/// What one decoding of a body gave: the deltas forwarded, and how it ended.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    deltas: Vec<String>,
    end: Result<StreamSummary, String>,
}

fn decode(body: &[u8], read: usize, bound: usize) -> Decoded {
    let reads: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(read.max(1)).map(|c| Ok(c.to_vec())).collect();
    let mut events = futures_util::stream::iter(reads).eventsource();
    let mut assembler = StreamAssembler::new(bound);
    let mut deltas = Vec::new();
    let mut forwarded = 0usize;
    let end = loop {
        let event = match ready(events.next()) {
            None => break assembler.handle_end().map_err(|e| e.to_string()),
            Some(Err(e)) => break Err(format!("sse: {e}")),
            Some(Ok(event)) => event,
        };
        match assembler.handle_event(&event.event, &event.data) {
            Ok(StreamStep::Nothing) => {}
            Ok(StreamStep::Delta(text)) => {
                assert!(!text.is_empty(), "an empty delta was forwarded");
                forwarded += text.len();
                deltas.push(text);
            }
            Ok(StreamStep::Done(summary)) => {
                assert!(assembler.is_done());
                assert_eq!(summary.text_bytes, forwarded);
                // Nothing may follow the end of an answer.
                let after = assembler.handle_event("ping", r#"{"type":"ping"}"#);
                assert!(
                    matches!(after, Err(StreamError::Malformed(_))),
                    "an event after message_stop was accepted: {after:?}"
                );
                break Ok(summary);
            }
            Err(e) => {
                assert!(!e.to_string().is_empty());
                break Err(e.to_string());
            }
        }
        assert_eq!(
            assembler.text_bytes(),
            forwarded,
            "forwarded text miscounted"
        );
        assert!(
            forwarded <= bound,
            "{forwarded} bytes forwarded past the {bound}-byte bound"
        );
    };
    if end.is_ok() {
        assert!(
            assembler.is_done(),
            "an answer ended whole without message_stop"
        );
    }
    Decoded { deltas, end }
}

pub fn upstream_stream(data: &[u8]) {
    let [knob, body @ ..] = data else {
        return;
    };
    let read = usize::from(*knob) + 1;
    let bound = 64 * usize::from(*knob).max(1);
    let decoded = decode(body, read, bound);
    if std::str::from_utf8(body).is_ok() {
        // Reads of one byte and the whole body in one read must agree with any cut.
        assert_eq!(
            decode(body, 1, bound),
            decoded,
            "one-byte reads differ from reads of {read}"
        );
        assert_eq!(
            decode(body, body.len(), bound),
            decoded,
            "one read differs from reads of {read}"
        );
    }
}
