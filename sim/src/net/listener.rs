use super::SimNet;
use engine::env::{BoxFuture, NetAddr, NetListener, NetStream};
use std::io;
use std::sync::Weak;
use tokio::sync::mpsc;

/// A connection waiting in a listener's backlog.
pub(super) struct Incoming {
    pub(super) stream: Box<dyn NetStream>,
    pub(super) peer: NetAddr,
}

pub(super) struct SimListener {
    net: Weak<SimNet>,
    host: usize,
    id: u64,
    local: NetAddr,
    backlog: mpsc::UnboundedReceiver<Incoming>,
}

impl SimListener {
    pub(super) fn new(
        net: Weak<SimNet>,
        host: usize,
        id: u64,
        local: NetAddr,
        backlog: mpsc::UnboundedReceiver<Incoming>,
    ) -> Self {
        SimListener {
            net,
            host,
            id,
            local,
            backlog,
        }
    }
}

impl NetListener for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(Box<dyn NetStream>, NetAddr)>> {
        Box::pin(async move {
            match self.backlog.recv().await {
                Some(incoming) => Ok((incoming.stream, incoming.peer)),
                // The listener was torn down by a host crash.
                None => Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "listener closed: its host crashed",
                )),
            }
        })
    }

    fn local_addr(&self) -> NetAddr {
        self.local.clone()
    }
}

impl Drop for SimListener {
    fn drop(&mut self) {
        if let Some(net) = self.net.upgrade() {
            net.unbind(self.host, self.local.port, self.id);
        }
    }
}
