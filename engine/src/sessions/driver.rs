//! The task behind each session: it binds a worker, runs queries one at a time,
//! applies limits, restarts the worker between queries when memory asks for it, and
//! ends the session. Everything the client sees goes through `Session::publish`.

use super::lifecycle::{SessionEvent, SessionState};
use super::limits::LimitAction;
use super::service::Shared;
use super::session::Session;
use super::upstream::ask_model;
use crate::protocol::{ErrorCode, ServerEvent};
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
            let now = shared.now();
            session
                .publish(
                    now,
                    ServerEvent::Status {
                        state: "preparing".to_string(),
                    },
                )
                .await;
            match shared.cold_start().await {
                Ok(w) => w,
                Err(e) => {
                    session.request_end(&format!("no worker could be started: {e}"));
                    return end(&shared, &session, None).await;
                }
            }
        }
    };
    loop {
        session.core().worker = Some(worker.worker().name().to_string());
        if session.end_reason().is_some() {
            return end(&shared, &session, Some(worker)).await;
        }
        let (state, next_query) = {
            let c = session.core();
            (c.state, c.pending.front().cloned())
        };
        if state == SessionState::Idle && worker.worker().stats().memory_restart_due {
            worker = restart(&shared, &session, worker).await;
            continue;
        }
        if state == SessionState::Idle
            && let Some((query, text)) = next_query
        {
            session.core().pending.pop_front();
            run_query(&shared, &session, worker.worker(), query, text).await;
            continue;
        }
        let wake = session.work.notified();
        let (deadline, action) = session.core().limit.next(false);
        let expiry = session.core().log.next_expiry();
        tokio::select! {
            biased;
            _ = wake => {}
            _ = shared.sleep_until(deadline) => apply_limit(&shared, &session, action).await,
            _ = shared.sleep_until(expiry.unwrap_or(Duration::MAX)), if expiry.is_some() => {
                // Nobody came back for these: the age bound frees them now, not at
                // the next append.
                session.core().log.expire(shared.now());
            }
            _ = tokio::time::sleep(MEMORY_POLL), if shared.config.pool.template.memory.is_some() => {}
        }
    }
}

async fn apply_limit(shared: &Shared, session: &Session, action: LimitAction) {
    match &action {
        LimitAction::Warn { remaining } => {
            session
                .publish(
                    shared.now(),
                    ServerEvent::SessionEnding {
                        remaining_ms: remaining.as_millis() as u64,
                        reason: "session duration limit".to_string(),
                    },
                )
                .await;
        }
        LimitAction::End { reason } => session.request_end(reason),
    }
    session.core().limit.applied(&action);
}

async fn run_query(shared: &Shared, session: &Session, worker: &Worker, query: u64, text: String) {
    // The state before the query is durable: a resume elsewhere starts from here.
    shared.env.disk_pace().await;
    shared.persist(session);
    if !session
        .transition(shared.now(), SessionEvent::QueryStarted)
        .await
    {
        return;
    }
    {
        let mut c = session.core();
        c.running = Some(query);
        c.interrupt_requested = false;
        c.stats.queries += 1;
    }
    if let Some(denied) = denied_tool(shared, session, &text) {
        session
            .publish(
                shared.now(),
                ServerEvent::Error {
                    code: ErrorCode::ToolDenied,
                    message: denied,
                },
            )
            .await;
        return finish(shared, session, query).await;
    }
    // The model answers first (when there is one); an interrupt or the session's end
    // does not wait for it.
    let asked = ask_model(shared, session, &text);
    let (outcome, answer) = match stopped_or(session, asked).await {
        Err(stopped) => (stopped, Vec::new()),
        Ok(None) => return finish(shared, session, query).await,
        Ok(Some(input)) => stream_answer(shared, session, worker, query, input).await,
    };
    let now = shared.now();
    match outcome {
        Outcome::Done => {
            let full = answer.join(" ");
            let bytes = full.len();
            let limit = shared.config.result_bytes_max;
            let truncated = bytes > limit;
            let shown = if truncated {
                let mut cut = limit;
                while !full.is_char_boundary(cut) {
                    cut -= 1;
                }
                full[..cut].to_string()
            } else {
                full.clone()
            };
            {
                let mut c = session.core();
                c.transcript.push(format!("> {text}"));
                c.transcript.push(full.clone());
                if truncated {
                    c.results.insert(query, full);
                    c.stats.truncated_results += 1;
                }
            }
            session
                .publish(
                    now,
                    ServerEvent::Result {
                        query,
                        text: shown,
                        truncated,
                        bytes: bytes as u64,
                    },
                )
                .await;
        }
        Outcome::Interrupted => {
            session.core().stats.interrupts += 1;
            session
                .publish(now, ServerEvent::Interrupted { query })
                .await;
        }
        Outcome::Ended(reason) => {
            session
                .publish(now, ServerEvent::Interrupted { query })
                .await;
            session.request_end(&reason);
        }
        Outcome::Failed(detail) => {
            session
                .publish(
                    now,
                    ServerEvent::Error {
                        code: ErrorCode::WorkerUnavailable,
                        message: format!("the query failed: {detail}"),
                    },
                )
                .await;
        }
    }
    finish(shared, session, query).await;
}

