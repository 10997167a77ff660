//! Shrinking a failing fault plan to a smaller one that still fails (pure: the caller
//! says what "still fails" means, usually "a run with this plan fails the same oracle").
//!
//! The plan is seen as **faults**: a partition with the heal that ends it, a pause with
//! its resume, a crash with its restart, and every other action on its own. Dropping a
//! heal alone would only make its fault longer, so a fault's two ends go together.
//! Greedy passes, repeated until a whole round changes nothing or the run budget is
//! spent:
//!
//! 1. drop faults, delta-debugging style: all of them, then halves, quarters… then one
//!    at a time;
//! 2. drop swarm kinds, one at a time;
//! 3. lower each swarm rate down the ladder (`SwarmPlan::lower_rate`) while it fails;
//! 4. shorten each fault that has an end (move the heal, resume or restart earlier), by
//!    bisection toward the shortest duration that still fails;
//! 5. move each fault later, by bisection toward the latest start that still fails,
//!    without passing the original plan's last action. Passes 4 and 5 retime only
//!    faults timed from the start: a fault triggered by an event keeps its moment;
//! 6. drop workload steps (a plan that carries its workload), delta-debugging style
//!    like faults: a failure often needs only a few of the requests that preceded it.
//!
//! Every candidate the predicate accepted is a plan that failed, so the result always
//! fails (or is the input, if nothing smaller did). Candidates already tried are not
//! run again. Actions keep their relative order at equal times, so the result applies
//! exactly as printed.

use super::plan::format_ms;
use super::{Fault, FaultAction, FaultPlan, SwarmKind, SwarmPlan, WorkloadStep};
use std::collections::BTreeMap;

/// Default bound on the runs (predicate calls) one shrink may use.
pub const MAX_RUNS_DEFAULT: usize = 500;

/// One candidate tried, as the progress callback sees it.
pub struct Attempt<'a> {
    /// Runs used so far, this one included.
    pub run: usize,
    pub max_runs: usize,
    /// What the candidate changes (`drop 3 of 6 faults`, `shorten pause server …`).
    pub step: &'a str,
    pub candidate: &'a FaultPlan,
    pub still_fails: bool,
    /// Faults of the best plan so far (after this attempt).
    pub faults: usize,
}

/// What a shrink ended with.
#[derive(Debug)]
pub struct Shrunk {
    /// The smallest plan found that still fails (the input if none smaller did).
    pub plan: FaultPlan,
    /// Predicate calls used.
    pub runs: usize,
    /// Whether the budget ran out before a fixpoint was reached.
    pub budget_exhausted: bool,
    /// Rounds of all passes.
    pub rounds: usize,
}

/// Faults in `plan`: an onset and the action that ends it count as one fault.
pub fn fault_count(plan: &FaultPlan) -> usize {
    units_of(plan).len()
}

/// Shrinks `plan`, which must fail, using at most `max_runs` calls of `still_fails`.
pub fn shrink(
    plan: &FaultPlan,
    max_runs: usize,
    still_fails: &mut dyn FnMut(&FaultPlan) -> bool,
    progress: &mut dyn FnMut(&Attempt<'_>),
) -> Shrunk {
    let mut shrinker = Shrinker {
        best: State {
            units: units_of(plan),
            swarm: plan.swarm.clone(),
            workload: plan.workload.clone(),
        },
        horizon: plan.actions.iter().map(|a| a.at_ms).max().unwrap_or(0),
        runs: 0,
        max_runs,
        exhausted: false,
        tried: BTreeMap::new(),
        still_fails,
        progress,
    };
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut changed = shrinker.drop_faults();
        changed |= shrinker.drop_swarm_kinds();
        changed |= shrinker.lower_swarm_rates();
        changed |= shrinker.shorten_faults();
        changed |= shrinker.move_faults_later();
        changed |= shrinker.drop_workload();
        if !changed || shrinker.exhausted {
            break;
        }
    }
    Shrunk {
        plan: shrinker.best.plan(),
        runs: shrinker.runs,
        budget_exhausted: shrinker.exhausted,
        rounds,
    }
}

