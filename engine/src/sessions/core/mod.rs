//! One session's decisions as a sans-IO core (the quinn-proto / str0m shape): every
//! input comes in as a `handle_*` call with `now` (time since the session table
//! started), every output goes out as a return value or a `poll_*` answer, and
//! [`SessionCore::poll_timeout`] says when time alone changes something. No clock, no
//! locks, no tasks: the shells (`session.rs` holds it behind a mutex and wakes tasks,
//! `driver.rs` runs the worker and the model, `gateway/connection.rs` the socket) only
//! carry out what it decides; unit tests and the property test drive it directly.
//!
//! What it decides:
//! - **the stream** (`stream.rs`): sequence numbers (the replay log is the outbound
//!   queue), back-pressure (`has_room`), attaching a connection (from the start for the
//!   first one, at the end for a new tab, from `last_seq` for a reconnect; the old one is
//!   displaced), what each connection writes next, acknowledgements, the stream's end;
//! - **queries** (`queries.rs`): enqueue in queue or reject mode, interrupts, extensions,
//!   the lifecycle (idle → processing → idle, idle → restarting → idle, terminated),
//!   which query runs next, the bound on streamed answer bytes, truncation of results
//!   and the transcript;
//! - **limits** (`LimitClock`): the duration warning, grace for a running query, the
//!   first-message and idle timeouts, the interrupt of a query whose client went away,
//!   parking a session no client came back to (`detached_max`), and the age bound of
//!   the replay log, all as [`SessionCore::poll_timeout`] /
//!   [`SessionCore::handle_timeout`].

mod queries;
mod stream;
#[cfg(test)]
mod tests;

pub use queries::{ClientInput, InputOutcome, QueryEnd, Step, Stop};
pub use stream::{Attach, Published, SEQUENCE_EXHAUSTED, Unsent};

use super::lifecycle::{self, IllegalTransition, SessionEvent, SessionState};
use super::limits::{LimitAction, LimitClock, SessionLimits};
use super::replay::{ReplayLimits, ReplayLog};
use crate::protocol::ServerEvent;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Counters of one session, for oracles and operators.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionStats {
    pub queries: u64,
    pub interrupts: u64,
    pub restarts: u64,
    pub connections: u64,
    /// Connections displaced by a newer one, and connections that went away.
    pub replaced: u64,
    pub detaches: u64,
    /// Messages written again to a reconnected client.
    pub replayed: u64,
    /// Times a producer waited for a slow connection.
    pub backpressure_waits: u64,
    /// Most messages ever waiting for the connection.
    pub outbound_peak: usize,
    /// Most bytes the replay log ever held.
    pub log_bytes_peak: usize,
    pub truncated_results: u64,
}

/// A second query while one runs: wait behind it, or be refused with
/// `query_in_progress`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryMode {
    Queue,
    Reject,
}

/// Why a session no client came back to ended (its record is kept: a resume restores it).
pub const PARKED: &str = "no client came back: the session is parked; resume it to continue";

/// What a session is configured with (from `SessionsConfig`).
#[derive(Clone, Debug)]
pub struct SessionSettings {
    pub limits: SessionLimits,
    pub replay: ReplayLimits,
    /// The stream's first message gets this plus one (0 normally).
    pub first_seq_after: u64,
    /// Messages the attached connection may have unwritten before producers wait.
    pub outbound_max: usize,
    /// Answers longer than this are sent truncated, and streamed only up to it.
    pub result_bytes_max: usize,
    pub queries: QueryMode,
    /// A running query whose client went away is interrupted after this.
    pub detached_query_timeout: Duration,
}

impl SessionSettings {
    pub fn check(&self) {
        assert!(self.outbound_max > 0, "outbound_max must be positive");
        assert!(
            self.outbound_max <= self.replay.count,
            "the outbound queue must fit in the replay log, or a connected client could miss messages"
        );
        assert!(
            self.result_bytes_max > 0,
            "result_bytes_max must be positive"
        );
        self.limits.check();
        self.replay.check();
    }
}

/// Which deadlines count: a running query is judged by the limits with grace and by
/// its client's absence; an idle session by the idle timeouts and its log's age bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Streaming,
}

/// The connection currently attached.
#[derive(Clone, Debug)]
struct Attached {
    generation: u64,
    /// Everything up to here was written to this connection.
    sent_through: u64,
}

/// The query being run.
#[derive(Clone, Debug)]
struct Running {
    id: u64,
    text: String,
    /// The answer's parts so far.
    parts: Vec<String>,
    /// Bytes of the answer seen so far (streamed while within the result bound).
    streamed: usize,
    /// Why the answer is not the one asked for, if it is not (the result's subtype).
    subtype: Option<&'static str>,
}

