//! SimNet: stream connections between simulated hosts.
//!
//! Fault contract. SimNet delivers each write as one message after a one-way latency
//! drawn from the link's distribution, in order per direction, and bounds the bytes in
//! flight per direction (a slow reader back-pressures its writer, as TCP windows do).
//! It injects:
//! - **connection refused** (`ECONNREFUSED`, 111) when nothing listens on the port;
//! - **resets** (`ECONNRESET`, 104) mid-stream: fixed (`reset_between`) or swarm
//!   (`reset_rate` per write); pending data is lost, both ends fail;
//! - **latency spikes** (swarm, `delay_rate` per write): a write arrives up to
//!   `delay_spike_max` later than its latency says, still in order. Counted `net.delay`.
//!   Why survivable: retransmissions and congestion do this; timeouts must allow it;
//! - **partitions**, symmetric or one-way, in two modes: `Hold` keeps traffic in flight
//!   until healed (TCP retransmitting through a short outage) and `Drop` resets every
//!   connection across it and lets new connects time out (`ETIMEDOUT`, 110), which is
//!   what an application sees once TCP gives up;
//! - **address in use** (`EADDRINUSE`, 98) when a host binds a port one of its listeners
//!   already holds (another process got there first). Counted `net.addr_in_use` each
//!   time a bind hits a taken port; a system that picks its own ports must move on to
//!   another one, and report exhaustion when none is left.
//!
//! A correct engine survives them because real networks do all of this: it must retry,
//! resume from sequence numbers, and never assume a write was read.
//!
//! Crash semantics: a crashed host's listeners vanish and its connections are reset;
//! connects to it time out until it restarts (a dead host sends no RST).
//!
//! The network's DNS resolvers and their faults are `dns.rs` (its own contract).
//!
//! A checker may tap one direction of traffic ([`SimNet::tap`]): it sees what a host
//! actually read, when it read it, so an oracle can judge a host by what it was told
//! (a reply lost on the way never counts as received).

mod connect;
mod deliveries;
mod dns;
mod listener;
mod options;
mod partition;
mod pipe;
#[cfg(test)]
mod tests;

pub use dns::{DnsFaultKind, DnsOptions};
pub use options::NetOptions;
pub use pipe::SimStream;

use crate::faults::FaultCounters;
use crate::seed::{Between, Ratio, SimRng};
use crate::thread_lock::{ThreadLock, ThreadLockGuard};
use deliveries::Deliveries;
use engine::env::{BoxFuture, NetAddr, NetListener, NetStream, Network, Resolved, ResolverId};
use listener::Incoming;
use pipe::Pipe;
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// What every write touches, behind one lock (writes are the hot path): the draws, and
/// the queue of readers waiting for a message in flight.
struct Traffic {
    rng: SimRng,
    /// The default one-way latency range, in nanoseconds.
    latency: Between,
    /// Per-link latency ranges (from, to), in nanoseconds, overriding the default.
    links: BTreeMap<(usize, usize), Between>,
    reset_rate: Ratio,
    delay_rate: Ratio,
    delay_spike_max_ns: u64,
    deliveries: Deliveries,
}

fn latency_range(min: Duration, max: Duration) -> Between {
    Between::new(min.as_nanos() as u64, max.as_nanos() as u64)
}

impl Traffic {
    fn latency(&mut self, from: usize, to: usize) -> Duration {
        Duration::from_nanos(self.latency_ns(from, to))
    }

    /// The link's latency in nanoseconds (per-link ranges are rare: most worlds have none).
    fn latency_ns(&mut self, from: usize, to: usize) -> u64 {
        let range = if self.links.is_empty() {
            self.latency
        } else {
            self.links.get(&(from, to)).copied().unwrap_or(self.latency)
        };
        self.rng.draw(range)
    }

    /// Latency of the next write on `from → to` in nanoseconds, whether the swarm
    /// resets the connection instead, and the swarm's latency spike (already part of the
    /// latency). A rate of zero draws nothing, so a kind switched off shifts no other draw.
    fn draw_write(&mut self, from: usize, to: usize) -> (u64, bool, Option<Duration>) {
        let reset = self.rng.chance(self.reset_rate);
        let latency_ns = self.latency_ns(from, to);
        let spike_ns = self
            .rng
            .chance(self.delay_rate)
            .then(|| self.rng.between(0, self.delay_spike_max_ns));
        let latency_ns = latency_ns.saturating_add(spike_ns.unwrap_or(0));
        (latency_ns, reset, spike_ns.map(Duration::from_nanos))
    }
}

/// The world's network. Hosts reach it through [`HostNet`], their `Network` seam.
pub struct SimNet {
    /// The world's virtual time zero: the network keeps its instants as nanoseconds
    /// since then ([`SimNet::now_ns`]).
    start: Instant,
    state: Mutex<NetState>,
    traffic: ThreadLock<Traffic>,
    in_flight_bytes_max: AtomicUsize,
    holds_active: AtomicUsize,
    faults: FaultCounters,
    /// The world's DNS resolvers (`dns.rs`).
    dns: Mutex<dns::SimDns>,
    /// A checker's view of one direction of traffic, set once (see [`SimNet::tap`]).
    tap: std::sync::OnceLock<Tap>,
}

