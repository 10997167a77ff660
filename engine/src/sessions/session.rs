//! One live session: the async shell around its sans-IO [`SessionCore`]. It holds the
//! core behind a mutex (never across an await), wakes the tasks that wait on it (the
//! attached connection for new messages, producers for room, the driver for work), and
//! tells a displaced connection why. Every decision is the core's.

use super::core::{
    Attach, ClientInput, InputOutcome, Published, SessionCore, SessionStats, Unsent,
};
use super::lifecycle::{SessionEvent, SessionState};
use super::replay::ReplayError;
use crate::protocol::ServerEvent;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};

struct Inner {
    core: SessionCore,
    /// Tells the attached connection (its generation) when a newer one takes over.
    displaced: Option<(u64, watch::Sender<Option<String>>)>,
}

pub struct Session {
    pub id: String,
    pub user: String,
    /// A parent's id, for a fork.
    pub parent: Option<String>,
    inner: Mutex<Inner>,
    /// New entries for the connection.
    pub(crate) out_ready: Notify,
    /// Room for producers (the connection wrote something).
    space: Notify,
    /// Work for the session's driver (a query, an interrupt, a limit change, the end).
    pub(crate) work: Notify,
}

/// What attaching a connection gives it.
pub(crate) struct Attachment {
    pub generation: u64,
    pub displaced: watch::Receiver<Option<String>>,
    /// The connection's stream continues after this number.
    pub start_after: u64,
    /// Messages a bound pushed out before the client got them, if any.
    pub gap: Option<(u64, u64)>,
}

