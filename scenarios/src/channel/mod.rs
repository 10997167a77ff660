//! Scenarios of the client channel and its sessions (core.EC-001..051, api.PERF-004,
//! api.CONFIG-001): the real gateway on a simulated engine host, real WebSocket clients
//! on client hosts, faults from the network, the clocks and the clients themselves.
//! `gate.rs` is a self-check outside the catalog (`sim.gateway.*`): the socket task
//! under the host gate.

pub mod client;
mod common;
mod durable;
mod edges;
mod frames;
mod gate;
mod ingress;
mod lifecycle;
mod memory;
mod reconnect;
pub mod stage;
mod stream;
mod upstream;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    let mut all = Vec::new();
    all.extend(frames::all());
    all.extend(reconnect::all());
    all.extend(ingress::all());
    all.extend(lifecycle::all());
    all.extend(memory::all());
    all.extend(stream::all());
    all.extend(durable::all());
    all.extend(edges::all());
    all.extend(upstream::all());
    all.extend(gate::all());
    all
}
