//! One HTTP/1.1 exchange with the upstream over the environment's network (hyper's
//! client connection; one connection per call, so a dead connection is never reused).

use super::dns::{self, DnsChain};
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
    /// Sent as `anthropic-beta` (comma-separated) when not empty.
    pub betas: &'a [String],
    pub body: Option<Vec<u8>>,
    pub body_max: usize,
    /// The resolver chain, when the upstream's host is a name the engine resolves.
    pub dns: Option<&'a DnsChain>,
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
    /// The account's request budget, if the answer says.
    pub rate: Option<RateHeaders>,
    pub body: hyper::body::Incoming,
}

/// The `anthropic-ratelimit-requests-*` headers of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    /// When the window resets, in Unix milliseconds.
    pub reset_unix_ms: i64,
}

/// The rate-limit headers, when all three are there and well formed (an answer
/// without them, or with a malformed one, leaves the pace as it was).
fn rate_headers(headers: &header::HeaderMap) -> Option<RateHeaders> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let limit = get(RATE_LIMIT)?.trim().parse().ok()?;
    let remaining = get(RATE_REMAINING)?.trim().parse().ok()?;
    let reset = chrono::DateTime::parse_from_rfc3339(get(RATE_RESET)?.trim()).ok()?;
    Some(RateHeaders {
        limit,
        remaining,
        reset_unix_ms: reset.timestamp_millis(),
    })
}

pub(crate) const RATE_LIMIT: &str = "anthropic-ratelimit-requests-limit";
pub(crate) const RATE_REMAINING: &str = "anthropic-ratelimit-requests-remaining";
pub(crate) const RATE_RESET: &str = "anthropic-ratelimit-requests-reset";

/// Sends `call` and waits for the answer's head. An error means the upstream was not
/// reached, or the connection failed before the head.
pub(crate) async fn open(env: &Env, addr: &NetAddr, call: Call<'_>) -> io::Result<Opened> {
    let stream = dns::connect(env, call.dns, addr).await?;
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
    if !call.betas.is_empty() {
        request = request.header("anthropic-beta", call.betas.join(","));
    }
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
        rate: rate_headers(response.headers()),
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
