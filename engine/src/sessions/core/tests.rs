//! The session core driven by hand: no runtime, no locks.

use super::*;
use crate::protocol::{ErrorCode, ServerMessage};

fn settings(queries: QueryMode) -> SessionSettings {
    SessionSettings {
        limits: SessionLimits {
            duration: Duration::from_secs(1000),
            grace: Duration::from_secs(30),
            first_message_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(600),
            extension: Duration::from_secs(500),
            extensions_max: 1,
        },
        replay: ReplayLimits::DEFAULT,
        first_seq_after: 0,
        outbound_max: 2,
        result_bytes_max: 5,
        queries,
        detached_query_timeout: Duration::from_secs(60),
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn query(core: &mut SessionCore, now: Duration, text: &str) -> InputOutcome {
    core.handle_input(
        now,
        ClientInput::Query {
            text: text.to_string(),
        },
    )
}

#[test]
fn queries_queue_or_are_refused_while_one_runs() {
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    assert_eq!(query(&mut core, s(1), "first"), InputOutcome::None);
    let Step::Run { query: id, text } = core.poll_step(false) else {
        panic!("the query runs next");
    };
    assert_eq!((id, text.as_str()), (1, "first"));
    core.handle_query_started(id, &text).unwrap();
    assert!(matches!(
        query(&mut core, s(2), "second"),
        InputOutcome::Refuse {
            code: ErrorCode::QueryInProgress,
            ..
        }
    ));
    let mut core = SessionCore::new(settings(QueryMode::Queue), "member".into(), vec![], s(0));
    query(&mut core, s(1), "first");
    let Step::Run { query: id, text } = core.poll_step(false) else {
        panic!("the query runs next");
    };
    core.handle_query_started(id, &text).unwrap();
    assert_eq!(
        query(&mut core, s(2), "second"),
        InputOutcome::Publish(ServerEvent::Queued {
            query: 2,
            position: 1
        })
    );
    assert_eq!(core.poll_step(false), Step::Wait, "one query at a time");
}

#[test]
fn answers_past_the_bound_stream_partly_and_are_truncated_on_a_char_boundary() {
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    query(&mut core, s(1), "q");
    let Step::Run { query: id, text } = core.poll_step(false) else {
        panic!()
    };
    core.handle_query_started(id, &text).unwrap();
    assert!(core.handle_delta("ab".into()).is_some());
    assert!(core.handle_delta("cd".into()).is_some());
    assert!(core.handle_delta("éé".into()).is_none(), "past 5 bytes");
    let Some(ServerEvent::Result {
        text,
        truncated,
        bytes,
        ..
    }) = core.handle_query_end(QueryEnd::Done)
    else {
        panic!("a result")
    };
    assert_eq!((text.as_str(), truncated, bytes), ("ab cd", true, 10));
    assert_eq!(core.full_result(1), Some("ab cd éé"));
    assert_eq!(core.transcript(), ["> q", "ab cd éé"]);
    core.handle_query_finished(1).unwrap();
    assert_eq!(core.state(), SessionState::Idle);
}

#[test]
fn the_stream_applies_backpressure_and_replays_from_last_seq() {
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    let first = core.handle_attach(s(0), None).unwrap();
    let event = || ServerEvent::Status {
        state: "idle".into(),
    };
    assert_eq!(core.handle_publish(s(1), event()), Published::Seq(1));
    assert_eq!(core.handle_publish(s(1), event()), Published::Seq(2));
    assert!(!core.has_room(), "two unwritten: the producer waits");
    let unsent = core.poll_unsent(first.generation).unwrap();
    assert_eq!(unsent.len(), 2);
    assert!(core.handle_written(first.generation, 2));
    assert!(core.has_room());
    core.handle_publish(s(2), event());
    // A reconnect from 1 displaces the first connection and gets 2 and 3.
    let second = core.handle_attach(s(3), Some(1)).unwrap();
    assert_eq!(second.displaced, Some(first.generation));
    let seqs: Vec<u64> = core
        .poll_unsent(second.generation)
        .unwrap()
        .iter()
        .map(|(seq, text)| {
            assert_eq!(ServerMessage::decode(text).unwrap().seq, Some(*seq));
            *seq
        })
        .collect();
    assert_eq!(seqs, vec![2, 3]);
    assert!(core.poll_unsent(first.generation).is_none());
    assert!(
        core.handle_attach(s(4), Some(99)).is_err(),
        "ahead of the server"
    );
}

#[test]
fn limits_warn_then_end_and_an_extension_is_granted_once() {
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    query(&mut core, s(1), "keep it alive");
    assert_eq!(core.poll_timeout(Phase::Idle), Some(s(601)));
    assert_eq!(core.handle_timeout(s(601), Phase::Idle), None);
    assert_eq!(
        core.poll_step(false),
        Step::End {
            reason: "idle timeout".into()
        }
    );
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    core.handle_input(s(100), ClientInput::Extend);
    assert!(matches!(
        core.handle_input(s(100), ClientInput::Extend),
        InputOutcome::Refuse {
            code: ErrorCode::ExtensionRefused,
            ..
        }
    ));
    // Streaming: the warning at 90 % of 1500 s, then the grace past the end.
    assert_eq!(core.poll_timeout(Phase::Streaming), Some(s(60)));
    core.handle_attach(s(0), None).unwrap();
    assert_eq!(core.poll_timeout(Phase::Streaming), Some(s(1350)));
    assert!(matches!(
        core.handle_timeout(s(1350), Phase::Streaming),
        Some(ServerEvent::SessionEnding { .. })
    ));
    assert_eq!(core.poll_timeout(Phase::Streaming), Some(s(1530)));
    core.handle_timeout(s(1530), Phase::Streaming);
    assert!(matches!(core.poll_stop(), Some(Stop::Ended(_))));
}
