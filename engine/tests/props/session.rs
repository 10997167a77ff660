//! The session core (`SessionCore`, sans-IO) against a reference model over random
//! steps: client inputs (queries in queue or reject mode, interrupts, extensions,
//! acks), connections (first attach, new tab, reconnect from a `last_seq`, displacement,
//! detach, writing some of what is unsent), producers publishing under back-pressure,
//! the driver's steps (run the next query, stream parts, end it, finish it, restart the
//! worker between queries, end the session). After every step the core must agree with
//! the model on the lifecycle state, the stream (numbers, what each connection has
//! left to write, room), the queue, the answers (the streaming bound, truncation, the
//! transcript) and the counters.

mod model;

use engine::protocol::ServerEvent;
use engine::sessions::core::{
    ClientInput, InputOutcome, Published, QueryEnd, SessionCore, SessionSettings, Step,
};
use engine::sessions::replay::ReplayLimits;
use engine::sessions::{QueryMode, SessionEvent, SessionLimits, SessionState};
use model::{Model, Predicted};
use proptest::prelude::*;
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Op {
    Query { words: u8 },
    Interrupt,
    Extend,
    Ack { back: u64 },
    Attach { last_seq_back: Option<u64> },
    Detach,
    Write { at_most: usize },
    Publish,
    Drive { restart_due: bool },
    Delta { bytes: usize },
    End { how: u8 },
    Finish,
    RestartDone { replaced: bool },
    RequestEnd,
    Wait { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1..4u8).prop_map(|words| Op::Query { words }),
        1 => Just(Op::Interrupt),
        1 => Just(Op::Extend),
        1 => (0..5u64).prop_map(|back| Op::Ack { back }),
        2 => proptest::option::of(0..6u64).prop_map(|last_seq_back| Op::Attach { last_seq_back }),
        1 => Just(Op::Detach),
        3 => (0..5usize).prop_map(|at_most| Op::Write { at_most }),
        2 => Just(Op::Publish),
        4 => any::<bool>().prop_map(|restart_due| Op::Drive { restart_due }),
        3 => (1..12usize).prop_map(|bytes| Op::Delta { bytes }),
        2 => (0..4u8).prop_map(|how| Op::End { how }),
        2 => Just(Op::Finish),
        1 => any::<bool>().prop_map(|replaced| Op::RestartDone { replaced }),
        1 => Just(Op::RequestEnd),
        1 => (0..2_000u64).prop_map(|ms| Op::Wait { ms }),
    ]
}

pub const OUTBOUND_MAX: usize = 3;
pub const RESULT_BYTES_MAX: usize = 16;
pub const EXTENSIONS_MAX: u32 = 2;

fn settings(queries: QueryMode) -> SessionSettings {
    SessionSettings {
        limits: SessionLimits {
            duration: Duration::from_secs(3600),
            grace: Duration::from_secs(30),
            first_message_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(1200),
            extension: Duration::from_secs(600),
            extensions_max: EXTENSIONS_MAX,
            detached_max: Duration::from_secs(1 << 30),
        },
        // Nothing ages out or is pushed out in these runs: the model is about the
        // stream's numbering and delivery, the log's bounds have their own test.
        replay: ReplayLimits {
            count: 100_000,
            bytes: 1 << 30,
            age: Duration::from_secs(1 << 30),
        },
        first_seq_after: 0,
        outbound_max: OUTBOUND_MAX,
        result_bytes_max: RESULT_BYTES_MAX,
        queries,
        detached_query_timeout: Duration::from_secs(1 << 30),
    }
}

