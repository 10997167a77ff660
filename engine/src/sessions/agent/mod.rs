//! A query's agent loop, the shell of [`turns`]: options checked, the history compacted
//! past the context window (a pre-compaction hook first: the history is archived to the
//! workspace; the user told), then model calls, one per turn, each checked against the
//! session's spending cap before it goes; tools the model asks for run on the session's
//! worker between turns; a structured answer that does not match is asked for again.
//! Its result is the answer the worker then carries out, and why it is incomplete when
//! it is (turn limit, budget, structured output), or `None` when the query failed (the
//! client was told).

mod budget;
mod compaction;
mod structured;
mod tool_result;
mod tools;
mod turns;

pub(crate) use budget::Budget;
pub(crate) use turns::Finish;

use super::model_call::build_call;
use super::service::Shared;
use super::session::Session;
use super::upstream::ask_turn;
use crate::protocol::{ErrorCode, QueryOptions, ServerEvent};
use crate::upstream::UpstreamClient;
use crate::upstream::wire::{Block, Content, Message, OutputFormat, Role};
use crate::workers::Worker;
use structured::OutputSchema;
use turns::{Next, TurnLoop};

/// The answer to query `query` for the worker to carry out, or `None` (told).
pub(crate) async fn run_agent(
    shared: &Shared,
    session: &Session,
    worker: &Worker,
    query: u64,
    text: &str,
    options: &QueryOptions,
) -> Option<Finish> {
    let Some(up) = &shared.upstream else {
        return Some(Finish {
            text: text.to_string(),
            incomplete: None,
        });
    };
    // The query timeout bounds the whole query, every turn and tool round in it, not
    // each call: a slow agent cannot stretch a query to turns × the timeout.
    let deadline = tokio::time::Instant::now() + up.config().query_timeout;
    let limits = &up.config().limits;
    let checked = check_options(options, limits.max_turns);
    let (max_turns, schema) = match checked {
        Ok(checked) => checked,
        Err(why) => {
            let error = ServerEvent::Error {
                code: ErrorCode::InvalidMessage,
                message: format!("the query's options are refused: {why}"),
            };
            session.publish(shared.now(), error).await;
            return None;
        }
    };
    if let Some(cap) = options.max_budget_usd {
        session.with_core(|c| c.budget_mut().handle_cap(cap));
    }
    compact(shared, session, worker, text, limits.context_tokens_max).await;
    let mut call = first_call(shared, session, up, text, options).await;
    let mut turns = TurnLoop::new(max_turns, schema, limits.structured_retries);
    loop {
        let exhausted = session.with_core(|c| c.budget().poll_exhausted());
        if let Some(finish) = turns.poll_call(exhausted) {
            crate::met!(
                "upstream.budget_exceeded",
                "session {} query {query}: the spending cap is spent ({:?}), the query stops after {} turns",
                session.id,
                finish.incomplete,
                turns.turns()
            );
            return Some(finish);
        }
        turns.handle_call();
        session.with_core(|c| c.budget_mut().handle_call_sent());
        let turn = (query, turns.turns());
        let answer = ask_turn(shared, session, up, turn, &call, deadline).await?;
        let cost = limits.cost(&answer.model, answer.usage);
        if let Some(message) = session.with_core(|c| c.budget_mut().handle_spent(cost)) {
            crate::met!(
                "upstream.budget_warning",
                "session {}: {message}",
                session.id
            );
            let warning = ServerEvent::Warning {
                kind: "budget_warning".to_string(),
                message,
            };
            session.publish(shared.now(), warning).await;
        }
        let said = answer.text.clone();
        match turns.handle_answer(answer.text, answer.tool_uses.clone()) {
            Next::Finish(finish) => {
                if let Some(incomplete) = &finish.incomplete {
                    crate::met!(
                        "upstream.query_incomplete",
                        "session {} query {query}: {}",
                        session.id,
                        incomplete.error().1
                    );
                }
                return Some(finish);
            }
            Next::Tools(uses) => {
                let mut blocks: Vec<Block> = Vec::new();
                if !said.is_empty() {
                    blocks.push(Block::Text { text: said });
                }
                blocks.extend(uses.iter().map(|u| Block::ToolUse {
                    id: u.id.clone(),
                    name: u.name.clone(),
                    input: u.input.clone(),
                }));
                push(&mut call.messages, Role::Assistant, Content::Blocks(blocks));
                let mut results = Vec::with_capacity(uses.len());
                for tool in &uses {
                    let bound = limits.tool_result_bytes_max;
                    let result = tools::run_tool(shared, session, worker, query, tool, bound);
                    results.push(result.await);
                }
                push(&mut call.messages, Role::User, Content::Blocks(results));
            }
            Next::Retry { prompt } => {
                crate::met!(
                    "upstream.structured_retry",
                    "session {} query {query}: {prompt}",
                    session.id
                );
                let warning = ServerEvent::Warning {
                    kind: "structured_output_retry".to_string(),
                    message: format!(
                        "{prompt} The model is asked again: discard this query's model deltas so far."
                    ),
                };
                session.publish(shared.now(), warning).await;
                push(&mut call.messages, Role::Assistant, Content::Text(said));
                push(&mut call.messages, Role::User, Content::Text(prompt));
            }
        }
    }
}

