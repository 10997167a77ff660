//! The VOPR's global oracles: a checker beside the system that sees what every client
//! sent and received (and the engine's wall clock when a frame left), never code inside
//! the engine. Violations are collected as they happen (the first names the run's
//! failure); counts tell a run's story in its trace.
//!
//! - **No cross-user leak**: every query carries its user's marker (`m<user>q<n>`); a
//!   message with another user's marker, or a welcome into another user's session, is a
//!   leak.
//! - **Session ids are never reused**, across restarts too: an id a new session gets
//!   must never have been issued before.
//! - **Tokens**: no query sent after its token's expiry plus the skew (by the engine's
//!   own clock, with a margin for the wire) is acted on.
//! - **Frame limits**: no query in a frame over the size limit is acted on: its marker
//!   never reaches the model API, nor comes back.
//! - **Durable**: a session that was connected when the engine crashed, created while
//!   its store could write, is resumed under its own id by its owner afterwards.
//! - Exactly-once, gap-free delivery per stream epoch lives in each slot's `Delivery`
//!   (`stage::client`); the limits and liveness checks in `cluster.rs` and `mod.rs`.

use engine::protocol::{ServerEvent, ServerMessage};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// A query sent under an expired token is judged only this far past the limit (the
/// frame's time on the wire, and the engine's clock read a moment before it arrives).
pub const EXPIRY_MARGIN_MS: u64 = 2_000;

/// How a session id reached a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issued {
    /// A new session (create, fork, or a resume answered with a fresh one).
    New,
    /// The session asked for (a live one, or one restored from the store).
    Same,
}

#[derive(Default)]
struct State {
    violations: Vec<String>,
    owners: BTreeMap<String, usize>,
    /// Texts sent on each (user, slot) while the token was expired past the skew,
    /// and those sent while it was valid (answers are echoes of their query's text).
    expired_texts: BTreeMap<(usize, usize), BTreeSet<String>>,
    valid_texts: BTreeMap<(usize, usize), BTreeSet<String>>,
    counts: BTreeMap<&'static str, u64>,
    /// Markers of queries the gateway must refuse whatever happens (oversized frames).
    forbidden: BTreeSet<String>,
}

#[derive(Default)]
pub struct Observer {
    state: Mutex<State>,
}

impl Observer {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("observer poisoned")
    }

    pub fn violation(&self, what: String) {
        tracing::error!(target: "scenarios", "VOPR oracle: {what}");
        self.lock().violations.push(what);
    }

    pub fn count(&self, what: &'static str) {
        *self.lock().counts.entry(what).or_default() += 1;
    }

    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.lock().counts.clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    /// Session ids issued to `user`, in id order.
    pub fn sessions_of(&self, user: usize) -> Vec<String> {
        let s = self.lock();
        s.owners
            .iter()
            .filter(|(_, owner)| **owner == user)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// User `user` was welcomed into session `id`.
    pub fn on_welcome(&self, user: usize, id: &str, issued: Issued) {
        let mut s = self.lock();
        match (s.owners.get(id).copied(), issued) {
            (Some(owner), Issued::New) => {
                let v = format!(
                    "session id {id} issued again: user{user} got it as a new session, user{owner} had it before"
                );
                drop(s);
                self.violation(v);
            }
            (Some(owner), Issued::Same) if owner != user => {
                let v = format!("user{user} was let into user{owner}'s session {id}");
                drop(s);
                self.violation(v);
            }
            (Some(_), Issued::Same) => {}
            (None, _) => {
                s.owners.insert(id.to_string(), user);
            }
        }
    }

    /// A query left user `user`'s slot with `text`, the engine's wall clock at
    /// `engine_ms` and the token expiring at `exp_s`.
    pub fn on_query_sent(&self, user: usize, slot: usize, text: &str, engine_ms: u64, exp_s: u64) {
        let limit_ms = (exp_s + super::config::TOKEN_SKEW.as_secs()) * 1000;
        let mut s = self.lock();
        if engine_ms >= limit_ms + EXPIRY_MARGIN_MS {
            s.expired_texts
                .entry((user, slot))
                .or_default()
                .insert(text.to_string());
        } else if engine_ms + EXPIRY_MARGIN_MS < limit_ms {
            s.valid_texts
                .entry((user, slot))
                .or_default()
                .insert(text.to_string());
        }
    }

    /// A query the gateway must refuse left, starting with its marker.
    pub fn on_forbidden_sent(&self, text: &str) {
        if let Some(marker) = text.split_whitespace().next() {
            self.lock().forbidden.insert(marker.to_string());
        }
    }

    /// The model API was asked `input_head`: a violation if it holds a marker of a
    /// query the gateway had to refuse.
    pub fn on_model_input(&self, input_head: &str) {
        let reached = input_head
            .split_whitespace()
            .find(|w| self.lock().forbidden.contains(*w))
            .map(str::to_string);
        if let Some(marker) = reached {
            self.violation(format!(
                "query {marker}, sent in a frame over the size limit, reached the model API"
            ));
        }
    }

    /// User `user`'s slot received `m` on session `session`.
    pub fn on_message(&self, user: usize, slot: usize, m: &ServerMessage) {
        let text = match &m.event {
            ServerEvent::Delta { text, .. } | ServerEvent::Result { text, .. } => text,
            _ => return,
        };
        // Only query markers can be forbidden or another user's.
        for (word, owner) in text
            .split_whitespace()
            .filter_map(|w| Some((w, marker_user(w)?)))
        {
            if self.lock().forbidden.contains(word) {
                self.violation(format!(
                    "user{user}'s query {word}, sent in a frame over the size limit, was answered"
                ));
            }
            if owner != user {
                self.violation(format!(
                    "user{user} received another user's answer ({word:?}, user{owner}'s)"
                ));
            }
        }
        if let ServerEvent::Result {
            text,
            truncated: false,
            ..
        } = &m.event
        {
            let s = self.lock();
            let expired = s
                .expired_texts
                .get(&(user, slot))
                .is_some_and(|t| t.contains(text));
            let valid = s
                .valid_texts
                .get(&(user, slot))
                .is_some_and(|t| t.contains(text));
            drop(s);
            if expired && !valid {
                self.violation(format!(
                    "user{user}'s query {text:?}, sent after its token expired (past the skew), was answered"
                ));
            }
        }
    }
}

/// The user a query marker names (`m3q17` → 3).
pub(super) fn marker_user(word: &str) -> Option<usize> {
    let rest = word.strip_prefix('m')?;
    let (user, n) = rest.split_once('q')?;
    n.parse::<u64>().ok()?;
    user.parse().ok()
}

/// A query marker: unique per user and query.
pub fn marker(user: usize, n: u64) -> String {
    format!("m{user}q{n}")
}
