//! The context window (sans-IO): a session's history is counted in tokens (a word is a
//! token, as the model API's own count is approximated here) before each query's first
//! call. Past the window, the oldest exchanges are compacted: dropped from the history
//! the model sees, down to half the window so the next queries have room, with a marker
//! saying how many went. The latest exchange and the query itself are always kept.

use std::sync::Arc;

/// What a compaction drops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Compaction {
    /// History entries to drop, from the oldest.
    pub entries: usize,
    pub tokens_before: u64,
    pub tokens_after: u64,
}

pub(crate) fn tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The compaction `history` needs before query `text` is sent within `window` tokens,
/// if it needs one. Whole exchanges go (a query and its answer), so the history still
/// opens with a query.
pub(crate) fn plan(history: &[Arc<String>], text: &str, window: u64) -> Option<Compaction> {
    // A user entry's `> ` mark is the engine's, not the conversation's.
    let sizes: Vec<u64> = history
        .iter()
        .map(|e| tokens(e.strip_prefix("> ").unwrap_or(e)))
        .collect();
    let before: u64 = sizes.iter().sum::<u64>() + tokens(text);
    if before <= window {
        return None;
    }
    let target = window / 2;
    let mut after = before;
    let mut entries = 0;
    // Keep the last two entries (the latest exchange) whatever their size.
    let droppable = history.len().saturating_sub(2);
    while entries < droppable && after > target {
        after -= sizes[entries];
        entries += 1;
        // An answer goes with its query: do not leave it opening the history.
        while entries < droppable && !history[entries].starts_with("> ") {
            after -= sizes[entries];
            entries += 1;
        }
    }
    (entries > 0).then_some(Compaction {
        entries,
        tokens_before: before,
        tokens_after: after,
    })
}

/// The history entry that stands for `messages` compacted ones (a user turn, so the
/// history still opens with one). It is the history's oldest entry, so the next
/// compaction drops it first and counts the messages it stood for.
pub(crate) fn marker(messages: usize) -> String {
    format!("> [{messages} earlier messages of this conversation were compacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(entries: &[&str]) -> Vec<Arc<String>> {
        entries.iter().map(|e| Arc::new(e.to_string())).collect()
    }

    #[test]
    fn within_the_window_nothing_is_compacted() {
        let h = history(&["> a b", "c d"]);
        assert_eq!(plan(&h, "e", 5), None);
    }

    #[test]
    fn past_the_window_the_oldest_exchanges_go_down_to_half_of_it() {
        let h = history(&["> a b c", "d e f", "> g h", "i j", "> k", "l"]);
        // 12 tokens of history + 1 of query = 13 > 10: down to 5 or less.
        let c = plan(&h, "m", 10).expect("compacts");
        assert_eq!(c.entries, 4, "two whole exchanges");
        assert_eq!((c.tokens_before, c.tokens_after), (13, 3));
        assert!(h[c.entries].starts_with("> "));
    }

    #[test]
    fn the_latest_exchange_is_kept_even_when_it_alone_is_too_big() {
        let h = history(&["> a", "b c d e f g h i j k l m"]);
        assert_eq!(plan(&h, "q", 4), None);
    }
}
