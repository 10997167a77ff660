//! The local model API on a host of its own, as the channel stage and the VOPR run it.

use crate::scenario::Failure;
use engine::upstream::{LocalUpstream, TlsIdentity};
use sim::World;
use std::sync::Arc;

/// Adds host `host` serving the local model API on `port` under `key`, answering as the
/// world's simulated model API on that host decides (`sim::upstream::SimUpstream`:
/// its operator mode, the swarm's rates), which counts each fault it hands out.
pub async fn host_upstream(
    world: &World,
    host: &str,
    port: u16,
    key: &str,
) -> Result<Arc<LocalUpstream>, Failure> {
    host_upstream_over(world, host, port, key, None).await
}

/// [`host_upstream`], over TLS presenting `identity` when given.
pub async fn host_upstream_over(
    world: &World,
    host: &str,
    port: u16,
    key: &str,
    identity: Option<TlsIdentity>,
) -> Result<Arc<LocalUpstream>, Failure> {
    let host = world.add_host(host);
    let device = world.install_upstream(&host);
    let upstream = LocalUpstream::new(key, Some(device));
    let env = host.env();
    let listener = env
        .net()
        .bind(port)
        .await
        .map_err(|e| Failure::correctness(format!("bind the upstream's port: {e}")))?;
    let served = upstream.clone();
    let serve_env = env.clone();
    match identity {
        None => {
            env.spawn("upstream", async move {
                served.serve(serve_env, listener).await
            });
        }
        Some(identity) => {
            env.spawn("upstream", async move {
                if let Err(e) = served.serve_tls(serve_env, listener, &identity).await {
                    tracing::error!("the upstream cannot serve TLS: {e}");
                }
            });
        }
    }
    Ok(upstream)
}
