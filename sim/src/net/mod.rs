//! SimNet: stream connections between simulated hosts.
//!
//! Fault contract. SimNet delivers each write as one message after a one-way latency
//! drawn from the link's distribution, in order per direction, and bounds the bytes in
//! flight per direction (a slow reader back-pressures its writer, as TCP windows do).
//! It injects:
//! - **connection refused** (`ECONNREFUSED`, 111) when nothing listens on the port;
//! - **resets** (`ECONNRESET`, 104) mid-stream: fixed (`reset_between`) or swarm
//!   (`reset_rate` per write); pending data is lost, both ends fail;
//! - **partitions**, symmetric or one-way, in two modes: `Hold` keeps traffic in flight
//!   until healed (TCP retransmitting through a short outage) and `Drop` resets every
//!   connection across it and lets new connects time out (`ETIMEDOUT`, 110), which is
//!   what an application sees once TCP gives up.
//!
//! A correct engine survives them because real networks do all of this: it must retry,
//! resume from sequence numbers, and never assume a write was read.
//!
//! Crash semantics: a crashed host's listeners vanish and its connections are reset;
//! connects to it time out until it restarts (a dead host sends no RST).

mod listener;
mod options;
mod pipe;
#[cfg(test)]
mod tests;

pub use options::NetOptions;
pub use pipe::SimStream;

use crate::faults::FaultCounters;
use crate::seed::{Ratio, SimRng};
use engine::env::{BoxFuture, NetAddr, NetListener, NetStream, Network};
use listener::{Incoming, SimListener};
use pipe::Pipe;
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

const ECONNREFUSED: i32 = 111;
const ETIMEDOUT: i32 = 110;
const EADDRINUSE: i32 = 98;
const EHOSTUNREACH: i32 = 113;

/// How a partition treats traffic across it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum PartitionMode {
    /// Traffic waits until the partition heals.
    Hold,
    /// Connections across it are reset; new connects time out.
    Drop,
}

struct HostEntry {
    name: String,
    ip: String,
    up: bool,
}

struct Connection {
    a_to_b: Weak<Pipe>,
    b_to_a: Weak<Pipe>,
}

struct NetState {
    options: NetOptions,
    hosts: Vec<HostEntry>,
    listeners: BTreeMap<(usize, u16), (u64, mpsc::UnboundedSender<Incoming>)>,
    listener_ids: u64,
    next_ephemeral: BTreeMap<usize, u16>,
    /// Directed cuts: traffic from `.0` to `.1` is held or dropped.
    partitions: BTreeMap<(usize, usize), PartitionMode>,
    connections: Vec<Connection>,
    held: Vec<Weak<Pipe>>,
}

/// What every write draws from, behind one lock (writes are the hot path).
struct Draws {
    rng: SimRng,
    latency_min_ns: u64,
    latency_max_ns: u64,
    /// Per-link latency ranges (from, to) → (min, max) ns, overriding the default.
    links: BTreeMap<(usize, usize), (u64, u64)>,
    reset_rate: Ratio,
}

impl Draws {
    fn latency(&mut self, from: usize, to: usize) -> Duration {
        let (low, high) = if self.links.is_empty() {
            (self.latency_min_ns, self.latency_max_ns)
        } else {
            self.links
                .get(&(from, to))
                .copied()
                .unwrap_or((self.latency_min_ns, self.latency_max_ns))
        };
        Duration::from_nanos(self.rng.between(low, high))
    }
}

/// The world's network. Hosts reach it through [`HostNet`], their `Network` seam.
pub struct SimNet {
    state: Mutex<NetState>,
    draws: Mutex<Draws>,
    in_flight_bytes_max: AtomicUsize,
    holds_active: AtomicUsize,
    faults: FaultCounters,
}

