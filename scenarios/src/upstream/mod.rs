//! Scenarios of the `upstream` subsystem: the model API behind the sessions, as
//! `SimUpstream` on host `upstream-0` (and the simulated network, resolvers and clock)
//! makes it fail: server errors, silence, broken and empty streams (`failures`), which
//! model answers and with which features (`models`), slow, bursting and parallel
//! streams (`streaming`), rate limits shared by sessions (`limits`), a key refused at
//! start-up (`startup`), name resolution (`dns`), the API's certificate judged by the
//! engine's clock (`tls`), a query's agent loop at its limits (`agent`, `context`,
//! `answers`, `deadline`), a sandbox's egress cut off by a partition (`egress`), and
//! the 429 window shared by instances through their state service (`shared_window`).

mod agent;
mod answers;
mod context;
mod deadline;
mod dns;
mod egress;
mod failures;
mod kit;
mod limits;
mod models;
mod shared_window;
mod startup;
mod streaming;
mod tls;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    let mut all = Vec::new();
    all.extend(startup::all());
    all.extend(models::all());
    all.extend(failures::all());
    all.extend(streaming::all());
    all.extend(limits::all());
    all.extend(shared_window::all());
    all.extend(agent::all());
    all.extend(deadline::all());
    all.extend(context::all());
    all.extend(answers::all());
    all.push(&dns::DNS_FAILURE);
    all.extend(tls::all());
    all.push(&egress::EGRESS_PARTITION);
    all
}
