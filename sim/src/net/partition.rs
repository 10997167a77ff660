//! Partitions and resets: the network's fixed faults.

use super::pipe::Pipe;
use super::{NetState, PartitionMode, SimNet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

impl SimNet {
    /// Whether traffic from `from` to `to` is currently held by a partition. Every read
    /// asks, and nearly always no hold is active: that answer stays inline.
    #[inline]
    pub(super) fn holds(&self, from: usize, to: usize) -> bool {
        self.holds_active.load(Ordering::Relaxed) != 0 && self.holds_slow(from, to)
    }

    #[cold]
    fn holds_slow(&self, from: usize, to: usize) -> bool {
        self.lock().partitions.get(&(from, to)) == Some(&PartitionMode::Hold)
    }

    pub(super) fn cut(&self, from: usize, to: usize) -> Option<PartitionMode> {
        self.lock().partitions.get(&(from, to)).copied()
    }

    /// Remembers a reader waiting on a held partition, to wake it on heal.
    pub(super) fn park_held(&self, pipe: &Arc<Pipe>) {
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

    pub(super) fn reset_pair(&self, tx: &Pipe, rx: &Pipe, why: &str) {
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

    pub(super) fn finish_heal(&self, mut state: std::sync::MutexGuard<'_, NetState>) {
        self.recount_holds(&state);
        let held: Vec<Weak<Pipe>> = std::mem::take(&mut state.held);
        drop(state);
        for pipe in held.iter().filter_map(Weak::upgrade) {
            pipe.wake_reader();
        }
    }

    pub(super) fn recount_holds(&self, state: &NetState) {
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

    pub(super) fn reset_connections(&self, ia: usize, ib: usize, why: &str) -> usize {
        let pairs: Vec<(Arc<Pipe>, Arc<Pipe>)> = {
            self.lock()
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

    pub(super) fn expect_host(&self, name: &str) -> usize {
        self.host_index(name)
            .unwrap_or_else(|| panic!("no host named {name:?} in this world"))
    }
}
