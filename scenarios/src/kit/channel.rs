//! Helpers the channel scenarios share.

use crate::scenario::Failure;
use crate::stage::channel::ChannelStage;
use crate::stage::client::{SharedDelivery, SimClient};
use engine::protocol::{ErrorCode, ServerEvent, ServerMessage};
use engine::sessions::Session;
use engine::workers::program::expand_word;
use sim::World;
use std::sync::Arc;

pub use super::time::{ms, secs};

/// Declares a scenario whose body is an async fn over the world: its static, id, title,
/// what it proves, the fault kinds it exercises, `cores: [..]` (the engine files it
/// proves, `Scenario::cores`), its virtual-time budget in seconds and its body.
macro_rules! scenario {
    ($static:ident, $id:literal, $title:literal, $proves:literal, [$($fault:literal),*], cores: [$($core:literal),+ $(,)?], $sim_secs:expr, $body:ident) => {
        $crate::kit::channel::scenario!($static, $id, $title, $proves, [$($fault),*], cores: [$($core),+], $sim_secs, $body, plan: crate::kit::plans::channel);
    };
    ($static:ident, $id:literal, $title:literal, $proves:literal, [$($fault:literal),*], cores: [$($core:literal),+ $(,)?], $sim_secs:expr, $body:ident, plan: $plan:path) => {
        pub static $static: crate::scenario::Scenario = crate::scenario::Scenario {
            id: $id,
            title: $title,
            proves: $proves,
            faults_expected: &[$($fault),*],
            cores: &[$($core),+],
            sim_time_max: std::time::Duration::from_secs($sim_secs),
            body: {
                fn body(world: sim::World) -> crate::scenario::BodyFuture {
                    Box::pin($body(world))
                }
                body
            },
            real: None,
            plan: Some(crate::scenario::Plan::World($plan)),
            declared_at: $crate::declared_here!(),
        };
    };
}
pub(crate) use scenario;

pub fn is_result(m: &ServerMessage) -> bool {
    matches!(m.event, ServerEvent::Result { .. })
}

pub fn is_error(code: ErrorCode) -> impl Fn(&ServerMessage) -> bool {
    move |m| matches!(&m.event, ServerEvent::Error { code: c, .. } if *c == code)
}

pub fn is_status(state: &'static str) -> impl Fn(&ServerMessage) -> bool {
    move |m| matches!(&m.event, ServerEvent::Status { state: s } if s == state)
}

/// A stage with a warm pool and one connected client of user `ana`.
pub async fn one_client(
    world: &sim::World,
    tweak: impl FnOnce(&mut engine::sessions::SessionsConfig, &mut engine::gateway::GatewayConfig),
) -> Result<(ChannelStage, SimClient, String), Failure> {
    let mut st = ChannelStage::start(world, tweak).await?;
    st.ready(secs(60)).await?;
    let token = st.token("ana", "member", secs(3600));
    let d = st.new_delivery();
    let client = st.open(0, &format!("token={token}"), &d).await?;
    Ok((st, client, token))
}

/// Every `Delta` text of query `query` the client saw, in order, and its result text.
pub fn answer_of(client: &SimClient, query: u64) -> (Vec<String>, Option<String>) {
    let d = client.delivery.lock().expect("delivery poisoned");
    let mut deltas = Vec::new();
    let mut result = None;
    for m in &d.messages {
        match &m.event {
            ServerEvent::Delta { query: q, text } if *q == query => deltas.push(text.clone()),
            ServerEvent::Result { query: q, text, .. } if *q == query => {
                result = Some(text.clone())
            }
            _ => {}
        }
    }
    (deltas, result)
}

