//! Everything a deployment sets about sessions. Limits are configuration, so a 4-hour
//! session limit is a few simulated seconds in a scenario.

use super::admission::AdmissionMode;
use super::core::{QueryMode, SessionSettings};
use super::limits::SessionLimits;
use super::replay::ReplayLimits;
use crate::egress::EgressConfig;
use crate::upstream::UpstreamConfig;
use crate::workers::{WarmPoolConfig, WorkerConfig};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SessionsConfig {
    /// This engine instance's name: it prefixes session ids (empty: none) and names
    /// the instance in store claims.
    pub instance: String,
    /// The pre-warm pool sessions take their workers from: its `template` is the
    /// worker every session runs on (each gets `dir/<worker name>`), its
    /// `config_version` the plugin set and configuration workers are built with.
    pub pool: WarmPoolConfig,
    pub session_limit: usize,
    pub admission: AdmissionMode,
    pub limits: SessionLimits,
    pub replay: ReplayLimits,
    /// A new session's first message gets this plus one (0 normally). The sequence
    /// space is 64 bits; a test starts near its end to see it run out.
    pub first_seq_after: u64,
    /// Messages of a session's stream not yet written to its connection, at most: a
    /// slow client makes the producer wait here (the bounded outbound queue).
    pub outbound_max: usize,
    /// Answers longer than this are sent truncated (the whole is fetchable over HTTP).
    pub result_bytes_max: usize,
    pub queries: QueryMode,
    /// Pace of a worker's streamed answer, per part (a model's token rate).
    pub answer_pace: Option<Duration>,
    /// A query left running by a client that went away is interrupted when no
    /// connection returns within this.
    pub detached_query_timeout: Duration,
    /// How long a terminated session is remembered, so a late reconnect gets a precise
    /// `session_not_found`.
    pub tombstone_ttl: Duration,
    /// Tools each role may call.
    pub role_tools: BTreeMap<String, Vec<String>>,
    /// The model API each query goes to first (its answer is what the worker carries
    /// out); `None`: the worker gets the query's text as it is.
    pub upstream: Option<UpstreamConfig>,
    /// Sandbox egress: its buffer's bounds, the probes' timeout and backoff.
    pub egress: EgressConfig,
}

impl SessionsConfig {
    /// 100 sessions, 3 warm workers (the pool's defaults otherwise: staggered 5 s, 30 min
    /// maximum age), sessions running `worker`.
    pub fn new(worker: WorkerConfig) -> Self {
        let tools = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut pool = WarmPoolConfig::new("warm", worker);
        pool.size_target = 3;
        SessionsConfig {
            instance: String::new(),
            pool,
            session_limit: 100,
            admission: AdmissionMode::Refuse {
                retry_after: Duration::from_secs(60),
            },
            limits: SessionLimits::DEFAULT,
            replay: ReplayLimits::DEFAULT,
            first_seq_after: 0,
            outbound_max: 100,
            result_bytes_max: 1024 * 1024,
            queries: QueryMode::Reject,
            answer_pace: None,
            detached_query_timeout: Duration::from_secs(60),
            tombstone_ttl: Duration::from_secs(300),
            role_tools: BTreeMap::from([
                ("admin".to_string(), tools(&["read", "write", "shell"])),
                ("member".to_string(), tools(&["read", "write"])),
                ("viewer".to_string(), tools(&["read"])),
            ]),
            upstream: None,
            egress: EgressConfig::default(),
        }
    }

    pub fn check(&self) {
        assert!(self.session_limit > 0, "session_limit must be positive");
        self.session_settings().check();
        self.pool.check();
        if let Some(u) = &self.upstream {
            u.check();
        }
        self.egress.check();
    }

    /// What each session's core is built with.
    pub(crate) fn session_settings(&self) -> SessionSettings {
        SessionSettings {
            limits: self.limits.clone(),
            replay: self.replay,
            first_seq_after: self.first_seq_after,
            outbound_max: self.outbound_max,
            result_bytes_max: self.result_bytes_max,
            queries: self.queries,
            detached_query_timeout: self.detached_query_timeout,
        }
    }

    pub fn tools_of(&self, role: &str) -> Vec<String> {
        self.role_tools.get(role).cloned().unwrap_or_default()
    }
}
