//! A run's fault plan, applied by the world: the swarm from the start (on every host,
//! also those added later), each timed action at its virtual time, each triggered
//! action when the body marks its event (`World::mark`), and quiet when the body says
//! its judging phase needs it (`World::quiet`).
//!
//! Why the world and not the body: a catalog scenario only marks the events its edge
//! case hangs on; the plan itself stays data the runner chooses (drawn from the seed,
//! given by `chaos repro`, or a shrinker's candidate), so every catalog scenario can be
//! swarmed, shrunk and replayed without its body knowing which plan it met.

use super::World;
use crate::faults::{Fault, FaultAction, FaultPlan, SwarmPlan};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the world keeps of a started plan.
#[derive(Default)]
pub(crate) struct ActivePlan {
    /// The swarm in force (quiet after `World::quiet`): hosts added later get it too.
    pub(crate) swarm: SwarmPlan,
    /// Actions waiting for their event, by event name.
    pub(crate) triggered: BTreeMap<String, Vec<FaultAction>>,
    /// The first action that named a host this world lacks (a plan that does not fit).
    pub(crate) misfit: Option<String>,
}

/// Runs a plan's actions on a task of the world itself, not of a host: a host crash
/// must not cancel the faults still to come (one of them may be its restart).
#[allow(
    clippy::disallowed_methods,
    reason = "the world's own task on its single-threaded runtime, outside every host"
)]
fn spawn_plan_task(actions: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(actions);
}

impl World {
    /// Starts `plan`: the swarm now, timed actions (no trigger) at their virtual times
    /// from the world's start, triggered actions when their event is marked. A plan
    /// names hosts the body creates: an action whose host is missing when it is due is
    /// skipped and remembered (`plan_misfit`): the plan does not fit this world.
    pub fn start_plan(&self, plan: FaultPlan) {
        let mut timed: Vec<FaultAction> = Vec::new();
        let mut triggered: BTreeMap<String, Vec<FaultAction>> = BTreeMap::new();
        for action in plan.actions {
            match action.after.clone() {
                None => timed.push(action),
                Some(event) => triggered.entry(event).or_default().push(action),
            }
        }
        timed.sort_by_key(|a| a.at_ms);
        tracing::info!(
            target: "sim::faults",
            "plan started: {} timed actions, {} triggered, {}",
            timed.len(),
            triggered.values().map(Vec::len).sum::<usize>(),
            plan.swarm
        );
        plan.swarm.apply(self);
        *self.inner.plan.lock().expect("plan poisoned") = Some(ActivePlan {
            swarm: plan.swarm,
            triggered,
            misfit: None,
        });
        if !timed.is_empty() {
            let world = self.clone();
            spawn_plan_task(async move { world.apply_in_order(timed, Duration::ZERO).await });
        }
    }

    /// Marks `event` in the run: the plan's actions triggered by it apply `at_ms` after
    /// now. Returns the faults it set going, in the plan's order (none when the plan has
    /// none for it, for example after a shrink removed them): a body judges the engine
    /// against the faults it met, and never assumes one happened.
    pub fn mark(&self, event: &str) -> Vec<Fault> {
        self.mark_with(event, &[])
    }

    /// [`World::mark`], naming what the event is about: each `(name, value)` fills the
    /// `{name}` placeholders of the triggered faults' targets (a plan that hangs
    /// `{worker}` hangs the worker the body names here, which the plan cannot know).
    pub fn mark_with(&self, event: &str, bindings: &[(&str, &str)]) -> Vec<Fault> {
        let actions = {
            let mut plan = self.inner.plan.lock().expect("plan poisoned");
            let Some(plan) = plan.as_mut() else {
                tracing::info!(target: "sim::faults", "mark {event}: no plan started");
                return Vec::new();
            };
            plan.triggered.remove(event).unwrap_or_default()
        };
        let actions: Vec<FaultAction> = actions
            .into_iter()
            .map(|mut a| {
                a.fault = a.fault.bound(bindings);
                a
            })
            .collect();
        tracing::info!(target: "sim::faults", "mark {event}: {} actions", actions.len());
        let faults: Vec<Fault> = actions.iter().map(|a| a.fault.clone()).collect();
        // Actions due at the mark itself apply before `mark` returns, so the body can
        // observe their effect at once; later ones run on a world task.
        let (now, later): (Vec<FaultAction>, Vec<FaultAction>) =
            actions.into_iter().partition(|a| a.at_ms == 0);
        for action in now {
            self.apply_checked(&action);
        }
        if !later.is_empty() {
            let from = Duration::from_nanos(self.now_ns());
            let world = self.clone();
            let mut later = later;
            later.sort_by_key(|a| a.at_ms);
            spawn_plan_task(async move { world.apply_in_order(later, from).await });
        }
        faults
    }

    /// Turns the swarm off for the rest of the run and heals the network (a judging
    /// phase that needs quiet, or the liveness phase). `why` goes to the trace.
    pub fn quiet(&self, why: &str) {
        if let Some(plan) = self.inner.plan.lock().expect("plan poisoned").as_mut() {
            plan.swarm = SwarmPlan::default();
        }
        SwarmPlan::quiet(self);
        self.net().heal_all();
        tracing::info!(target: "sim::faults", "quiet: {why}");
    }

    /// Why the started plan does not fit this world, if one of its actions named a host
    /// the world lacks when it was due.
    pub fn plan_misfit(&self) -> Option<String> {
        let plan = self.inner.plan.lock().expect("plan poisoned");
        plan.as_ref().and_then(|p| p.misfit.clone())
    }

    /// The swarm in force, for a host the world is adding.
    pub(crate) fn swarm_in_force(&self) -> Option<SwarmPlan> {
        let plan = self.inner.plan.lock().expect("plan poisoned");
        plan.as_ref()
            .filter(|p| !p.swarm.rates.is_empty())
            .map(|p| p.swarm.clone())
    }

    async fn apply_in_order(&self, actions: Vec<FaultAction>, from: Duration) {
        for action in actions {
            let at = from + Duration::from_millis(action.at_ms);
            let now = Duration::from_nanos(self.now_ns());
            if at > now {
                tokio::time::sleep(at - now).await;
            }
            self.apply_checked(&action);
        }
    }

    /// Applies `action` if the hosts it names exist; else remembers the misfit.
    fn apply_checked(&self, action: &FaultAction) {
        if let Err(e) = action.fault.check_hosts(&self.host_names()) {
            let misfit = format!("the fault plan does not fit this world: {action} {e}");
            tracing::error!(target: "sim::faults", "{misfit}");
            if let Some(plan) = self.inner.plan.lock().expect("plan poisoned").as_mut() {
                plan.misfit.get_or_insert(misfit);
            }
            return;
        }
        action.fault.apply(self);
    }
}
