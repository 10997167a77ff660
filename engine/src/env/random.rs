/// Randomness for engine decisions (jitter, identifiers). Real: seeded from OS entropy
/// once. Simulated: a ChaCha stream derived from the run seed and the host's name.
pub trait RandomSource: Send + Sync {
    fn next_u64(&self) -> u64;

    /// A value uniform in `[0, bound)`; `bound` must be positive. Uses rejection so
    /// the distribution is exact and the draw sequence is our own (stable across crate
    /// upgrades, BRIEF §3 rule 4).
    fn below(&self, bound: u64) -> u64 {
        assert!(bound > 0, "below(0) has no valid value");
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }

    fn fill_bytes(&self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}
