//! The local model server's echo model: its answer is the last user turn's text, its
//! token counts are words. It plays an agent when a query opens `use:TOOL*N` and the
//! call offers TOOL, and answers in the JSON asked for when the call has an output
//! format (in prose when the simulated API garbles it).

use super::wire::{Block, MessagesAnswer, MessagesRequest, Role, Usage};

/// The echo model's answer: the last user text turn's text. Token counts are words, a
/// stand-in the budget checks can rely on. A query opening with `use:TOOL*N` (TOOL one
/// of the call's tools) makes it an agent: it asks for TOOL on the rest of the query
/// until N of its tool results have come back, then answers with the last result's
/// text (a binary document said as its size). With an output format it answers
/// `{"answer": text}`, garbled (prose, not JSON) when the plan says so.
pub(super) fn echo(request: &MessagesRequest, call: u64, garbled: bool) -> MessagesAnswer {
    let (input, results, last_result) = last_user_text_and_results(request);
    let input_tokens = request
        .messages
        .iter()
        .map(|m| tokens(&m.content.blocks()))
        .sum();
    let (tool, text) = match directive(&input) {
        Some((tool, uses, rest)) if request.tools.iter().any(|t| t.name == tool) => {
            if results < uses {
                (Some(tool), rest.to_string())
            } else {
                (None, last_result.unwrap_or_else(|| rest.to_string()))
            }
        }
        _ => (None, input.clone()),
    };
    let (content, stop_reason) = match tool {
        Some(name) => {
            let block = Block::ToolUse {
                id: format!("toolu_{call:016x}"),
                name: name.to_string(),
                input: serde_json::json!({ "input": text }),
            };
            (vec![block], "tool_use")
        }
        None => {
            let text = match &request.output_format {
                Some(_) if garbled => format!("Sure! Here is the answer: {text}"),
                Some(_) => serde_json::json!({ "answer": text }).to_string(),
                None => text,
            };
            (vec![Block::Text { text }], "end_turn")
        }
    };
    let output_tokens = tokens(&content);
    MessagesAnswer {
        id: format!("msg_{call:016x}"),
        kind: "message".to_string(),
        role: Role::Assistant,
        model: request.model.clone(),
        stop_reason: Some(stop_reason.to_string()),
        stop_sequence: None,
        usage: Usage {
            input_tokens,
            output_tokens,
        },
        content,
    }
}

/// The echo model's token count of some blocks: words of text and of tool inputs, a
/// token per 4 bytes of binary data.
fn tokens(blocks: &[Block]) -> u64 {
    blocks
        .iter()
        .map(|block| match block {
            Block::Text { text } => text.split_whitespace().count() as u64,
            Block::ToolUse { input, .. } => input.to_string().split_whitespace().count() as u64,
            Block::ToolResult { content, .. } => tokens(content),
            Block::Document { source } => source.data.len().div_ceil(4) as u64,
            Block::Other => 0,
        })
        .sum()
}

/// `use:TOOL*N rest` → (TOOL, N, rest).
fn directive(text: &str) -> Option<(&str, usize, &str)> {
    let text = text.trim_start();
    let (head, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let (tool, uses) = head.strip_prefix("use:")?.split_once('*')?;
    let uses = uses.parse().ok().filter(|n| (1..=10_000).contains(n))?;
    Some((tool, uses, rest.trim_start()))
}

pub(super) fn last_user_text(request: &MessagesRequest) -> String {
    last_user_text_and_results(request).0
}

/// The text of the last user turn that has text, how many tool results came after it,
/// and the latest one's text.
fn last_user_text_and_results(request: &MessagesRequest) -> (String, usize, Option<String>) {
    let mut results = 0;
    let mut latest = None;
    for m in request
        .messages
        .iter()
        .rev()
        .filter(|m| m.role == Role::User)
    {
        let text = m.content.text();
        if !text.is_empty() {
            return (text, results, latest);
        }
        for block in m.content.blocks().iter().rev() {
            let Block::ToolResult { content, .. } = block else {
                continue;
            };
            results += 1;
            latest.get_or_insert_with(|| result_text(content));
        }
    }
    (String::new(), results, latest)
}

/// A tool result as the echo model says it: its text, and each binary document's size.
fn result_text(content: &[Block]) -> String {
    let mut said: Vec<String> = Vec::new();
    for block in content {
        match block {
            Block::Text { text } => said.push(text.clone()),
            Block::Document { source } => said.push(format!(
                "[a binary document of {} base64 characters]",
                source.data.len()
            )),
            _ => {}
        }
    }
    said.join(" ")
}
