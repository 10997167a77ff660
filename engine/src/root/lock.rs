//! The instance's part of the distributed session lock: the choice a deployment makes,
//! and starting it (the service when this instance hosts it, the client in any case).

use super::EngineError;
use crate::env::{Env, NetAddr, OpenMode};
use crate::sessions::lock::{LockLimits, LockServer, SessionLock, SessionLockConfig};
use std::sync::Arc;

/// Whether the instance takes a session's lock before resuming it from the store.
#[derive(Clone, Debug)]
pub enum LockChoice {
    /// No lock: a resume relies on the store's atomic claim alone.
    None,
    /// This instance hosts the lock service on `port` of its host (0: any free one;
    /// `Engine::lock_service` says which) and uses it itself. The service grants leases
    /// of at most `config.ttl` (instances sharing it must not ask for longer), and when
    /// it served from this disk before it grants nothing for one such lease after the
    /// start: a crash forgot its table, not the leases its clients still hold.
    Serve {
        port: u16,
        config: SessionLockConfig,
    },
    /// Use the lock service another instance hosts at `service`.
    Use {
        service: NetAddr,
        config: SessionLockConfig,
    },
}

impl LockChoice {
    pub fn check(&self) {
        match self {
            LockChoice::None => {}
            LockChoice::Serve { config, .. } | LockChoice::Use { config, .. } => config.check(),
        }
    }
}

/// The service (when hosted here) and the client, as `Engine::start` builds them.
pub(super) struct LockParts {
    pub(super) service: Option<LockServer>,
    pub(super) client: Option<Arc<SessionLock>>,
}

/// Starts what `choice` asks for. The client's owner name is `instance` (or `engine`)
/// and the host, plus a random suffix: two instances with the same name on the same
/// host would otherwise hand out the same owner tokens, and the service would take one
/// for the other (a holder renewing its own lease).
pub(super) async fn start_lock(
    env: &Env,
    choice: LockChoice,
    instance: &str,
) -> Result<LockParts, EngineError> {
    let (service, addr, config) = match choice {
        LockChoice::None => {
            return Ok(LockParts {
                service: None,
                client: None,
            });
        }
        LockChoice::Serve { port, config } => {
            // The service's leases are at most this instance's own; it knows whether
            // it served on this disk before (a crash may have left leases live).
            let restarted = started_before(env).await?;
            let limits = LockLimits::with_lease_max(config.ttl, restarted);
            let service = LockServer::start(env, port, limits)
                .await
                .map_err(|source| EngineError::LockBind { port, source })?;
            let addr = service.addr().clone();
            (Some(service), addr, config)
        }
        LockChoice::Use { service, config } => (None, service, config),
    };
    let owner = owner_name(env, instance);
    tracing::info!(service = %addr, owner, "session lock");
    let client = SessionLock::new(env.clone(), addr, &owner, config);
    Ok(LockParts {
        service,
        client: Some(Arc::new(client)),
    })
}

/// Left on the instance's disk by the lock service's first start.
const LOCK_MARKER_PATH: &str = "lock-service.started";

/// Whether a lock service started on this disk before; if not, records durably that one
/// has (before anything is granted). A disk that cannot say counts as "before".
async fn started_before(env: &Env) -> Result<bool, EngineError> {
    env.disk_pace().await;
    match env.disk().metadata(LOCK_MARKER_PATH) {
        Ok(_) => return Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(
                path = LOCK_MARKER_PATH,
                "lock service marker unreadable ({e}): waiting out earlier leases"
            );
            return Ok(true);
        }
    }
    let marked = async {
        env.disk_pace().await;
        let file = env.disk().open(LOCK_MARKER_PATH, OpenMode::Create)?;
        file.sync_data()?;
        env.disk_pace().await;
        env.disk().sync_dir("")
    };
    marked.await.map_err(|source| EngineError::LockMarker {
        path: LOCK_MARKER_PATH.to_string(),
        source,
    })?;
    Ok(false)
}

/// Stops the service; with no lease left live, the next start has nothing to wait
/// out, so the marker goes (if that fails, the next start merely waits).
pub(super) async fn stop(env: &Env, service: &LockServer) {
    service.stop();
    if service.live_leases() > 0 {
        return;
    }
    env.disk_pace().await;
    let removed = env
        .disk()
        .remove(LOCK_MARKER_PATH)
        .and_then(|()| env.disk().sync_dir(""));
    if let Err(e) = removed {
        tracing::warn!(
            path = LOCK_MARKER_PATH,
            "lock service marker not removed ({e}): the next start will wait out one lease"
        );
    }
}

/// Owner names keep this many bytes of `instance@host` (the protocol takes 200 per
/// token, and the client appends `-<16 hex>` here and `#<n>` per acquire).
const OWNER_NAME_MAX: usize = 120;

/// `instance@host-<16 hex>`, in printable ASCII without spaces (others become `_`).
fn owner_name(env: &Env, instance: &str) -> String {
    let instance = if instance.is_empty() {
        "engine"
    } else {
        instance
    };
    let mut name: String = format!("{instance}@{}", env.host())
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    // ASCII by now: any byte is a character boundary.
    name.truncate(OWNER_NAME_MAX);
    format!("{name}-{:016x}", env.random().next_u64())
}
