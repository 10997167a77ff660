//! One WebSocket, the shell around two cores: its inbound frames are decided by
//! [`Inbound`] (token, draining, decoding, rate), what they ask of the session by the
//! session's core. It attaches to its session, writes the session's stream from where
//! the client is, and carries out those decisions. It never blocks on its own output: a
//! reply it must publish waits for room by writing first.

use super::auth::Claims;
use super::inbound::{Frame, FrameContext, Inbound, InboundAction};
use super::server::{Gateway, Opening};
use super::upgrade::WebSocket;
use crate::protocol::{ErrorCode, ServerEvent, ServerMessage};
use crate::sessions::Session;
use crate::sessions::core::InputOutcome;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A Close frame with its RFC 6455 status code and a reason in words (at most 123
/// bytes, the room a control frame leaves).
fn close_frame(code: CloseCode, reason: &str) -> Message {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].to_string().into(),
    }))
}

pub(crate) async fn run_socket(
    gw: Arc<Gateway>,
    mut socket: WebSocket,
    claims: Claims,
    opening: Opening,
) {
    let (session, last_seq, notice) = match opening {
        Opening::Attach {
            session,
            last_seq,
            notice,
        } => (session, last_seq, notice),
        Opening::Refuse(message) => {
            let _ = socket.send(Message::Text(message.encode().into())).await;
            let _ = socket
                .send(close_frame(
                    CloseCode::Policy,
                    "the session cannot be opened",
                ))
                .await;
            return;
        }
    };
    let now = gw.sessions.now();
    let attachment = match session.attach(now, last_seq) {
        Ok(a) => a,
        Err(e) => {
            // The client claims messages never sent: tampering or corruption. Refuse,
            // and reset the session.
            tracing::warn!(session = %session.id, "reconnect refused: {e}");
            crate::met!(
                "client.seq_ahead",
                "session {}: reconnect refused and the session reset: {e}",
                session.id
            );
            let refusal = ServerMessage::control(ServerEvent::Error {
                code: ErrorCode::InvalidSequence,
                message: "last_seq is ahead of the server, so the session was reset: refresh the \
                          client's state from a new session"
                    .to_string(),
            });
            let _ = socket.send(Message::Text(refusal.encode().into())).await;
            let _ = socket
                .send(close_frame(CloseCode::Policy, "invalid sequence number"))
                .await;
            session.request_end("reset after an invalid sequence number");
            return;
        }
    };
    let inbound = Inbound::new(claims, gw.config.refresh_lead);
    let mut conn = Conn {
        gw,
        session,
        generation: attachment.generation,
        inbound,
    };
    let welcome = ServerMessage::control(ServerEvent::Welcome {
        session_id: conn.session.id.clone(),
        resumed: last_seq.is_some(),
        notice,
        last_seq: attachment.start_after,
    });
    if conn.write(&mut socket, welcome.encode()).await.is_err() {
        return conn.detach();
    }
    if let Some(gap) = attachment.gap
        && conn.write_gap(&mut socket, gap).await.is_err()
    {
        return conn.detach();
    }
    let mut displaced = attachment.displaced;
    loop {
        let ready = conn.session.out_ready.notified();
        if conn.flush(&mut socket).await.is_err() {
            return conn.detach();
        }
        if conn.session.finished_for(conn.generation) {
            if let Some(reason) = conn.session.end_unsequenced() {
                let m = ServerMessage::control(ServerEvent::SessionEnded { reason });
                let _ = conn.write(&mut socket, m.encode()).await;
            }
            // The session ended and the client has its last word: close, so nothing
            // sent later is left hanging on a dead session. Going away (1001) when the
            // server drains, a normal close (1000) otherwise.
            let (code, reason) = if conn.gw.sessions.is_draining() {
                (CloseCode::Away, "the server is shutting down")
            } else {
                (CloseCode::Normal, "the session ended")
            };
            let _ = socket.send(close_frame(code, reason)).await;
            conn.close(&mut socket).await;
            return conn.detach();
        }
        let refresh_at = conn.inbound.poll_refresh(conn.now_unix_ms());
        tokio::select! {
            biased;
            _ = displaced.changed() => {
                let reason = displaced.borrow().clone().unwrap_or_default();
                let m = ServerMessage::control(ServerEvent::Replaced { reason });
                let _ = conn.write(&mut socket, m.encode()).await;
                let _ = socket
                    .send(close_frame(CloseCode::Normal, "replaced by a newer connection"))
                    .await;
                return;
            }
            _ = ready => {}
            _ = tokio::time::sleep(refresh_at.unwrap_or(Duration::MAX)), if refresh_at.is_some() => {
                let refresh = conn.inbound.handle_refresh_due(conn.now_unix_ms());
                if conn.publish(&mut socket, refresh).await.is_err() {
                    return conn.detach();
                }
            }
            frame = socket.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        conn.refuse_unreadable(&mut socket, e).await;
                        return conn.detach();
                    }
                    None => return conn.detach(),
                };
                if conn.on_frame(&mut socket, frame).await.is_err() {
                    return conn.detach();
                }
            }
        }
    }
}

