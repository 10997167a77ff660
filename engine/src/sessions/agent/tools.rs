//! The tools a model may ask the engine to run, and their shell: the tool gate is asked
//! first (a denied tool is an error result the model sees, and the user is told); then
//! the session's worker runs it and its output becomes the result (`tool_result`),
//! a binary past the bound written to the worker's directory (the workspace).

use super::tool_result::{PartStep, ToolOutput};
use crate::env::OpenMode;
use crate::protocol::{ErrorCode, ServerEvent};
use crate::sessions::gate::{GateCall, GateDecision};
use crate::sessions::service::Shared;
use crate::sessions::session::Session;
use crate::upstream::ToolUse;
use crate::upstream::wire::{Block, ToolSpec};
use crate::workers::Worker;
use crate::workers::program::protocol::{Reply, Request};
use tokio::sync::mpsc;

/// The tools the engine offers: `read` has the session's worker read what its input
/// names in the sandbox (its words; `payload:N` and `binary:N` name N bytes of text or
/// binary data). Its name is the tool gate's, so roles allow or deny it.
pub(crate) const TOOLS: [&str; 1] = ["read"];

/// The specs of the tools a query allows, and the names it asked for that are not
/// tools (left out, with a warning).
pub(crate) fn offered(names: &[String]) -> (Vec<ToolSpec>, Vec<String>) {
    let mut specs: Vec<ToolSpec> = Vec::new();
    let mut unknown = Vec::new();
    for name in names {
        if !TOOLS.contains(&name.as_str()) {
            unknown.push(name.clone());
        } else if !specs.iter().any(|s| s.name == *name) {
            specs.push(ToolSpec {
                name: name.clone(),
                description: "Reads what its input names in the session's sandbox".to_string(),
                input_schema: serde_json::json!({
                    "type": "object",
                    "properties": {"input": {"type": "string"}},
                    "required": ["input"]
                }),
            });
        }
    }
    (specs, unknown)
}

/// Runs `tool` for query `query`: its result block for the model's next turn.
pub(crate) async fn run_tool(
    shared: &Shared,
    session: &Session,
    worker: &Worker,
    query: u64,
    tool: &ToolUse,
    bytes_max: usize,
) -> Block {
    let result = |content: Vec<Block>, is_error: bool| Block::ToolResult {
        tool_use_id: tool.id.clone(),
        content,
        is_error,
    };
    let error = |text: String| result(vec![Block::Text { text }], true);
    let call = GateCall::Tool { name: &tool.name };
    if let GateDecision::Deny { reason } = shared.gate.check(&session.gate_context(), &call) {
        let denied = ServerEvent::Error {
            code: ErrorCode::ToolDenied,
            message: reason.clone(),
        };
        session.publish(shared.now(), denied).await;
        return error(format!("the tool {} was denied: {reason}", tool.name));
    }
    let Some(input) = tool.input.get("input").and_then(|i| i.as_str()) else {
        return error(format!(
            "tool {}'s input must be {{\"input\": string}}",
            tool.name
        ));
    };
    let (tx, mut rx) = mpsc::channel(8);
    let run = Request::Run {
        id: query,
        input: input.to_string(),
        pace_ms: None,
    };
    let request = worker.request_streaming(run, tx);
    tokio::pin!(request);
    let mut output = ToolOutput::new(bytes_max);
    let mut spill = Spill::new(worker, query, &tool.id);
    let mut failed = None;
    let mut request_done = false;
    loop {
        tokio::select! {
            biased;
            reply = rx.recv() => match reply {
                Some(Reply::Event { data, binary, .. }) => {
                    if let PartStep::Spill(bytes) = output.handle_part(&data, binary) {
                        spill.append(shared, &bytes).await;
                    }
                }
                Some(Reply::Done { .. }) | None => break,
                Some(Reply::Error { message, .. }) => {
                    failed = Some(message);
                    break;
                }
                Some(_) => {}
            },
            r = &mut request, if !request_done => {
                request_done = true;
                if let Err(e) = r {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
    }
    if let Some(why) = failed {
        return error(format!("the tool {} failed: {why}", tool.name));
    }
    if output.binary_bytes() > 0 {
        crate::met!(
            "upstream.binary_tool_result",
            "session {} query {query}: tool {} returned {} bytes of binary data",
            session.id,
            tool.name,
            output.binary_bytes()
        );
    }
    let (content, is_error) = output.finish(spill.finish());
    result(content, is_error)
}

/// A binary result written to the workspace as it comes: `<worker dir>/tool-results/`.
struct Spill {
    path: String,
    file: Option<Box<dyn crate::env::DiskFile>>,
    /// The first write failure (later parts are not written).
    failed: Option<String>,
    started: bool,
}

impl Spill {
    fn new(worker: &Worker, query: u64, tool_id: &str) -> Self {
        // The id is the model's: only its safe characters make the file name.
        let id: String = tool_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(64)
            .collect();
        Spill {
            path: format!("{}/tool-results/q{query}-{id}.bin", worker.config().dir),
            file: None,
            failed: None,
            started: false,
        }
    }

    async fn append(&mut self, shared: &Shared, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        shared.env.disk_pace().await;
        if !self.started {
            self.started = true;
            let dir = self.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            let opened = shared
                .env
                .disk()
                .create_dir_all(dir)
                .and_then(|()| shared.env.disk().open(&self.path, OpenMode::Truncate));
            match opened {
                Ok(file) => self.file = Some(file),
                Err(e) => {
                    self.failed = Some(e.to_string());
                    return;
                }
            }
        }
        let Some(file) = &self.file else {
            return;
        };
        if let Err(e) = file.append(bytes) {
            self.failed = Some(e.to_string());
        }
    }

    /// Where the binary went, or why it is not there; `None` if nothing was spilled.
    fn finish(self) -> Option<Result<String, String>> {
        if !self.started {
            return None;
        }
        Some(match self.failed {
            Some(why) => Err(why),
            None => Ok(self.path),
        })
    }
}
