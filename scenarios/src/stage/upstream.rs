//! The local model API on a host of its own, as the channel stage and the VOPR run it.

use crate::scenario::Failure;
use engine::upstream::LocalUpstream;
use sim::World;
use std::sync::Arc;

/// Adds host `host` serving the local model API on `port` under `key`; each refusal or
/// slowed answer its mode causes is counted as a fault by the world (the server's own
/// report of what it did, never the scenario's).
pub async fn host_upstream(
    world: &World,
    host: &str,
    port: u16,
    key: &str,
) -> Result<Arc<LocalUpstream>, Failure> {
    let host = world.add_host(host);
    let faults = world.faults().clone();
    let upstream = LocalUpstream::new(
        key,
        Some(Arc::new(move |kind, detail: String| {
            faults.fire(kind, &detail)
        })),
    );
    let env = host.env();
    let listener = env
        .net()
        .bind(port)
        .await
        .map_err(|e| Failure::correctness(format!("bind the upstream's port: {e}")))?;
    let served = upstream.clone();
    let serve_env = env.clone();
    env.spawn("upstream", async move {
        served.serve(serve_env, listener).await
    });
    Ok(upstream)
}
