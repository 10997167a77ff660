//! The task behind each session: the shell that carries out its core's steps. It binds
//! a worker from the pool, runs the query the core hands it (asking the tool gate, then
//! the model, then streaming the worker's answer), sleeps until the core's next
//! deadline, replaces the worker between queries when memory asks for it, and ends the
//! session. Every decision is the core's or the gate's; everything the client sees goes
//! through `Session::publish`.

use super::agent::{Finish, run_agent};
use super::core::{Phase, QueryEnd, Step, Stop};
use super::egress::{fetch_target, fetched_input};
use super::gate::{GateCall, GateDecision};
use super::lifecycle::SessionEvent;
use super::service::Shared;
use super::session::Session;
use crate::protocol::{ErrorCode, QueryOptions, ServerEvent};
use crate::workers::program::protocol::{Reply, Request};
use crate::workers::{Claim, Priority, Worker};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often an idle session looks at its worker's memory verdict.
const MEMORY_POLL: Duration = Duration::from_secs(1);

pub(crate) async fn drive(shared: Arc<Shared>, session: Arc<Session>) {
    let mut worker = match shared.pool.try_claim(Priority::Normal).await {
        Some(claim) => claim,
        None => {
            // Cold start: the pool was empty. Tell the user, then wait for a worker.
            let preparing = ServerEvent::Status {
                state: "preparing".to_string(),
            };
            session.publish(shared.now(), preparing).await;
            match shared.cold_start().await {
                Ok(w) => w,
                Err(e) => {
                    // Ends here, but its record stays: a worker that could not start
                    // now (a busy host, a transient spawn failure) must not cost the
                    // user the session's history; a resume later tries again.
                    session.with_core(|c| c.handle_handed_off());
                    session.request_end(&format!(
                        "no worker could be started ({e}): the session is parked; resume it to continue"
                    ));
                    return end(&shared, &session, None).await;
                }
            }
        }
    };
    loop {
        let name = worker.worker().name().to_string();
        // Replaced between queries when memory asks for it, or when its supervisor gave
        // up on it (an open breaker, a failed start): a session must not fail every
        // query on a worker that will never run again.
        let restart_due =
            worker.worker().stats().memory_restart_due || !worker.worker().status().is_active();
        let now = shared.now();
        let step = session.with_core(|c| {
            c.handle_worker_bound(&name);
            c.poll_step(now, restart_due)
        });
        match step {
            Step::End { .. } => return end(&shared, &session, Some(worker)).await,
            Step::Restart => {
                worker = restart(&shared, &session, worker).await;
                continue;
            }
            Step::Run {
                query,
                text,
                options,
            } => {
                run_query(&shared, &session, worker.worker(), query, text, options).await;
                continue;
            }
            Step::Wait => {}
        }
        let wake = session.work.notified();
        let deadline = session.with_core(|c| c.poll_timeout(Phase::Idle));
        tokio::select! {
            biased;
            _ = wake => {}
            _ = shared.sleep_until(deadline.unwrap_or(Duration::MAX)), if deadline.is_some() => {
                let now = shared.now();
                let warning = session.with_core(|c| c.handle_timeout(now, Phase::Idle));
                session.publish_opt(now, warning).await;
            }
            _ = tokio::time::sleep(MEMORY_POLL), if shared.config.pool.template.memory.is_some() => {}
        }
    }
}

