//! Assembling a host's engine environment from the world's devices.

use crate::seed::SimRng;
use engine::env::RandomSource;
use std::sync::Mutex;

/// A host's engine RNG: its own named stream of the run seed.
pub(crate) struct SimRandom(pub(crate) Mutex<SimRng>);

impl RandomSource for SimRandom {
    fn next_u64(&self) -> u64 {
        self.0.lock().expect("rng poisoned").next_u64()
    }
}