/// Runs the worker on the model's answer `input`, streaming its parts to the client;
/// how it ended, and the parts.
async fn stream_answer(
    shared: &Shared,
    session: &Session,
    worker: &Worker,
    query: u64,
    input: String,
) -> (Outcome, Vec<String>) {
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
    let mut answer: Vec<String> = Vec::new();
    let mut streamed = 0usize;
    let outcome = loop {
        let wake = session.work.notified();
        let (deadline, action) = session.core().limit.next(true);
        let detached_deadline = session
            .core()
            .detached_since
            .map(|t| t + shared.config.detached_query_timeout);
        tokio::select! {
            biased;
            _ = wake => {
                if let Some(stopped) = stop_requested(session) {
                    break stopped;
                }
            }
            _ = shared.sleep_until(deadline) => {
                if let LimitAction::End { reason } = &action {
                    break Outcome::Ended(reason.to_string());
                }
                apply_limit(shared, session, action).await;
            }
            _ = shared.sleep_until(detached_deadline.unwrap_or(Duration::MAX)), if detached_deadline.is_some() => {
                tracing::info!(session = %session.id, query, "no client came back: the query is interrupted");
                break Outcome::Interrupted;
            }
            reply = rx.recv() => match reply {
                Some(Reply::Event { data, .. }) => {
                    // Past the result bound the parts are only kept (for the HTTP
                    // fetch): the socket carries at most that much of one answer.
                    streamed += data.len();
                    if streamed <= shared.config.result_bytes_max {
                        session.publish(shared.now(), ServerEvent::Delta { query, text: data.clone() }).await;
                    }
                    answer.push(data);
                }
                Some(Reply::Done { .. }) => break Outcome::Done,
                Some(_) => {}
                None => {
                    // The request ended; its result says how.
                    let r = match request_result.take() {
                        Some(r) => r,
                        None => (&mut request).await,
                    };
                    break match r {
                        Ok(()) => Outcome::Done,
                        Err(e) => Outcome::Failed(e.to_string()),
                    };
                }
            },
            r = &mut request, if request_result.is_none() => {
                request_result = Some(r);
            }
        }
    };
    (outcome, answer)
}

/// `work`'s result, unless the client interrupts or the session is ended first.
async fn stopped_or<T>(session: &Session, work: impl Future<Output = T>) -> Result<T, Outcome> {
    tokio::pin!(work);
    loop {
        let wake = session.work.notified();
        tokio::select! {
            biased;
            _ = wake => {
                if let Some(stopped) = stop_requested(session) {
                    return Err(stopped);
                }
            }
            done = &mut work => return Ok(done),
        }
    }
}

/// How the running query must stop, if the client interrupted it or the session is
/// being ended.
fn stop_requested(session: &Session) -> Option<Outcome> {
    let c = session.core();
    if c.interrupt_requested {
        return Some(Outcome::Interrupted);
    }
    c.end_reason.clone().map(Outcome::Ended)
}

enum Outcome {
    Done,
    Interrupted,
    Ended(String),
    Failed(String),
}

async fn finish(shared: &Shared, session: &Session, query: u64) {
    {
        let mut c = session.core();
        debug_assert_eq!(c.running, Some(query));
        c.running = None;
        c.interrupt_requested = false;
    }
    session
        .transition(shared.now(), SessionEvent::QueryFinished)
        .await;
}

/// `tool:NAME …` asks for a tool; the role at this moment decides.
fn denied_tool(shared: &Shared, session: &Session, text: &str) -> Option<String> {
    let tool = text.strip_prefix("tool:")?.split_whitespace().next()?;
    let role = session.core().role.clone();
    if shared.config.tools_of(&role).iter().any(|t| t == tool) {
        return None;
    }
    Some(format!("tool {tool:?} is not allowed for role {role:?}"))
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
            session.core().stats.restarts += 1;
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
    let reason = session.end_reason().unwrap_or_else(|| "ended".to_string());
    let last = session
        .publish(
            shared.now(),
            ServerEvent::SessionEnded {
                reason: reason.clone(),
            },
        )
        .await;
    // The connection closes once it has written this one (or, with no number left,
    // everything numbered, then the unnumbered notice).
    {
        let mut c = session.core();
        match last {
            Some(seq) => c.final_seq = Some(seq),
            None => {
                c.final_seq = Some(c.log.last_seq());
                c.end_unsequenced = Some(reason.clone());
            }
        }
    }
    session.out_ready.notify_one();
    session
        .transition(shared.now(), SessionEvent::Terminate)
        .await;
    if let Some(claim) = worker {
        claim.retire().await;
    }
    shared.forget(session, &reason);
}
