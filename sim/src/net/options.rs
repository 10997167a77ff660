use crate::seed::Ratio;
use std::time::Duration;

/// SimNet settings. Every duration is virtual time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetOptions {
    /// One-way latency of a message (a write, a SYN…), drawn uniformly in
    /// `[latency_min, latency_max]` at nanosecond resolution.
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// Bytes one direction of a connection holds (sent and not yet read). A writer that
    /// meets this bound waits: a slow reader back-pressures its writer.
    pub in_flight_bytes_max: usize,
    /// How long a connect waits for an answer that never comes (a dropped partition or a
    /// dead host) before failing with `ETIMEDOUT`.
    pub connect_timeout: Duration,
    /// Swarm: chance that a write resets its connection instead (`ECONNRESET`).
    pub reset_rate: Ratio,
    /// Swarm: chance that a write is delayed by a latency spike on top of its latency
    /// (a retransmission, a congested link), uniform in `[0, delay_spike_max]`.
    /// Counted `net.delay`. Order per direction is kept.
    pub delay_rate: Ratio,
    /// The longest latency spike.
    pub delay_spike_max: Duration,
    /// First port handed out for `bind(0)`.
    pub ephemeral_port_min: u16,
}

impl NetOptions {
    /// A LAN-like network without swarm faults: 1–5 ms one way, 256 KiB per direction.
    pub fn lan() -> Self {
        NetOptions {
            latency_min: Duration::from_millis(1),
            latency_max: Duration::from_millis(5),
            in_flight_bytes_max: 256 * 1024,
            connect_timeout: Duration::from_secs(75),
            reset_rate: Ratio::ZERO,
            delay_rate: Ratio::ZERO,
            delay_spike_max: Duration::from_millis(40),
            ephemeral_port_min: 40_000,
        }
    }
}

impl NetOptions {
    /// Panics with the offending field when the options contradict themselves (they are
    /// written by people and by generators; a silent clamp would hide a wrong plan).
    pub fn check(&self) {
        assert!(
            self.latency_min <= self.latency_max,
            "latency_min {:?} exceeds latency_max {:?}",
            self.latency_min,
            self.latency_max
        );
        assert!(
            self.in_flight_bytes_max > 0,
            "in_flight_bytes_max must be positive: a connection holds at least one byte"
        );
    }
}

impl Default for NetOptions {
    fn default() -> Self {
        NetOptions::lan()
    }
}
