//! Sessions and sandbox egress: a query `tool:fetch <target>` fetches its target through
//! the engine's `Egress` (after the tool gate), and the body becomes the worker's input
//! as a model's answer does. When the request meets egress down, the session's worker
//! is checkpointed (its state made durable before a wait that may outlast it) and the
//! session is told once per outage (`egress_degraded`), then told when egress is back
//! (`egress_restored`, by `watch_egress`). A request that fails (a bound met, a bad
//! target) fails the query with `egress_unavailable` and keeps the session.

use super::service::Shared;
use super::session::Session;
use crate::egress::{Egress, EgressError, Sent};
use crate::protocol::{ErrorCode, ServerEvent};
use crate::workers::program::protocol::{Reply, Request};
use std::sync::Arc;

/// The target of a fetch query (`tool:fetch <target>`), if the query is one.
pub(crate) fn fetch_target(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("tool:fetch")?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

/// The body of `target` for query `query` of `session`, waiting while egress is down.
pub(crate) async fn fetch_for(
    shared: &Shared,
    session: &Session,
    query: u64,
    target: &str,
) -> Result<String, EgressError> {
    let egress = &shared.egress;
    match egress.begin(target).await {
        Sent::Done(result) => result,
        Sent::Buffered { outage, reply } => {
            degraded(shared, session, query, outage).await;
            reply.await.unwrap_or(Err(EgressError::Abandoned))
        }
        Sent::Refused { outage, error } => {
            degraded(shared, session, query, outage).await;
            Err(error)
        }
    }
}

/// The worker's input for a fetch query, or `None` when it failed: the client was told.
pub(crate) async fn fetched_input(
    shared: &Shared,
    session: &Session,
    query: u64,
    target: &str,
) -> Option<String> {
    match fetch_for(shared, session, query, target).await {
        Ok(body) => Some(body),
        Err(e) => {
            let error = ServerEvent::Error {
                code: ErrorCode::EgressUnavailable,
                message: format!("the fetch failed: {e}; your session is kept"),
            };
            session.publish(shared.now(), error).await;
            None
        }
    }
}

/// The session's request met egress down (outage `outage`; `None`: it only queued
/// behind the requests of an outage now over): the first time in this outage, its
/// worker is checkpointed and it is told.
async fn degraded(shared: &Shared, session: &Session, query: u64, outage: Option<u64>) {
    let Some(outage) = outage else {
        return;
    };
    if !shared.egress.note_told(&session.id, outage) {
        return;
    }
    checkpoint(shared, session, query).await;
    let warning = ServerEvent::Warning {
        kind: "egress_degraded".to_string(),
        message: format!(
            "the network outside is unreachable: requests wait up to {} s (at most {} at \
             once) and go out in order when it is back; your work was checkpointed",
            shared.egress.config().age_max.as_secs(),
            shared.egress.config().buffered_max
        ),
    };
    session.publish(shared.now(), warning).await;
}

/// Asks the session's worker to persist its state (`Request::Checkpoint`).
async fn checkpoint(shared: &Shared, session: &Session, query: u64) {
    let Some(name) = session.worker() else {
        return;
    };
    let worker = match shared.pool.manager().worker(&name).await {
        Ok(w) => w,
        Err(e) => return tracing::warn!(session = %session.id, "no checkpoint: {e}"),
    };
    match worker.request(Request::Checkpoint { id: query }).await {
        Ok(replies) if replies.iter().any(|r| matches!(r, Reply::Done { .. })) => {
            crate::met!(
                "egress.checkpoint",
                "session {} (worker {name}) checkpointed: egress is down",
                session.id
            );
        }
        Ok(replies) => {
            tracing::warn!(session = %session.id, ?replies, "checkpoint refused by the worker")
        }
        Err(e) => tracing::warn!(session = %session.id, "checkpoint failed: {e}"),
    }
}

/// Each time egress is back: tell every live session told of the outage.
pub(crate) async fn watch_egress(shared: Arc<Shared>, egress: Arc<Egress>) {
    let mut seen = egress.subscribe_restored();
    loop {
        let told = egress.wait_restored(&mut seen).await;
        for id in told {
            let live = shared.table().live.get(&id).cloned();
            if let Some(s) = live {
                let warning = ServerEvent::Warning {
                    kind: "egress_restored".to_string(),
                    message: "the network outside is reachable again".to_string(),
                };
                s.publish(shared.now(), warning).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fetch_queries_have_a_target() {
        assert_eq!(
            fetch_target("tool:fetch outside-0:80/a"),
            Some("outside-0:80/a")
        );
        assert_eq!(fetch_target("tool:fetch"), Some(""));
        assert_eq!(fetch_target("tool:fetcher x"), None);
        assert_eq!(fetch_target("fetch x"), None);
    }
}
