//! A query's model call, built from its options and the session's history (sans-IO).
//!
//! Options are checked here, when they are built, never by failing the query: a model
//! name the engine does not know falls back to the default and a beta it does not know
//! is left out, each with a warning the user sees. A model named once stays the
//! session's model. The conversation sent is the session's history (query texts and
//! answers) then the query, the oldest turns left out past `CONTEXT_BYTES_MAX` (the
//! whole query is always sent).

use crate::protocol::QueryOptions;
use crate::upstream::wire::{Content, Message, Role};
use crate::upstream::{ModelCall, UpstreamConfig};
use std::sync::Arc;

/// The history a model call carries, at most (the query itself always goes).
pub(crate) const CONTEXT_BYTES_MAX: usize = 1 << 20;

/// The call, and what the session and the user must learn of how it was built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BuiltCall {
    pub call: ModelCall,
    /// The session's model from now on, when the query named one it may use.
    pub session_model: Option<Option<String>>,
    /// (`warning` kind, message) for each option replaced or left out.
    pub warnings: Vec<(&'static str, String)>,
    /// History entries left out for the bound.
    pub trimmed: usize,
}

/// The model call for query `text` with `options`, on a session whose model is
/// `session_model` and whose history is `transcript`.
pub(crate) fn build_call(
    config: &UpstreamConfig,
    session_model: Option<&str>,
    options: &QueryOptions,
    transcript: &[Arc<String>],
    text: &str,
) -> BuiltCall {
    let mut warnings = Vec::new();
    let known = |m: &str| config.known_models.iter().any(|k| k == m);
    let (model, chosen) = match options.model.as_deref() {
        Some(m) if known(m) => (m.to_string(), Some(Some(m.to_string()))),
        Some(m) => {
            warnings.push((
                "model_unknown",
                format!(
                    "model {m:?} is not one this engine knows ({}): {} answers",
                    config.known_models.join(", "),
                    config.model
                ),
            ));
            (config.model.clone(), None)
        }
        None => match session_model.filter(|m| known(m)) {
            Some(m) => (m.to_string(), None),
            None => (config.model.clone(), None),
        },
    };
    let mut betas: Vec<String> = Vec::new();
    for beta in &options.betas {
        if !config.known_betas.contains(beta) {
            warnings.push((
                "beta_unknown",
                format!("beta feature {beta:?} is not one this engine knows: left out"),
            ));
        } else if !betas.contains(beta) {
            betas.push(beta.clone());
        }
    }
    let (messages, trimmed) = conversation(transcript, text);
    BuiltCall {
        call: ModelCall {
            model,
            betas,
            messages,
            tools: Vec::new(),
            output_format: None,
        },
        session_model: chosen,
        warnings,
        trimmed,
    }
}

/// The history's most recent entries (at most `CONTEXT_BYTES_MAX` bytes, whole
/// entries), then the query. Entries `"> text"` are the user's, the others answers;
/// neighbours of one role are joined (the API wants turns to alternate).
fn conversation(transcript: &[Arc<String>], text: &str) -> (Vec<Message>, usize) {
    let mut kept = 0;
    let mut bytes = 0;
    for entry in transcript.iter().rev() {
        if bytes + entry.len() > CONTEXT_BYTES_MAX {
            break;
        }
        bytes += entry.len();
        kept += 1;
    }
    let mut trimmed = transcript.len() - kept;
    let mut messages: Vec<Message> = Vec::new();
    let history = transcript[trimmed..]
        .iter()
        .map(|entry| match entry.strip_prefix("> ") {
            Some(query) => (Role::User, query),
            None => (Role::Assistant, entry.as_str()),
        });
    for (role, said) in history.chain([(Role::User, text)]) {
        match messages.last_mut() {
            Some(last) if last.role == role => {
                let joined = format!("{}\n{said}", last.content.text());
                last.content = Content::Text(joined);
            }
            _ => messages.push(Message {
                role,
                content: Content::Text(said.to_string()),
            }),
        }
    }
    // An answer cannot open the conversation.
    if messages.first().is_some_and(|m| m.role == Role::Assistant) {
        messages.remove(0);
        trimmed += 1;
    }
    debug_assert_eq!(messages.last().map(|m| m.role), Some(Role::User));
    (messages, trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::NetAddr;

    fn config() -> UpstreamConfig {
        UpstreamConfig::new(NetAddr::new("api", 443), "key")
    }

    fn history(entries: &[&str]) -> Vec<Arc<String>> {
        entries.iter().map(|e| Arc::new(e.to_string())).collect()
    }

    #[test]
    fn unknown_models_fall_back_and_unknown_betas_are_left_out_with_warnings() {
        let options = QueryOptions {
            model: Some("gpt-nonexistent".into()),
            betas: vec!["echo-tools-2026-01-01".into(), "time-travel".into()],
            ..QueryOptions::default()
        };
        let built = build_call(&config(), Some("local-echo-2"), &options, &[], "hi");
        assert_eq!(
            built.call.model, "local-echo-1",
            "the default, not the session's"
        );
        assert_eq!(built.call.betas, ["echo-tools-2026-01-01"]);
        let kinds: Vec<_> = built.warnings.iter().map(|w| w.0).collect();
        assert_eq!(kinds, ["model_unknown", "beta_unknown"]);
        assert_eq!(
            built.session_model, None,
            "an unknown name is not remembered"
        );
    }

    #[test]
    fn a_named_model_becomes_the_sessions_and_later_queries_use_it() {
        let options = QueryOptions {
            model: Some("local-echo-2".into()),
            ..QueryOptions::default()
        };
        let built = build_call(&config(), None, &options, &[], "hi");
        assert_eq!(built.call.model, "local-echo-2");
        assert_eq!(built.session_model, Some(Some("local-echo-2".into())));
        let later = build_call(
            &config(),
            Some("local-echo-2"),
            &QueryOptions::default(),
            &[],
            "x",
        );
        assert_eq!(later.call.model, "local-echo-2");
        assert!(later.warnings.is_empty());
    }

    #[test]
    fn the_history_goes_first_alternating_and_trimmed_oldest_first() {
        let h = history(&["> one", "ONE", "> two", "TWO"]);
        let built = build_call(&config(), None, &QueryOptions::default(), &h, "three");
        let turns: Vec<_> = built
            .call
            .messages
            .iter()
            .map(|m| (m.role, m.content.text()))
            .collect();
        assert_eq!(
            turns,
            [
                (Role::User, "one".to_string()),
                (Role::Assistant, "ONE".to_string()),
                (Role::User, "two".to_string()),
                (Role::Assistant, "TWO".to_string()),
                (Role::User, "three".to_string()),
            ]
        );
        let big = "x".repeat(CONTEXT_BYTES_MAX - 2);
        let h = history(&["> old", "OLD", "> big", &big]);
        let built = build_call(&config(), None, &QueryOptions::default(), &h, "q");
        assert_eq!(
            built.trimmed, 4,
            "only the newest entry fits, and it is an answer"
        );
        assert_eq!(
            built.call.messages.len(),
            1,
            "an answer cannot open: the query remains"
        );
        assert_eq!(built.call.messages[0].content.text(), "q");
    }
}
