//! A client of the channel, as a browser tab would be: a WebSocket over the simulated
//! network (tungstenite, not our code), with a delivery record that outlives
//! reconnects. The record is the oracle "every message exactly once, in order": it
//! fails on any duplicate or gap, across any number of connections.

use crate::kit::fail::OrFail;
use crate::scenario::Failure;
use engine::env::{NetAddr, NetStream};
use engine::protocol::{ErrorCode, ServerEvent, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes a simulated client's WebSocket reads at most at once.
const CLIENT_READ_BUFFER_BYTES: usize = 8 * 1024;

/// What one logical client (one user in one tab) saw of one session's stream.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Sequence numbers received, in arrival order.
    pub seqs: Vec<u64>,
    pub messages: Vec<ServerMessage>,
    /// A `replay_gap` error was received: numbers below it may be missing on purpose.
    pub gap_allowed_through: u64,
    /// Where this client joined the stream (a fresh tab on a live session starts at the
    /// server's last number, not at 1).
    pub base: u64,
    pub violations: Vec<String>,
}

impl Delivery {
    pub(crate) fn record(&mut self, m: &ServerMessage) {
        if let ServerEvent::Error {
            code: ErrorCode::ReplayGap,
            message,
        } = &m.event
            && let Some(to) = message
                .split("..=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|n| n.parse::<u64>().ok())
        {
            self.gap_allowed_through = self.gap_allowed_through.max(to);
        }
        if let Some(seq) = m.seq {
            let last = self.last_seq();
            if seq <= last {
                self.violations.push(format!(
                    "message {seq} delivered again (already had up to {last})"
                ));
            } else if seq != last + 1 && seq > self.gap_allowed_through + 1 {
                self.violations.push(format!(
                    "gap: got {seq} after {last} with no replay_gap notice"
                ));
            }
            self.seqs.push(seq);
        }
        self.messages.push(m.clone());
    }

    pub fn last_seq(&self) -> u64 {
        self.seqs.last().copied().unwrap_or(0).max(self.base)
    }

    pub fn check(&self) -> Result<(), Failure> {
        match self.violations.first() {
            None => Ok(()),
            Some(v) => Err(Failure::correctness(format!(
                "exactly-once delivery broken: {v} ({} violations)",
                self.violations.len()
            ))),
        }
    }
}

pub type SharedDelivery = Arc<Mutex<Delivery>>;

/// One open WebSocket.
pub struct SimClient {
    ws: WebSocketStream<Box<dyn NetStream>>,
    pub delivery: SharedDelivery,
    pub session_id: String,
    pub welcome: ServerMessage,
    /// Set once the server closed this connection.
    pub closed: bool,
}

/// The refusal of an upgrade: HTTP status and body.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

/// Why a connect failed.
#[derive(Debug)]
pub enum ConnectError {
    Refused(Refused),
    /// The network or the handshake failed.
    Io(String),
    /// The server answered with a control message and closed (session_not_found…).
    Closed(ServerMessage),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Refused(r) => write!(f, "upgrade refused: HTTP {} {}", r.status, r.body),
            ConnectError::Io(e) => write!(f, "connect failed: {e}"),
            ConnectError::Closed(m) => write!(f, "closed at once: {}", m.encode()),
        }
    }
}

