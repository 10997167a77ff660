//! What the model API's scenarios share: the operator's switch as plan data, the
//! engine's client, and a query answered by the model as the client sees it.

use crate::ensure;
use crate::kit::channel::expected_answer;
use crate::kit::model::model_deltas;
use crate::kit::sessions::wait_answer;
use crate::scenario::Failure;
use crate::stage::channel::{ChannelStage, UPSTREAM_HOST};
use crate::stage::client::SimClient;
use engine::protocol::ServerEvent;
use engine::upstream::{LocalUpstream, MESSAGES_PATH, UpstreamClient, UpstreamRequest};
use sim::faults::Fault;
use sim::upstream::UpstreamMode;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The model API on `upstream-0` switched to `set` (plan data).
pub fn mode(set: UpstreamMode) -> Fault {
    Fault::UpstreamMode {
        host: UPSTREAM_HOST.into(),
        set,
    }
}

fn switch(on: bool, fault: UpstreamMode) -> Fault {
    mode(if on { fault } else { UpstreamMode::Serving })
}

/// Every call left unanswered, or answered again.
pub fn hang(on: bool) -> Fault {
    switch(on, UpstreamMode::Silent)
}

/// Every messages answer dropped halfway, or whole again.
pub fn drop_answers(on: bool) -> Fault {
    switch(on, UpstreamMode::Dropping)
}

/// Every messages answer empty, or not.
pub fn empty_answers(on: bool) -> Fault {
    switch(on, UpstreamMode::Emptying)
}

/// The engine's model API client (one per instance, shared by its sessions).
pub fn engine_client(st: &ChannelStage) -> Result<Arc<UpstreamClient>, Failure> {
    st.sessions
        .upstream()
        .cloned()
        .ok_or_else(|| Failure::correctness("the engine has no upstream client"))
}

/// Sends `text` as query `query` and waits for it to be answered by the model (the
/// echo model's answer is the query) and carried out by the worker.
pub async fn answered(client: &mut SimClient, query: u64, text: &str) -> Result<(), Failure> {
    client.query(text).await?;
    let (_, result) = wait_answer(client, query).await?;
    ensure!(
        result == expected_answer(text),
        "query {query} was not answered as the model said: {result:?}"
    );
    answer_is_model(client, query, text)
}

/// Query `query`'s model deltas, joined, are `text`: each once, in order.
pub fn answer_is_model(client: &SimClient, query: u64, text: &str) -> Result<(), Failure> {
    let joined = model_deltas(client, query).concat();
    ensure!(
        joined == text,
        "query {query}: the model's deltas joined are {joined:?}, not its answer {text:?}"
    );
    Ok(())
}

/// The messages calls the model API served for the query whose text starts `text`.
pub fn calls_for(up: &LocalUpstream, text: &str) -> Vec<UpstreamRequest> {
    let head: String = text.chars().take(64).collect();
    up.requests()
        .into_iter()
        .filter(|r| r.path == MESSAGES_PATH && r.input_head.as_deref() == Some(head.as_str()))
        .collect()
}

/// The messages calls the model API received, with their status, in arrival order.
pub fn message_calls(up: &LocalUpstream) -> Vec<(Instant, u16)> {
    up.requests()
        .iter()
        .filter(|r| r.path == MESSAGES_PATH)
        .map(|r| (r.at, r.status))
        .collect()
}

/// How a query ended for the client: its result or its error, within `bound`.
pub async fn outcome(c: &mut SimClient, bound: Duration) -> Result<ServerEvent, Failure> {
    let end = c
        .until("an answer or an error", bound, |m| {
            matches!(
                m.event,
                ServerEvent::Result { .. } | ServerEvent::Error { .. }
            )
        })
        .await?;
    Ok(end.event)
}