async fn run_query(
    shared: &Shared,
    session: &Session,
    worker: &Worker,
    query: u64,
    text: String,
    options: QueryOptions,
) {
    // The state before the query is durable: a resume elsewhere starts from here.
    shared.env.disk_pace().await;
    shared.persist(session);
    match session.with_core(|c| c.handle_query_started(query, &text)) {
        Ok(status) => session.publish_opt(shared.now(), status).await,
        Err(e) => {
            tracing::warn!(session = %session.id, "{e}");
            return;
        }
    }
    // The gate is asked before the tool the query names, then before the model call.
    let tool = text
        .strip_prefix("tool:")
        .and_then(|rest| rest.split_whitespace().next());
    let calls = tool
        .map(|name| GateCall::Tool { name })
        .into_iter()
        .chain([GateCall::Model { text: &text }]);
    for call in calls {
        if let GateDecision::Deny { reason } = shared.gate.check(&session.gate_context(), &call) {
            let denied = ServerEvent::Error {
                code: ErrorCode::ToolDenied,
                message: reason,
            };
            session.publish(shared.now(), denied).await;
            return finish(shared, session, query).await;
        }
    }
    // The model answers first (when there is one), in as many turns as its tools take,
    // or the fetch a `tool:fetch` query names; an interrupt or the session's end does
    // not wait for it.
    let asked = async {
        match fetch_target(&text) {
            Some(target) => fetched_input(shared, session, query, target)
                .await
                .map(|text| Finish {
                    text,
                    incomplete: None,
                }),
            None => run_agent(shared, session, worker, query, &text, &options).await,
        }
    };
    let end = match stopped_or(shared, session, asked).await {
        Err(stopped) => stopped,
        Ok(None) => return finish(shared, session, query).await,
        Ok(Some(answer)) => {
            // An incomplete answer is said first; the worker still carries out what
            // the model said, so the user has the partial result.
            if let Some(incomplete) = answer.incomplete {
                let (code, message) = incomplete.error();
                session.with_core(|c| c.handle_result_subtype(incomplete.subtype()));
                let error = ServerEvent::Error { code, message };
                session.publish(shared.now(), error).await;
            }
            stream_answer(shared, session, worker, query, answer.text).await
        }
    };
    let told = session.with_core(|c| c.handle_query_end(end));
    session.publish_opt(shared.now(), told).await;
    finish(shared, session, query).await;
}

/// Runs the worker on the model's answer `input`, streaming its parts to the client;
/// how it ended.
async fn stream_answer(
    shared: &Shared,
    session: &Session,
    worker: &Worker,
    query: u64,
    input: String,
) -> QueryEnd {
    let (tx, mut rx) = mpsc::channel(8);
    let request = worker.request_streaming(
        Request::Run {
            id: query,
            input,
            pace_ms: shared.config.answer_pace.map(|p| p.as_millis() as u64),
        },
        tx,
    );
    tokio::pin!(request);
    let mut request_result = None;
    let mut pace = PartPace::default();
    loop {
        let wake = session.work.notified();
        let deadline = session.with_core(|c| c.poll_timeout(Phase::Streaming));
        tokio::select! {
            biased;
            _ = wake => {
                if let Some(stopped) = session.with_core(|c| c.poll_stop()) {
                    return stopped.into();
                }
            }
            _ = shared.sleep_until(deadline.unwrap_or(Duration::MAX)), if deadline.is_some() => {
                let now = shared.now();
                let warning = session.with_core(|c| c.handle_timeout(now, Phase::Streaming));
                session.publish_opt(now, warning).await;
                if let Some(stopped) = session.with_core(|c| c.poll_stop()) {
                    return stopped.into();
                }
            }
            reply = rx.recv() => match reply {
                Some(Reply::Event { data, .. }) => {
                    pace.part(shared.now());
                    let delta = session.with_core(|c| c.handle_delta(data));
                    session.publish_opt(shared.now(), delta).await;
                }
                Some(Reply::Done { .. }) => {
                    pace.done(session, query);
                    return QueryEnd::Done;
                }
                Some(_) => {}
                None => {
                    // The request ended; its result says how.
                    let r = match request_result.take() {
                        Some(r) => r,
                        None => (&mut request).await,
                    };
                    return match r {
                        Ok(()) => QueryEnd::Done,
                        Err(e) => QueryEnd::Failed(e.to_string()),
                    };
                }
            },
            r = &mut request, if request_result.is_none() => {
                request_result = Some(r);
            }
        }
    }
}

