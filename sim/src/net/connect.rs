//! Connecting and listening: the handshake, refusals, time-outs and port allocation.

use super::listener::{Incoming, SimListener};
use super::pipe::Pipe;
use super::{
    Connection, EADDRINUSE, ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT, PartitionMode, SimNet, SimStream,
};
use engine::env::{NetAddr, NetListener, NetStream};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

impl SimNet {
    pub(super) async fn connect_from(
        self: &Arc<Self>,
        from: usize,
        addr: &NetAddr,
    ) -> io::Result<Box<dyn NetStream>> {
        let Some(to) = self.resolve(from, &addr.host) else {
            return Err(io::Error::from_raw_os_error(EHOSTUNREACH));
        };
        let connect_timeout = self.lock().options.connect_timeout;
        // SYN travels to the server.
        tokio::time::sleep(self.sample_latency(from, to)).await;
        let deadline = tokio::time::Instant::now() + connect_timeout;
        loop {
            let blocked = [self.cut(from, to), self.cut(to, from)];
            if blocked.contains(&Some(PartitionMode::Drop)) || !self.is_up(to) {
                tokio::time::sleep_until(deadline).await;
                self.faults.fire(
                    "net.connect_timeout",
                    &format!("connect {} -> {addr} timed out", self.host_name(from)),
                );
                return Err(io::Error::from_raw_os_error(ETIMEDOUT));
            }
            if blocked.contains(&Some(PartitionMode::Hold)) {
                if tokio::time::Instant::now() >= deadline {
                    self.faults.fire(
                        "net.connect_timeout",
                        &format!("connect {} -> {addr} timed out", self.host_name(from)),
                    );
                    return Err(io::Error::from_raw_os_error(ETIMEDOUT));
                }
                // Retransmit the SYN once a second, as TCP does (roughly).
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            break;
        }
        let sender = self
            .lock()
            .listeners
            .get(&(to, addr.port))
            .map(|l| l.1.clone());
        let Some(sender) = sender else {
            // RST travels back.
            tokio::time::sleep(self.sample_latency(to, from)).await;
            tracing::debug!(target: "sim::net", "connect {} -> {addr} refused", self.host_name(from));
            return Err(io::Error::from_raw_os_error(ECONNREFUSED));
        };
        let (client_port, client_addr, server_addr) = {
            let mut state = self.lock();
            let first = state.options.ephemeral_port_min;
            let port = state.next_ephemeral.entry(from).or_insert(first);
            let client_port = *port;
            *port = port.checked_add(1).unwrap_or(first);
            (
                client_port,
                state.hosts[from].ip.clone(),
                state.hosts[to].ip.clone(),
            )
        };
        let up = Pipe::new(from, to);
        let down = Pipe::new(to, from);
        {
            let mut state = self.lock();
            let connections = &mut state.connections;
            // Forget closed connections as the list grows (amortized: only at powers of
            // two), so a run that reconnects often does not keep every dead one.
            if connections.len() >= 64 && connections.len().is_power_of_two() {
                connections.retain(|c| c.a_to_b.strong_count() > 0);
            }
            connections.push(Connection {
                a_to_b: Arc::downgrade(&up),
                b_to_a: Arc::downgrade(&down),
            });
        }
        let client_local = NetAddr::new(client_addr, client_port);
        let server_local = NetAddr::new(server_addr, addr.port);
        let server_side = SimStream::new(
            self.clone(),
            down.clone(),
            up.clone(),
            server_local.clone(),
            client_local.clone(),
        );
        let client_side =
            SimStream::new(self.clone(), up, down, client_local.clone(), server_local);
        if sender
            .send(Incoming {
                stream: Box::new(server_side),
                peer: client_local.clone(),
            })
            .is_err()
        {
            tokio::time::sleep(self.sample_latency(to, from)).await;
            return Err(io::Error::from_raw_os_error(ECONNREFUSED));
        }
        // SYN-ACK travels back.
        tokio::time::sleep(self.sample_latency(to, from)).await;
        tracing::debug!(target: "sim::net", "connected {client_local} -> {addr}");
        Ok(Box::new(client_side))
    }

    pub(super) fn bind_on(
        self: &Arc<Self>,
        host: usize,
        port: u16,
    ) -> io::Result<Box<dyn NetListener>> {
        let mut state = self.lock();
        let port = if port == 0 {
            let first = state.options.ephemeral_port_min;
            let mut candidate = *state.next_ephemeral.get(&host).unwrap_or(&first);
            while state.listeners.contains_key(&(host, candidate)) {
                candidate = candidate.checked_add(1).unwrap_or(first);
            }
            state
                .next_ephemeral
                .insert(host, candidate.checked_add(1).unwrap_or(first));
            candidate
        } else {
            port
        };
        if state.listeners.contains_key(&(host, port)) {
            let detail = format!(
                "{}: bind of port {port} hit a taken port",
                state.hosts[host].name
            );
            drop(state);
            self.faults.fire("net.addr_in_use", &detail);
            return Err(io::Error::from_raw_os_error(EADDRINUSE));
        }
        state.listener_ids += 1;
        let id = state.listener_ids;
        let (tx, rx) = mpsc::unbounded_channel();
        state.listeners.insert((host, port), (id, tx));
        let local = NetAddr::new(state.hosts[host].ip.clone(), port);
        Ok(Box::new(SimListener::new(
            Arc::downgrade(self),
            host,
            id,
            local,
            rx,
        )))
    }

    pub(super) fn unbind(&self, host: usize, port: u16, id: u64) {
        let mut state = self.lock();
        if state
            .listeners
            .get(&(host, port))
            .is_some_and(|l| l.0 == id)
        {
            state.listeners.remove(&(host, port));
        }
    }
}
