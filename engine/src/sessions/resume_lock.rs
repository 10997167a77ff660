//! A resume from the store under the distributed session lock: the lock of the
//! session's key is taken before the store's data is checked and the record claimed, and
//! given back once the session is restored (or found damaged, or claimed elsewhere). So
//! of the instances resuming one session at once, one at a time looks at its record.
//!
//! A lock that cannot be taken within the client's acquire timeout is a refusal with
//! its reason (the resume is answered busy), never a wait without end: the client gives
//! up at its timeout, whether the key stayed held or the service did not answer.

use super::lock::{Held, LockError, SessionLock, session_key};
use super::service::{CreateError, Resumed, Sessions};
use std::sync::Arc;

/// Resumes `id` under its lock, on a task of its own: a caller that goes away mid-resume
/// (its connection closed during the handshake) must not cut it between the grant and
/// the release, which would leave the key held until its lease runs out.
pub(super) async fn resume(
    sessions: Sessions,
    lock: Arc<SessionLock>,
    id: &str,
    user: &str,
    role: &str,
) -> Result<Resumed, CreateError> {
    let env = sessions.env().clone();
    let (id, user, role) = (id.to_string(), user.to_string(), role.to_string());
    let locked = async move {
        let held = match acquire(&lock, &id).await {
            Ok(held) => held,
            Err(by) => return Ok(Resumed::Busy { by }),
        };
        // Looks for a live session again first: another connection to this instance
        // may have restored it while this one waited for the lock.
        let resumed = sessions.resume_now(&id, &user, &role);
        release(&lock, held).await;
        resumed
    };
    env.spawn("resume", locked).await.unwrap_or_else(|gone| {
        Ok(Resumed::Busy {
            by: format!("the resume did not finish ({gone})"),
        })
    })
}

/// Takes the lock of session `id`. `Err`: why not, in words for the client.
async fn acquire(lock: &SessionLock, id: &str) -> Result<Held, String> {
    let key = session_key(id);
    lock.acquire(&key).await.map_err(|e| {
        tracing::warn!(
            session = id,
            "resume refused: the session lock was not taken: {e}"
        );
        match e {
            LockError::Timeout { waited, .. } => format!(
                "another instance is resuming it: its lock {key} stayed held for {} ms",
                waited.as_millis()
            ),
            LockError::Unreachable { detail, .. } => {
                format!("the session lock service could not be reached ({detail}); try again later")
            }
            e => format!("the session lock could not be taken: {e}"),
        }
    })
}

/// Gives the lock back. A failure is logged: the lease then runs out by itself.
async fn release(lock: &SessionLock, held: Held) {
    match lock.release(held).await {
        Ok(()) => {}
        // The lease expired inside the resume: another may have looked at the record
        // meanwhile (the store's claim still let only one win).
        Err(e @ LockError::NotOwner { .. }) => tracing::error!("resume: {e}"),
        Err(e) => tracing::warn!("resume: the session lock was not given back: {e}"),
    }
}
