//! Scenarios of the `sessions` subsystem: lifecycle, admission, limits, resume and
//! fork, the pre-warm pool (`lifecycle`), memory restarts of live sessions (`memory`),
//! sessions kept in the store across instances (`durable`), the edges of the sequence
//! space and the disk quota (`edges`), the model API under live sessions (`upstream`),
//! and the distributed session lock under contention (`scale`, api.SCALE-001).
//! `resume_lock` is a self-check outside the catalog (`sim.sessions.*`): a resume from
//! the store takes that lock.

mod durable;
mod edges;
mod lifecycle;
mod memory;
mod resume_lock;
mod scale;
mod shutdown;
mod upstream;

use crate::scenario::Scenario;

pub fn all() -> Vec<&'static Scenario> {
    let mut all = Vec::new();
    all.extend(lifecycle::all());
    all.extend(memory::all());
    all.extend(durable::all());
    all.extend(edges::all());
    all.extend(upstream::all());
    all.extend(shutdown::all());
    all.push(&scale::SCALE);
    all.extend(resume_lock::all());
    all
}
