//! A streamed answer, event by event (sans-IO): the client's shell parses the body's
//! server-sent events (the `eventsource-stream` crate) and hands each one here, in order;
//! this core says which text delta to forward, when the answer is whole, and why a
//! stream that breaks off is an error. A stream that ends before `message_stop` is
//! never an answer: its partial text is discarded and only its length is kept, for the
//! log.

use super::wire::{Block, Delta, StreamEvent, Usage};
use std::fmt;

/// What one event means for the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamStep {
    /// Nothing to forward (a ping, a block opening or closing, the start).
    Nothing,
    /// Text to forward to the session, in order.
    Delta(String),
    /// The answer is whole.
    Done(StreamSummary),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamSummary {
    pub model: String,
    pub text_bytes: usize,
    pub deltas: u64,
    pub stop_reason: Option<String>,
    pub usage: Usage,
    /// The tools the model asks to run, in order (`stop_reason` is then `tool_use`).
    pub tool_uses: Vec<ToolUse>,
}

/// One tool the model asks the engine to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolUse {
    pub id: String,
    pub name: String,
    pub input: serde_json::Value,
}

/// The block being streamed.
#[derive(Debug)]
enum OpenBlock {
    Text,
    /// A tool use, its input's JSON pieces joined so far.
    Tool {
        id: String,
        name: String,
        json: String,
    },
}

/// Why a stream gave no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The stream broke the protocol (an event out of place, data that does not parse,
    /// an answer past the bound).
    Malformed(String),
    /// The API sent an `error` event (an overloaded model mid-answer, for instance).
    Api { kind: String, message: String },
    /// The body ended before `message_stop`: `partial_bytes` of text were discarded.
    EndedEarly { partial_bytes: usize },
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Malformed(detail) => write!(f, "malformed stream: {detail}"),
            StreamError::Api { kind, message } => write!(f, "{kind} mid-stream: {message}"),
            StreamError::EndedEarly { partial_bytes } => write!(
                f,
                "the stream ended before the answer was whole ({partial_bytes} bytes of \
                 partial text discarded)"
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before `message_start`.
    Waiting,
    Open,
    /// After `message_stop`: nothing more may come.
    Stopped,
}

/// The state of one streamed answer.
#[derive(Debug)]
pub struct StreamAssembler {
    phase: Phase,
    /// The content block being streamed, if one is open.
    block: Option<(u32, OpenBlock)>,
    summary: StreamSummary,
    text_bytes_max: usize,
}

impl StreamAssembler {
    /// An answer of at most `text_bytes_max` bytes of text (the engine's memory bound).
    pub fn new(text_bytes_max: usize) -> Self {
        assert!(text_bytes_max > 0, "text_bytes_max must be positive");
        StreamAssembler {
            phase: Phase::Waiting,
            block: None,
            summary: StreamSummary::default(),
            text_bytes_max,
        }
    }

