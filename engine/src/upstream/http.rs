//! One HTTP/1.1 exchange with the upstream over the environment's network (hyper's
//! client connection; one connection per call, so a dead connection is never reused).

use super::tls::TlsClient;
use super::wire::API_VERSION;
use crate::env::{Env, NetAddr};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header;
use hyper_util::rt::TokioIo;
use std::io;
use std::time::Duration;

/// Why an exchange gave no usable answer.
pub(crate) enum ExchangeError {
    /// Not reached, or the connection failed: the upstream counts as unavailable.
    Unreached(io::Error),
    /// It answered, but the body is past the bound.
    TooLarge(usize),
}

pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

pub(crate) struct Call<'a> {
    pub method: hyper::Method,
    pub path: &'a str,
    pub api_key: &'a str,
    pub body: Option<Vec<u8>>,
    pub body_max: usize,
    /// TLS over the connection, when the API is reached by it.
    pub tls: Option<&'a TlsClient>,
}

fn other(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

/// An answer whose head has arrived; its body is still on the wire.
pub(crate) struct Opened {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: hyper::body::Incoming,
}

/// Sends `call` and waits for the answer's head. An error means the upstream was not
/// reached, or the connection failed before the head.
pub(crate) async fn open(env: &Env, addr: &NetAddr, call: Call<'_>) -> io::Result<Opened> {
    let stream = env.net().connect(addr).await?;
    let stream = match call.tls {
        Some(tls) => tls.connect(env, stream).await?,
        None => stream,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| other("handshake", e))?;
    env.spawn("upstream-connection", async move {
        if let Err(e) = connection.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
    let mut request = hyper::Request::builder()
        .method(call.method)
        .uri(call.path)
        .header(header::HOST, addr.to_string())
        .header("x-api-key", call.api_key)
        .header("anthropic-version", API_VERSION);
    if call.body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::<Bytes>::from(call.body.unwrap_or_default()))
        .map_err(|e| other("request", e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| other("send", e))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Ok(Opened {
        status,
        retry_after,
        body: response.into_body(),
    })
}

impl Opened {
    /// The rest of the answer: its body, collected up to `body_max` bytes.
    pub(crate) async fn collect(self, body_max: usize) -> Result<Answer, ExchangeError> {
        let body = Limited::new(self.body, body_max)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    ExchangeError::TooLarge(body_max)
                } else {
                    ExchangeError::Unreached(other("body", e))
                }
            })?
            .to_bytes()
            .to_vec();
        Ok(Answer {
            status: self.status,
            retry_after: self.retry_after,
            body,
        })
    }
}

/// One whole exchange: the head, then the body collected up to `call.body_max` bytes.
pub(crate) async fn exchange(
    env: &Env,
    addr: &NetAddr,
    call: Call<'_>,
) -> Result<Answer, ExchangeError> {
    let body_max = call.body_max;
    let opened = open(env, addr, call)
        .await
        .map_err(ExchangeError::Unreached)?;
    opened.collect(body_max).await
}
