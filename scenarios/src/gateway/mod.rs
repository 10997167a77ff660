//! Scenarios of the `gateway` subsystem (the client channel: frames, reconnects and
//! replay, ingress checks, the outbound stream): the real gateway on a simulated engine
//! host, real WebSocket clients on client hosts, faults from the network, the clocks
//! and the clients themselves. `gate.rs` is a self-check outside the catalog
//! (`sim.gateway.*`): the socket task under the host gate.

mod frames;
mod gate;
mod ingress;
mod reconnect;
mod stream;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    let mut all = Vec::new();
    all.extend(frames::all());
    all.extend(reconnect::all());
    all.extend(ingress::all());
    all.extend(stream::all());
    all.extend(gate::all());
    all
}
