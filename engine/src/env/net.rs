use super::BoxFuture;
use std::fmt;
use std::io;
use std::str::FromStr;
use tokio::io::{AsyncRead, AsyncWrite};

/// A network address: a host name (or IP literal) and a port. In a simulated world host
/// names are the world's host names; in the real environment they are resolved by the OS.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NetAddr {
    pub host: String,
    pub port: u16,
}

impl NetAddr {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        NetAddr {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for NetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl FromStr for NetAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("address {s:?} has no port: expected HOST:PORT"))?;
        if host.is_empty() {
            return Err(format!("address {s:?} has no host: expected HOST:PORT"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("address {s:?} has a bad port: expected 0..=65535"))?;
        Ok(NetAddr::new(host, port))
    }
}

/// Stream networking for one host.
pub trait Network: Send + Sync {
    /// Listens on `port` of this host (0 picks a free port). Fails with `AddrInUse` if
    /// something already listens there.
    fn bind(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn NetListener>>>;

    /// Connects to `addr`. Fails with `ConnectionRefused` when nothing listens there and
    /// `TimedOut` when no answer comes.
    fn connect<'a>(&'a self, addr: &'a NetAddr) -> BoxFuture<'a, io::Result<Box<dyn NetStream>>>;

    /// Asks resolver `via` for the addresses of `name` (one question, no fallback: the
    /// engine's resolver chain decides what to ask next). Errors: `NotFound` for
    /// NXDOMAIN, `TimedOut` when no answer came, `ConnectionRefused` when the resolver
    /// is unreachable, any other kind for SERVFAIL and the like; `Unsupported` when this
    /// environment has no such resolver.
    fn resolve<'a>(
        &'a self,
        via: ResolverId,
        name: &'a str,
    ) -> BoxFuture<'a, io::Result<Vec<Resolved>>>;
}

/// Which of the configured resolvers a lookup asks.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ResolverId {
    Primary,
    Secondary,
    /// DNS over HTTPS: the last resort, reached over a different path than port 53.
    OverHttps,
}

impl ResolverId {
    /// The order the engine asks them in.
    pub const CHAIN: [ResolverId; 3] = [
        ResolverId::Primary,
        ResolverId::Secondary,
        ResolverId::OverHttps,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResolverId::Primary => "primary",
            ResolverId::Secondary => "secondary",
            ResolverId::OverHttps => "doh",
        }
    }
}

impl fmt::Display for ResolverId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One address a resolver gave for a name: a host the network can connect to (an IP
/// literal, or a simulated host's name), and how long the answer may be cached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub host: String,
    pub ttl: std::time::Duration,
}

pub trait NetListener: Send {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn NetStream>, NetAddr)>>;
    fn local_addr(&self) -> NetAddr;
}

/// A connected byte stream.
pub trait NetStream: AsyncRead + AsyncWrite + Send + Unpin {
    fn peer_addr(&self) -> NetAddr;
    fn local_addr(&self) -> NetAddr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_round_trip() {
        let a: NetAddr = "engine-0:8080".parse().unwrap();
        assert_eq!(a, NetAddr::new("engine-0", 8080));
        assert_eq!(a.to_string(), "engine-0:8080");
        let v6: NetAddr = "::1:9".parse().unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9));
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        assert!("engine".parse::<NetAddr>().unwrap_err().contains("no port"));
        assert!(":80".parse::<NetAddr>().unwrap_err().contains("no host"));
        assert!(
            "h:65536"
                .parse::<NetAddr>()
                .unwrap_err()
                .contains("bad port")
        );
        assert!("h:x".parse::<NetAddr>().unwrap_err().contains("bad port"));
    }
}