pub fn words(n: usize, prefix: &str) -> String {
    (1..=n)
        .map(|i| format!("{prefix}{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn is_delta(m: &ServerMessage) -> bool {
    matches!(m.event, ServerEvent::Delta { .. })
}

/// Reads `n` deltas.
pub async fn deltas(client: &mut SimClient, n: usize) -> Result<(), Failure> {
    for _ in 0..n {
        client.until("a delta", secs(30), is_delta).await?;
    }
    Ok(())
}

/// Fails unless query `query`'s streamed parts and result are exactly `expected`, each
/// part once.
pub fn answer_is(client: &SimClient, query: u64, expected: &str) -> Result<(), Failure> {
    let (parts, result) = answer_of(client, query);
    let joined = parts.join(" ");
    if joined != expected || result.as_deref() != Some(expected) {
        return Err(Failure::correctness(format!(
            "answer {query} disturbed: {} parts {joined:?}, result {result:?}, expected {expected:?}",
            parts.len()
        )));
    }
    Ok(())
}

/// The refusal a connect ended with, as an error code.
pub fn refusal_code(e: &crate::stage::client::ConnectError) -> Option<ErrorCode> {
    match e {
        crate::stage::client::ConnectError::Closed(m) => match &m.event {
            ServerEvent::Error { code, .. } => Some(*code),
            _ => None,
        },
        _ => None,
    }
}

/// The text of a refusal (`Closed` message or HTTP body).
pub fn refusal_text(e: &crate::stage::client::ConnectError) -> String {
    match e {
        crate::stage::client::ConnectError::Closed(m) => match &m.event {
            ServerEvent::Error { message, .. } => message.clone(),
            other => format!("{other:?}"),
        },
        crate::stage::client::ConnectError::Refused(r) => r.body.clone(),
        crate::stage::client::ConnectError::Io(e) => e.clone(),
    }
}

/// Marks "mid-answer" (the plan resets client 0's connection there), drops the client
/// and waits until the server notices. Returns the client's delivery record, its
/// session's id and the session.
pub async fn reset_and_leave(
    world: &World,
    st: &ChannelStage,
    c: SimClient,
) -> Result<(SharedDelivery, String, Arc<Session>), Failure> {
    world.mark("mid-answer");
    let (d, id) = (c.delivery.clone(), c.session_id.clone());
    c.drop_abruptly();
    let s = st.session(&id)?;
    st.eventually("the server notices the reset", secs(10), || {
        !s.is_attached()
    })
    .await?;
    Ok((d, id, s))
}

/// What the worker answers to `input`: its parts joined by spaces.
pub fn expected_answer(input: &str) -> String {
    input
        .split_whitespace()
        .flat_map(expand_word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The worker's answer to an input, made part by part as it is compared: a 10 MB
/// answer is checked byte for byte against what arrived without being held a second
/// time (the same parts [`expected_answer`] joins).
pub struct ExpectedAnswer<'a> {
    input: &'a str,
}

/// How a text compares with an [`ExpectedAnswer`], every byte compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerMatch {
    /// The text is the whole answer.
    Whole,
    /// The text is a proper prefix of the answer (empty included).
    Prefix,
    /// The text differs from the answer first at this byte offset (or goes on past its
    /// end).
    Differs { at: usize },
}

impl<'a> ExpectedAnswer<'a> {
    pub fn new(input: &'a str) -> Self {
        ExpectedAnswer { input }
    }

    /// The answer's pieces in order: the parts and the spaces between them.
    fn pieces(&self) -> impl Iterator<Item = String> + Send + 'a {
        let parts = self.input.split_whitespace().flat_map(expand_word);
        parts.enumerate().flat_map(|(i, part)| {
            let space = (i > 0).then(|| " ".to_string());
            space.into_iter().chain(std::iter::once(part))
        })
    }

    /// The answer's length in bytes.
    pub fn byte_len(&self) -> usize {
        self.pieces().map(|p| p.len()).sum()
    }

    /// How `text` compares with the answer.
    pub fn compare(&self, text: &[u8]) -> AnswerMatch {
        let mut check = self.check();
        check.feed(text);
        check.finish()
    }

    /// A comparison fed a text in pieces as it arrives (a body read from the network).
    pub fn check(&self) -> AnswerCheck<'a> {
        AnswerCheck {
            pieces: Box::new(self.pieces()),
            piece: String::new(),
            used: 0,
            matched: 0,
            differs: None,
        }
    }
}

