use crate::env::{BoxFuture, NetAddr, NetListener, NetStream, Network};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
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
}

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