/// What a tap sees: the bytes a host read from the link, as it read them (at the
/// simulated instant of the read, on the reading host's task).
pub type TapFn = Arc<dyn Fn(&[u8]) + Send + Sync>;

struct Tap {
    from: usize,
    to: usize,
    see: TapFn,
}

impl SimNet {
    /// `start`: the world's virtual time zero.
    pub fn new(
        options: NetOptions,
        rng: SimRng,
        faults: FaultCounters,
        start: Instant,
    ) -> Arc<Self> {
        options.check();
        // The resolvers draw from a stream of their own, forked without advancing the
        // network's (a world that never resolves keeps every draw it had).
        let dns_rng = SimRng::new(rng.clone().next_u64(), "dns");
        Arc::new_cyclic(|me| SimNet {
            start,
            dns: Mutex::new(dns::SimDns::new(dns_rng)),
            traffic: ThreadLock::new(Traffic {
                rng,
                latency: latency_range(options.latency_min, options.latency_max),
                links: BTreeMap::new(),
                reset_rate: options.reset_rate,
                delay_rate: options.delay_rate,
                delay_spike_max_ns: options.delay_spike_max.as_nanos() as u64,
                deliveries: Deliveries::new(me.clone(), start),
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
            tap: std::sync::OnceLock::new(),
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
            let mut traffic = self.traffic();
            traffic.latency = latency_range(options.latency_min, options.latency_max);
            traffic.reset_rate = options.reset_rate;
            traffic.delay_rate = options.delay_rate;
            traffic.delay_spike_max_ns = options.delay_spike_max.as_nanos() as u64;
        }
        self.lock().options = options;
    }

    fn options_in_flight_max(&self) -> usize {
        self.in_flight_bytes_max.load(Ordering::Relaxed)
    }

    fn traffic(&self) -> ThreadLockGuard<'_, Traffic> {
        self.traffic.lock()
    }

    fn sample_latency(&self, from: usize, to: usize) -> Duration {
        self.traffic().latency(from, to)
    }

    /// Virtual nanoseconds since the world's start: the network's clock (read once per
    /// scheduler step on a world's thread, see `clock::virtual_now`).
    fn now_ns(&self) -> u64 {
        crate::clock::virtual_ns_since(self.start)
    }

    /// The delivery alarm fired (tokio's timer driver calls this while the runtime
    /// parks): wakes the readers due by now.
    fn fire_deliveries(&self) {
        let now = crate::clock::StepClock::read_while_parked();
        let now_ns = now.duration_since(self.start).as_nanos() as u64;
        self.traffic().deliveries.fire(now_ns);
    }

    /// Counts a swarm latency spike on `from → to`.
    fn count_spike(&self, from: usize, to: usize, spike: Duration) {
        let names = {
            let state = self.lock();
            (state.hosts[from].name.clone(), state.hosts[to].name.clone())
        };
        self.faults.for_host(&names.0).fire_swarm(
            "net.delay",
            &format!(
                "write {}→{} delayed {} ms more",
                names.0,
                names.1,
                spike.as_millis()
            ),
        );
    }

    /// Gives the link from `a` to `b` (one direction) its own latency range, uniform in
    /// `[min, max]`; `None` returns it to the default range.
    pub fn set_link_latency(&self, a: &str, b: &str, range: Option<(Duration, Duration)>) {
        let (ia, ib) = (self.expect_host(a), self.expect_host(b));
        let mut traffic = self.traffic();
        match range {
            Some((min, max)) => {
                assert!(min <= max, "latency range {min:?}..={max:?} is empty");
                traffic.links.insert((ia, ib), latency_range(min, max));
            }
            None => {
                traffic.links.remove(&(ia, ib));
            }
        }
    }

    /// Shows `see` every byte host `to` reads from connections opened between `from`
    /// and `to` (in the direction from → to), when it reads them: a checker beside the
    /// system that learns what a host was really told, and when (a reply lost to a
    /// reset or a partition is never seen). One tap per network, set before traffic.
    pub fn tap(&self, from: &str, to: &str, see: TapFn) {
        let tap = Tap {
            from: self.expect_host(from),
            to: self.expect_host(to),
            see,
        };
        assert!(self.tap.set(tap).is_ok(), "a network has one tap");
    }

    /// Called by a reader with what it read from `from`.
    fn tapped(&self, from: usize, to: usize, bytes: &[u8]) {
        if let Some(tap) = self.tap.get()
            && tap.from == from
            && tap.to == to
        {
            (tap.see)(bytes);
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

    fn resolve<'a>(
        &'a self,
        via: ResolverId,
        name: &'a str,
    ) -> BoxFuture<'a, io::Result<Vec<Resolved>>> {
        Box::pin(self.net.resolve_from(self.host, via, name))
    }
}