/// A write that had to wait this long for the client to read (its side of the socket
/// full) but then went through met a busy client: the connection is kept as long as
/// each write completes within `write_timeout`.
const BUSY_CLIENT_WAIT: Duration = Duration::from_secs(1);

/// A message above this (a typical WebSocket frame size of proxies and clients) is
/// still written whole, as one message.
const LARGE_MESSAGE_BYTES: usize = 64 * 1024;

/// The connection is gone (the client left, or a write failed).
struct Gone;

struct Conn {
    gw: Arc<Gateway>,
    session: Arc<Session>,
    generation: u64,
    inbound: Inbound,
}

impl Conn {
    fn detach(&self) {
        self.session.detach(self.gw.sessions.now(), self.generation);
    }

    fn now_unix_ms(&self) -> u64 {
        self.gw.sessions.env().wall_unix_ms()
    }

    /// A frame that could not be read: one over the size bound is refused with 1009 and
    /// a reason, and logged once with its size; any other error ends the connection
    /// (logged at debug: a client that vanished is not news).
    async fn refuse_unreadable(&self, socket: &mut WebSocket, e: WsError) {
        let capacity = match &e {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                Some((*size, *max_size))
            }
            _ => None,
        };
        match capacity {
            Some((size, max)) => {
                tracing::warn!(
                    session = %self.session.id,
                    "frame refused: {size} bytes, over the {max}-byte bound; closing with 1009"
                );
                let reason = format!("message too big: {size} bytes, at most {max}");
                let _ = socket.send(close_frame(CloseCode::Size, &reason)).await;
                self.close(socket).await;
            }
            None => tracing::debug!(session = %self.session.id, "connection read failed: {e}"),
        }
    }

    /// Sends our Close (or the reply to the client's) and flushes it, within the write
    /// timeout; the connection ends either way.
    async fn close(&self, socket: &mut WebSocket) {
        let _ = tokio::time::timeout(
            self.gw.config.write_timeout,
            futures_util::SinkExt::close(socket),
        )
        .await;
    }

    async fn write(&self, socket: &mut WebSocket, text: String) -> Result<(), Gone> {
        let bytes = text.len();
        let started = self.gw.sessions.now();
        match tokio::time::timeout(
            self.gw.config.write_timeout,
            socket.send(Message::Text(text.into())),
        )
        .await
        {
            Ok(Ok(())) => {
                let waited = self.gw.sessions.now().saturating_sub(started);
                if waited >= BUSY_CLIENT_WAIT {
                    crate::met!(
                        "client.busy",
                        "session {}: a write waited {} ms for the client to read; the connection is kept",
                        self.session.id,
                        waited.as_millis()
                    );
                }
                if bytes > LARGE_MESSAGE_BYTES {
                    crate::met!(
                        "client.large_message",
                        "session {}: a {bytes}-byte message written whole",
                        self.session.id
                    );
                }
                Ok(())
            }
            Ok(Err(_)) => Err(Gone),
            Err(_) => {
                self.gw.stats.write_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session = %self.session.id, "client stopped reading: connection dropped, the stream waits for a reconnect");
                Err(Gone)
            }
        }
    }

    /// Tells the client that messages `from..=to` are gone before the stream goes on
    /// past them: an unnumbered notice (it belongs to this connection, not to the
    /// stream), written before the first message after the hole.
    async fn write_gap(&self, socket: &mut WebSocket, (from, to): (u64, u64)) -> Result<(), Gone> {
        let notice = ServerMessage::control(ServerEvent::Error {
            code: ErrorCode::ReplayGap,
            message: format!("messages {from}..={to} are no longer held; fetch results over HTTP"),
        });
        self.write(socket, notice.encode()).await
    }

    /// Writes every message of the stream this connection has not written yet (after a
    /// gap notice, when the age bound pushed some out before they were written).
    async fn flush(&self, socket: &mut WebSocket) -> Result<(), Gone> {
        loop {
            let Some((gap, unsent)) = self.session.unsent(self.generation) else {
                return Ok(());
            };
            if let Some(gap) = gap {
                self.write_gap(socket, gap).await?;
            }
            if unsent.is_empty() {
                return Ok(());
            }
            for (seq, text) in unsent {
                self.write(socket, text.to_string()).await?;
                self.session.written(self.generation, seq);
            }
        }
    }

    /// Publishes a message of this connection's own (a reply to a frame); when the
    /// outbound queue is full it makes room by writing, so it never waits on itself.
    async fn publish(&self, socket: &mut WebSocket, event: ServerEvent) -> Result<(), Gone> {
        let mut event = event;
        loop {
            match self.session.try_publish(self.gw.sessions.now(), event) {
                Ok(_) => return Ok(()),
                Err(back) => {
                    event = back;
                    self.flush(socket).await?;
                }
            }
        }
    }

    async fn reply(
        &self,
        socket: &mut WebSocket,
        code: ErrorCode,
        message: String,
    ) -> Result<(), Gone> {
        self.gw.stats.frames_refused.fetch_add(1, Ordering::Relaxed);
        // One line per refused frame, with the code the client was sent: an operator
        // reading the log sees what the client saw.
        let wire = serde_json::to_string(&code).unwrap_or_default();
        tracing::info!(
            session = %self.session.id,
            "frame refused ({}): {message}",
            wire.trim_matches('"')
        );
        self.publish(socket, ServerEvent::Error { code, message })
            .await
    }

    /// Carries out what the cores decide about `frame`.
    async fn on_frame(&mut self, socket: &mut WebSocket, frame: Message) -> Result<(), Gone> {
        let frame = match &frame {
            Message::Text(t) => Frame::Text(t.as_str()),
            Message::Binary(_) => Frame::Binary,
            Message::Close(_) => Frame::Close,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Frame::Control,
        };
        let ctx = FrameContext {
            now_unix_ms: self.now_unix_ms(),
            draining: self.gw.sessions.is_draining(),
            chars_max: self.gw.config.message_chars_max,
            keys: &self.gw.config.keys,
        };
        let gw = &self.gw;
        let action = self
            .inbound
            .handle_frame(frame, &ctx, |user| gw.admit_message(user));
        match action {
            InboundAction::Ignore => Ok(()),
            InboundAction::Close => {
                // Complete the closing handshake (RFC 6455 §5.5.1: the peer's Close is
                // answered with a Close): the reply tungstenite queued goes out on this
                // flush, which then ends the connection.
                self.close(socket).await;
                Err(Gone)
            }
            InboundAction::Refuse { code, message } => {
                if code == ErrorCode::RateLimited {
                    self.gw.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
                self.reply(socket, code, message).await
            }
            InboundAction::Publish(event) => self.publish(socket, event).await,
            InboundAction::Session(input) => {
                match self.session.input(self.gw.sessions.now(), input) {
                    InputOutcome::None => Ok(()),
                    InputOutcome::Publish(event) => self.publish(socket, event).await,
                    InputOutcome::Refuse { code, message } => {
                        self.reply(socket, code, message).await
                    }
                }
            }
        }
    }
}
