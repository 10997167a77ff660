//! Answers of a shape the query asks for: structured output the model keeps getting
//! wrong (core.EC-108), and tool results that are binary data (EC-109). The model API's
//! `Garbling` mode answers structured calls in prose; the worker's `binary:N` words
//! make its `read` tool return N bytes of binary data. What the model API was sent
//! (its tool results and binary documents) is read back from its log.
//!
//! Choices where the catalog leaves one: a structured answer that does not match is
//! asked for again twice (three calls in all), the user told before each retry to
//! discard that turn's deltas; the result then carries the unstructured answer with
//! subtype error_max_structured_output_retries, after the error. A binary tool result
//! goes back base64-encoded in a document block while it fits the 1 MB result bound
//! (EC-050's); past it, the engine writes it to the workspace as it streams (never
//! held whole) and the model gets its path.

use super::agent::result_with_subtype;
use super::kit::calls_for;
use super::kit::mode;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::model::*;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::{ChannelStage, with_upstream};
use engine::env::OpenMode;
use engine::protocol::ErrorCode;
use engine::upstream::MESSAGES_PATH;
use engine::workers::program::binary_byte;
use serde_json::json;
use sim::upstream::UpstreamMode;
use sim::{FaultPlan, World};

pub fn all() -> Vec<&'static Scenario> {
    vec![&STRUCTURED_RETRIES, &BINARY_TOOL_RESULT]
}

fn schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["answer"],
        "properties": {"answer": {"type": "string"}},
        "additionalProperties": false
    })
}

/// Messages calls the model API has served so far.
fn messages_calls(st: &ChannelStage) -> Result<usize, Failure> {
    let up = upstream_of(st)?;
    Ok(up
        .requests()
        .iter()
        .filter(|r| r.path == MESSAGES_PATH)
        .count())
}

scenario!(
    STRUCTURED_RETRIES,
    "core.EC-108",
    "Structured output still invalid after the maximum retries",
    "While the model answers structured calls in prose, a query with an output schema makes exactly three calls (two retries, each announced with a structured_output_retry warning), then the user gets the structured_output_invalid error and the unstructured answer as the result, subtype error_max_structured_output_retries (its deltas are the last turn's, as the global oracle checks); the failures are logged; once the model follows the format again, a structured query is answered in one call with JSON matching the schema.",
    ["upstream.garbled"],
    cores: [
        "engine/src/sessions/agent/structured.rs",
        "engine/src/sessions/agent/turns.rs",
        "engine/src/sessions/agent/mod.rs",
    ],
    300,
    structured_retries,
    plan: structured_plan
);
/// Structured answers garbled once the body marks `garble`, mended at `mend`.
fn structured_plan(seed: u64) -> FaultPlan {
    crate::kit::plans::channel_upstream(seed)
        .after("garble", 0, mode(UpstreamMode::Garbling))
        .after("mend", 0, mode(UpstreamMode::Serving))
}
async fn structured_retries(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    let garbled = !world.mark("garble").is_empty();
    let before = messages_calls(&st)?;
    query_with(
        &mut ana,
        "report the weather",
        json!({ "output_schema": schema() }),
    )
    .await?;
    let (text, subtype) = result_with_subtype(&mut ana, 1).await?;
    let calls = messages_calls(&st)? - before;
    if garbled {
        let error = errors_after(&ana, 0);
        ensure!(
            error.iter().any(
                |(code, message)| *code == ErrorCode::StructuredOutputInvalid
                    && message.contains("2 retries")
            ),
            "the user was not told the retries ran out: {error:?}"
        );
        ensure!(
            subtype.as_deref() == Some("error_max_structured_output_retries")
                && text.starts_with("Sure!"),
            "the unstructured answer did not come with its subtype: {text:?} {subtype:?}"
        );
        let retries = warnings(&ana, "structured_output_retry");
        ensure!(
            calls == 3 && retries.len() == 2,
            "{calls} calls and {} retry warnings for one query (3 and 2 expected)",
            retries.len()
        );
    } else {
        judge_structured(&text, subtype.as_deref(), calls, "report the weather")?;
    }
    world.mark("mend");
    let before = messages_calls(&st)?;
    query_with(
        &mut ana,
        "and tomorrow",
        json!({ "output_schema": schema() }),
    )
    .await?;
    let (text, subtype) = result_with_subtype(&mut ana, 2).await?;
    let calls = messages_calls(&st)? - before;
    judge_structured(&text, subtype.as_deref(), calls, "and tomorrow")?;
    st.check_global()
}

