use super::*;
use crate::upstream::wire::{Block, MessagesAnswer, Role};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;

fn answer(text: &str) -> MessagesAnswer {
    MessagesAnswer {
        id: "msg_1".to_string(),
        kind: "message".to_string(),
        role: Role::Assistant,
        content: vec![Block::Text {
            text: text.to_string(),
        }],
        model: "local-echo-1".to_string(),
        stop_reason: Some("end_turn".to_string()),
        stop_sequence: None,
        usage: Usage {
            input_tokens: 3,
            output_tokens: 5,
        },
    }
}

/// Feeds `events` (name, data) to a fresh assembler; returns the forwarded text, the
/// summary if it finished, and the first error.
fn feed<'a>(
    events: impl IntoIterator<Item = (&'a str, String)>,
) -> (String, Result<StreamSummary, StreamError>) {
    let mut assembler = StreamAssembler::new(1 << 20);
    let mut text = String::new();
    for (name, data) in events {
        match assembler.handle_event(name, &data) {
            Ok(StreamStep::Delta(delta)) => text.push_str(&delta),
            Ok(_) => {}
            Err(e) => return (text, Err(e)),
        }
    }
    let end = assembler.handle_end();
    (text, end)
}

fn named(events: &[StreamEvent]) -> Vec<(&'static str, String)> {
    events
        .iter()
        .map(|e| (e.name(), serde_json::to_string(e).expect("serializes")))
        .collect()
}

#[test]
fn a_whole_stream_forwards_every_delta_in_order_and_ends_with_its_summary() {
    let events = StreamEvent::answer(&answer("hello, streaming world"), 4);
    let (text, end) = feed(named(&events));
    assert_eq!(text, "hello, streaming world");
    let summary = end.expect("whole");
    assert_eq!(summary.deltas, 6);
    assert_eq!(summary.text_bytes, 22);
    assert_eq!(summary.stop_reason.as_deref(), Some("end_turn"));
    assert_eq!(summary.usage.output_tokens, 5);
    assert_eq!(summary.model, "local-echo-1");
}

#[test]
fn a_stream_cut_before_message_stop_is_an_error_with_the_partial_length() {
    let events = StreamEvent::answer(&answer("abcdefghij"), 2);
    // message_start, block start, ping, then two deltas: "abcd".
    let (text, end) = feed(named(&events[..5]));
    assert_eq!(text, "abcd");
    assert_eq!(end, Err(StreamError::EndedEarly { partial_bytes: 4 }));
    let (_, end) = feed(Vec::new());
    assert_eq!(end, Err(StreamError::EndedEarly { partial_bytes: 0 }));
}

#[test]
fn an_error_event_mid_stream_fails_the_answer_with_its_kind() {
    let mut events = named(&StreamEvent::answer(&answer("abc"), 1)[..4]);
    events.push((
        "error",
        r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#.to_string(),
    ));
    let (_, end) = feed(events);
    assert_eq!(
        end,
        Err(StreamError::Api {
            kind: "overloaded_error".to_string(),
            message: "busy".to_string()
        })
    );
}

#[test]
fn events_out_of_place_or_unparsable_are_malformed_and_unknown_kinds_are_ignored() {
    let whole = named(&StreamEvent::answer(&answer("abc"), 1));
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (whole[3..].to_vec(), "before message_start"),
        (
            [whole.clone(), vec![whole[2].clone()]].concat(),
            "after message_stop",
        ),
        (
            vec![whole[0].clone(), ("ping", "{not json".to_string())],
            "ping event",
        ),
        (
            vec![whole[0].clone(), ("ping", whole[0].1.clone())],
            "carries a message_start payload",
        ),
        (
            vec![whole[0].clone(), whole[3].clone()],
            "which is not open",
        ),
        (
            vec![whole[0].clone(), whole[1].clone(), whole[1].clone()],
            "while block 0 is open",
        ),
    ];
    for (events, expected) in cases {
        match feed(events) {
            (_, Err(StreamError::Malformed(detail))) => {
                assert!(detail.contains(expected), "{detail:?} lacks {expected:?}")
            }
            other => panic!("expected malformed ({expected}), got {other:?}"),
        }
    }
    let mut with_unknown = whole.clone();
    with_unknown.insert(3, ("thinking_summary", "{\"anything\":1}".to_string()));
    assert_eq!(feed(with_unknown).0, "abc");
}

#[test]
fn an_answer_past_the_bound_is_refused_before_it_is_forwarded() {
    let events = named(&StreamEvent::answer(&answer("0123456789"), 4));
    let mut assembler = StreamAssembler::new(8);
    let mut forwarded = 0;
    let mut refused = None;
    for (name, data) in events {
        match assembler.handle_event(name, &data) {
            Ok(StreamStep::Delta(d)) => forwarded += d.len(),
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(forwarded, 8);
    assert!(matches!(refused, Some(StreamError::Malformed(d)) if d.contains("longer than 8")));
}

/// The SSE text, cut into arbitrary pieces, goes through the same parser the client
/// uses and gives the same answer.
#[test]
fn sse_text_cut_anywhere_parses_to_the_same_answer() {
    let events = StreamEvent::answer(&answer("héllo wörld, in pieces"), 3);
    let sse: String = events.iter().map(StreamEvent::to_sse).collect();
    let bytes = sse.into_bytes();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for cut in [1, 2, 3, 7, 64, bytes.len()] {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            bytes.chunks(cut).map(|c| Ok(c.to_vec())).collect();
        let parsed: Vec<(String, String)> = runtime.block_on(async {
            futures_util::stream::iter(pieces)
                .eventsource()
                .map(|e| {
                    let e = e.expect("well-formed SSE");
                    (e.event, e.data)
                })
                .collect()
                .await
        });
        let (text, end) = feed(parsed.iter().map(|(n, d)| (n.as_str(), d.clone())));
        assert_eq!(text, "héllo wörld, in pieces", "cut every {cut} bytes");
        assert!(end.is_ok(), "cut every {cut} bytes: {end:?}");
    }
}
