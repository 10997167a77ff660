//! The model API's wire format: the Messages API as the official SDKs speak it
//! (`POST /v1/messages`, plain or streamed as server-sent events, and `GET /v1/models`).
//! Both the client and the local model server use these types, so the two cannot drift;
//! the SDK check (`ci/sdk-check.py`) holds them to what real clients expect.

use serde::{Deserialize, Serialize};

/// The API version the engine speaks (sent as `anthropic-version`).
pub const API_VERSION: &str = "2023-06-01";

/// A messages call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u32,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// The tools the model may ask the engine to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// The shape the final answer's text must have (structured output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_format: Option<OutputFormat>,
}

/// A tool offered to the model: its name, what it does, and its input's JSON schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// Structured output: the answer's text is a JSON document matching `schema`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFormat {
    /// Always `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    pub schema: serde_json::Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One turn of the conversation. Its content is a string or a list of blocks (the SDKs
/// send either).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Content,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
}

impl Content {
    /// The text of every text block, joined.
    pub fn text(&self) -> String {
        match self {
            Content::Text(text) => text.clone(),
            Content::Blocks(blocks) => blocks.iter().filter_map(Block::text).collect(),
        }
    }

    /// The blocks (a plain text is one text block).
    pub fn blocks(&self) -> Vec<Block> {
        match self {
            Content::Text(text) => vec![Block::Text { text: text.clone() }],
            Content::Blocks(blocks) => blocks.clone(),
        }
    }

    /// How many bytes of text or data it carries.
    pub fn size(&self) -> usize {
        match self {
            Content::Text(text) => text.len(),
            Content::Blocks(blocks) => blocks.iter().map(Block::size).sum(),
        }
    }
}

/// A content block. Kinds the engine does not use are kept as `Other`, so an answer
/// carrying them still parses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    /// The model asks the engine to run tool `name` on `input`.
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// A tool's result, sent back in the next user turn.
    ToolResult {
        tool_use_id: String,
        content: Vec<Block>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    /// Binary content, base64-encoded (a tool's binary result).
    Document {
        source: Base64Source,
    },
    #[serde(other)]
    Other,
}

/// Base64-encoded bytes and their media type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base64Source {
    /// Always `base64`.
    #[serde(rename = "type")]
    pub kind: String,
    pub media_type: String,
    pub data: String,
}

impl Block {
    pub fn text(&self) -> Option<&str> {
        match self {
            Block::Text { text } => Some(text),
            _ => None,
        }
    }

    /// How many bytes of text or data the block carries (its share of a context).
    pub fn size(&self) -> usize {
        match self {
            Block::Text { text } => text.len(),
            Block::ToolUse { input, .. } => input.to_string().len(),
            Block::ToolResult { content, .. } => content.iter().map(Block::size).sum(),
            Block::Document { source } => source.data.len(),
            Block::Other => 0,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
}

/// A whole answer (and, in a stream, the `message_start` event's message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagesAnswer {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub role: Role,
    pub content: Vec<Block>,
    pub model: String,
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

impl MessagesAnswer {
    pub fn text(&self) -> String {
        self.content.iter().filter_map(Block::text).collect()
    }
}

/// An error answer's body (and a stream's `error` event).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    #[serde(rename = "type")]
    pub kind: String,
    pub error: ApiError,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// `authentication_error`, `not_found_error`, `rate_limit_error`, `api_error`,
    /// `overloaded_error`, `invalid_request_error`...
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl ErrorAnswer {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        ErrorAnswer {
            kind: "error".to_string(),
            error: ApiError {
                kind: kind.to_string(),
                message: message.into(),
            },
        }
    }

    /// The error type the API uses for an HTTP status.
    pub fn kind_for_status(status: u16) -> &'static str {
        match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        }
    }
}

/// One event of a streamed answer; the SSE event name equals `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: MessagesAnswer,
    },
    ContentBlockStart {
        index: u32,
        content_block: Block,
    },
    Ping,
    ContentBlockDelta {
        index: u32,
        delta: Delta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Usage,
    },
    MessageStop,
    Error {
        error: ApiError,
    },
}

impl StreamEvent {
    /// The event as server-sent event text: its name, its JSON, a blank line.
    pub fn to_sse(&self) -> String {
        let data = serde_json::to_string(self).expect("stream events serialize");
        format!("event: {}\ndata: {data}\n\n", self.name())
    }

    /// The events of a whole streamed answer: each text block's text in deltas of at
    /// most `chunk_chars` characters (none for an empty text), each tool use's input in
    /// JSON pieces of at most `chunk_chars` characters.
    pub fn answer(message: &MessagesAnswer, chunk_chars: usize) -> Vec<StreamEvent> {
        assert!(chunk_chars > 0, "chunk_chars must be positive");
        let mut start = message.clone();
        start.content = Vec::new();
        start.stop_reason = None;
        start.usage.output_tokens = 0;
        let mut events = vec![StreamEvent::MessageStart { message: start }];
        let pieces = |text: &str| -> Vec<String> {
            let chars: Vec<char> = text.chars().collect();
            chars
                .chunks(chunk_chars)
                .map(|c| c.iter().collect())
                .collect()
        };
        // An answer without blocks still opens one (empty) text block, as the API does.
        let empty = [Block::Text {
            text: String::new(),
        }];
        let blocks = if message.content.is_empty() {
            &empty[..]
        } else {
            &message.content[..]
        };
        for (index, block) in blocks.iter().enumerate() {
            let index = index as u32;
            let (opening, deltas) = match block {
                Block::ToolUse { id, name, input } => {
                    let opening = Block::ToolUse {
                        id: id.clone(),
                        name: name.clone(),
                        input: serde_json::json!({}),
                    };
                    let json = input.to_string();
                    let deltas = pieces(&json)
                        .into_iter()
                        .map(|partial_json| Delta::InputJsonDelta { partial_json })
                        .collect::<Vec<_>>();
                    (opening, deltas)
                }
                other => {
                    let text = other.text().unwrap_or_default();
                    let opening = Block::Text {
                        text: String::new(),
                    };
                    let deltas = pieces(text)
                        .into_iter()
                        .map(|text| Delta::TextDelta { text })
                        .collect();
                    (opening, deltas)
                }
            };
            events.push(StreamEvent::ContentBlockStart {
                index,
                content_block: opening,
            });
            if index == 0 {
                events.push(StreamEvent::Ping);
            }
            for delta in deltas {
                events.push(StreamEvent::ContentBlockDelta { index, delta });
            }
            events.push(StreamEvent::ContentBlockStop { index });
        }
        events.push(StreamEvent::MessageDelta {
            delta: MessageDelta {
                stop_reason: message.stop_reason.clone(),
                stop_sequence: None,
            },
            usage: message.usage,
        });
        events.push(StreamEvent::MessageStop);
        events
    }

    /// The SSE event name this event is sent under.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::Ping => "ping",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Error { .. } => "error",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delta {
    TextDelta {
        text: String,
    },
    /// A piece of a tool use's input, as JSON text (the pieces joined parse).
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDelta {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// The model list (`GET /v1/models`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelList {
    pub data: Vec<ModelInfo>,
    pub has_more: bool,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: String,
    pub created_at: String,
}
