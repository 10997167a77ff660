//! The local model server on real loopback, as the upstream tests serve it: one answer
//! outcome for every call, switched by the test.

use engine::env::{Env, NetAddr};
use engine::upstream::{AnswerOutcome, AnswerPlan, AnswerPolicy, CallInfo, LocalUpstream};
use std::sync::{Arc, Mutex};

/// Answers every call with one outcome, switched by the test (the simulated model API
/// draws them from rates instead; here the real server carries each one out).
#[derive(Default)]
pub struct OneOutcome(Mutex<AnswerOutcome>);

impl OneOutcome {
    pub fn set(&self, outcome: AnswerOutcome) {
        *self.0.lock().unwrap() = outcome;
    }
}

impl AnswerPolicy for OneOutcome {
    fn plan(&self, _call: &CallInfo<'_>) -> AnswerPlan {
        AnswerPlan {
            outcome: self.0.lock().unwrap().clone(),
            ..AnswerPlan::default()
        }
    }
}

/// Serves the model API (key `key-1`) on a loopback port of `env`.
pub async fn serve(env: &Env) -> (Arc<LocalUpstream>, Arc<OneOutcome>, NetAddr) {
    let policy = Arc::new(OneOutcome::default());
    let upstream = LocalUpstream::new("key-1", Some(policy.clone()));
    let listener = env.net().bind(0).await.expect("bind loopback");
    let addr = NetAddr::new("127.0.0.1", listener.local_addr().port);
    let (served, serve_env) = (upstream.clone(), env.clone());
    env.spawn("upstream", async move {
        served.serve(serve_env, listener).await
    });
    (upstream, policy, addr)
}
