//! A conversation outgrowing the model's context window (core.EC-095): the engine's
//! window is set to 120 tokens (a word is a token, as the echo model counts them) and
//! one session asks eight queries of 20 words each, so its history passes the window
//! three times. What the model API was sent is read back from its log.
//!
//! Choices where the catalog leaves one: compaction happens before a query's first
//! call, drops whole exchanges from the oldest down to half the window (so it is not
//! needed again at once), keeps the latest exchange, and puts a marker in their place;
//! the pre-compaction hook archives the whole history to the workspace first, so
//! nothing is lost; the user is told with a `context_compacted` warning naming where
//! the history went.

use super::kit::calls_for;
use crate::ensure;
use crate::kit::channel::scenario;
use crate::kit::channel::*;
use crate::kit::model::*;
use crate::kit::sessions::*;
use crate::scenario::{Failure, Outcome, Scenario};
use crate::stage::channel::with_upstream;
use engine::env::OpenMode;
use sim::World;

pub fn all() -> Vec<&'static Scenario> {
    vec![&CONTEXT_COMPACTED]
}

const WINDOW: u64 = 120;
const QUERIES: u64 = 8;

/// Query `i`: 20 words, the first naming it.
fn query_text(i: u64) -> String {
    let words: Vec<String> = (1..20).map(|w| format!("w{w}")).collect();
    format!("q{i} {}", words.join(" "))
}

scenario!(
    CONTEXT_COMPACTED,
    "core.EC-095",
    "Conversation outgrows the context window",
    "With a 120-token window, eight 20-word queries in one session (compacted three times): every call the model API is sent stays within the window; when the history would pass it, the oldest exchanges are compacted into a marker the model sees first, after the pre-compaction hook archived the whole history to the workspace (read back: every entry, oldest first), and the user is told by a context_compacted warning naming the archive; every query is answered.",
    ["upstream.context_compacted"],
    cores: [
        "engine/src/sessions/agent/compaction.rs",
        "engine/src/sessions/agent/mod.rs",
        "engine/src/sessions/core/mod.rs",
    ],
    300,
    context_compacted,
    plan: crate::kit::plans::channel_upstream
);
async fn context_compacted(world: World) -> Outcome {
    let (st, mut ana, _) = one_client(&world, |s, _| {
        with_upstream(s);
        if let Some(up) = s.upstream.as_mut() {
            up.limits.context_tokens_max = WINDOW;
        }
    })
    .await?;
    let up = upstream_of(&st)?;
    for i in 1..=QUERIES {
        let text = query_text(i);
        ana.query(&text).await?;
        let (_, result) = wait_answer(&mut ana, i).await?;
        ensure!(result == expected_answer(&text), "query {i}: {result:?}");
    }
    // History before query i: 40 tokens an exchange; a compaction leaves at most 60
    // (half the window) and a marker of 8 words. Before queries 4, 6 and 8 the history
    // and the query pass 120: 4, then 8, then 12 messages compacted in all.
    let told = warnings(&ana, "context_compacted");
    ensure!(
        told.len() == 3,
        "{} compaction warnings in eight queries (three expected)",
        told.len()
    );
    for i in 1..=QUERIES {
        for call in calls_for(&up, &query_text(i)) {
            let tokens = call.usage.map_or(0, |u| u.input_tokens);
            ensure!(
                tokens <= WINDOW,
                "query {i}'s call carried {tokens} tokens, past the {WINDOW}-token window"
            );
        }
    }
    // Each compacted query's call opens with the marker, counting every message
    // compacted so far.
    for (i, messages) in [(4, 4), (6, 8), (8, 12)] {
        let call = calls_for(&up, &query_text(i));
        let first = call
            .first()
            .and_then(|c| c.first_head.clone())
            .unwrap_or_default();
        ensure!(
            first.starts_with(&format!("[{messages} earlier messages")),
            "query {i}'s call does not open with the marker for {messages} messages: {first:?}"
        );
    }
    // The hook's archive holds the whole history as it was before the compaction.
    let path = told[0]
        .split("archived at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .ok_or_else(|| Failure::correctness(format!("no archive named: {:?}", told[0])))?;
    let archived = read_file(&st, path)?;
    let entries: Vec<String> = archived
        .lines()
        .map(|l| serde_json::from_str::<String>(l).unwrap_or_default())
        .collect();
    ensure!(
        entries.len() == 6
            && entries[0] == format!("> {}", query_text(1))
            && entries[5] == expected_answer(&query_text(3)),
        "the archive is not the history before compaction: {} entries, first {:?}",
        entries.len(),
        entries.first()
    );
    st.check_global()
}

/// The whole of file `path` on the engine host's disk, as text.
fn read_file(st: &crate::stage::channel::ChannelStage, path: &str) -> Result<String, Failure> {
    let file = st
        .env
        .disk()
        .open(path, OpenMode::Read)
        .map_err(|e| Failure::correctness(format!("{path}: {e}")))?;
    let len = file
        .len()
        .map_err(|e| Failure::correctness(e.to_string()))? as usize;
    let mut bytes = vec![0; len];
    let read = file
        .read_at(&mut bytes, 0)
        .map_err(|e| Failure::correctness(e.to_string()))?;
    ensure!(read == len, "{path}: {read} of {len} bytes read");
    String::from_utf8(bytes).map_err(|e| Failure::correctness(e.to_string()))
}
