use crate::env::{BoxFuture, NetAddr, NetListener, NetStream, Network, Resolved, ResolverId};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Real TCP on the OS network stack.
pub struct RealNet {
    bind_ip: IpAddr,
}

impl RealNet {
    pub fn new(bind_ip: IpAddr) -> Self {
        RealNet { bind_ip }
    }
}

fn to_net_addr(addr: SocketAddr) -> NetAddr {
    NetAddr::new(addr.ip().to_string(), addr.port())
}

impl Network for RealNet {
    fn bind(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn NetListener>>> {
        Box::pin(async move {
            let listener = TcpListener::bind(SocketAddr::new(self.bind_ip, port)).await?;
            Ok(Box::new(RealListener { listener }) as Box<dyn NetListener>)
        })
    }

    fn connect<'a>(&'a self, addr: &'a NetAddr) -> BoxFuture<'a, io::Result<Box<dyn NetStream>>> {
        Box::pin(async move {
            let stream = TcpStream::connect((addr.host.as_str(), addr.port)).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(RealStream::new(stream)?) as Box<dyn NetStream>)
        })
    }

    /// The primary resolver is the system's (`getaddrinfo` through tokio, which reads
    /// `/etc/resolv.conf` and its own fallbacks). No secondary or DNS-over-HTTPS
    /// resolver is configured in the real environment: asking one is an `Unsupported`
    /// error, so the engine's chain moves on to its cache and pinned addresses.
    fn resolve<'a>(
        &'a self,
        via: ResolverId,
        name: &'a str,
    ) -> BoxFuture<'a, io::Result<Vec<Resolved>>> {
        Box::pin(async move {
            if via != ResolverId::Primary {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("no {via} resolver is configured in the real environment"),
                ));
            }
            // getaddrinfo's failures carry no portable kind (NXDOMAIN and SERVFAIL
            // alike): the message says which; the chain treats both as this resolver
            // failing.
            let found = tokio::net::lookup_host((name, 0))
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("resolve {name}: {e}")))?;
            // getaddrinfo does not say how long an answer may be kept: a short TTL, so
            // a moved service is found again soon.
            let mut hosts: Vec<Resolved> = found
                .map(|a| Resolved {
                    host: a.ip().to_string(),
                    ttl: SYSTEM_ANSWER_TTL,
                })
                .collect();
            hosts.dedup();
            Ok(hosts)
        })
    }
}

/// How long an answer of the system resolver is cached (it gives no TTL).
const SYSTEM_ANSWER_TTL: Duration = Duration::from_secs(30);

struct RealListener {
    listener: TcpListener,
}

impl NetListener for RealListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn NetStream>, NetAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.listener.accept().await?;
            stream.set_nodelay(true)?;
            Ok((
                Box::new(RealStream::new(stream)?) as Box<dyn NetStream>,
                to_net_addr(peer),
            ))
        })
    }

    fn local_addr(&self) -> NetAddr {
        self.listener
            .local_addr()
            .map(to_net_addr)
            .unwrap_or_else(|_| NetAddr::new("0.0.0.0", 0))
    }
}

struct RealStream {
    stream: TcpStream,
    peer: NetAddr,
    local: NetAddr,
}

impl RealStream {
    fn new(stream: TcpStream) -> io::Result<Self> {
        let peer = to_net_addr(stream.peer_addr()?);
        let local = to_net_addr(stream.local_addr()?);
        Ok(RealStream {
            stream,
            peer,
            local,
        })
    }
}

impl NetStream for RealStream {
    fn peer_addr(&self) -> NetAddr {
        self.peer.clone()
    }

    fn local_addr(&self) -> NetAddr {
        self.local.clone()
    }
}

impl AsyncRead for RealStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for RealStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_system_resolver_is_the_primary_and_no_other_is_configured() {
        let net = RealNet::new(IpAddr::from([127, 0, 0, 1]));
        let found = net.resolve(ResolverId::Primary, "localhost").await;
        let found = found.expect("localhost resolves (/etc/hosts)");
        assert!(!found.is_empty() && found.iter().all(|r| r.ttl == SYSTEM_ANSWER_TTL));
        for via in [ResolverId::Secondary, ResolverId::OverHttps] {
            let e = net.resolve(via, "localhost").await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{via}: {e}");
            assert!(e.to_string().contains(&format!("no {via} resolver")), "{e}");
        }
    }
}