fn push(messages: &mut Vec<Message>, role: Role, content: Content) {
    messages.push(Message { role, content });
}

/// The query's turn limit and output schema, or why its options are refused.
fn check_options(
    options: &QueryOptions,
    default_turns: u32,
) -> Result<(u32, Option<OutputSchema>), String> {
    let max_turns = match options.max_turns {
        Some(0) => return Err("max_turns must be at least 1".to_string()),
        Some(n) => n,
        None => default_turns,
    };
    let schema = options
        .output_schema
        .as_ref()
        .map(OutputSchema::new)
        .transpose()?;
    Ok((max_turns, schema))
}

/// The query's first call: its options built (warnings told), the history, the tools
/// and output format it asks for.
async fn first_call(
    shared: &Shared,
    session: &Session,
    up: &UpstreamClient,
    text: &str,
    options: &QueryOptions,
) -> crate::upstream::ModelCall {
    let built =
        session.with_core(|c| build_call(up.config(), c.model(), options, c.transcript(), text));
    if let Some(model) = built.session_model {
        session.with_core(|c| c.handle_model_chosen(model));
    }
    if built.trimmed > 0 {
        crate::met!(
            "upstream.context_trimmed",
            "session {}: {} history entries left out of the model call",
            session.id,
            built.trimmed
        );
    }
    let mut warnings = built.warnings;
    let (specs, unknown) = tools::offered(&options.tools);
    for name in unknown {
        let message = format!("tool {name:?} is not one this engine offers: left out");
        warnings.push(("tool_unknown", message));
    }
    for (kind, message) in warnings {
        match kind {
            "model_unknown" => crate::met!("upstream.model_unknown", "{message}"),
            "tool_unknown" => crate::met!("upstream.tool_unknown", "{message}"),
            _ => crate::met!("upstream.beta_unknown", "{message}"),
        }
        let warning = ServerEvent::Warning {
            kind: kind.to_string(),
            message,
        };
        session.publish(shared.now(), warning).await;
    }
    let mut call = built.call;
    call.tools = specs;
    call.output_format = options.output_schema.clone().map(|schema| OutputFormat {
        kind: "json_schema".to_string(),
        schema,
    });
    call
}

/// Compacts the session's history when it and the query outgrow the context window:
/// the pre-compaction hook archives the whole history to the workspace first, then the
/// oldest exchanges are replaced by a marker and the user is told.
async fn compact(shared: &Shared, session: &Session, worker: &Worker, text: &str, window: u64) {
    let plan = session.with_core(|c| compaction::plan(c.transcript(), text, window));
    let Some(plan) = plan else {
        return;
    };
    let archived = pre_compact_hook(shared, session, worker).await;
    session.with_core(|c| c.handle_compacted(plan.entries, compaction::marker));
    crate::met!(
        "upstream.context_compacted",
        "session {}: {} history entries compacted ({} tokens to {}, window {window}); archived: {archived}",
        session.id,
        plan.entries,
        plan.tokens_before,
        plan.tokens_after
    );
    let message = format!(
        "the conversation outgrew the model's context window ({} of {window} tokens): its {} \
         earliest messages were compacted and the model no longer sees them; the whole \
         history was {archived}",
        plan.tokens_before, plan.entries
    );
    let warning = ServerEvent::Warning {
        kind: "context_compacted".to_string(),
        message,
    };
    session.publish(shared.now(), warning).await;
    // The compacted history is what a resume elsewhere starts from.
    shared.env.disk_pace().await;
    shared.persist(session);
}

/// The pre-compaction hook: the whole history, before it is compacted, written to
/// `<worker dir>/compacted/<session>-<n>.txt` (one entry per line, JSON-quoted). Says
/// where it went, or why it could not be written (compaction goes on: the user is told).
async fn pre_compact_hook(shared: &Shared, session: &Session, worker: &Worker) -> String {
    let (transcript, n) = session.with_core(|c| (c.transcript().to_vec(), c.compactions()));
    let dir = format!("{}/compacted", worker.config().dir);
    let path = format!("{dir}/{}-{}.txt", session.id, n + 1);
    let mut text = String::new();
    for entry in &transcript {
        text.push_str(&serde_json::Value::from(entry.as_str()).to_string());
        text.push('\n');
    }
    shared.env.disk_pace().await;
    let disk = shared.env.disk();
    let written = disk
        .create_dir_all(&dir)
        .and_then(|()| disk.open(&path, crate::env::OpenMode::Truncate))
        .and_then(|file| {
            file.write_at(text.as_bytes(), 0)?;
            file.sync_data()
        });
    crate::met!(
        "upstream.pre_compact",
        "session {}: pre-compaction hook, {} history entries to {path}: {written:?}",
        session.id,
        transcript.len()
    );
    match written {
        Ok(()) => format!("archived at {path} first"),
        Err(e) => format!("not archived ({path}: {e})"),
    }
}
