//! The instance's part of the distributed session lock: the choice a deployment makes,
//! and starting it (the service when this instance hosts it, the client in any case).

use super::EngineError;
use crate::env::{Env, NetAddr};
use crate::sessions::lock::{LockServer, SessionLock, SessionLockConfig};
use std::sync::Arc;

/// Whether the instance takes a session's lock before resuming it from the store.
#[derive(Clone, Debug)]
pub enum LockChoice {
    /// No lock: a resume relies on the store's atomic claim alone.
    None,
    /// This instance hosts the lock service on `port` of its host (0: any free one;
    /// `Engine::lock_service` says which) and uses it itself.
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
            let service = LockServer::start(env, port)
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