impl SimClient {
    /// Opens `/ws?{query}` on `addr` from `net`.
    pub async fn connect(
        net: &dyn engine::env::Network,
        addr: &NetAddr,
        query: &str,
        delivery: SharedDelivery,
    ) -> Result<SimClient, ConnectError> {
        let stream = net
            .connect(addr)
            .await
            .map_err(|e| ConnectError::Io(e.to_string()))?;
        let url = format!("ws://{addr}/ws?{query}");
        let request = url
            .into_client_request()
            .map_err(|e| ConnectError::Io(e.to_string()))?;
        // tungstenite zero-fills its whole read buffer (128 KiB by default) before every
        // read: for a client that mostly reads small frames that was the largest single
        // cost of a VOPR run. Frames larger than the buffer are read in several reads.
        let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER_BYTES);
        let connected =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await;
        let (ws, _) = match connected {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).to_string())
                    .unwrap_or_default();
                return Err(ConnectError::Refused(Refused {
                    status: response.status().as_u16(),
                    body,
                }));
            }
            Err(e) => return Err(ConnectError::Io(e.to_string())),
        };
        let mut client = SimClient {
            ws,
            delivery,
            session_id: String::new(),
            welcome: ServerMessage::control(ServerEvent::SessionEnded {
                reason: String::new(),
            }),
            closed: false,
        };
        match client.next(Duration::from_secs(30)).await {
            Some(m) => match &m.event {
                ServerEvent::Welcome {
                    session_id,
                    resumed,
                    last_seq,
                    ..
                } => {
                    if !resumed {
                        // No replay was asked for: the stream starts here for this tab.
                        let mut d = client.delivery.lock().expect("delivery poisoned");
                        d.base = d.base.max(*last_seq);
                    }
                    client.session_id = session_id.clone();
                    client.welcome = m;
                    Ok(client)
                }
                _ => Err(ConnectError::Closed(m)),
            },
            None => Err(ConnectError::Io("closed before the welcome".to_string())),
        }
    }

    /// The next server message within `bound` (`None`: closed or timed out).
    pub async fn next(&mut self, bound: Duration) -> Option<ServerMessage> {
        loop {
            let frame = match tokio::time::timeout(bound, self.ws.next()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(_) => {
                    self.closed = true;
                    return None;
                }
                Err(_) => return None,
            };
            match frame {
                Message::Text(text) => {
                    let m = ServerMessage::decode(&text).unwrap_or_else(|e| {
                        ServerMessage::control(ServerEvent::Error {
                            code: ErrorCode::InvalidMessage,
                            message: format!("client could not decode: {e}"),
                        })
                    });
                    self.delivery.lock().expect("delivery poisoned").record(&m);
                    return Some(m);
                }
                Message::Close(_) => {
                    self.closed = true;
                    return None;
                }
                _ => continue,
            }
        }
    }

    /// Reads until a message satisfies `pred` (returned), for at most `bound`.
    pub async fn until(
        &mut self,
        what: &str,
        bound: Duration,
        mut pred: impl FnMut(&ServerMessage) -> bool,
    ) -> Result<ServerMessage, Failure> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(m) if pred(&m) => return Ok(m),
                Some(_) => {}
                None => {
                    return Err(Failure::liveness(format!(
                        "client never saw {what} within {} ms (closed: {})",
                        bound.as_millis(),
                        self.closed
                    )));
                }
            }
        }
    }

    /// Reads (and records) until the server is silent for `quiet` or closes.
    pub async fn until_silent(&mut self, quiet: Duration) {
        while self.next(quiet).await.is_some() {}
    }

    /// Whether the server closes this connection within `bound`, with nothing more sent.
    pub async fn closes_within(&mut self, bound: Duration) -> bool {
        self.next(bound).await.is_none() && self.closed
    }

    pub async fn send_text(&mut self, text: &str) -> Result<(), Failure> {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .await
            .or_fail("client send failed")
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .or_fail("client send failed")
    }

    pub async fn query(&mut self, text: &str) -> Result<(), Failure> {
        let frame = serde_json::json!({ "type": "query", "text": text }).to_string();
        self.send_text(&frame).await
    }

    /// Tells the server everything up to `seq` arrived (it may trim its replay log).
    pub async fn ack(&mut self, seq: u64) -> Result<(), Failure> {
        self.send_text(&serde_json::json!({ "type": "ack", "seq": seq }).to_string())
            .await
    }

    /// Drops the connection without a close frame (a tab closed, a network gone).
    pub fn drop_abruptly(self) {
        drop(self);
    }

    /// The open WebSocket and the delivery record, for a client that reads and writes
    /// from separate tasks.
    pub fn into_parts(self) -> (WebSocketStream<Box<dyn NetStream>>, SharedDelivery) {
        (self.ws, self.delivery)
    }
}

/// A plain HTTP/1.1 request (the client's own few lines; the server is hyper).
pub async fn http(
    net: &dyn engine::env::Network,
    addr: &NetAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String, String), Failure> {
    let mut body = Vec::new();
    let on_body = &mut |piece: &[u8]| body.extend_from_slice(piece);
    let (status, head) = http_streamed(net, addr, method, path, headers, on_body).await?;
    let body = String::from_utf8(body)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned());
    Ok((status, head, body))
}

/// [`http`] whose body is handed to `on_body` in pieces as it arrives instead of being
/// kept: a client checking a body of megabytes as it reads it (every byte still seen
/// once). Returns the status and the head.
pub async fn http_streamed(
    net: &dyn engine::env::Network,
    addr: &NetAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    on_body: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<(u16, String), Failure> {
    let mut stream = net.connect(addr).await.or_fail("http connect")?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .or_fail("http send")?;
    let head = tokio::time::timeout(Duration::from_secs(30), read_response(&mut stream, on_body))
        .await
        .map_err(|_| Failure::liveness("http response did not arrive".to_string()))?
        .or_fail("http receive")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::correctness(format!("bad http response: {head:?}")))?;
    Ok((status, head))
}

/// Reads a response up to the server's close: returns its head (decoded, without the
/// blank line) and hands the body to `on_body` in pieces of at most
/// [`BODY_PIECE_BYTES`]. The head and the body are decoded apart; the blank line
/// between them is ASCII, so no character straddles it.
async fn read_response(
    stream: &mut Box<dyn NetStream>,
    on_body: &mut (dyn FnMut(&[u8]) + Send),
) -> std::io::Result<String> {
    let mut raw = Vec::new();
    let body_at = loop {
        if let Some(at) = blank_line(&raw) {
            break at + 4;
        }
        if stream.read_buf(&mut raw).await? == 0 {
            // No blank line before the close: all of it is head, as before.
            return Ok(String::from_utf8_lossy(&raw).into_owned());
        }
    };
    let head = String::from_utf8_lossy(&raw[..body_at - 4]).into_owned();
    if raw.len() > body_at {
        on_body(&raw[body_at..]);
    }
    let mut piece = vec![0; BODY_PIECE_BYTES];
    loop {
        let n = stream.read(&mut piece).await?;
        if n == 0 {
            return Ok(head);
        }
        on_body(&piece[..n]);
    }
}

/// The largest piece of a body the HTTP client reads at once.
const BODY_PIECE_BYTES: usize = 64 << 10;

/// Where the blank line ending an HTTP head starts.
fn blank_line(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n")
}
