//! One outbound HTTP GET over the environment's network (hyper's client connection,
//! one connection per request), and the targets it accepts. Nothing of the engine's own
//! credentials goes out: the request carries the target's host and the request's
//! number (`x-egress-request`, in the order requests were made) and nothing else.

use super::error::EgressError;
use crate::env::{Env, NetAddr};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header;
use hyper_util::rt::TokioIo;
use std::io;
use std::time::Duration;

/// Where a request goes: `[http://]HOST:PORT[/PATH]`. Plain HTTP only for now: a
/// sandbox's TLS would be end to end from the worker, not the engine's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) addr: NetAddr,
    pub(crate) path: String,
}

impl Target {
    pub(crate) fn parse(text: &str) -> Result<Target, EgressError> {
        let bad = |why: &str| EgressError::BadTarget {
            target: text.chars().take(200).collect(),
            why: why.to_string(),
        };
        let rest = text.trim();
        if rest.contains("://") && !rest.starts_with("http://") {
            return Err(bad("only http:// targets are supported"));
        }
        let rest = rest.strip_prefix("http://").unwrap_or(rest);
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr: NetAddr = authority.parse().map_err(|e: String| bad(&e))?;
        // The path must be one hyper accepts as a request target.
        if path.parse::<hyper::Uri>().is_err() || path.chars().any(char::is_whitespace) {
            return Err(bad("the path is not a valid request path"));
        }
        Ok(Target {
            addr,
            path: path.to_string(),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.addr, self.path)
    }
}

/// How an exchange ended without a body.
pub(crate) enum ExchangeError {
    /// Not reached (a connect failure or time-out, a reset, no whole answer within the
    /// exchange timeout): egress counts as down and the request is tried again.
    Unreached(io::Error),
    /// Reached, and the answer is an error for the caller.
    Answered(EgressError),
}

/// Connects (within `connect_timeout`) to the target. Also the probe.
pub(crate) async fn connect(
    env: &Env,
    addr: &NetAddr,
    connect_timeout: Duration,
) -> io::Result<Box<dyn crate::env::NetStream>> {
    match tokio::time::timeout(connect_timeout, env.net().connect(addr)).await {
        Ok(connected) => connected,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "connect to {addr}: no answer within {} s",
                connect_timeout.as_secs()
            ),
        )),
    }
}

/// GET `target`, the answer's body as text (lossy UTF-8), within the bounds.
pub(crate) async fn get(
    env: &Env,
    target: &Target,
    number: u64,
    connect_timeout: Duration,
    body_max: usize,
) -> Result<String, ExchangeError> {
    let unreached = |what: &str, e: &dyn std::fmt::Display| {
        ExchangeError::Unreached(io::Error::other(format!("{what}: {e}")))
    };
    let stream = connect(env, &target.addr, connect_timeout)
        .await
        .map_err(|e| match e.kind() {
            // An answer from the host: the way out works, this target does not.
            io::ErrorKind::ConnectionRefused => ExchangeError::Answered(EgressError::Refused {
                target: target.to_string(),
            }),
            _ => ExchangeError::Unreached(e),
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreached("handshake", &e))?;
    env.spawn("egress-connection", async move {
        if let Err(e) = connection.await {
            tracing::debug!("egress connection ended: {e}");
        }
    });
    let request = hyper::Request::get(target.path.as_str())
        .header(header::HOST, target.addr.to_string())
        .header("x-egress-request", number)
        .body(Empty::<Bytes>::new())
        .map_err(|e| {
            ExchangeError::Answered(EgressError::BadTarget {
                target: target.to_string(),
                why: e.to_string(),
            })
        })?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unreached("send", &e))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), body_max)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ExchangeError::Answered(EgressError::TooLarge { bound: body_max })
            } else {
                unreached("body", &e)
            }
        })?
        .to_bytes();
    if !(200..300).contains(&status) {
        return Err(ExchangeError::Answered(EgressError::Status { status }));
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_or_without_scheme_and_path() {
        let t = Target::parse("outside-0:80/page/3").unwrap();
        assert_eq!(t.addr, NetAddr::new("outside-0", 80));
        assert_eq!(t.path, "/page/3");
        let t = Target::parse("http://outside-0:8080").unwrap();
        assert_eq!(t.path, "/");
        assert_eq!(t.to_string(), "http://outside-0:8080/");
    }

    #[test]
    fn an_accepted_target_written_back_reads_as_itself() {
        for text in [
            " h:1 ",
            "a:b:80/p",
            "http://h:1/x://y",
            "h:1/a?b=c",
            "h\u{0}:1/",
        ] {
            let Ok(t) = Target::parse(text) else {
                continue;
            };
            assert_eq!(Target::parse(&t.to_string()), Ok(t), "{text:?}");
        }
    }

    #[test]
    fn bad_targets_are_clear_errors() {
        for bad in [
            "",
            "outside-0",
            "https://outside-0:443/",
            "outside-0:99999/",
            ":80/",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(EgressError::BadTarget { .. })),
                "{bad:?} was accepted"
            );
        }
    }
}