    /// Bytes of text forwarded so far (at least one: a retry is no longer safe).
    pub fn text_bytes(&self) -> usize {
        self.summary.text_bytes
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// One server-sent event: its name (may be empty) and its data.
    pub fn handle_event(&mut self, name: &str, data: &str) -> Result<StreamStep, StreamError> {
        if !KNOWN_EVENTS.contains(&name) && !name.is_empty() {
            // The API may add event kinds; a client ignores those it does not know.
            return Ok(StreamStep::Nothing);
        }
        let event: StreamEvent = serde_json::from_str(data)
            .map_err(|e| StreamError::Malformed(format!("{name} event: {e}")))?;
        if !name.is_empty() && name != event.name() {
            return Err(StreamError::Malformed(format!(
                "event {name} carries a {} payload",
                event.name()
            )));
        }
        if self.phase == Phase::Stopped {
            return Err(StreamError::Malformed(format!(
                "{} after message_stop",
                event.name()
            )));
        }
        if let StreamEvent::Error { error } = event {
            return Err(StreamError::Api {
                kind: error.kind,
                message: error.message,
            });
        }
        if self.phase == Phase::Waiting {
            return match event {
                StreamEvent::MessageStart { message } => {
                    self.phase = Phase::Open;
                    self.summary.model = message.model;
                    self.summary.usage = message.usage;
                    Ok(StreamStep::Nothing)
                }
                StreamEvent::Ping => Ok(StreamStep::Nothing),
                other => Err(StreamError::Malformed(format!(
                    "{} before message_start",
                    other.name()
                ))),
            };
        }
        self.handle_open(event)
    }

    fn handle_open(&mut self, event: StreamEvent) -> Result<StreamStep, StreamError> {
        match event {
            StreamEvent::Ping => Ok(StreamStep::Nothing),
            StreamEvent::MessageStart { .. } => {
                Err(StreamError::Malformed("a second message_start".to_string()))
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                if let Some((open, _)) = &self.block {
                    return Err(StreamError::Malformed(format!(
                        "block {index} started while block {open} is open"
                    )));
                }
                let block = match content_block {
                    Block::ToolUse { id, name, .. } => OpenBlock::Tool {
                        id,
                        name,
                        json: String::new(),
                    },
                    _ => OpenBlock::Text,
                };
                self.block = Some((index, block));
                Ok(StreamStep::Nothing)
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let budget = self.text_bytes_max;
                let Some((_, block)) = self.block.as_mut().filter(|(open, _)| *open == index)
                else {
                    return Err(StreamError::Malformed(format!(
                        "a delta for block {index}, which is not open"
                    )));
                };
                match (delta, block) {
                    (Delta::TextDelta { text }, OpenBlock::Text) => self.forward(text),
                    (Delta::InputJsonDelta { partial_json }, OpenBlock::Tool { json, .. }) => {
                        if json.len() + partial_json.len() > budget {
                            return Err(StreamError::Malformed(format!(
                                "a tool input longer than {budget} bytes"
                            )));
                        }
                        json.push_str(&partial_json);
                        Ok(StreamStep::Nothing)
                    }
                    (Delta::Other, _) => Ok(StreamStep::Nothing),
                    (_, _) => Err(StreamError::Malformed(format!(
                        "block {index} got a delta of another kind"
                    ))),
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                let Some((_, block)) = self.block.take_if(|(open, _)| *open == index) else {
                    return Err(StreamError::Malformed(format!(
                        "block {index} stopped but it is not open"
                    )));
                };
                if let OpenBlock::Tool { id, name, json } = block {
                    // An input streamed as nothing is the empty object, as the API sends.
                    let json = if json.is_empty() { "{}" } else { json.as_str() };
                    let input = serde_json::from_str(json).map_err(|e| {
                        StreamError::Malformed(format!("tool {name}'s input is not JSON: {e}"))
                    })?;
                    self.summary.tool_uses.push(ToolUse { id, name, input });
                }
                Ok(StreamStep::Nothing)
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.summary.stop_reason = delta.stop_reason;
                }
                // The output count in a message delta is cumulative.
                self.summary.usage.output_tokens = usage.output_tokens;
                Ok(StreamStep::Nothing)
            }
            StreamEvent::MessageStop => {
                if let Some((open, _)) = &self.block {
                    return Err(StreamError::Malformed(format!(
                        "message_stop while block {open} is open"
                    )));
                }
                self.phase = Phase::Stopped;
                Ok(StreamStep::Done(self.summary.clone()))
            }
            StreamEvent::Error { .. } => unreachable!("error events are handled first"),
        }
    }

    fn forward(&mut self, text: String) -> Result<StreamStep, StreamError> {
        let total = self.summary.text_bytes + text.len();
        if total > self.text_bytes_max {
            return Err(StreamError::Malformed(format!(
                "answer longer than {} bytes",
                self.text_bytes_max
            )));
        }
        if text.is_empty() {
            return Ok(StreamStep::Nothing);
        }
        self.summary.text_bytes = total;
        self.summary.deltas += 1;
        Ok(StreamStep::Delta(text))
    }

    /// The body ended. Whole if `message_stop` came; otherwise the partial answer is
    /// discarded.
    pub fn handle_end(&self) -> Result<StreamSummary, StreamError> {
        match self.phase {
            Phase::Stopped => Ok(self.summary.clone()),
            Phase::Waiting | Phase::Open => Err(StreamError::EndedEarly {
                partial_bytes: self.summary.text_bytes,
            }),
        }
    }
}

const KNOWN_EVENTS: [&str; 8] = [
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "error",
];

#[cfg(test)]
mod tests;
