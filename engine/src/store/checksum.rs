//! FNV-1a 64: a stable checksum of a session's data file. Written here (a few lines)
//! so that its output never changes with a crate upgrade: records store it.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`. Stable across versions and platforms; not cryptographic.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}
