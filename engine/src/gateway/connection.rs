//! One WebSocket: it attaches to its session, writes the session's stream from where
//! the client is, and turns client frames into session actions. It never blocks on its
//! own output: a reply it must publish waits for room by writing first.

use super::auth::Claims;
use super::server::{Gateway, Opening};
use super::upgrade::WebSocket;
use crate::protocol::{ClientMessage, ErrorCode, ServerEvent, ServerMessage, decode_client};
use crate::sessions::{QueryMode, Session};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

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
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let now = gw.sessions.now();
    let attachment = match session.attach(now, last_seq) {
        Ok(a) => a,
        Err(e) => {
            // The client claims messages never sent: tampering or corruption. Refuse,
            // and reset the session.
            tracing::warn!(session = %session.id, "reconnect refused: {e:?}");
            let refusal = ServerMessage::control(ServerEvent::Error {
                code: ErrorCode::InvalidSequence,
                message: "last_seq is ahead of the server: refresh the page; the session was reset"
                    .to_string(),
            });
            let _ = socket.send(Message::Text(refusal.encode().into())).await;
            let _ = socket.send(Message::Close(None)).await;
            session.request_end("reset after an invalid sequence number");
            return;
        }
    };
    let mut conn = Conn {
        gw,
        session,
        generation: attachment.generation,
        claims,
        refresh_sent_for: None,
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
    if let Some((from, to)) = attachment.gap {
        let message = format!("messages {from}..={to} are no longer held; fetch results over HTTP");
        if conn
            .reply(&mut socket, ErrorCode::ReplayGap, message)
            .await
            .is_err()
        {
            return conn.detach();
        }
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
            // sent later is left hanging on a dead session.
            conn.close(&mut socket).await;
            return conn.detach();
        }
        let refresh_at = conn.refresh_due_in();
        tokio::select! {
            biased;
            _ = displaced.changed() => {
                let reason = displaced.borrow().clone().unwrap_or_default();
                let m = ServerMessage::control(ServerEvent::Replaced { reason });
                let _ = conn.write(&mut socket, m.encode()).await;
                let _ = socket.send(Message::Close(None)).await;
                return;
            }
            _ = ready => {}
            _ = tokio::time::sleep(refresh_at.unwrap_or(Duration::MAX)), if refresh_at.is_some() => {
                conn.refresh_sent_for = Some(conn.claims.exp);
                let expires_in_ms = conn.claims.exp.saturating_mul(1000).saturating_sub(conn.gw.sessions.env().wall_unix_ms());
                if conn.publish(&mut socket, ServerEvent::RefreshRequired { expires_in_ms }).await.is_err() {
                    return conn.detach();
                }
            }
            frame = socket.next() => {
                let Some(Ok(frame)) = frame else {
                    return conn.detach();
                };
                if conn.on_frame(&mut socket, frame).await.is_err() {
                    return conn.detach();
                }
            }
        }
    }
}

/// The connection is gone (the client left, or a write failed).
struct Gone;

struct Conn {
    gw: Arc<Gateway>,
    session: Arc<Session>,
    generation: u64,
    claims: Claims,
    /// The expiry a `refresh_required` was already sent for.
    refresh_sent_for: Option<u64>,
}

impl Conn {
    fn detach(&self) {
        self.session.detach(self.gw.sessions.now(), self.generation);
    }

