//! What one connection does with what its client sends, as a sans-IO core: frames come
//! in already read (`handle_frame`, with the wall-clock time, whether the server drains,
//! and the per-user rate limiter's answer on demand); what to do goes out as an
//! [`InboundAction`] for `connection.rs` to carry out. It also owns the token the
//! connection runs under and the `refresh_required` timer (`poll_refresh`).
//!
//! The checks, in order: binary and control frames; the token's expiry (decided on the
//! decoded frame: only a `refresh_token` frame passes an expired token, whatever the
//! text of other frames contains); draining; decoding; the rate limit (queries only).

use super::auth::{Claims, TokenKeys};
use crate::protocol::{ClientMessage, ErrorCode, ServerEvent, decode_client};
use crate::sessions::core::ClientInput;
use std::time::Duration;

/// A frame as the socket read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Text(&'a str),
    Binary,
    /// The peer's Close.
    Close,
    /// Ping, pong and raw frames: the WebSocket layer answers them.
    Control,
}

/// What the server knows about the moment a frame arrived.
pub(crate) struct FrameContext<'a> {
    pub(crate) now_unix_ms: u64,
    pub(crate) draining: bool,
    pub(crate) chars_max: usize,
    pub(crate) keys: &'a TokenKeys,
}

/// What the connection does with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InboundAction {
    Ignore,
    /// Complete the closing handshake and end the connection.
    Close,
    /// Refuse the frame with this error (on the stream).
    Refuse {
        code: ErrorCode,
        message: String,
    },
    /// Hand this to the session (its core decides).
    Session(ClientInput),
    /// Publish this reply on the stream.
    Publish(ServerEvent),
}

pub(crate) struct Inbound {
    claims: Claims,
    /// The expiry a `refresh_required` was already sent for.
    refresh_sent_for: Option<u64>,
    /// `refresh_required` goes out this long before the token expires.
    refresh_lead: Duration,
}

impl Inbound {
    pub(crate) fn new(claims: Claims, refresh_lead: Duration) -> Self {
        Inbound {
            claims,
            refresh_sent_for: None,
            refresh_lead,
        }
    }

