//! The egress settings, with the units of each (defaults from the catalog's
//! `enable.1.2.1`: up to 1000 requests, at most 5 minutes old, probes with a 5 s connect
//! timeout).

use std::time::Duration;

/// How a sandbox's outbound requests pass while the network may be down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressConfig {
    /// Requests waiting at most (a request past it is refused, never dropped silently).
    pub buffered_max: usize,
    /// How long a request may wait (one older fails with a clear error).
    pub age_max: Duration,
    /// A connect (a request's or a probe's) not answered within this marks egress down.
    pub connect_timeout: Duration,
    /// A whole exchange (connect, request, answer) at most; an exchange that outlives
    /// it counts as unreached, like a connect timeout.
    pub exchange_timeout: Duration,
    /// Answers longer than this are refused with an error.
    pub body_max: usize,
    /// While down, the delay before the n-th probe is
    /// `exponential_delay(probe_first, probe_factor, probe_cap, n)`, reduced by up to
    /// `probe_jitter_percent` % drawn from the environment's randomness (100: full
    /// jitter), so engines cut off together do not probe in lockstep.
    pub probe_first: Duration,
    pub probe_factor: u32,
    pub probe_cap: Duration,
    pub probe_jitter_percent: u32,
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            buffered_max: 1000,
            age_max: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
            exchange_timeout: Duration::from_secs(30),
            body_max: 1024 * 1024,
            probe_first: Duration::from_secs(1),
            probe_factor: 2,
            probe_cap: Duration::from_secs(60),
            probe_jitter_percent: 100,
        }
    }
}

impl EgressConfig {
    /// Panics on a configuration no engine should start with (a startup error).
    pub fn check(&self) {
        assert!(
            self.buffered_max > 0,
            "egress buffered_max must be positive"
        );
        assert!(!self.age_max.is_zero(), "egress age_max must be positive");
        assert!(
            !self.connect_timeout.is_zero() && self.connect_timeout <= self.exchange_timeout,
            "egress connect_timeout must be positive and within exchange_timeout"
        );
        assert!(
            self.probe_factor >= 1,
            "egress probe_factor must be at least 1"
        );
        assert!(
            !self.probe_first.is_zero() && self.probe_first <= self.probe_cap,
            "egress probe_first must be positive and at most probe_cap"
        );
        assert!(
            self.probe_jitter_percent <= 100,
            "egress probe_jitter_percent is a percentage"
        );
    }
}