/// A structured query answered at once: one call, JSON matching the schema.
fn judge_structured(
    text: &str,
    subtype: Option<&str>,
    calls: usize,
    asked: &str,
) -> Result<(), Failure> {
    let document: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Failure::correctness(format!("not JSON ({e}): {text:?}")))?;
    ensure!(
        document == json!({ "answer": asked }) && subtype.is_none() && calls == 1,
        "a well-formed structured answer was not given at once: {text:?} {subtype:?} after {calls} calls"
    );
    Ok(())
}

/// The inline binary (base64 fits the bound) and the spilled one (it does not).
const SMALL: usize = 3_000;
const LARGE: usize = 2_000_000;

scenario!(
    BINARY_TOOL_RESULT,
    "core.EC-109",
    "Tool result carries binary data",
    "A tool returning 3,000 bytes of binary data gets them back to the model base64-encoded in a document block (decoded, byte for byte what the worker made); one returning 2,000,000 bytes (past the 1 MB result bound once encoded) has them written to the workspace as they stream and the model gets the path, no document: the file holds every byte in order; both queries are answered and the session lives on.",
    ["upstream.binary_tool_result"],
    cores: [
        "engine/src/sessions/agent/tool_result.rs",
        "engine/src/sessions/agent/tools.rs",
        "engine/src/workers/program/handle.rs",
    ],
    300,
    binary_tool_result,
    plan: crate::kit::plans::channel_upstream
);
async fn binary_tool_result(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| with_upstream(s)).await?;
    let up = upstream_of(&st)?;
    let tools = json!({ "tools": ["read"] });
    let small = format!("use:read*1 binary:{SMALL}");
    query_with(&mut ana, &small, tools.clone()).await?;
    let (_, subtype) = result_with_subtype(&mut ana, 1).await?;
    ensure!(subtype.is_none(), "{subtype:?}");
    let calls = calls_for(&up, &small);
    let documents = calls
        .last()
        .map(|c| c.documents.clone())
        .unwrap_or_default();
    let [(len, data)] = &documents[..] else {
        return Err(Failure::correctness(format!(
            "the tool's result went back as {} documents",
            documents.len()
        )));
    };
    let bytes = data_encoding::BASE64
        .decode(data.as_bytes())
        .map_err(|e| Failure::correctness(format!("the document is not base64: {e}")))?;
    ensure!(
        *len == data.len()
            && bytes.len() == SMALL
            && (0..SMALL).all(|i| bytes[i] == binary_byte(i)),
        "the document is not the worker's {SMALL} bytes ({} decoded)",
        bytes.len()
    );
    let large = format!("use:read*1 binary:{LARGE}");
    query_with(&mut ana, &large, tools).await?;
    let (result, subtype) = result_with_subtype(&mut ana, 2).await?;
    ensure!(subtype.is_none(), "{subtype:?}");
    let calls = calls_for(&up, &large);
    let last = calls
        .last()
        .ok_or_else(|| Failure::correctness("the large query made no call"))?;
    let said = last.tool_results.first().cloned().unwrap_or_default();
    ensure!(
        last.documents.is_empty() && said.contains("written to the workspace"),
        "a binary past the bound went back inline or unsaid: {said:?}"
    );
    let path = said
        .rsplit("workspace at ")
        .next()
        .map(str::trim)
        .ok_or_else(|| Failure::correctness(format!("no path in {said:?}")))?;
    ensure!(
        result.contains(path),
        "the answer does not carry the path: {result:?}"
    );
    check_spilled(&st, path, LARGE)?;
    st.check_global()
}

/// File `path` on the engine host holds the `len` bytes of a `binary:len` word.
fn check_spilled(st: &ChannelStage, path: &str, len: usize) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::correctness(format!("{path}: {e}"));
    let file = st.env.disk().open(path, OpenMode::Read).map_err(fail)?;
    let size = file.len().map_err(fail)? as usize;
    ensure!(size == len, "{path} holds {size} bytes, not {len}");
    let mut chunk = vec![0; 64 << 10];
    let mut at = 0;
    while at < len {
        let n = file.read_at(&mut chunk, at as u64).map_err(fail)?;
        ensure!(n > 0, "{path} ends at {at}");
        if let Some(i) = (0..n).find(|&i| chunk[i] != binary_byte(at + i)) {
            return Err(Failure::correctness(format!(
                "{path}: byte {} differs from the worker's",
                at + i
            )));
        }
        at += n;
    }
    Ok(())
}