    /// Decides what `frame` does. `admit` asks the per-user rate limiter (called for
    /// queries only, once).
    pub(crate) fn handle_frame(
        &mut self,
        frame: Frame<'_>,
        ctx: &FrameContext<'_>,
        admit: impl FnOnce(&str) -> Result<(), Duration>,
    ) -> InboundAction {
        let text = match frame {
            Frame::Text(t) => t,
            Frame::Binary => {
                crate::met!(
                    "client.binary_frame",
                    "binary frame refused: text frames expected"
                );
                return refuse(
                    ErrorCode::BinaryNotSupported,
                    "binary frames are not supported: send JSON text frames",
                );
            }
            Frame::Close => return InboundAction::Close,
            Frame::Control => return InboundAction::Ignore,
        };
        let decoded = decode_client(text, ctx.chars_max);
        let now_s = ctx.now_unix_ms / 1000;
        let expired = now_s >= self.claims.exp.saturating_add(ctx.keys.skew.as_secs());
        if expired && !matches!(decoded, Ok(ClientMessage::RefreshToken { .. })) {
            crate::met!(
                "clock.token_expiry",
                "frame refused: {}'s token expired at {} (now {now_s}, skew {} s)",
                self.claims.sub,
                self.claims.exp,
                ctx.keys.skew.as_secs()
            );
            return refuse(
                ErrorCode::TokenExpired,
                "the token expired: send refresh_token or reconnect with a new token",
            );
        }
        if ctx.draining {
            return refuse(
                ErrorCode::ServerShuttingDown,
                "the server is shutting down: no new messages are accepted",
            );
        }
        let message = match decoded {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(code = ?e.code, "client frame refused: {}", e.detail);
                match e.code {
                    ErrorCode::InvalidJson => {
                        crate::met!("client.malformed_json", "frame refused: {}", e.detail)
                    }
                    ErrorCode::UnknownMessageType => {
                        crate::met!("client.unknown_type", "frame refused: {}", e.detail)
                    }
                    _ => {}
                }
                return InboundAction::Refuse {
                    code: e.code,
                    message: e.detail,
                };
            }
        };
        // Bytes bound characters from above: only long frames pay for counting.
        let at_limit = text.len() >= ctx.chars_max && text.chars().count() == ctx.chars_max;
        let action = match message {
            ClientMessage::Query { text, options, .. } => match admit(&self.claims.sub) {
                Err(wait) => {
                    crate::met!(
                        "client.rate_limit_crossed",
                        "{}'s message refused: rate limited for {} ms",
                        self.claims.sub,
                        wait.as_millis()
                    );
                    InboundAction::Refuse {
                        code: ErrorCode::RateLimited,
                        message: format!("rate limited: retry in {} ms", wait.as_millis()),
                    }
                }
                Ok(()) => InboundAction::Session(ClientInput::Query { text, options }),
            },
            ClientMessage::Interrupt { .. } => InboundAction::Session(ClientInput::Interrupt),
            ClientMessage::Extend { .. } => InboundAction::Session(ClientInput::Extend),
            ClientMessage::Ack { seq, .. } => InboundAction::Session(ClientInput::Ack { seq }),
            ClientMessage::RefreshToken { token, .. } => match ctx.keys.verify(&token, now_s) {
                Ok(claims) if claims.sub == self.claims.sub => {
                    let expires_unix_s = claims.exp;
                    self.claims = claims;
                    InboundAction::Publish(ServerEvent::TokenRefreshed { expires_unix_s })
                }
                Ok(_) => refuse(ErrorCode::Unauthorized, "the new token is for another user"),
                Err(e) => InboundAction::Refuse {
                    code: ErrorCode::Unauthorized,
                    message: e.to_string(),
                },
            },
        };
        if at_limit
            && matches!(
                action,
                InboundAction::Session(_) | InboundAction::Publish(_)
            )
        {
            crate::met!(
                "client.frame_at_limit",
                "frame of exactly {} characters ({} bytes) accepted",
                ctx.chars_max,
                text.len()
            );
        }
        action
    }

    /// Time until `refresh_required` is due, if it is still to be sent for this token.
    pub(crate) fn poll_refresh(&self, now_unix_ms: u64) -> Option<Duration> {
        if self.refresh_sent_for == Some(self.claims.exp) {
            return None;
        }
        let lead_ms = self.refresh_lead.as_millis() as u64;
        let due_ms = self.claims.exp.saturating_mul(1000).saturating_sub(lead_ms);
        Some(Duration::from_millis(due_ms.saturating_sub(now_unix_ms)))
    }

    /// `refresh_required` is due: the message to publish (once per token).
    pub(crate) fn handle_refresh_due(&mut self, now_unix_ms: u64) -> ServerEvent {
        self.refresh_sent_for = Some(self.claims.exp);
        let expires_in_ms = self
            .claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(now_unix_ms);
        ServerEvent::RefreshRequired { expires_in_ms }
    }
}

