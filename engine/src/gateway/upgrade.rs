//! The WebSocket upgrade, done here instead of by axum's `WebSocketUpgrade`: axum spawns
//! the upgraded socket's task with `tokio::spawn`, outside the host's task set, so a
//! simulated host crash would not kill it and a pause would not stop it (it would run
//! engine code for a host that is frozen or gone). Here the opening handshake is
//! checked and answered with tungstenite's handshake functions, and the socket task is
//! spawned through the environment, so it belongs to its host like every other task of
//! the engine. The WebSocket protocol itself stays tungstenite's.

use super::server::{Gateway, error_response};
use crate::protocol::ErrorCode;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::create_response_with_body;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// An upgraded connection: tungstenite's stream over the connection hyper hands over.
pub(crate) type WebSocket = WebSocketStream<TokioIo<Upgraded>>;

/// A valid opening handshake, not yet answered.
pub(crate) struct Handshake {
    /// The `101 Switching Protocols` answer, with its `Sec-WebSocket-Accept`.
    response: Response,
    /// Resolves to the connection once hyper has sent the answer.
    on_upgrade: OnUpgrade,
}

/// Checks the opening handshake of `request` (RFC 6455 §4.2.1) and takes the connection's
/// upgrade from it. A request that is not a valid handshake gets its refusal: 405 for
/// another method, 400 for a missing or wrong `Connection`, `Upgrade`,
/// `Sec-WebSocket-Version` or `Sec-WebSocket-Key`, 426 when the connection cannot be
/// upgraded (HTTP/1.0, or a server without upgrades).
#[allow(
    clippy::result_large_err,
    reason = "the error is the HTTP response itself, built once on a refused handshake"
)]
pub(crate) fn handshake(request: &mut Request) -> Result<Handshake, Response> {
    // tungstenite checks the method, HTTP version, `Connection`, `Upgrade`,
    // `Sec-WebSocket-Version: 13` and that a key is there, and derives the accept key.
    let response = create_response_with_body(request, Body::empty).map_err(refusal)?;
    let mut keys = request.headers().get_all(header::SEC_WEBSOCKET_KEY).iter();
    // tungstenite only checks that a key is there; RFC 6455 asks for one, the base64
    // encoding of 16 bytes (a client sending anything else is not a WebSocket client).
    let valid_key = match (keys.next(), keys.next()) {
        (Some(key), None) => data_encoding::BASE64
            .decode(key.as_bytes())
            .is_ok_and(|nonce| nonce.len() == 16),
        _ => false,
    };
    if !valid_key {
        return Err(bad_request(
            "Sec-WebSocket-Key must appear once, as the base64 encoding of 16 bytes",
        ));
    }
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        return Err(error_response(
            StatusCode::UPGRADE_REQUIRED,
            ErrorCode::InvalidMessage,
            "this connection cannot be upgraded to a WebSocket",
        ));
    };
    Ok(Handshake {
        response,
        on_upgrade,
    })
}

fn bad_request(message: &str) -> Response {
    let mut response = error_response(StatusCode::BAD_REQUEST, ErrorCode::InvalidMessage, message);
    // RFC 6455 §4.4: a refused version is answered with the versions the server speaks
    // (harmless on the other refusals, and it tells a client what to retry with).
    response.headers_mut().insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    response
}

fn refusal(e: WsError) -> Response {
    match e {
        WsError::Protocol(ProtocolError::WrongHttpMethod) => error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::InvalidMessage,
            "a WebSocket handshake is a GET request",
        ),
        WsError::Protocol(ProtocolError::WrongHttpVersion) => error_response(
            StatusCode::UPGRADE_REQUIRED,
            ErrorCode::InvalidMessage,
            "a WebSocket handshake needs HTTP/1.1",
        ),
        e => bad_request(&format!("not a WebSocket handshake: {e}")),
    }
}

impl Handshake {
    /// Answers the handshake and runs `run` over the socket on a task of the gateway's
    /// host (a host crash drops it where it stands; a host pause stops polling it),
    /// counted in `GatewayStats::sockets_live` for as long as the task exists.
    pub(crate) fn accept<F, Fut>(
        self,
        gw: &Arc<Gateway>,
        config: WebSocketConfig,
        run: F,
    ) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let live = LiveSocket::new(gw.clone());
        let on_upgrade = self.on_upgrade;
        // The task's result is not awaited: the socket lives as long as its connection.
        let _socket_task = gw.sessions.env().spawn("websocket", async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    run(socket).await;
                }
                // The client went away before hyper could hand the connection over.
                Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
            }
            live.finish();
        });
        self.response
    }
}