proptest! {
    #![proptest_config(crate::config(512))]

    #[test]
    fn the_session_core_is_the_model(
        queue in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..150),
    ) {
        let mode = if queue { QueryMode::Queue } else { QueryMode::Reject };
        let mut core = SessionCore::new(settings(mode), "member".into(), Vec::new(), Duration::ZERO);
        let mut model = Model::new(queue);
        let mut now = Duration::ZERO;
        for op in ops {
            now += Duration::from_millis(1);
            match op {
                Op::Query { words } => {
                    let text = (0..words).map(|w| format!("w{w}")).collect::<Vec<_>>().join(" ");
                    let got = core.handle_input(now, ClientInput::Query { text: text.clone(), options: Default::default() });
                    let want = model.query(text);
                    prop_assert_eq!(got, want, "query outcome");
                }
                Op::Interrupt => {
                    prop_assert_eq!(core.handle_input(now, ClientInput::Interrupt), InputOutcome::None);
                    model.interrupt();
                }
                Op::Extend => {
                    let got = core.handle_input(now, ClientInput::Extend);
                    let want = model.extend(now);
                    prop_assert_eq!(got, want, "extension");
                }
                Op::Ack { back } => {
                    let seq = core.last_seq().saturating_sub(back);
                    prop_assert_eq!(core.handle_input(now, ClientInput::Ack { seq }), InputOutcome::None);
                    model.ack(seq);
                }
                Op::Attach { last_seq_back } => {
                    let last_seq = last_seq_back.map(|b| (model.last_seq + 2).saturating_sub(b));
                    let got = core.handle_attach(now, last_seq);
                    match model.attach(last_seq) {
                        Predicted::Refused => prop_assert!(got.is_err(), "a last_seq ahead is refused"),
                        Predicted::Attached { generation, start_after, gap, displaced } => {
                            let got = got.expect("attach");
                            prop_assert_eq!(got.generation, generation);
                            prop_assert_eq!(got.start_after, start_after);
                            prop_assert_eq!(got.displaced, displaced);
                            prop_assert_eq!(got.gap, gap);
                        }
                    }
                }
                Op::Detach => {
                    if let Some(generation) = model.attached_generation() {
                        prop_assert!(core.handle_detach(now, generation));
                        model.detach();
                    }
                    prop_assert!(!core.handle_detach(now, 0), "generation 0 is never attached");
                }
                Op::Write { at_most } => {
                    if let Some(generation) = model.attached_generation() {
                        let (gap, unsent) = core.poll_unsent(generation).expect("the attached connection");
                        prop_assert_eq!(gap, None, "nothing ages out in these runs");
                        let seqs: Vec<u64> = unsent.iter().map(|(s, _)| *s).collect();
                        prop_assert_eq!(seqs, model.unsent(), "what the connection writes next");
                        for (seq, _) in unsent.into_iter().take(at_most) {
                            prop_assert!(core.handle_written(generation, seq));
                            model.written(seq);
                        }
                    }
                }
                Op::Publish => {
                    prop_assert_eq!(core.has_room(), model.has_room(), "room");
                    if core.has_room() && model.state != SessionState::Terminated {
                        let got = core.handle_publish(now, ServerEvent::Status { state: "x".into() });
                        prop_assert_eq!(got, Published::Seq(model.publish()));
                    }
                }
                Op::Drive { restart_due } => {
                    if model.running.is_some() || model.state == SessionState::Terminated {
                        continue;
                    }
                    let got = core.poll_step(now, restart_due);
                    let want = model.step(restart_due);
                    prop_assert_eq!(&got, &want, "the driver's step");
                    match got {
                        Step::Run { query, text, .. } => {
                            let status = core.handle_query_started(query, &text).expect("idle");
                            prop_assert_eq!(status, Some(ServerEvent::Status { state: "processing".into() }));
                            model.start(query, text);
                        }
                        Step::Restart => {
                            let status = core.handle_lifecycle(SessionEvent::RestartBegun).expect("idle");
                            prop_assert_eq!(status, Some(ServerEvent::Status { state: "restarting".into() }));
                            model.state = SessionState::Restarting;
                        }
                        Step::End { .. } => {
                            prop_assert!(core.handle_lifecycle(SessionEvent::Terminate).is_ok());
                            model.state = SessionState::Terminated;
                            prop_assert!(core.handle_lifecycle(SessionEvent::QueryStarted).is_err(), "terminated is final");
                        }
                        Step::Wait => {}
                    }
                }
                Op::Delta { bytes } => {
                    if model.running.is_some() {
                        let data = "x".repeat(bytes);
                        let got = core.handle_delta(data.clone());
                        let want = model.delta(data);
                        prop_assert_eq!(got, want, "a delta within the bound is streamed");
                    }
                }
                Op::End { how } => {
                    if model.running.as_ref().is_some_and(|r| !r.ended) {
                        let end = match how {
                            0 => QueryEnd::Done,
                            1 => QueryEnd::Interrupted,
                            2 => QueryEnd::Ended("limit".into()),
                            _ => QueryEnd::Failed("worker died".into()),
                        };
                        if let Some(stop) = model.stop() {
                            prop_assert_eq!(core.poll_stop(), Some(stop));
                        }
                        let got = core.handle_query_end(end.clone());
                        let want = model.end(end);
                        prop_assert_eq!(got, want, "how the client is told the query ended");
                    }
                }
                Op::Finish => {
                    if let Some(query) = model.running.as_ref().filter(|r| r.ended).map(|r| r.id) {
                        let status = core.handle_query_finished(query).expect("processing");
                        prop_assert_eq!(status, Some(ServerEvent::Status { state: "idle".into() }));
                        model.finish();
                    }
                }
                Op::RestartDone { replaced } => {
                    if model.state == SessionState::Restarting {
                        if replaced {
                            core.handle_restarted();
                            model.restarts += 1;
                        }
                        prop_assert!(core.handle_lifecycle(SessionEvent::RestartDone).is_ok());
                        model.state = SessionState::Idle;
                    }
                }
                Op::RequestEnd => {
                    core.handle_end_requested("operator");
                    model.end_reason.get_or_insert_with(|| "operator".to_string());
                }
                Op::Wait { ms } => now += Duration::from_millis(ms),
            }
            // The whole picture after every step.
            prop_assert_eq!(core.state(), model.state, "lifecycle state");
            prop_assert_eq!(core.last_seq(), model.last_seq, "stream numbers");
            prop_assert_eq!(core.behind(), model.behind(), "unwritten messages");
            prop_assert_eq!(core.is_attached(), model.attached.is_some());
            prop_assert_eq!(core.running(), model.running.as_ref().map(|r| r.id));
            let transcript: Vec<&str> = core.transcript().iter().map(|e| e.as_str()).collect();
            prop_assert_eq!(transcript, model.transcript.as_slice(), "transcript");
            prop_assert_eq!(core.end_reason(), model.end_reason.as_deref());
            let stats = core.stats();
            // A reconnect may find more than the bound waiting (the replay log holds
            // it); what producers add never takes it past the bound.
            prop_assert!(stats.outbound_peak <= OUTBOUND_MAX, "the outbound bound holds");
            prop_assert_eq!(stats.queries, model.queries);
            prop_assert_eq!(stats.interrupts, model.interrupts);
            prop_assert_eq!(stats.restarts, model.restarts);
            prop_assert_eq!(stats.connections, model.connections);
            prop_assert_eq!(stats.replaced, model.replaced);
            prop_assert_eq!(stats.detaches, model.detaches);
            prop_assert_eq!(stats.truncated_results, model.truncated);
            for (query, full) in &model.results {
                prop_assert_eq!(core.full_result(*query), Some(full.as_str()));
            }
        }
    }
}