/// One session's state and decisions.
#[derive(Clone, Debug)]
pub struct SessionCore {
    settings: SessionSettings,
    state: SessionState,
    log: ReplayLog,
    attached: Option<Attached>,
    /// The client acknowledged everything up to here.
    acked: u64,
    next_generation: u64,
    /// Queries waiting: (query id, text, options).
    pending: VecDeque<(u64, String, crate::protocol::QueryOptions)>,
    next_query: u64,
    running: Option<Running>,
    interrupt_requested: bool,
    role: String,
    /// Full answers of truncated results, by query: the same allocations as their
    /// transcript entries (a 10 MB tool result is held once, not once per reader).
    results: BTreeMap<u64, Arc<String>>,
    limit: LimitClock,
    /// Since when no connection is attached (`None`: one is).
    detached_since: Option<Duration>,
    /// The session's history (query texts and answers): what a fork copies (shared
    /// entries: a fork, a persist and an HTTP fetch take references, not copies).
    transcript: Vec<Arc<String>>,
    end_reason: Option<String>,
    /// The worker serving the session now (`None` until one is bound).
    worker: Option<String>,
    /// The number of the stream's last message (`session_ended`), once published.
    final_seq: Option<u64>,
    /// The stream had no number left for `session_ended`: the connection sends it
    /// unnumbered before closing.
    end_unsequenced: Option<String>,
    /// Ending here hands the session over (its record stays, unclaimed).
    handed_off: bool,
    /// The client was told the model API is unavailable: it is told again when it is back.
    upstream_lost: bool,
    /// The model a query named last (the session's model from then on); `None`: the
    /// engine's default.
    model: Option<String>,
    /// The session's spending cap and what its model calls have cost.
    budget: crate::sessions::agent::Budget,
    /// Times its history was compacted to fit the context window, and how many of its
    /// messages were in all (the history then opens with the marker standing for them).
    compactions: u32,
    compacted_messages: usize,
    stats: SessionStats,
}

impl SessionCore {
    pub fn new(
        settings: SessionSettings,
        role: String,
        transcript: Vec<Arc<String>>,
        now: Duration,
    ) -> Self {
        settings.check();
        SessionCore {
            log: ReplayLog::starting_after(settings.replay, settings.first_seq_after),
            limit: LimitClock::new(settings.limits.clone(), now),
            settings,
            state: SessionState::Idle,
            attached: None,
            acked: 0,
            next_generation: 1,
            pending: VecDeque::new(),
            next_query: 1,
            running: None,
            interrupt_requested: false,
            role,
            results: BTreeMap::new(),
            detached_since: Some(now),
            transcript,
            end_reason: None,
            worker: None,
            final_seq: None,
            end_unsequenced: None,
            handed_off: false,
            upstream_lost: false,
            model: None,
            budget: Default::default(),
            compactions: 0,
            compacted_messages: 0,
            stats: SessionStats::default(),
        }
    }

    // ---- what operators, oracles and shells read ----