/// A text compared with an [`ExpectedAnswer`] as it arrives ([`ExpectedAnswer::check`]).
pub struct AnswerCheck<'a> {
    pieces: Box<dyn Iterator<Item = String> + Send + 'a>,
    /// The answer's piece being compared, and how much of it matched.
    piece: String,
    used: usize,
    /// Bytes of the text that matched so far.
    matched: usize,
    differs: Option<usize>,
}

impl AnswerCheck<'_> {
    /// Compares the text's next bytes.
    pub fn feed(&mut self, mut text: &[u8]) {
        while !text.is_empty() && self.differs.is_none() {
            if self.used == self.piece.len() {
                match self.pieces.next() {
                    Some(piece) => (self.piece, self.used) = (piece, 0),
                    // The text goes on past the answer's end.
                    None => self.differs = Some(self.matched),
                }
                continue;
            }
            let want = &self.piece.as_bytes()[self.used..];
            let n = want.len().min(text.len());
            if want[..n] != text[..n] {
                let i = (0..n).find(|&i| want[i] != text[i]).unwrap_or(n);
                self.differs = Some(self.matched + i);
                return;
            }
            self.used += n;
            self.matched += n;
            text = &text[n..];
        }
    }

    /// How the whole text fed compares with the answer.
    pub fn finish(mut self) -> AnswerMatch {
        if let Some(at) = self.differs {
            return AnswerMatch::Differs { at };
        }
        let rest_of_piece = self.used < self.piece.len();
        if rest_of_piece || self.pieces.any(|p| !p.is_empty()) {
            AnswerMatch::Prefix
        } else {
            AnswerMatch::Whole
        }
    }
}

/// Query `query`'s result as the client got it: its text, whether it was cut at the
/// result bound, and the full size.
pub fn result_of(c: &SimClient, query: u64) -> Option<(String, bool, u64)> {
    let d = c.delivery.lock().expect("delivery");
    d.messages.iter().find_map(|m| match &m.event {
        ServerEvent::Result {
            query: q,
            text,
            truncated,
            bytes,
            ..
        } if *q == query => Some((text.clone(), *truncated, *bytes)),
        _ => None,
    })
}

/// The status states among `messages`, in order.
pub fn states(messages: &[ServerMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match &m.event {
            ServerEvent::Status { state } => Some(state.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expected_answer_compares_as_its_joined_string_does() {
        let input = "a payload:40000 bc payload:7";
        let joined = expected_answer(input);
        let expected = ExpectedAnswer::new(input);
        assert_eq!(expected.byte_len(), joined.len());
        let bytes = joined.as_bytes();
        assert_eq!(expected.compare(bytes), AnswerMatch::Whole);
        assert_eq!(expected.compare(b""), AnswerMatch::Prefix);
        for cut in [1, 2, 16_000, 16_386, 16_387, bytes.len() - 1] {
            assert_eq!(
                expected.compare(&bytes[..cut]),
                AnswerMatch::Prefix,
                "{cut}"
            );
        }
        for at in [0, 1, 2, 20_000, bytes.len() - 1] {
            let mut changed = bytes.to_vec();
            changed[at] ^= 1;
            assert_eq!(expected.compare(&changed), AnswerMatch::Differs { at });
        }
        for chunk in [1, 7, 16_384, 100_000] {
            let mut check = expected.check();
            bytes.chunks(chunk).for_each(|c| check.feed(c));
            assert_eq!(check.finish(), AnswerMatch::Whole, "in pieces of {chunk}");
        }
        let mut longer = bytes.to_vec();
        longer.push(b'x');
        let end = bytes.len();
        assert_eq!(expected.compare(&longer), AnswerMatch::Differs { at: end });
    }
}
