use std::time::SystemTime;

/// Wall-clock time. Real: the OS clock. Simulated: epoch + virtual time + the host's
/// offset and drift, which can jump forwards and backwards.
pub trait WallClock: Send + Sync {
    fn now(&self) -> SystemTime;
}