/// An action with its place in the plan's order (ties at one time apply in this order).
#[derive(Clone, Debug)]
struct Placed {
    seq: usize,
    action: FaultAction,
}

/// A fault: an onset and, for faults that last, the action that ends it.
#[derive(Clone, Debug)]
struct Unit {
    onset: Placed,
    end: Option<Placed>,
}

impl Unit {
    fn last_ms(&self) -> u64 {
        self.end
            .as_ref()
            .map_or(self.onset.action.at_ms, |e| e.action.at_ms)
    }

    fn duration_ms(&self) -> Option<u64> {
        self.end
            .as_ref()
            .map(|e| e.action.at_ms.saturating_sub(self.onset.action.at_ms))
    }
}

#[derive(Clone, Debug)]
struct State {
    units: Vec<Unit>,
    swarm: SwarmPlan,
    workload: Vec<WorkloadStep>,
}

impl State {
    fn plan(&self) -> FaultPlan {
        let mut placed: Vec<&Placed> = self
            .units
            .iter()
            .flat_map(|u| std::iter::once(&u.onset).chain(u.end.as_ref()))
            .collect();
        placed.sort_by_key(|p| (p.action.at_ms, p.seq));
        FaultPlan {
            actions: placed.into_iter().map(|p| p.action.clone()).collect(),
            swarm: self.swarm.clone(),
            workload: self.workload.clone(),
        }
    }
}

/// Whether `end` ends the fault `onset` started.
fn ends(onset: &Fault, end: &Fault) -> bool {
    match (onset, end) {
        (Fault::Partition { .. }, Fault::HealAll) => true,
        (Fault::Partition { a, b, .. }, Fault::Heal { a: x, b: y }) => {
            (a == x && b == y) || (a == y && b == x)
        }
        (Fault::PauseHost { host }, Fault::ResumeHost { host: h })
        | (Fault::CrashHost { host }, Fault::RestartHost { host: h }) => host == h,
        _ => false,
    }
}

/// The plan's faults: actions in time order (stable), each onset paired with the first
/// later action that ends it and is not already taken.
fn units_of(plan: &FaultPlan) -> Vec<Unit> {
    let mut actions: Vec<&FaultAction> = plan.actions.iter().collect();
    actions.sort_by_key(|a| a.at_ms);
    let mut taken = vec![false; actions.len()];
    let mut units = Vec::new();
    for i in 0..actions.len() {
        if taken[i] {
            continue;
        }
        taken[i] = true;
        // A triggered action's time counts from its own event: only actions of the
        // same trigger pair (a cut at one event and its heal at another are two faults).
        let end = (i + 1..actions.len()).find(|&j| {
            !taken[j]
                && actions[i].after == actions[j].after
                && ends(&actions[i].fault, &actions[j].fault)
        });
        if let Some(j) = end {
            taken[j] = true;
        }
        units.push(Unit {
            onset: Placed {
                seq: i,
                action: actions[i].clone(),
            },
            end: end.map(|j| Placed {
                seq: j,
                action: actions[j].clone(),
            }),
        });
    }
    units
}

struct Shrinker<'a> {
    best: State,
    /// The original plan's last action: faults are not moved past it.
    horizon: u64,
    runs: usize,
    max_runs: usize,
    exhausted: bool,
    /// Candidates already run, by their plan, and whether they still failed.
    tried: BTreeMap<String, bool>,
    still_fails: &'a mut dyn FnMut(&FaultPlan) -> bool,
    progress: &'a mut dyn FnMut(&Attempt<'_>),
}