impl SimNet {
    pub fn new(options: NetOptions, rng: SimRng, faults: FaultCounters) -> Arc<Self> {
        options.check();
        Arc::new(SimNet {
            draws: Mutex::new(Draws {
                rng,
                latency_min_ns: options.latency_min.as_nanos() as u64,
                latency_max_ns: options.latency_max.as_nanos() as u64,
                links: BTreeMap::new(),
                reset_rate: options.reset_rate,
            }),
            in_flight_bytes_max: AtomicUsize::new(options.in_flight_bytes_max),
            state: Mutex::new(NetState {
                options,
                hosts: Vec::new(),
                listeners: BTreeMap::new(),
                listener_ids: 0,
                next_ephemeral: BTreeMap::new(),
                partitions: BTreeMap::new(),
                connections: Vec::new(),
                held: Vec::new(),
            }),
            holds_active: AtomicUsize::new(0),
            faults,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().expect("net poisoned")
    }

    /// Adds a host; returns its index. Called by the world.
    pub(crate) fn add_host(&self, name: &str, ip: &str) -> usize {
        let mut state = self.lock();
        assert!(
            state.hosts.iter().all(|h| h.name != name && h.ip != ip),
            "host {name} ({ip}) registered twice"
        );
        state.hosts.push(HostEntry {
            name: name.to_string(),
            ip: ip.to_string(),
            up: true,
        });
        state.hosts.len() - 1
    }

    pub fn options(&self) -> NetOptions {
        self.lock().options.clone()
    }

    /// Replaces the options (swarm rates change, or a heal sets them quiet).
    pub fn set_options(&self, options: NetOptions) {
        options.check();
        self.in_flight_bytes_max
            .store(options.in_flight_bytes_max, Ordering::Relaxed);
        {
            let mut draws = self.draws.lock().expect("net draws poisoned");
            draws.latency_min_ns = options.latency_min.as_nanos() as u64;
            draws.latency_max_ns = options.latency_max.as_nanos() as u64;
            draws.reset_rate = options.reset_rate;
        }
        self.lock().options = options;
    }

    fn options_in_flight_max(&self) -> usize {
        self.in_flight_bytes_max.load(Ordering::Relaxed)
    }

    fn sample_latency(&self, from: usize, to: usize) -> Duration {
        self.draws
            .lock()
            .expect("net draws poisoned")
            .latency(from, to)
    }

    /// Latency of the next write on `from → to`, and whether the swarm resets the
    /// connection instead.
    fn draw_write(&self, from: usize, to: usize) -> (Duration, bool) {
        let mut draws = self.draws.lock().expect("net draws poisoned");
        let reset_rate = draws.reset_rate;
        let reset = draws.rng.chance(reset_rate);
        (draws.latency(from, to), reset)
    }

    /// Gives the link from `a` to `b` (one direction) its own latency range, uniform in
    /// `[min, max]`; `None` returns it to the default range.
    pub fn set_link_latency(&self, a: &str, b: &str, range: Option<(Duration, Duration)>) {
        let (ia, ib) = (self.expect_host(a), self.expect_host(b));
        let mut draws = self.draws.lock().expect("net draws poisoned");
        match range {
            Some((min, max)) => {
                assert!(min <= max, "latency range {min:?}..={max:?} is empty");
                draws
                    .links
                    .insert((ia, ib), (min.as_nanos() as u64, max.as_nanos() as u64));
            }
            None => {
                draws.links.remove(&(ia, ib));
            }
        }
    }

    fn resolve(&self, from: usize, host: &str) -> Option<usize> {
        if matches!(host, "localhost" | "127.0.0.1" | "::1") {
            return Some(from);
        }
        self.lock()
            .hosts
            .iter()
            .position(|h| h.name == host || h.ip == host)
    }

    pub fn host_index(&self, name: &str) -> Option<usize> {
        self.lock().hosts.iter().position(|h| h.name == name)
    }

    fn host_name(&self, index: usize) -> String {
        self.lock().hosts[index].name.clone()
    }

    /// Whether traffic from `from` to `to` is currently held by a partition.
    fn holds(&self, from: usize, to: usize) -> bool {
        if self.holds_active.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.lock().partitions.get(&(from, to)) == Some(&PartitionMode::Hold)
    }

    fn cut(&self, from: usize, to: usize) -> Option<PartitionMode> {
        self.lock().partitions.get(&(from, to)).copied()
    }

    /// Remembers a reader waiting on a held partition, to wake it on heal.
    fn park_held(&self, pipe: &Arc<Pipe>) {
        let mut state = self.lock();
        let already = state
            .held
            .iter()
            .any(|w| w.upgrade().is_some_and(|p| Arc::ptr_eq(&p, pipe)));
        if !already {
            state.held.push(Arc::downgrade(pipe));
            let (from, to) = (
                state.hosts[pipe.from].name.clone(),
                state.hosts[pipe.to].name.clone(),
            );
            drop(state);
            self.faults.fire(
                "net.partition_hold",
                &format!("traffic {from} -> {to} held"),
            );
        }
    }

    fn reset_pair(&self, tx: &Pipe, rx: &Pipe, why: &str) {
        tx.reset();
        rx.reset();
        let (a, b) = (self.host_name(tx.from), self.host_name(tx.to));
        self.faults
            .fire("net.reset", &format!("connection {a} <-> {b} reset: {why}"));
    }

    /// Partitions traffic from `a` to `b`, and from `b` to `a` unless `one_way`.
    pub fn partition(&self, a: &str, b: &str, mode: PartitionMode, one_way: bool) {
        let (ia, ib) = (self.expect_host(a), self.expect_host(b));
        {
            let mut state = self.lock();
            state.partitions.insert((ia, ib), mode);
            if !one_way {
                state.partitions.insert((ib, ia), mode);
            }
            self.recount_holds(&state);
        }
        let direction = if one_way { "->" } else { "<->" };
        self.faults.fire(
            "net.partition",
            &format!("{a} {direction} {b} partitioned ({mode:?})"),
        );
        if mode == PartitionMode::Drop {
            self.reset_connections(ia, ib, "partition dropped traffic");
        }
    }

    /// Heals the partition between `a` and `b` (both directions).
    pub fn heal(&self, a: &str, b: &str) {
        let (ia, ib) = (self.expect_host(a), self.expect_host(b));
        let mut state = self.lock();
        state.partitions.remove(&(ia, ib));
        state.partitions.remove(&(ib, ia));
        self.finish_heal(state);
        tracing::info!(target: "sim::net", "partition {a} <-> {b} healed");
    }

    /// Heals every partition.
    pub fn heal_all(&self) {
        let mut state = self.lock();
        let had = !state.partitions.is_empty();
        state.partitions.clear();
        self.finish_heal(state);
        if had {
            tracing::info!(target: "sim::net", "all partitions healed");
        }
    }

    fn finish_heal(&self, mut state: std::sync::MutexGuard<'_, NetState>) {
        self.recount_holds(&state);
        let held: Vec<Weak<Pipe>> = std::mem::take(&mut state.held);
        drop(state);
        for pipe in held.iter().filter_map(Weak::upgrade) {
            pipe.wake_reader();
        }
    }

    fn recount_holds(&self, state: &NetState) {
        let holds = state
            .partitions
            .values()
            .filter(|m| **m == PartitionMode::Hold)
            .count();
        self.holds_active.store(holds, Ordering::Relaxed);
    }

    /// Resets every live connection between hosts `a` and `b` (a fixed fault).
    pub fn reset_between(&self, a: &str, b: &str) -> usize {
        let (ia, ib) = (self.expect_host(a), self.expect_host(b));
        self.reset_connections(ia, ib, "reset injected")
    }

    fn reset_connections(&self, ia: usize, ib: usize, why: &str) -> usize {
        let pairs: Vec<(Arc<Pipe>, Arc<Pipe>)> = {
            let mut state = self.lock();
            state
                .connections
                .retain(|c| c.a_to_b.strong_count() > 0 || c.b_to_a.strong_count() > 0);
            state
                .connections
                .iter()
                .filter_map(|c| Some((c.a_to_b.upgrade()?, c.b_to_a.upgrade()?)))
                .filter(|(p, _)| (p.from == ia && p.to == ib) || (p.from == ib && p.to == ia))
                .filter(|(p, _)| !p.is_reset())
                .collect()
        };
        for (tx, rx) in &pairs {
            self.reset_pair(tx, rx, why);
        }
        pairs.len()
    }

    fn expect_host(&self, name: &str) -> usize {
        self.host_index(name)
            .unwrap_or_else(|| panic!("no host named {name:?} in this world"))
    }

    /// Host crash: listeners vanish, connections reset, connects time out.
    pub(crate) fn crash_host(&self, index: usize) {
        let pairs: Vec<(Arc<Pipe>, Arc<Pipe>)> = {
            let mut state = self.lock();
            state.hosts[index].up = false;
            state.listeners.retain(|(host, _), _| *host != index);
            state
                .connections
                .iter()
                .filter_map(|c| Some((c.a_to_b.upgrade()?, c.b_to_a.upgrade()?)))
                .filter(|(p, _)| p.from == index || p.to == index)
                .collect()
        };
        // A crash is counted by the world as `host.crash`; the resets are its effect.
        for (tx, rx) in pairs {
            tx.reset();
            rx.reset();
        }
    }

    pub(crate) fn restart_host(&self, index: usize) {
        self.lock().hosts[index].up = true;
    }

    fn is_up(&self, index: usize) -> bool {
        self.lock().hosts[index].up
    }

    async fn connect_from(
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
        self.lock().connections.push(Connection {
            a_to_b: Arc::downgrade(&up),
            b_to_a: Arc::downgrade(&down),
        });
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

    fn bind_on(self: &Arc<Self>, host: usize, port: u16) -> io::Result<Box<dyn NetListener>> {
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

    fn unbind(&self, host: usize, port: u16, id: u64) {
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

/// One host's view of the network: its `Network` seam.
pub struct HostNet {
    net: Arc<SimNet>,
    host: usize,
}

impl HostNet {
    pub fn new(net: Arc<SimNet>, host: usize) -> Self {
        HostNet { net, host }
    }
}

impl Network for HostNet {
    fn bind(&self, port: u16) -> BoxFuture<'_, io::Result<Box<dyn NetListener>>> {
        Box::pin(async move { self.net.bind_on(self.host, port) })
    }

    fn connect<'a>(&'a self, addr: &'a NetAddr) -> BoxFuture<'a, io::Result<Box<dyn NetStream>>> {
        Box::pin(self.net.connect_from(self.host, addr))
    }
}
