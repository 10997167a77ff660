//! A simulated outside web server on a host of its own (what a sandbox's `fetch`
//! reaches through the engine's egress): axum on the host's listener, the engine's own
//! HTTP serving. `GET /page/{name}` answers `outside page {name}`; every request's
//! `x-egress-request` number is logged in arrival order (what the egress oracles read).

use crate::scenario::Failure;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use sim::World;
use std::sync::{Arc, Mutex};

/// The numbers of the requests the outside host received, in arrival order (a request
/// without a number logs 0).
#[derive(Clone, Default)]
pub struct OutsideLog(Arc<Mutex<Vec<u64>>>);

impl OutsideLog {
    pub fn arrivals(&self) -> Vec<u64> {
        self.0.lock().expect("outside log poisoned").clone()
    }
}

/// The body the outside host serves for page `name`.
pub fn page_body(name: &str) -> String {
    format!("outside page {name}")
}

async fn page(
    State(log): State<OutsideLog>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> String {
    let number = headers
        .get("x-egress-request")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    log.0.lock().expect("outside log poisoned").push(number);
    page_body(&name)
}

/// Adds host `host` serving pages on `port`; its request log.
pub async fn host_outside(world: &World, host: &str, port: u16) -> Result<OutsideLog, Failure> {
    let host = world.add_host(host);
    let env = host.env();
    let listener = env
        .net()
        .bind(port)
        .await
        .map_err(|e| Failure::correctness(format!("bind the outside host's port: {e}")))?;
    let log = OutsideLog::default();
    let router = Router::new()
        .route("/page/{name}", get(page))
        .with_state(log.clone());
    env.spawn(
        "outside",
        engine::serve_router(env.clone(), router, listener),
    );
    Ok(log)
}
