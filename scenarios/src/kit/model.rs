//! Clients of a channel whose sessions ask the model API: queries with options, the
//! model's streamed deltas and warnings as a client saw them, and the oracle every such
//! run keeps (no model delta lost, repeated or reordered on its way to a client).

use crate::kit::channel::expected_answer;
use crate::scenario::Failure;
use crate::stage::client::{Delivery, SimClient};
use engine::protocol::{ErrorCode, ServerEvent, ServerMessage};
use std::collections::BTreeMap;

/// Sends a query with `options` (a JSON object: `{"model": ...}`).
pub async fn query_with(
    client: &mut SimClient,
    text: &str,
    options: serde_json::Value,
) -> Result<(), Failure> {
    let frame = serde_json::json!({ "type": "query", "text": text, "options": options });
    client.send_text(&frame.to_string()).await
}

/// The model's deltas for `query` the client saw, in order (of every turn).
pub fn model_deltas(client: &SimClient, query: u64) -> Vec<String> {
    let d = client.delivery.lock().expect("delivery poisoned");
    d.messages
        .iter()
        .filter_map(|m| match &m.event {
            ServerEvent::ModelDelta { query: q, text, .. } if *q == query => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// The messages of every `warning` of `kind` the client saw.
pub fn warnings(client: &SimClient, kind: &str) -> Vec<String> {
    let d = client.delivery.lock().expect("delivery poisoned");
    d.messages
        .iter()
        .filter_map(|m| match &m.event {
            ServerEvent::Warning { kind: k, message } if k == kind => Some(message.clone()),
            _ => None,
        })
        .collect()
}

pub fn is_warning(kind: &'static str) -> impl Fn(&ServerMessage) -> bool {
    move |m| matches!(&m.event, ServerEvent::Warning { kind: k, .. } if k == kind)
}

/// The error the client got for a failed query, if any, after message `after_seq`.
pub fn errors_after(client: &SimClient, after_seq: u64) -> Vec<(ErrorCode, String)> {
    let d = client.delivery.lock().expect("delivery poisoned");
    d.messages
        .iter()
        .filter(|m| m.seq.is_some_and(|s| s > after_seq))
        .filter_map(|m| match &m.event {
            ServerEvent::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .collect()
}

/// Per query, what one client saw of the model's answer and what became of it.
#[derive(Default)]
struct Seen {
    /// The latest turn's deltas, joined (a new turn's answer replaces the last's).
    model: String,
    turn: u32,
    turn_went_back: bool,
    result: Option<(String, bool)>,
    delta_after_end: bool,
    broke_off: bool,
}

/// The oracle of every run whose sessions ask the model: for each query a client saw
/// from its start, the model's deltas arrive before the query's end, none after it;
/// joined, they are exactly what the worker carried out (its result is the worker's
/// answer to them), so no delta was lost, repeated or reordered; and a query whose
/// answer broke off has no result. In a query of several turns this holds of its last
/// turn, and turns never go back.
pub fn check_model_deltas(d: &Delivery) -> Result<(), Failure> {
    if d.base != 0 || d.gap_allowed_through != 0 {
        return Ok(()); // joined mid-stream or missed messages on purpose: nothing to judge
    }
    let mut seen: BTreeMap<u64, Seen> = BTreeMap::new();
    let mut running: Option<u64> = None;
    for m in &d.messages {
        match &m.event {
            ServerEvent::ModelDelta { query, text, turn } => {
                let s = seen.entry(*query).or_default();
                s.delta_after_end |= s.result.is_some() || s.broke_off;
                s.turn_went_back |= *turn < s.turn;
                if *turn > s.turn {
                    s.model.clear();
                    s.turn = *turn;
                }
                s.model.push_str(text);
                running = Some(*query);
            }
            ServerEvent::Result {
                query,
                text,
                truncated,
                ..
            } => {
                seen.entry(*query).or_default().result = Some((text.clone(), *truncated));
            }
            ServerEvent::Error {
                code: ErrorCode::AnswerBrokeOff,
                ..
            } => {
                if let Some(q) = running {
                    seen.entry(q).or_default().broke_off = true;
                }
            }
            _ => {}
        }
    }
    for (query, s) in &seen {
        let fail = |what: String| Err(Failure::correctness(format!("query {query}: {what}")));
        if s.delta_after_end {
            return fail("a model delta arrived after the query ended".to_string());
        }
        if s.turn_went_back {
            return fail("a model delta of an earlier turn came after a later turn's".to_string());
        }
        if s.broke_off && s.result.is_some() {
            return fail("its answer broke off, yet it has a result".to_string());
        }
        match &s.result {
            Some((text, false)) if !s.model.is_empty() && *text != expected_answer(&s.model) => {
                return fail(format!(
                    "the model's deltas joined ({} bytes) are not what the worker carried out \
                     (a delta lost, repeated or reordered): model {:?}, result {:?}",
                    s.model.len(),
                    head(&s.model),
                    head(text)
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn head(text: &str) -> String {
    text.chars().take(80).collect()
}