impl Shrinker<'_> {
    /// Runs `candidate` (unless already tried); keeps it as the best if it still fails.
    fn attempt(&mut self, candidate: State, step: &str) -> bool {
        let plan = candidate.plan();
        let key = format!("{plan:?}");
        if let Some(&known) = self.tried.get(&key) {
            if known {
                self.best = candidate;
            }
            return known;
        }
        if self.runs >= self.max_runs {
            self.exhausted = true;
            return false;
        }
        self.runs += 1;
        let fails = (self.still_fails)(&plan);
        self.tried.insert(key, fails);
        if fails {
            self.best = candidate;
        }
        (self.progress)(&Attempt {
            run: self.runs,
            max_runs: self.max_runs,
            step,
            candidate: &plan,
            still_fails: fails,
            faults: self.best.units.len(),
        });
        fails
    }

    /// Pass 1: drop chunks of faults, from all of them down to one at a time.
    fn drop_faults(&mut self) -> bool {
        self.drop_chunks(|s| &mut s.units, "faults")
    }

    /// Pass 6: drop chunks of workload steps, from all of them down to one at a time.
    fn drop_workload(&mut self) -> bool {
        self.drop_chunks(|s| &mut s.workload, "workload steps")
    }

    /// Delta debugging over one list of the plan: drop all of it, then halves,
    /// quarters… then one item at a time, keeping every drop that still fails.
    fn drop_chunks<T>(&mut self, items: fn(&mut State) -> &mut Vec<T>, noun: &str) -> bool {
        let mut changed = false;
        let mut chunk = items(&mut self.best).len();
        while chunk >= 1 && !items(&mut self.best).is_empty() && !self.exhausted {
            chunk = chunk.min(items(&mut self.best).len());
            let mut i = 0;
            while i < items(&mut self.best).len() && !self.exhausted {
                let total = items(&mut self.best).len();
                let end = (i + chunk).min(total);
                let mut candidate = self.best.clone();
                items(&mut candidate).drain(i..end);
                let step = format!("drop {} of {total} {noun}", end - i);
                if self.attempt(candidate, &step) {
                    changed = true;
                } else {
                    i += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
        changed
    }

    /// Pass 2: turn swarm kinds off, one at a time.
    fn drop_swarm_kinds(&mut self) -> bool {
        let mut changed = false;
        let kinds: Vec<SwarmKind> = self.best.swarm.rates.keys().copied().collect();
        for kind in kinds {
            if self.exhausted {
                break;
            }
            let mut candidate = self.best.clone();
            candidate.swarm.rates.remove(&kind);
            changed |= self.attempt(candidate, &format!("drop swarm {}", kind.name()));
        }
        changed
    }

    /// Pass 3: lower each swarm rate down the ladder while the run still fails.
    fn lower_swarm_rates(&mut self) -> bool {
        let mut changed = false;
        let kinds: Vec<SwarmKind> = self.best.swarm.rates.keys().copied().collect();
        for kind in kinds {
            while !self.exhausted {
                let Some(rate) = self.best.swarm.rates.get(&kind).copied() else {
                    break;
                };
                let Some(lower) = SwarmPlan::lower_rate(rate) else {
                    break;
                };
                let mut candidate = self.best.clone();
                candidate.swarm.rates.insert(kind, lower);
                let step = format!("lower swarm {} {rate} → {lower}", kind.name());
                if !self.attempt(candidate, &step) {
                    break;
                }
                changed = true;
            }
        }
        changed
    }

    /// Pass 4: move each fault's end earlier, bisecting toward the shortest duration
    /// that still fails.
    fn shorten_faults(&mut self) -> bool {
        let mut changed = false;
        for index in 0..self.best.units.len() {
            let Some(duration) = self
                .best
                .units
                .get(index)
                .filter(|u| u.onset.action.after.is_none())
                .and_then(Unit::duration_ms)
            else {
                continue;
            };
            // `fails_at` fails (the current duration); `passes_at` was tried and did not.
            let (mut fails_at, mut passes_at) = (duration, None::<u64>);
            while !self.exhausted && fails_at > 0 {
                // First the fault with no duration at all, then bisection.
                let try_ms = match passes_at {
                    None => 0,
                    Some(p) if fails_at - p > resolution(duration) => p + (fails_at - p) / 2,
                    Some(_) => break,
                };
                let candidate = self.with_duration(index, try_ms);
                let unit = &self.best.units[index];
                let step = format!(
                    "shorten {} {} → {}",
                    unit.onset.action.fault,
                    format_ms(fails_at),
                    format_ms(try_ms)
                );
                if self.attempt(candidate, &step) {
                    fails_at = try_ms;
                    changed = true;
                } else {
                    passes_at = Some(try_ms);
                }
            }
        }
        changed
    }

    fn with_duration(&self, index: usize, duration_ms: u64) -> State {
        let mut candidate = self.best.clone();
        let unit = &mut candidate.units[index];
        let start = unit.onset.action.at_ms;
        if let Some(end) = &mut unit.end {
            end.action.at_ms = start.saturating_add(duration_ms);
        }
        candidate
    }

    /// Pass 5: move each fault later (its end with it), bisecting toward the latest
    /// start that still fails, within the original plan's span.
    fn move_faults_later(&mut self) -> bool {
        let mut changed = false;
        for index in 0..self.best.units.len() {
            // A triggered fault's moment is its event (a body may rely on it applying
            // as it marks); only faults timed from the start move.
            let Some(unit) = self
                .best
                .units
                .get(index)
                .filter(|u| u.onset.action.after.is_none())
            else {
                continue;
            };
            let room = self.horizon.saturating_sub(unit.last_ms());
            if room == 0 {
                continue;
            }
            // A shift of `fails_by` fails (0: the current plan); `passes_by` is believed not to.
            let (mut fails_by, mut passes_by) = (0u64, None::<u64>);
            loop {
                if self.exhausted {
                    break;
                }
                let try_by = match passes_by {
                    None => room,
                    Some(p) if p - fails_by > resolution(room) => fails_by + (p - fails_by) / 2,
                    Some(_) => break,
                };
                if try_by <= fails_by {
                    break;
                }
                let candidate = self.shifted(index, try_by - fails_by);
                let unit = &self.best.units[index];
                let step = format!(
                    "move {} {} → {}",
                    unit.onset.action.fault,
                    format_ms(unit.onset.action.at_ms),
                    format_ms(unit.onset.action.at_ms + (try_by - fails_by))
                );
                if self.attempt(candidate, &step) {
                    fails_by = try_by;
                    changed = true;
                    if passes_by.is_none() {
                        break;
                    }
                } else {
                    passes_by = Some(try_by);
                }
            }
        }
        changed
    }

    /// The best plan with fault `index` (and its end) moved `by_ms` later.
    fn shifted(&self, index: usize, by_ms: u64) -> State {
        let mut candidate = self.best.clone();
        let unit = &mut candidate.units[index];
        unit.onset.action.at_ms = unit.onset.action.at_ms.saturating_add(by_ms);
        if let Some(end) = &mut unit.end {
            end.action.at_ms = end.action.at_ms.saturating_add(by_ms);
        }
        candidate
    }
}

/// How close a bisection over `span` ms gets before it stops (~5 runs per search).
fn resolution(span: u64) -> u64 {
    (span / 32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::PartitionMode;
    use crate::seed::Ratio;

    fn reset(a: &str) -> Fault {
        Fault::ResetConnections {
            a: a.into(),
            b: "server".into(),
        }
    }

    fn has(plan: &FaultPlan, fault: &Fault) -> bool {
        plan.actions.iter().any(|a| &a.fault == fault)
    }

    fn quiet(_: &Attempt<'_>) {}

    /// Six instantaneous faults, A..F.
    fn six() -> FaultPlan {
        ["a", "b", "c", "d", "e", "f"]
            .iter()
            .enumerate()
            .fold(FaultPlan::default(), |plan, (i, name)| {
                plan.at(100 * (i as u64 + 1), reset(name))
            })
    }

    #[test]
    fn workload_steps_shrink_to_the_ones_the_failure_needs() {
        let mut plan = six();
        plan.workload = (0..8)
            .map(|i| WorkloadStep {
                at_ms: 50 * i,
                op: format!("op{i}"),
            })
            .collect();
        let needs = |p: &FaultPlan, op: &str| p.workload.iter().any(|s| s.op == op);
        let mut fails = |p: &FaultPlan| needs(p, "op2") && needs(p, "op7");
        let shrunk = shrink(&plan, MAX_RUNS_DEFAULT, &mut fails, &mut quiet);
        let ops: Vec<&str> = shrunk.plan.workload.iter().map(|s| s.op.as_str()).collect();
        assert_eq!(ops, vec!["op2", "op7"]);
        assert!(shrunk.plan.actions.is_empty(), "no fault was needed");
        assert!(
            shrunk
                .plan
                .describe()
                .iter()
                .any(|l| l == "at 0.350s workload op7")
        );
    }

    #[test]
    fn fails_iff_a_and_c_shrinks_to_exactly_a_and_c_moved_late() {
        let (a, c) = (reset("a"), reset("c"));
        let mut calls = 0;
        let mut fails = |p: &FaultPlan| {
            calls += 1;
            has(p, &a) && has(p, &c)
        };
        let shrunk = shrink(&six(), MAX_RUNS_DEFAULT, &mut fails, &mut quiet);
        let faults: Vec<&Fault> = shrunk.plan.actions.iter().map(|x| &x.fault).collect();
        assert_eq!(faults, vec![&a, &c]);
        // Both moved as late as the original plan went (its last action, at 600 ms).
        assert_eq!(shrunk.plan.actions[0].at_ms, 600);
        assert_eq!(shrunk.plan.actions[1].at_ms, 600);
        assert!(!shrunk.budget_exhausted);
        assert_eq!(calls, shrunk.runs, "every run is counted");
        assert!(shrunk.runs < 40, "{} runs for six faults", shrunk.runs);
    }

    #[test]
    fn a_triggered_fault_keeps_its_moment_and_pairs_only_within_its_event() {
        let (cut, heal) = (
            Fault::PauseHost {
                host: "server".into(),
            },
            Fault::ResumeHost {
                host: "server".into(),
            },
        );
        let plan = six()
            .after("cut", 0, cut.clone())
            .after("heal", 0, heal.clone());
        let mut fails = |p: &FaultPlan| has(p, &cut);
        let shrunk = shrink(&plan, MAX_RUNS_DEFAULT, &mut fails, &mut quiet);
        // The resume at another event is a fault of its own, dropped; the pause stays
        // at its event's moment (timed faults would have moved to 600 ms).
        assert_eq!(shrunk.plan.actions.len(), 1, "{:?}", shrunk.plan.describe());
        let kept = &shrunk.plan.actions[0];
        assert_eq!((kept.after.as_deref(), kept.at_ms), (Some("cut"), 0));
        assert!(!has(&shrunk.plan, &heal));
    }

    #[test]
    fn a_fault_that_never_matters_is_dropped_entirely() {
        let mut fails = |_: &FaultPlan| true;
        let shrunk = shrink(&six(), MAX_RUNS_DEFAULT, &mut fails, &mut quiet);
        assert!(shrunk.plan.actions.is_empty());
        assert_eq!(shrunk.runs, 1, "dropping everything at once is tried first");
    }

    fn pause_window(plan: &FaultPlan) -> Option<u64> {
        let at = |f: &Fault| plan.actions.iter().find(|a| &a.fault == f).map(|a| a.at_ms);
        let server = || "server".to_string();
        Some(at(&Fault::ResumeHost { host: server() })? - at(&Fault::PauseHost { host: server() })?)
    }

    #[test]
    fn a_pause_is_shortened_to_just_over_what_the_bug_needs_and_keeps_its_resume() {
        let plan = six()
            .at(
                1_000,
                Fault::PauseHost {
                    host: "server".into(),
                },
            )
            .at(
                4_000,
                Fault::ResumeHost {
                    host: "server".into(),
                },
            );
        let mut fails = |p: &FaultPlan| pause_window(p).is_some_and(|d| d >= 400);
        let shrunk = shrink(&plan, MAX_RUNS_DEFAULT, &mut fails, &mut quiet);
        assert_eq!(shrunk.plan.actions.len(), 2, "{:?}", shrunk.plan);
        let d = pause_window(&shrunk.plan).unwrap();
        assert!((400..=400 + 3_000 / 32 + 1).contains(&d), "pause of {d} ms");
        assert_eq!(
            fault_count(&shrunk.plan),
            1,
            "a pause and its resume are one fault"
        );
        // Moved as late as fits before the original last action (4 s).
        assert_eq!(shrunk.plan.actions[1].at_ms, 4_000);
    }

    #[test]
    fn a_partition_keeps_its_heal_and_the_heal_of_another_pair_is_dropped() {
        let cut = Fault::Partition {
            a: "client".into(),
            b: "server".into(),
            mode: PartitionMode::Hold,
            one_way: false,
        };
        let heal = Fault::Heal {
            a: "server".into(),
            b: "client".into(),
        };
        let plan = FaultPlan::default()
            .at(100, cut.clone())
            .at(
                150,
                Fault::Heal {
                    a: "x".into(),
                    b: "y".into(),
                },
            )
            .at(900, heal.clone())
            .at(950, reset("a"));
        assert_eq!(fault_count(&plan), 3);
        let mut fails = |p: &FaultPlan| has(p, &cut) && has(p, &heal);
        let shrunk = shrink(&plan, MAX_RUNS_DEFAULT, &mut fails, &mut quiet);
        let faults: Vec<&Fault> = shrunk.plan.actions.iter().map(|x| &x.fault).collect();
        assert_eq!(
            faults,
            vec![&cut, &heal],
            "the heal is not dropped on its own"
        );
        assert_eq!(
            shrunk.plan.actions[0].at_ms, shrunk.plan.actions[1].at_ms,
            "shortened to nothing"
        );
    }

    #[test]
    fn swarm_kinds_are_dropped_and_rates_lowered_to_what_still_fails() {
        let mut plan = six();
        plan.swarm
            .rates
            .insert(SwarmKind::NetReset, Ratio::new(1, 5));
        plan.swarm
            .rates
            .insert(SwarmKind::DiskEio, Ratio::new(1, 20));
        let mut fails = |p: &FaultPlan| {
            let r = p.swarm.rate(SwarmKind::NetReset);
            u64::from(r.numerator) * 100 >= u64::from(r.denominator) && r.numerator > 0
        };
        let shrunk = shrink(&plan, MAX_RUNS_DEFAULT, &mut fails, &mut quiet);
        assert!(shrunk.plan.actions.is_empty());
        assert_eq!(
            shrunk.plan.swarm.rates.into_iter().collect::<Vec<_>>(),
            vec![(SwarmKind::NetReset, Ratio::new(1, 100))]
        );
    }

    #[test]
    fn the_budget_bounds_the_runs_and_the_result_still_fails() {
        let (a, c) = (reset("a"), reset("c"));
        let mut failing = Vec::new();
        let mut fails = |p: &FaultPlan| {
            let f = has(p, &a) && has(p, &c);
            if f {
                failing.push(p.clone());
            }
            f
        };
        let mut seen = 0;
        let mut count = |attempt: &Attempt<'_>| {
            seen += 1;
            assert_eq!(attempt.run, seen);
            assert_eq!(attempt.max_runs, 3);
        };
        let shrunk = shrink(&six(), 3, &mut fails, &mut count);
        assert_eq!(shrunk.runs, 3);
        assert!(shrunk.budget_exhausted);
        assert!(has(&shrunk.plan, &a) && has(&shrunk.plan, &c));
        assert!(shrunk.plan == six() || failing.contains(&shrunk.plan));
    }

    #[test]
    fn the_result_applies_in_the_order_it_is_printed() {
        let mut fails = |p: &FaultPlan| p.actions.len() >= 3;
        let plan = six();
        let shrunk = shrink(&plan, MAX_RUNS_DEFAULT, &mut fails, &mut quiet);
        let times: Vec<u64> = shrunk.plan.actions.iter().map(|a| a.at_ms).collect();
        let mut sorted = times.clone();
        sorted.sort_unstable();
        assert_eq!(times, sorted);
        assert_eq!(shrunk.plan.actions.len(), 3);
    }
}