fn refuse(code: ErrorCode, message: &str) -> InboundAction {
    InboundAction::Refuse {
        code,
        message: message.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(b"inbound-test-secret", Duration::from_secs(30))
    }

    fn ctx(keys: &TokenKeys, now_s: u64) -> FrameContext<'_> {
        FrameContext {
            now_unix_ms: now_s * 1000,
            draining: false,
            chars_max: 1000,
            keys,
        }
    }

    fn inbound(exp: u64) -> Inbound {
        let claims = Claims {
            sub: "ana".into(),
            role: "member".into(),
            exp,
        };
        Inbound::new(claims, Duration::from_secs(300))
    }

    #[test]
    fn an_expired_token_passes_only_a_decoded_refresh_frame() {
        let keys = keys();
        let mut inbound = inbound(1_000);
        let late = ctx(&keys, 1_030);
        // A query whose text is "refresh_token" is still a query.
        let sneaky = r#"{"type":"query","text":"refresh_token"}"#;
        assert!(matches!(
            inbound.handle_frame(Frame::Text(sneaky), &late, |_| Ok(())),
            InboundAction::Refuse {
                code: ErrorCode::TokenExpired,
                ..
            }
        ));
        let fresh = keys.issue(&Claims {
            sub: "ana".into(),
            role: "member".into(),
            exp: 5_000,
        });
        let refresh = format!(r#"{{"type":"refresh_token","token":"{fresh}"}}"#);
        assert_eq!(
            inbound.handle_frame(Frame::Text(&refresh), &late, |_| Ok(())),
            InboundAction::Publish(ServerEvent::TokenRefreshed {
                expires_unix_s: 5_000
            })
        );
        assert!(matches!(
            inbound.handle_frame(Frame::Text(sneaky), &late, |_| Ok(())),
            InboundAction::Session(ClientInput::Query { .. })
        ));
        // Within the skew the old token still works.
        let mut inbound = self::inbound(1_000);
        assert!(matches!(
            inbound.handle_frame(Frame::Text(sneaky), &ctx(&keys, 1_029), |_| Ok(())),
            InboundAction::Session(_)
        ));
    }

    #[test]
    fn draining_rate_and_the_refresh_timer() {
        let keys = keys();
        let mut inbound = inbound(10_000);
        let query = r#"{"type":"query","text":"hi"}"#;
        let mut draining = ctx(&keys, 100);
        draining.draining = true;
        assert!(matches!(
            inbound.handle_frame(Frame::Text(query), &draining, |_| Ok(())),
            InboundAction::Refuse {
                code: ErrorCode::ServerShuttingDown,
                ..
            }
        ));
        assert_eq!(
            inbound.handle_frame(Frame::Text(query), &ctx(&keys, 100), |user| {
                assert_eq!(user, "ana");
                Err(Duration::from_millis(1500))
            }),
            InboundAction::Refuse {
                code: ErrorCode::RateLimited,
                message: "rate limited: retry in 1500 ms".into()
            }
        );
        assert_eq!(
            inbound.poll_refresh(9_000_000),
            Some(Duration::from_secs(700))
        );
        assert_eq!(
            inbound.handle_refresh_due(9_700_000),
            ServerEvent::RefreshRequired {
                expires_in_ms: 300_000
            }
        );
        assert_eq!(inbound.poll_refresh(9_700_000), None, "once per token");
    }

    /// Whether `text` holds a CamelCase word: a type or variant name leaking out.
    pub(crate) fn has_camel_case(text: &str) -> bool {
        text.split(|c: char| !c.is_alphanumeric()).any(|w| {
            let c: Vec<char> = w.chars().collect();
            c.windows(2)
                .any(|p| p[0].is_lowercase() && p[1].is_uppercase())
        })
    }

    #[test]
    fn every_refusal_is_worded_for_people() {
        let keys = keys();
        let now = ctx(&keys, 100);
        let mut late = ctx(&keys, 20_000);
        late.chars_max = 1000;
        let mut draining = ctx(&keys, 100);
        draining.draining = true;
        let long = format!(r#"{{"type":"query","text":"{}"}}"#, "x".repeat(2000));
        let cases: Vec<(Frame, &FrameContext, ErrorCode)> = vec![
            (Frame::Binary, &now, ErrorCode::BinaryNotSupported),
            (Frame::Text("{not json"), &now, ErrorCode::InvalidJson),
            (
                Frame::Text(r#"{"type":"launch"}"#),
                &now,
                ErrorCode::UnknownMessageType,
            ),
            (
                Frame::Text(r#"{"type":"query"}"#),
                &now,
                ErrorCode::InvalidMessage,
            ),
            (Frame::Text(&long), &now, ErrorCode::MessageTooLarge),
            (
                Frame::Text(r#"{"type":"query","text":"hi"}"#),
                &late,
                ErrorCode::TokenExpired,
            ),
            (
                Frame::Text(r#"{"type":"query","text":"hi"}"#),
                &draining,
                ErrorCode::ServerShuttingDown,
            ),
            (
                Frame::Text(r#"{"type":"refresh_token","token":"nonsense"}"#),
                &now,
                ErrorCode::Unauthorized,
            ),
        ];
        for (frame, context, expected) in cases {
            let action = inbound(10_000).handle_frame(frame, context, |_| Ok(()));
            let InboundAction::Refuse { code, message } = action else {
                panic!("{frame:?} was not refused: {action:?}");
            };
            assert_eq!(code, expected, "{frame:?}: {message}");
            assert!(!message.is_empty(), "{frame:?}: an empty message");
            assert!(
                !has_camel_case(&message),
                "{frame:?}: a type name in {message:?}"
            );
        }
    }
}