/// A streamed answer at least this long, at this many parts a second or more, is a
/// fast token stream (core.EC-028): the stream keeps up through the bounded outbound
/// queue, part by part, without batching.
const FAST_STREAM_MIN: Duration = Duration::from_secs(1);
const FAST_PARTS_PER_S: u64 = 50;

/// When the parts of one streamed answer arrived.
#[derive(Default)]
struct PartPace {
    first: Option<Duration>,
    last: Duration,
    parts: u64,
}

impl PartPace {
    fn part(&mut self, now: Duration) {
        self.first.get_or_insert(now);
        self.last = now;
        self.parts += 1;
    }

    /// The answer is complete: a fast stream it kept up with is said.
    fn done(&self, session: &Session, query: u64) {
        let Some(first) = self.first else {
            return;
        };
        let span = self.last.saturating_sub(first);
        let span_ms = span.as_millis() as u64;
        if span >= FAST_STREAM_MIN && self.parts * 1000 >= FAST_PARTS_PER_S * span_ms {
            crate::met!(
                "upstream.fast_tokens",
                "session {} query {query}: {} parts streamed in {span_ms} ms",
                session.id,
                self.parts
            );
        }
    }
}

impl From<Stop> for QueryEnd {
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Interrupted => QueryEnd::Interrupted,
            Stop::Ended(reason) => QueryEnd::Ended(reason),
        }
    }
}

/// `work`'s result, unless the client interrupts, the session is ended, or a limit
/// (or the client's absence) stops the query first: the model's answer is waited for
/// under the same deadlines as the worker's.
async fn stopped_or<T>(
    shared: &Shared,
    session: &Session,
    work: impl Future<Output = T>,
) -> Result<T, QueryEnd> {
    tokio::pin!(work);
    loop {
        let wake = session.work.notified();
        let deadline = session.with_core(|c| c.poll_timeout(Phase::Streaming));
        tokio::select! {
            biased;
            _ = wake => {
                if let Some(stopped) = session.with_core(|c| c.poll_stop()) {
                    return Err(stopped.into());
                }
            }
            _ = shared.sleep_until(deadline.unwrap_or(Duration::MAX)), if deadline.is_some() => {
                let now = shared.now();
                let warning = session.with_core(|c| c.handle_timeout(now, Phase::Streaming));
                session.publish_opt(now, warning).await;
                if let Some(stopped) = session.with_core(|c| c.poll_stop()) {
                    return Err(stopped.into());
                }
            }
            done = &mut work => return Ok(done),
        }
    }
}

async fn finish(shared: &Shared, session: &Session, query: u64) {
    match session.with_core(|c| c.handle_query_finished(query)) {
        Ok(status) => session.publish_opt(shared.now(), status).await,
        Err(e) => tracing::warn!(session = %session.id, "{e}"),
    }
}

/// Replaces the worker between queries; the old one serves until the new one is ready.
async fn restart(shared: &Shared, session: &Session, old: Claim) -> Claim {
    if !session
        .transition(shared.now(), SessionEvent::RestartBegun)
        .await
    {
        return old;
    }
    let worker = match shared.acquire_worker().await {
        Ok(new) => {
            old.retire().await;
            session.with_core(|c| c.handle_restarted());
            new
        }
        Err(e) => {
            tracing::warn!(session = %session.id, "replacement worker failed to start, keeping the old one: {e}");
            old
        }
    };
    session
        .transition(shared.now(), SessionEvent::RestartDone)
        .await;
    worker
}

async fn end(shared: &Shared, session: &Session, worker: Option<Claim>) {
    let (reason, ended) = session.with_core(|c| c.poll_ending());
    let last = session.publish(shared.now(), ended).await;
    // The connection closes once it has written this one (or, with no number left,
    // everything numbered, then the unnumbered notice).
    session.with_core(|c| c.handle_final(last, &reason));
    session.out_ready.notify_one();
    session
        .transition(shared.now(), SessionEvent::Terminate)
        .await;
    if let Some(claim) = worker {
        claim.retire().await;
    }
    shared.forget(session, &reason);
}