impl Session {
    pub(crate) fn new(id: String, user: String, parent: Option<String>, core: SessionCore) -> Self {
        Session {
            id,
            user,
            parent,
            inner: Mutex::new(Inner {
                core,
                displaced: None,
            }),
            out_ready: Notify::new(),
            space: Notify::new(),
            work: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("session state poisoned")
    }

    /// Runs `f` on the core (the shells' one door to it; never held across an await).
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut SessionCore) -> R) -> R {
        f(&mut self.lock().core)
    }

    /// Reads the core.
    fn read<R>(&self, f: impl FnOnce(&SessionCore) -> R) -> R {
        f(&self.lock().core)
    }

    pub fn state(&self) -> SessionState {
        self.read(SessionCore::state)
    }

    pub fn stats(&self) -> SessionStats {
        self.read(|c| c.stats().clone())
    }

    /// What its model calls have cost so far.
    pub fn spent(&self) -> crate::protocol::Usd {
        self.with_core(|c| c.spent())
    }

    /// Model calls sent while its spending cap was already spent (none, if correct).
    pub fn calls_past_cap(&self) -> u32 {
        self.with_core(|c| c.calls_past_cap())
    }

    pub fn last_seq(&self) -> u64 {
        self.read(SessionCore::last_seq)
    }

    /// Bytes and entries the replay log holds now.
    pub fn log_usage(&self) -> (usize, usize) {
        self.read(SessionCore::log_usage)
    }

    /// Messages waiting for the attached connection now.
    pub fn outbound_len(&self) -> usize {
        self.read(SessionCore::behind) as usize
    }

    pub fn outbound_max(&self) -> usize {
        self.read(|c| c.settings().outbound_max)
    }

    pub fn is_attached(&self) -> bool {
        self.read(SessionCore::is_attached)
    }

    /// The full answer of query `query`, if it was truncated on the stream (the
    /// session's own copy, shared).
    pub fn full_result(&self, query: u64) -> Option<Arc<String>> {
        self.read(|c| c.full_result_shared(query))
    }

    /// The session's history (query texts and answers), copied.
    pub fn transcript(&self) -> Vec<String> {
        self.read(|c| {
            c.transcript()
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect()
        })
    }

    /// The session's history as shared entries: what a fork takes and a persist writes.
    pub(crate) fn transcript_shared(&self) -> Vec<Arc<String>> {
        self.read(|c| c.transcript().to_vec())
    }

    pub fn role(&self) -> String {
        self.read(|c| c.role().to_string())
    }

    /// Who a gate check is about: this session, its user, the role they have now.
    pub(crate) fn gate_context(&self) -> super::gate::GateContext<'_> {
        super::gate::GateContext {
            session: &self.id,
            user: &self.user,
            role: self.role(),
        }
    }

    /// The name of the worker serving the session now.
    pub fn worker(&self) -> Option<String> {
        self.read(|c| c.worker().map(str::to_string))
    }

    pub fn end_reason(&self) -> Option<String> {
        self.read(|c| c.end_reason().map(str::to_string))
    }

    /// Applies a lifecycle event, publishing the new state; false when it is not
    /// allowed now (logged, never a silent change).
    pub(crate) async fn transition(&self, now: Duration, event: SessionEvent) -> bool {
        match self.with_core(|c| c.handle_lifecycle(event)) {
            Ok(status) => {
                self.publish_opt(now, status).await;
                true
            }
            Err(e) => {
                tracing::warn!(session = %self.id, "{e}");
                false
            }
        }
    }

    pub(crate) async fn publish_opt(&self, now: Duration, event: Option<ServerEvent>) {
        if let Some(event) = event {
            self.publish(now, event).await;
        }
    }

    /// Appends `event` to the session's stream, waiting while the attached connection
    /// is `outbound_max` messages behind.
    pub async fn publish(&self, now: Duration, event: ServerEvent) -> Published {
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut inner = self.lock();
                if inner.core.has_room() {
                    let published = inner.core.handle_publish(now, event);
                    drop(inner);
                    self.after_publish(published);
                    return published;
                }
                inner.core.handle_backpressure();
            }
            space.await;
        }
    }

    /// Appends `event` unless the attached connection is `outbound_max` behind; then
    /// gives it back (the connection's own replies use this: it makes room by writing).
    pub(crate) fn try_publish(
        &self,
        now: Duration,
        event: ServerEvent,
    ) -> Result<Published, ServerEvent> {
        let mut inner = self.lock();
        if !inner.core.has_room() {
            return Err(event);
        }
        let published = inner.core.handle_publish(now, event);
        drop(inner);
        self.after_publish(published);
        Ok(published)
    }

    fn after_publish(&self, published: Published) {
        match published {
            Published::Seq(_) => self.out_ready.notify_one(),
            // The session ends: its driver must see it.
            Published::Exhausted => self.work.notify_one(),
        }
    }

    /// Attaches a new connection. `last_seq`: the client's last message (a reconnect).
    /// A connection already attached is displaced and told why.
    pub(crate) fn attach(
        &self,
        now: Duration,
        last_seq: Option<u64>,
    ) -> Result<Attachment, ReplayError> {
        let mut inner = self.lock();
        let Attach {
            generation,
            start_after,
            gap,
            displaced,
        } = inner.core.handle_attach(now, last_seq)?;
        if let (Some(old), Some((generation, tx))) = (displaced, inner.displaced.take()) {
            debug_assert_eq!(old, generation, "the displaced connection is the one told");
            let _ = tx.send(Some(
                "this session was opened in another window".to_string(),
            ));
        }
        let (tx, rx) = watch::channel(None);
        inner.displaced = Some((generation, tx));
        drop(inner);
        tracing::debug!(session = %self.id, generation, start_after, "connection attached");
        self.out_ready.notify_one();
        self.work.notify_one();
        Ok(Attachment {
            generation,
            displaced: rx,
            start_after,
            gap,
        })
    }

    /// The connection `generation` went away.
    pub(crate) fn detach(&self, now: Duration, generation: u64) {
        let mut inner = self.lock();
        if inner.core.handle_detach(now, generation) {
            inner.displaced = None;
            drop(inner);
            tracing::debug!(session = %self.id, generation, "connection detached");
            self.space.notify_waiters();
            self.work.notify_one();
        }
    }

    /// What connection `generation` should write next. `None`: it is no longer the
    /// attached connection.
    pub(crate) fn unsent(&self, generation: u64) -> Option<(Option<(u64, u64)>, Unsent)> {
        self.with_core(|c| c.poll_unsent(generation))
    }

    /// The reason the stream ended without a number for `session_ended`, if it did.
    pub(crate) fn end_unsequenced(&self) -> Option<String> {
        self.read(|c| c.end_unsequenced().map(str::to_string))
    }

    /// Whether the stream is over and connection `generation` wrote all of it.
    pub(crate) fn finished_for(&self, generation: u64) -> bool {
        self.read(|c| c.finished_for(generation))
    }

    /// Connection `generation` wrote everything up to `seq`.
    pub(crate) fn written(&self, generation: u64, seq: u64) {
        if self.with_core(|c| c.handle_written(generation, seq)) {
            self.space.notify_waiters();
        }
    }

    /// A client's request, decided by the core; the driver is woken for it.
    pub(crate) fn input(&self, now: Duration, input: ClientInput) -> InputOutcome {
        let outcome = self.with_core(|c| c.handle_input(now, input));
        self.work.notify_one();
        outcome
    }

    /// Asks the driver to end the session.
    pub(crate) fn request_end(&self, reason: &str) {
        self.with_core(|c| c.handle_end_requested(reason));
        self.work.notify_one();
    }
}
