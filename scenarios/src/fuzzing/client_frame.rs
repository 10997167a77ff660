//! `client_frame`: one WebSocket text frame from a client, as the gateway decodes it.
//! The first byte picks the size limit (0: the gateway's default of 100 000 characters,
//! else that many times 4, so short inputs reach the too-large path); the rest is the
//! frame, as UTF-8 (invalid UTF-8 never reaches the decoder: tungstenite refuses it).
//!
//! Checks: decoding never panics; a frame over the limit is always `message_too_large`;
//! an error's detail stays within `DETAIL_CHARS_MAX`; a decoded message encodes and
//! decodes back to itself and carries no version but ours.

use engine::protocol::{
    ClientMessage, DETAIL_CHARS_MAX, ErrorCode, PROTOCOL_VERSION, decode_client,
};

const DEFAULT_CHARS_MAX: usize = 100_000;

pub fn client_frame(data: &[u8]) {
    let [limit, frame @ ..] = data else {
        return;
    };
    let limit = match *limit {
        0 => DEFAULT_CHARS_MAX,
        n => usize::from(n) * 4,
    };
    let Ok(text) = std::str::from_utf8(frame) else {
        return;
    };
    match decode_client(text, limit) {
        Ok(message) => {
            assert!(
                text.chars().count() <= limit,
                "a frame of {} characters passed a limit of {limit}",
                text.chars().count()
            );
            let encoded = serde_json::to_string(&message).expect("a message encodes");
            let again = decode_client(&encoded, usize::MAX)
                .unwrap_or_else(|e| panic!("{encoded} does not decode back: {e:?}"));
            assert_eq!(
                again, message,
                "decode -> encode -> decode changed the message"
            );
            if let Some(v) = version(&message) {
                assert_eq!(v, PROTOCOL_VERSION, "a foreign version was accepted");
            }
        }
        Err(e) => {
            assert!(
                e.detail.chars().count() <= DETAIL_CHARS_MAX,
                "an error detail of {} characters",
                e.detail.chars().count()
            );
            if text.chars().count() > limit {
                assert_eq!(
                    e.code,
                    ErrorCode::MessageTooLarge,
                    "an oversized frame got {e:?}"
                );
            }
        }
    }
}

fn version(m: &ClientMessage) -> Option<u32> {
    match m {
        ClientMessage::Query { v, .. }
        | ClientMessage::Interrupt { v }
        | ClientMessage::RefreshToken { v, .. }
        | ClientMessage::Ack { v, .. }
        | ClientMessage::Extend { v } => *v,
    }
}
