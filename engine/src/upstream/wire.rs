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
}

/// A content block. Kinds the engine does not use are kept as `Other`, so an answer
/// carrying them still parses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    #[serde(other)]
    Other,
}

impl Block {
    pub fn text(&self) -> Option<&str> {
        match self {
            Block::Text { text } => Some(text),
            Block::Other => None,
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

    /// The events of a whole streamed answer: its text in deltas of at most
    /// `chunk_chars` characters (none for an empty text).
    pub fn answer(message: &MessagesAnswer, chunk_chars: usize) -> Vec<StreamEvent> {
        assert!(chunk_chars > 0, "chunk_chars must be positive");
        let text = message.text();
        let mut start = message.clone();
        start.content = Vec::new();
        start.stop_reason = None;
        start.usage.output_tokens = 0;
        let mut events = vec![
            StreamEvent::MessageStart { message: start },
            StreamEvent::ContentBlockStart {
                index: 0,
                content_block: Block::Text {
                    text: String::new(),
                },
            },
            StreamEvent::Ping,
        ];
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(chunk_chars) {
            events.push(StreamEvent::ContentBlockDelta {
                index: 0,
                delta: Delta::TextDelta {
                    text: chunk.iter().collect(),
                },
            });
        }
        events.push(StreamEvent::ContentBlockStop { index: 0 });
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
