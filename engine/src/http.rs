//! HTTP serving shared by the gateway and the local model server: hyper's HTTP/1
//! connection driver (with upgrades) on streams from the environment's listener, each
//! connection a task of the host, so the same code serves loopback for real and a
//! simulated network in a scenario.

use crate::env::{Env, NetAddr, NetListener};
use crate::upstream::TlsServer;
use axum::Router;
use axum::http::header;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;

/// The direct peer of an HTTP connection.
#[derive(Clone, Debug)]
pub(crate) struct Peer(pub(crate) NetAddr);

/// Serves `router` on `listener` (each connection on a task of `env`'s host, with its
/// direct peer as an extension): the gateway, and the local upstream.
pub async fn serve_router(env: Env, router: Router, listener: Box<dyn NetListener>) {
    serve_router_over(env, router, listener, None).await
}

/// [`serve_router`], each connection first a TLS handshake when `tls` is given (a
/// connection whose handshake fails is dropped).
pub(crate) async fn serve_router_over(
    env: Env,
    router: Router,
    mut listener: Box<dyn NetListener>,
    tls: Option<Arc<TlsServer>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = router.clone().layer(axum::Extension(Peer(peer)));
        let (tls, conn_env) = (tls.clone(), env.clone());
        env.spawn("http-connection", async move {
            let stream = match tls {
                Some(tls) => match tls.accept(&conn_env, stream).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!("TLS handshake refused: {e}");
                        return;
                    }
                },
                None => stream,
            };
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .with_upgrades()
                .await;
            if let Err(e) = served {
                tracing::debug!("http connection ended: {e}");
            }
        });
    }
}

/// Sets `Retry-After` in whole seconds, at least 1 (the gateway's 503s and the local
/// upstream's 429s).
pub(crate) fn set_retry_after(response: &mut Response, after: Duration) {
    let secs = after.as_secs().max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
}
