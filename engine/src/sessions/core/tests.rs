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
            detached_max: Duration::from_secs(1 << 30),
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
            options: Default::default(),
        },
    )
}

#[test]
fn queries_queue_or_are_refused_while_one_runs() {
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    assert_eq!(query(&mut core, s(1), "first"), InputOutcome::None);
    let Step::Run {
        query: id, text, ..
    } = core.poll_step(s(0), false)
    else {
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
    let Step::Run {
        query: id, text, ..
    } = core.poll_step(s(0), false)
    else {
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
    assert_eq!(
        core.poll_step(s(0), false),
        Step::Wait,
        "one query at a time"
    );
}

#[test]
fn answers_past_the_bound_stream_partly_and_are_truncated_on_a_char_boundary() {
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    query(&mut core, s(1), "q");
    let Step::Run {
        query: id, text, ..
    } = core.poll_step(s(0), false)
    else {
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
    let transcript: Vec<&str> = core.transcript().iter().map(|e| e.as_str()).collect();
    assert_eq!(transcript, ["> q", "ab cd éé"]);
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
    let (gap, unsent) = core.poll_unsent(first.generation).unwrap();
    assert_eq!(gap, None);
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
        .1
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
        core.poll_step(s(0), false),
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

#[test]
fn messages_aged_out_before_they_were_written_are_told_as_a_gap() {
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    let a = core.handle_attach(s(0), None).unwrap();
    let event = || ServerEvent::Status {
        state: "idle".into(),
    };
    core.handle_publish(s(1), event());
    core.handle_publish(s(1), event());
    // The client never read them; the age bound (300 s) frees them.
    core.handle_timeout(s(302), Phase::Idle);
    let (gap, rest) = core.poll_unsent(a.generation).unwrap();
    assert_eq!((gap, rest.len()), (Some((1, 2)), 0));
    assert!(core.has_room(), "the skip made room");
    core.handle_publish(s(302), event());
    let (gap, rest) = core.poll_unsent(a.generation).unwrap();
    assert_eq!(gap, None, "told once");
    assert_eq!(
        rest.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        vec![3]
    );
    // What the client acknowledged is no hole to it.
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    let a = core.handle_attach(s(0), None).unwrap();
    core.handle_publish(s(1), event());
    core.handle_input(s(1), ClientInput::Ack { seq: 1 });
    assert_eq!(core.poll_unsent(a.generation).unwrap().0, None);
}

#[test]
fn an_ack_ahead_of_the_stream_is_refused_and_changes_nothing() {
    let mut core = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    core.handle_attach(s(0), None).unwrap();
    core.handle_publish(
        s(1),
        ServerEvent::Status {
            state: "idle".into(),
        },
    );
    let refused = core.handle_input(s(1), ClientInput::Ack { seq: 9 });
    assert!(
        matches!(&refused, InputOutcome::Refuse { code: ErrorCode::InvalidSequence, message }
            if message.contains("ack 9") && message.contains("last message sent is 1")),
        "{refused:?}"
    );
    assert!(matches!(
        core.handle_input(s(1), ClientInput::Ack { seq: 1 }),
        InputOutcome::None
    ));
}

#[test]
fn a_session_no_client_came_back_to_is_parked_for_a_resume() {
    let mut settings = settings(QueryMode::Reject);
    settings.limits.detached_max = s(120);
    let mut core = SessionCore::new(settings, "member".into(), vec![], s(0));
    let a = core.handle_attach(s(10), None).unwrap();
    assert_eq!(
        core.poll_timeout(Phase::Idle),
        Some(s(300)),
        "first-message timeout"
    );
    core.handle_detach(s(50), a.generation);
    assert_eq!(core.poll_timeout(Phase::Idle), Some(s(170)));
    core.handle_timeout(s(170), Phase::Idle);
    assert!(core.is_handed_off(), "its record is kept");
    assert!(matches!(core.poll_step(s(0), false), Step::End { reason } if reason == PARKED));
    // A client that comes back in time keeps it.
    let mut core = SessionCore::new(settings_of_parked(), "member".into(), vec![], s(0));
    let a = core.handle_attach(s(0), None).unwrap();
    core.handle_detach(s(10), a.generation);
    core.handle_attach(s(100), Some(0)).unwrap();
    core.handle_timeout(s(200), Phase::Idle);
    assert!(!core.is_handed_off() && core.end_reason().is_none());
}

fn settings_of_parked() -> SessionSettings {
    let mut settings = settings(QueryMode::Reject);
    settings.limits.detached_max = s(120);
    settings
}

#[test]
fn a_client_of_an_earlier_incarnation_is_behind_a_restored_stream_not_ahead() {
    let mut settings = settings(QueryMode::Reject);
    settings.first_seq_after = crate::sessions::durable::restored_seq_base(1);
    let base = settings.first_seq_after;
    let mut core = SessionCore::new(settings, "member".into(), vec![], s(0));
    let event = ServerEvent::Status {
        state: "idle".into(),
    };
    core.handle_publish(s(1), event);
    // The client saw 4 messages before the engine restarted.
    let a = core
        .handle_attach(s(2), Some(4))
        .expect("behind, not ahead");
    assert_eq!(a.gap, Some((5, base)), "what it may have missed is told");
    assert_eq!(a.start_after, base);
    let (_, rest) = core.poll_unsent(a.generation).unwrap();
    assert_eq!(
        rest.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        vec![base + 1]
    );
    // A number this incarnation never reached is still refused.
    assert!(core.handle_attach(s(3), Some(base + 2)).is_err());
}

#[test]
fn a_restored_session_idles_out_instead_of_ending_for_want_of_a_first_message() {
    let mut fresh = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    assert_eq!(
        fresh.poll_timeout(Phase::Idle),
        Some(s(300)),
        "a new session: first message"
    );
    let mut restored = SessionCore::new(settings(QueryMode::Reject), "member".into(), vec![], s(0));
    restored.handle_restored(s(0));
    assert_eq!(
        restored.poll_timeout(Phase::Idle),
        Some(s(600)),
        "restored: the idle timeout"
    );
    assert_eq!(restored.handle_timeout(s(300), Phase::Idle), None);
    assert!(
        !matches!(restored.poll_step(s(300), false), Step::End { .. }),
        "a restored session ended (its stored history purged) for want of a first message"
    );
    fresh.handle_timeout(s(300), Phase::Idle);
    assert!(matches!(fresh.poll_step(s(300), false), Step::End { .. }));
}