/// A socket task's entry in `GatewayStats`: counted live from the accepted handshake
/// until the task's future is dropped, and counted aborted when it is dropped before
/// it finished (its host crashed, or the runtime shut down under it).
struct LiveSocket {
    gw: Arc<Gateway>,
    finished: bool,
}

impl LiveSocket {
    fn new(gw: Arc<Gateway>) -> Self {
        gw.stats.sockets_live.fetch_add(1, Ordering::Relaxed);
        LiveSocket {
            gw,
            finished: false,
        }
    }

    /// The task reached its end: it leaves the gauge without counting as aborted.
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for LiveSocket {
    fn drop(&mut self) {
        let stats = &self.gw.stats;
        stats.sockets_live.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            stats.sockets_aborted.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Method, Version};

    /// A handshake as a browser sends it (the key is RFC 6455's example), with the
    /// upgrade hyper attaches to a request that asks for one.
    fn request(edit: impl FnOnce(&mut Request)) -> Request {
        let mut r = Request::builder()
            .method(Method::GET)
            .uri("/ws")
            .header("host", "engine-0:8080")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(Body::empty())
            .unwrap();
        // Outside a server there is no connection to upgrade: `on` gives the empty
        // upgrade, which is what a test needs to find in the extensions.
        let upgrade = hyper::upgrade::on(Request::new(()));
        r.extensions_mut().insert(upgrade);
        edit(&mut r);
        r
    }

    fn refused(edit: impl FnOnce(&mut Request)) -> StatusCode {
        match handshake(&mut request(edit)) {
            Ok(_) => panic!("an invalid handshake was accepted"),
            Err(response) => response.status(),
        }
    }

    #[test]
    fn a_valid_handshake_is_answered_with_the_accept_key() {
        let h = handshake(&mut request(|_| {})).unwrap_or_else(|_| panic!("refused"));
        assert_eq!(h.response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let accept = &h.response.headers()[header::SEC_WEBSOCKET_ACCEPT];
        // RFC 6455 §1.3's worked example.
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn a_missing_or_invalid_key_is_a_400() {
        let cases: [(&str, Option<&str>); 5] = [
            ("missing", None),
            ("empty", Some("")),
            ("not base64", Some("not a key at all!!!!!!!!")),
            ("15 bytes", Some("dGhlIHNhbXBsZSBub25j")),
            ("17 bytes", Some("dGhlIHNhbXBsZSBub25jZTE=")),
        ];
        for (what, key) in cases {
            let status = refused(|r| {
                r.headers_mut().remove(header::SEC_WEBSOCKET_KEY);
                if let Some(key) = key {
                    r.headers_mut()
                        .insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static(key));
                }
            });
            assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        }
        let twice = refused(|r| {
            let key = HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ==");
            r.headers_mut().append(header::SEC_WEBSOCKET_KEY, key);
        });
        assert_eq!(twice, StatusCode::BAD_REQUEST, "two keys");
    }

    #[test]
    fn a_wrong_version_is_a_400_naming_the_version_spoken() {
        for version in [None, Some("8"), Some("14")] {
            let mut r = request(|r| {
                r.headers_mut().remove(header::SEC_WEBSOCKET_VERSION);
                if let Some(v) = version {
                    r.headers_mut()
                        .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static(v));
                }
            });
            let Err(response) = handshake(&mut r) else {
                panic!("version {version:?} was accepted");
            };
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{version:?}");
            assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        }
    }

    #[test]
    fn other_refusals_have_their_status() {
        let no_upgrade_header = refused(|r| {
            r.headers_mut().remove(header::UPGRADE);
        });
        assert_eq!(no_upgrade_header, StatusCode::BAD_REQUEST);
        let no_connection_upgrade = refused(|r| {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        });
        assert_eq!(no_connection_upgrade, StatusCode::BAD_REQUEST);
        let head = refused(|r| *r.method_mut() = Method::HEAD);
        assert_eq!(head, StatusCode::METHOD_NOT_ALLOWED);
        let http10 = refused(|r| *r.version_mut() = Version::HTTP_10);
        assert_eq!(http10, StatusCode::UPGRADE_REQUIRED);
        let not_upgradable = refused(|r| {
            r.extensions_mut().remove::<OnUpgrade>();
        });
        assert_eq!(not_upgradable, StatusCode::UPGRADE_REQUIRED);
    }
}