    /// Time until `refresh_required` is due, if it is still to be sent.
    fn refresh_due_in(&self) -> Option<Duration> {
        if self.refresh_sent_for == Some(self.claims.exp) {
            return None;
        }
        let lead_ms = self.gw.config.refresh_lead.as_millis() as u64;
        let due_ms = self.claims.exp.saturating_mul(1000).saturating_sub(lead_ms);
        let now_ms = self.gw.sessions.env().wall_unix_ms();
        Some(Duration::from_millis(due_ms.saturating_sub(now_ms)))
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
        match tokio::time::timeout(
            self.gw.config.write_timeout,
            socket.send(Message::Text(text.into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Gone),
            Err(_) => {
                self.gw.stats.write_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::info!(session = %self.session.id, "client stopped reading: connection dropped, the stream waits for a reconnect");
                Err(Gone)
            }
        }
    }

    /// Writes every message of the stream this connection has not written yet.
    async fn flush(&self, socket: &mut WebSocket) -> Result<(), Gone> {
        loop {
            let Some(unsent) = self.session.unsent(self.generation) else {
                return Ok(());
            };
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
        self.publish(socket, ServerEvent::Error { code, message })
            .await
    }

    async fn on_frame(&mut self, socket: &mut WebSocket, frame: Message) -> Result<(), Gone> {
        let text = match frame {
            Message::Text(t) => t,
            Message::Binary(_) => {
                let m = "binary frames are not supported: send JSON text frames".to_string();
                return self.reply(socket, ErrorCode::BinaryNotSupported, m).await;
            }
            Message::Close(_) => {
                // Complete the closing handshake (RFC 6455 §5.5.1: the peer's Close is
                // answered with a Close): the reply tungstenite queued goes out on this
                // flush, which then ends the connection.
                self.close(socket).await;
                return Err(Gone);
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Ok(()),
        };
        let now_s = self.gw.now_unix_s();
        let skew = self.gw.config.keys.skew.as_secs();
        if now_s >= self.claims.exp.saturating_add(skew) && !text.contains("\"refresh_token\"") {
            let m =
                "the token expired: send refresh_token or reconnect with a new token".to_string();
            return self.reply(socket, ErrorCode::TokenExpired, m).await;
        }
        if self.gw.sessions.is_draining() {
            let m = "the server is shutting down: no new messages are accepted".to_string();
            return self.reply(socket, ErrorCode::ServerShuttingDown, m).await;
        }
        let message = match decode_client(&text, self.gw.config.message_chars_max) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(session = %self.session.id, code = ?e.code, "client frame refused: {}", e.detail);
                return self.reply(socket, e.code, e.detail).await;
            }
        };
        match message {
            ClientMessage::Query { text, .. } => {
                if let Err(wait) = self.gw.admit_message(&self.claims.sub) {
                    self.gw.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let m = format!("rate limited: retry in {} ms", wait.as_millis());
                    return self.reply(socket, ErrorCode::RateLimited, m).await;
                }
                let queue = self.gw.sessions.config().queries == QueryMode::Queue;
                match self.session.enqueue(text, queue, self.gw.sessions.now()) {
                    None => {
                        let m =
                            "a query is running: wait for its result or interrupt it".to_string();
                        self.reply(socket, ErrorCode::QueryInProgress, m).await
                    }
                    Some((query, position)) if position > 0 => {
                        self.publish(
                            socket,
                            ServerEvent::Queued {
                                query,
                                position: position as u32,
                            },
                        )
                        .await
                    }
                    Some(_) => Ok(()),
                }
            }
            ClientMessage::Interrupt { .. } => {
                // Idempotent: nothing running is not an error.
                self.session.interrupt();
                Ok(())
            }
            ClientMessage::Extend { .. } => match self.session.extend(self.gw.sessions.now()) {
                Some((remaining, extensions_left)) => {
                    let remaining_ms = remaining.as_millis() as u64;
                    self.publish(
                        socket,
                        ServerEvent::SessionExtended {
                            remaining_ms,
                            extensions_left,
                        },
                    )
                    .await
                }
                None => {
                    let m = "no extension is left for this session".to_string();
                    self.reply(socket, ErrorCode::ExtensionRefused, m).await
                }
            },
            ClientMessage::Ack { seq, .. } => {
                self.session.ack(seq);
                Ok(())
            }
            ClientMessage::RefreshToken { token, .. } => match self.gw.verify(&token) {
                Ok(claims) if claims.sub == self.claims.sub => {
                    let expires_unix_s = claims.exp;
                    self.claims = claims;
                    self.publish(socket, ServerEvent::TokenRefreshed { expires_unix_s })
                        .await
                }
                Ok(_) => {
                    let m = "the new token is for another user".to_string();
                    self.reply(socket, ErrorCode::Unauthorized, m).await
                }
                Err(e) => {
                    self.reply(socket, ErrorCode::Unauthorized, e.to_string())
                        .await
                }
            },
        }
    }
}