    pub fn state(&self) -> SessionState {
        self.state
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    pub fn transcript(&self) -> &[Arc<String>] {
        &self.transcript
    }

    pub fn worker(&self) -> Option<&str> {
        self.worker.as_deref()
    }

    /// The model this session's queries go to (`None`: the engine's default).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The session was restored from the store: it is not new (its user spoke to it
    /// before), so from now it idles out like any other instead of ending, and losing
    /// its stored history, for want of a first message.
    pub fn handle_restored(&mut self, now: Duration) {
        self.limit.on_message(now);
    }

    /// Later queries go to `model` (`None`: back to the engine's default).
    pub fn handle_model_chosen(&mut self, model: Option<String>) {
        self.model = model;
    }

    pub(crate) fn budget(&self) -> &crate::sessions::agent::Budget {
        &self.budget
    }

    pub(crate) fn budget_mut(&mut self) -> &mut crate::sessions::agent::Budget {
        &mut self.budget
    }

    /// What the session's model calls have cost so far.
    pub fn spent(&self) -> crate::protocol::Usd {
        self.budget.spent()
    }

    /// Model calls sent while the session's cap was already spent (the oracles want
    /// none: a cap is passed by at most the one call that crossed it).
    pub fn calls_past_cap(&self) -> u32 {
        self.budget.calls_past_cap()
    }

    /// The session's spending cap, if it has one.
    pub fn budget_cap(&self) -> Option<crate::protocol::Usd> {
        self.budget.cap()
    }

    /// Times the history was compacted.
    pub fn compactions(&self) -> u32 {
        self.compactions
    }

    /// The history's `entries` oldest entries are compacted: a marker made by `marker`
    /// from the count of every message compacted so far stands for them (an earlier
    /// marker among them counts for the messages it stood for).
    pub fn handle_compacted(&mut self, entries: usize, marker: impl FnOnce(usize) -> String) {
        assert!(
            entries > 0 && entries <= self.transcript.len(),
            "compacting {entries} of {} history entries",
            self.transcript.len()
        );
        let earlier_marker = usize::from(self.compactions > 0);
        self.compacted_messages += entries - earlier_marker;
        let marker = Arc::new(marker(self.compacted_messages));
        self.transcript.splice(..entries, [marker]);
        self.compactions += 1;
    }

    pub fn end_reason(&self) -> Option<&str> {
        self.end_reason.as_deref()
    }

    /// The full answer of query `query`, if it was truncated on the stream.
    pub fn full_result(&self, query: u64) -> Option<&str> {
        self.results.get(&query).map(|full| full.as_str())
    }

    /// [`Self::full_result`] as a handle on the session's own copy (an HTTP fetch
    /// serves it without copying it).
    pub fn full_result_shared(&self, query: u64) -> Option<Arc<String>> {
        self.results.get(&query).cloned()
    }

    pub fn is_handed_off(&self) -> bool {
        self.handed_off
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    // ---- inputs that are not about the stream or a query ----

    /// The worker serving the session now.
    pub fn handle_worker_bound(&mut self, name: &str) {
        if self.worker.as_deref() != Some(name) {
            self.worker = Some(name.to_string());
        }
    }

    /// The user's role changed; returns the old one. The next tool call is judged by it.
    pub fn handle_role_changed(&mut self, role: &str) -> String {
        std::mem::replace(&mut self.role, role.to_string())
    }

    /// Asks the session to end (the first reason given wins).
    pub fn handle_end_requested(&mut self, reason: &str) {
        self.end_reason.get_or_insert_with(|| reason.to_string());
    }

    /// The session ends here but is handed over to another instance.
    pub fn handle_handed_off(&mut self) {
        self.handed_off = true;
    }

    /// The client was told the model API is unavailable.
    pub fn handle_upstream_lost(&mut self) {
        self.upstream_lost = true;
    }

    /// The model API is back: whether this session's client must be told.
    pub fn poll_upstream_back(&mut self) -> bool {
        std::mem::take(&mut self.upstream_lost)
    }

    /// Applies a lifecycle event: the status to publish (none for `terminated`, which
    /// the stream's `session_ended` says), or why the event is not allowed now.
    pub fn handle_lifecycle(
        &mut self,
        event: SessionEvent,
    ) -> Result<Option<ServerEvent>, IllegalTransition> {
        let to = lifecycle::next(self.state, event)?;
        self.state = to;
        Ok(
            (to != SessionState::Terminated).then(|| ServerEvent::Status {
                state: to.name().to_string(),
            }),
        )
    }

    // ---- time ----

    /// When time alone next changes something in `phase`.
    pub fn poll_timeout(&self, phase: Phase) -> Option<Duration> {
        let (limit, _) = self.limit.next(phase == Phase::Streaming);
        let others = match phase {
            Phase::Idle => [
                self.log.next_expiry(),
                self.detached_since
                    .map(|t| t + self.settings.limits.detached_max),
            ],
            Phase::Streaming => [
                self.detached_since
                    .map(|t| t + self.settings.detached_query_timeout),
                None,
            ],
        };
        Some(others.into_iter().flatten().fold(limit, Duration::min))
    }

    /// A session no client came back to within `detached_max` is parked: its worker
    /// and its place go, its record stays for a resume.
    pub(super) fn park_if_abandoned(&mut self, now: Duration) {
        let parked_at = self
            .detached_since
            .map(|t| t + self.settings.limits.detached_max);
        if parked_at.is_some_and(|at| now >= at) && self.end_reason.is_none() {
            crate::met!(
                "client.never_returns",
                "no client came back within {} s: the session is parked",
                self.settings.limits.detached_max.as_secs()
            );
            self.handle_handed_off();
            self.handle_end_requested(PARKED);
        }
    }

    /// Applies what is due at `now` in `phase`: a duration warning comes back as the
    /// event to publish; an end sets the end reason (a running query stops for it); a
    /// running query whose client stayed away is interrupted; aged log entries go.
    pub fn handle_timeout(&mut self, now: Duration, phase: Phase) -> Option<ServerEvent> {
        let streaming = phase == Phase::Streaming;
        if phase == Phase::Idle {
            // Nobody came back for these: the age bound frees them now, not at the
            // next append.
            let held = self.log.len();
            self.log.expire(now);
            if held > 0 && self.log.is_empty() && self.attached.is_none() {
                crate::met!(
                    "client.never_returns",
                    "no client came back within the replay log's age bound ({} s): the log emptied by itself",
                    self.settings.replay.age.as_secs()
                );
            }
            self.park_if_abandoned(now);
        }
        if streaming
            && let Some(since) = self.detached_since
            && now >= since + self.settings.detached_query_timeout
            && !self.interrupt_requested
        {
            let query = self.running.as_ref().map(|r| r.id);
            tracing::info!(query = ?query, "no client came back: the query is interrupted");
            crate::met!(
                "client.tab_closed",
                "no client came back within {} s of leaving: query {query:?} is interrupted",
                self.settings.detached_query_timeout.as_secs()
            );
            self.interrupt_requested = true;
        }
        let (deadline, action) = self.limit.next(streaming);
        if now < deadline {
            return None;
        }
        self.limit.applied(&action);
        match action {
            LimitAction::Warn { remaining } => Some(ServerEvent::SessionEnding {
                remaining_ms: remaining.as_millis() as u64,
                reason: "session duration limit".to_string(),
            }),
            LimitAction::End { limit } => {
                if self.end_reason.is_none() {
                    limit.met();
                }
                self.handle_end_requested(limit.reason());
                None
            }
        }
    }
}
