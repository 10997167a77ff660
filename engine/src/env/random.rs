/// A value uniform in `[0, bound)` from a source of raw `u64`s, by rejection (exact, and
/// our own code, so a seed's draws never change with a crate upgrade). `bound` must be
/// positive. Shared by the engine's RNG seam and the simulator's streams.
pub fn uniform_below(bound: u64, mut next_u64: impl FnMut() -> u64) -> u64 {
    assert!(bound > 0, "below(0) has no valid value");
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let x = next_u64();
        if x < zone {
            return x % bound;
        }
    }
}

/// Randomness for engine decisions (jitter, identifiers). Real: seeded from OS entropy
/// once. Simulated: a ChaCha stream derived from the run seed and the host's name.
pub trait RandomSource: Send + Sync {
    fn next_u64(&self) -> u64;

    /// A value uniform in `[0, bound)`; `bound` must be positive. Uses rejection so
    /// the distribution is exact and the draw sequence is our own (stable across crate
    /// upgrades, BRIEF §3 rule 4).
    fn below(&self, bound: u64) -> u64 {
        uniform_below(bound, || self.next_u64())
    }

    /// Whether this source is seeded from the OS's entropy (the real environment), so
    /// that cryptography may use the OS's own generator instead (TLS handshakes); a
    /// simulated source draws from the run seed and must be the only one used.
    fn os_entropy(&self) -> bool {
        false
    }

    fn fill_bytes(&self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Returns a fixed sequence, to test the provided methods exactly.
    struct Sequence(AtomicU64, Vec<u64>);

    impl RandomSource for Sequence {
        fn next_u64(&self) -> u64 {
            let i = self.0.fetch_add(1, Ordering::Relaxed) as usize;
            self.1[i % self.1.len()]
        }
    }

    #[test]
    fn below_rejects_the_biased_zone_and_stays_in_range() {
        // u64::MAX is in the rejected zone for bound 10; 25 is not.
        let source = Sequence(AtomicU64::new(0), vec![u64::MAX, 25]);
        assert_eq!(source.below(10), 5);
        assert_eq!(source.0.load(Ordering::Relaxed), 2, "one draw rejected");
    }

    #[test]
    fn fill_bytes_uses_little_endian_words_and_handles_tails() {
        let source = Sequence(AtomicU64::new(0), vec![0x0807_0605_0403_0201]);
        let mut out = [0u8; 11];
        source.fill_bytes(&mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3]);
    }

    #[test]
    #[should_panic(expected = "below(0)")]
    fn below_zero_is_a_bug() {
        Sequence(AtomicU64::new(0), vec![1]).below(0);
    }
}
