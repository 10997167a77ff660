//! SimUpstream: the model API as a simulated device.
//!
//! The engine's local model server (`engine::upstream::LocalUpstream`) speaks the API on
//! a simulated host; this device decides, call by call, how it answers
//! (`AnswerPolicy`), so the model API's faults are the simulator's, with rates, a seed
//! stream and counts like the network's or the disk's.
//!
//! Fault contract. Every call first waits its latency (uniform in
//! `[latency_min, latency_max]`). Then, in this order, a call meets at most one of:
//! - **rate limiting** (`rate_limit_rate`; operator mode `RateLimited`): 429 with a
//!   `Retry-After` uniform in `[retry_after_min, retry_after_max]`, whole seconds.
//!   Counted `upstream.rate_limited`. Survivable: the client must wait that long;
//! - **server errors** (`error_rate`; mode `Failing`, a 5xx storm): 503. Counted
//!   `upstream.failing`. Survivable: retry with backoff, open the breaker;
//! - **timeouts** (`timeout_rate`): no answer ever. Counted `upstream.timeout`.
//!   Survivable: the client's own request timeout ends the call;
//! - **drops mid-answer** (`drop_rate`): the head and half the body, then the
//!   connection drops. Counted `upstream.dropped`. Survivable: a partial answer is
//!   discarded, never shown as whole;
//! - **truncated answers** (`truncate_rate`): a 200 whose body stops halfway. Counted
//!   `upstream.truncated`. Survivable: an answer that does not parse is an error;
//! - **empty answers** (`empty_rate`): a 200 with an empty output. Counted
//!   `upstream.empty`. Survivable: an empty answer is an answer, not a crash;
//! - **slow answers** (`slow_rate`, up to `slow_max` more; mode `Slow`): counted
//!   `upstream.slow`. Survivable: within the request timeout it is an answer, beyond it
//!   a timeout.
//!
//! The operator's modes (plan data, `Fault::UpstreamMode`) fix one fault for the calls
//! they target until the next mode: `RateLimited` (429), `Failing` (503), `Slow`, and
//! per call kind `ModelOverloaded` (529 for one model: `upstream.overloaded`),
//! `ModelRetired` (404 for one model: `upstream.model_retired`), `KeyRevoked` (401 for
//! every call: `upstream.key_revoked`), `BetaRetired` (400 for calls asking for one
//! beta: `upstream.beta_retired`), `Trickle` (a streamed answer's events paced:
//! `upstream.trickle`), `Burst` (a streamed answer in one write: `upstream.burst`),
//! `Silent` (no call answered: `upstream.timeout`), `Dropping` and `Emptying` (messages
//! answers dropped halfway or empty: `upstream.dropped`, `upstream.empty`), `Garbling`
//! (structured answers in prose, not the JSON asked for: `upstream.garbled`).
//! Calls a mode does not target meet the swarm's rates as in `Serving`.
//!
//! A wrong API key gets 401 from the server itself (not a fault). Crash semantics: the
//! device lives with its host's server; a crashed host answers nothing (its listener is
//! gone) until its boot program serves again. Draws come from the run seed (stream
//! `upstream/<host>`), in call order, so a seed fixes every answer.

use crate::faults::FaultCounters;
use crate::seed::{Ratio, SimRng};
use engine::upstream::{AnswerOutcome, AnswerPlan, AnswerPolicy, CallInfo, RateWindow};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

/// The model API's behaviour. All rates are per call; `quiet()` has none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamOptions {
    pub latency_min: Duration,
    pub latency_max: Duration,
    pub rate_limit_rate: Ratio,
    pub retry_after_min: Duration,
    pub retry_after_max: Duration,
    pub error_rate: Ratio,
    pub timeout_rate: Ratio,
    pub drop_rate: Ratio,
    pub truncate_rate: Ratio,
    pub empty_rate: Ratio,
    pub slow_rate: Ratio,
    pub slow_max: Duration,
}

impl UpstreamOptions {
    /// An API that answers every call at once.
    pub fn quiet() -> Self {
        UpstreamOptions {
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            rate_limit_rate: Ratio::ZERO,
            retry_after_min: Duration::from_secs(1),
            retry_after_max: Duration::from_secs(30),
            error_rate: Ratio::ZERO,
            timeout_rate: Ratio::ZERO,
            drop_rate: Ratio::ZERO,
            truncate_rate: Ratio::ZERO,
            empty_rate: Ratio::ZERO,
            slow_rate: Ratio::ZERO,
            slow_max: Duration::from_secs(10),
        }
    }

    fn check(&self) {
        assert!(
            self.latency_min <= self.latency_max,
            "upstream latency_min {:?} exceeds latency_max {:?}",
            self.latency_min,
            self.latency_max
        );
        assert!(
            self.retry_after_min <= self.retry_after_max,
            "upstream retry_after_min {:?} exceeds retry_after_max {:?}",
            self.retry_after_min,
            self.retry_after_max
        );
    }
}

/// What the operator has the API do for every call until told otherwise (a fixed
/// fault, as plan data: `Fault::UpstreamMode`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum UpstreamMode {
    #[default]
    Serving,
    /// Every call gets 429 with this `Retry-After`.
    RateLimited { retry_after_ms: u64 },
    /// Every call gets 503 (a 5xx storm).
    Failing,
    /// Every call is answered this much later (an overloaded model).
    Slow { delay_ms: u64 },
    /// Messages calls to this model get 529 `overloaded_error`; other calls are served.
    ModelOverloaded { model: String },
    /// Messages calls to this model get 404 `not_found_error` (a retired model).
    ModelRetired { model: String },
    /// Every call gets 401: the engine's key was revoked.
    KeyRevoked,
    /// Messages calls asking for this beta feature get 400 (a withdrawn beta).
    BetaRetired { beta: String },
    /// Streamed answers pause this long before each event (a model streaming slowly).
    Trickle { event_ms: u64 },
    /// Streamed answers come in one write, every event at once (a burst).
    Burst,
    /// No call is ever answered (a silent API).
    Silent,
    /// Messages answers drop their connection halfway through.
    Dropping,
    /// Messages answers are empty.
    Emptying,
    /// The account may make `limit` messages calls per window of `window_ms` (the
    /// window starts at its first call); every messages answer carries the rate-limit
    /// headers, and a call past the limit gets 429 until the window ends.
    AccountLimit { limit: u64, window_ms: u64 },
    /// Messages calls asking for structured output are answered in prose, not the JSON
    /// asked for (a model that does not follow the output format).
    Garbling,
}

/// The simulated model API of one host.
pub struct SimUpstream {
    host: String,
    state: Mutex<State>,
    faults: FaultCounters,
}

struct State {
    options: UpstreamOptions,
    mode: UpstreamMode,
    rng: SimRng,
    /// The account's current window under `AccountLimit`: its start and calls used.
    account: Option<(tokio::time::Instant, u64)>,
}

impl SimUpstream {
    pub fn new(host: &str, options: UpstreamOptions, rng: SimRng, faults: FaultCounters) -> Self {
        options.check();
        SimUpstream {
            host: host.to_string(),
            state: Mutex::new(State {
                options,
                mode: UpstreamMode::Serving,
                rng,
                account: None,
            }),
            faults,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("sim upstream poisoned")
    }

    pub fn options(&self) -> UpstreamOptions {
        self.lock().options.clone()
    }

    pub fn set_options(&self, options: UpstreamOptions) {
        options.check();
        self.lock().options = options;
    }

    pub fn mode(&self) -> UpstreamMode {
        self.lock().mode.clone()
    }

    /// The operator's switch (a fixed fault): every call from now on, until the next.
    pub fn set_mode(&self, mode: UpstreamMode) {
        tracing::info!(target: "sim::upstream", host = %self.host, "model API mode: {mode:?}");
        let mut state = self.lock();
        state.mode = mode;
        state.account = None;
    }

    /// Draws one call's plan; returns it with the fault kind it counts as, if any, and
    /// whether a swarm rate drew it.
    fn draw(&self, call: &CallInfo<'_>) -> (AnswerPlan, Option<(&'static str, String, bool)>) {
        let mut guard = self.lock();
        let State {
            options,
            mode,
            rng,
            account,
        } = &mut *guard;
        let between = |rng: &mut SimRng, low: Duration, high: Duration| {
            if low == high {
                low // no draw: a fixed value keeps the stream
            } else {
                Duration::from_nanos(rng.between(low.as_nanos() as u64, high.as_nanos() as u64))
            }
        };
        let mut delay = between(rng, options.latency_min, options.latency_max);
        let refuse = |status, retry_after| AnswerOutcome::Refuse {
            status,
            retry_after,
        };
        let messages = call.model.is_some();
        let streamed = messages && call.stream;
        let (mut event_pace, mut one_write, mut rate) = (Duration::ZERO, false, None);
        let mut garbled = false;
        // Faults of the operator's modes are the plan's; calls a mode does not target,
        // and every call in `Serving`, meet the swarm's rates.
        let targeted = match &*mode {
            UpstreamMode::ModelOverloaded { model } => call.model == Some(model.as_str()),
            UpstreamMode::ModelRetired { model } => call.model == Some(model.as_str()),
            UpstreamMode::BetaRetired { beta } => messages && call.betas.contains(beta),
            UpstreamMode::Trickle { .. } | UpstreamMode::Burst => streamed,
            UpstreamMode::Dropping | UpstreamMode::Emptying => messages,
            UpstreamMode::AccountLimit { .. } => messages,
            UpstreamMode::Garbling => messages && call.structured,
            _ => true,
        };
        let mode = if targeted {
            mode.clone()
        } else {
            UpstreamMode::Serving
        };
        let swarm = matches!(mode, UpstreamMode::Serving);
        let (outcome, fault) = match mode {
            UpstreamMode::ModelOverloaded { model } => (
                refuse(529, None),
                Some(("upstream.overloaded", format!("529 for {model} (operator)"))),
            ),
            UpstreamMode::ModelRetired { model } => (
                refuse(404, None),
                Some((
                    "upstream.model_retired",
                    format!("404 for {model} (operator)"),
                )),
            ),
            UpstreamMode::KeyRevoked => (
                refuse(401, None),
                Some(("upstream.key_revoked", "401 (operator)".to_string())),
            ),
            UpstreamMode::BetaRetired { beta } => (
                refuse(400, None),
                Some((
                    "upstream.beta_retired",
                    format!("400 for beta {beta} (operator)"),
                )),
            ),
            UpstreamMode::Trickle { event_ms } => {
                event_pace = Duration::from_millis(event_ms);
                (
                    AnswerOutcome::Serve,
                    Some((
                        "upstream.trickle",
                        format!("streamed one event per {event_ms} ms (operator)"),
                    )),
                )
            }
            UpstreamMode::AccountLimit { limit, window_ms } => {
                let now = tokio::time::Instant::now();
                let window = Duration::from_millis(window_ms);
                let (start, used) = match *account {
                    Some((start, used)) if now < start + window => (start, used),
                    _ => (now, 0),
                };
                let reset_in = start + window - now;
                if used >= limit {
                    *account = Some((start, used));
                    rate = Some(RateWindow {
                        limit,
                        remaining: 0,
                        reset_in,
                    });
                    // Retry-After is whole seconds on the wire, rounded up.
                    let after = Duration::from_secs(reset_in.as_millis().div_ceil(1000) as u64);
                    (
                        refuse(429, Some(after)),
                        Some((
                            "upstream.rate_limited",
                            format!(
                                "429: {limit} calls in the window used, resets in {reset_in:?}"
                            ),
                        )),
                    )
                } else {
                    *account = Some((start, used + 1));
                    let remaining = limit - used - 1;
                    rate = Some(RateWindow {
                        limit,
                        remaining,
                        reset_in,
                    });
                    // Near the limit the answer tells the account is running out.
                    let near = remaining * 100 <= limit * engine::upstream::pacing::NEAR_PERCENT;
                    (
                        AnswerOutcome::Serve,
                        near.then(|| {
                            (
                                "upstream.account_limit",
                                format!(
                                    "{remaining} of {limit} calls left, resets in {reset_in:?}"
                                ),
                            )
                        }),
                    )
                }
            }
            UpstreamMode::Silent => (
                AnswerOutcome::Hang,
                Some(("upstream.timeout", "never answered (operator)".to_string())),
            ),
            UpstreamMode::Dropping => (
                AnswerOutcome::DropMidAnswer,
                Some((
                    "upstream.dropped",
                    "connection dropped mid-answer (operator)".to_string(),
                )),
            ),
            UpstreamMode::Emptying => (
                AnswerOutcome::Empty,
                Some(("upstream.empty", "empty answer (operator)".to_string())),
            ),
            UpstreamMode::Garbling => {
                garbled = true;
                (
                    AnswerOutcome::Serve,
                    Some((
                        "upstream.garbled",
                        "a structured answer in prose (operator)".to_string(),
                    )),
                )
            }
            UpstreamMode::Burst => {
                one_write = true;
                (
                    AnswerOutcome::Serve,
                    Some((
                        "upstream.burst",
                        "every event in one write (operator)".to_string(),
                    )),
                )
            }
            UpstreamMode::RateLimited { retry_after_ms } => {
                let after = Duration::from_millis(retry_after_ms);
                (
                    refuse(429, Some(after)),
                    Some((
                        "upstream.rate_limited",
                        format!("429, retry after {after:?} (operator)"),
                    )),
                )
            }
            UpstreamMode::Failing => (
                refuse(503, None),
                Some(("upstream.failing", "503 (operator)".to_string())),
            ),
            UpstreamMode::Slow { delay_ms } => {
                delay += Duration::from_millis(delay_ms);
                (
                    AnswerOutcome::Serve,
                    Some((
                        "upstream.slow",
                        format!("answered {delay:?} late (operator)"),
                    )),
                )
            }
            UpstreamMode::Serving => {
                if rng.chance(options.rate_limit_rate) {
                    let after = between(rng, options.retry_after_min, options.retry_after_max);
                    // Retry-After is whole seconds on the wire.
                    let after = Duration::from_secs(after.as_secs().max(1));
                    (
                        refuse(429, Some(after)),
                        Some((
                            "upstream.rate_limited",
                            format!("429, retry after {after:?}"),
                        )),
                    )
                } else if rng.chance(options.error_rate) {
                    (
                        refuse(503, None),
                        Some(("upstream.failing", "503".to_string())),
                    )
                } else if rng.chance(options.timeout_rate) {
                    (
                        AnswerOutcome::Hang,
                        Some(("upstream.timeout", "never answered".to_string())),
                    )
                } else if rng.chance(options.drop_rate) {
                    (
                        AnswerOutcome::DropMidAnswer,
                        Some((
                            "upstream.dropped",
                            "connection dropped mid-answer".to_string(),
                        )),
                    )
                } else if rng.chance(options.truncate_rate) {
                    (
                        AnswerOutcome::Truncate,
                        Some(("upstream.truncated", "answer cut short".to_string())),
                    )
                } else if rng.chance(options.empty_rate) {
                    (
                        AnswerOutcome::Empty,
                        Some(("upstream.empty", "empty answer".to_string())),
                    )
                } else if rng.chance(options.slow_rate) {
                    let more = between(rng, Duration::ZERO, options.slow_max);
                    delay += more;
                    (
                        AnswerOutcome::Serve,
                        Some(("upstream.slow", format!("answered {more:?} late"))),
                    )
                } else {
                    (AnswerOutcome::Serve, None)
                }
            }
        };
        let plan = AnswerPlan {
            delay,
            outcome,
            event_pace,
            one_write,
            rate,
            garbled,
        };
        (plan, fault.map(|f| (f.0, f.1, swarm)))
    }
}

impl AnswerPolicy for SimUpstream {
    fn plan(&self, call: &CallInfo<'_>) -> AnswerPlan {
        let (plan, fault) = self.draw(call);
        let path = call.path;
        match fault {
            Some((kind, detail, true)) => {
                self.faults.fire_swarm(kind, &format!("{path}: {detail}"))
            }
            Some((kind, detail, false)) => self.faults.fire(kind, &format!("{path}: {detail}")),
            None => {}
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call to `path`: a streamed messages call to the default model, or a model list.
    fn call(path: &'static str) -> CallInfo<'static> {
        let messages = path == "/v1/messages";
        CallInfo {
            path,
            model: messages.then_some("local-echo-1"),
            betas: &[],
            stream: messages,
            structured: false,
        }
    }

    fn device(options: UpstreamOptions) -> (SimUpstream, FaultCounters) {
        let faults = FaultCounters::default();
        let up = SimUpstream::new(
            "api",
            options,
            SimRng::new(1, "upstream/api"),
            faults.clone(),
        );
        (up, faults)
    }

    #[test]
    fn a_quiet_api_serves_every_call_at_once_and_counts_nothing() {
        let (up, faults) = device(UpstreamOptions::quiet());
        for _ in 0..100 {
            assert_eq!(up.plan(&call("/v1/messages")), AnswerPlan::default());
        }
        assert!(faults.snapshot().is_empty());
    }

    #[test]
    fn rates_decide_faults_per_call_and_each_is_counted_once() {
        let (up, faults) = device(UpstreamOptions {
            rate_limit_rate: Ratio::new(1, 5),
            error_rate: Ratio::new(1, 5),
            timeout_rate: Ratio::new(1, 10),
            drop_rate: Ratio::new(1, 10),
            truncate_rate: Ratio::new(1, 10),
            empty_rate: Ratio::new(1, 10),
            slow_rate: Ratio::new(1, 2),
            ..UpstreamOptions::quiet()
        });
        let plans: Vec<AnswerPlan> = (0..2_000).map(|_| up.plan(&call("/v1/messages"))).collect();
        let counted: u64 = faults.snapshot().values().sum();
        let faulty = plans
            .iter()
            .filter(|p| *p != &AnswerPlan::default())
            .count() as u64;
        assert_eq!(counted, faulty, "one count per call that met a fault");
        for kind in [
            "upstream.rate_limited",
            "upstream.failing",
            "upstream.timeout",
            "upstream.dropped",
            "upstream.truncated",
            "upstream.empty",
            "upstream.slow",
        ] {
            assert!(faults.count(kind) > 0, "{kind} never fired");
        }
        for plan in &plans {
            if let AnswerOutcome::Refuse {
                status: 429,
                retry_after,
            } = &plan.outcome
            {
                let after = retry_after.expect("a 429 says when to retry");
                assert!((1..=30).contains(&after.as_secs()), "{after:?}");
            }
        }
    }

    #[test]
    fn the_operator_mode_overrides_the_rates_until_switched_back() {
        let (up, faults) = device(UpstreamOptions::quiet());
        up.set_mode(UpstreamMode::RateLimited {
            retry_after_ms: 5_000,
        });
        let plan = up.plan(&call("/v1/models"));
        assert_eq!(
            plan.outcome,
            AnswerOutcome::Refuse {
                status: 429,
                retry_after: Some(Duration::from_secs(5))
            }
        );
        up.set_mode(UpstreamMode::Slow { delay_ms: 4_000 });
        assert_eq!(up.plan(&call("/v1/messages")).delay, Duration::from_secs(4));
        up.set_mode(UpstreamMode::Serving);
        assert_eq!(up.plan(&call("/v1/messages")), AnswerPlan::default());
        assert_eq!(faults.count("upstream.rate_limited"), 1);
        assert_eq!(faults.count("upstream.slow"), 1);
    }

    #[test]
    fn modes_are_plan_data() {
        let mode = UpstreamMode::RateLimited {
            retry_after_ms: 2_000,
        };
        let json = serde_json::to_string(&mode).unwrap();
        assert_eq!(json, r#"{"mode":"rate_limited","retry_after_ms":2000}"#);
        assert_eq!(serde_json::from_str::<UpstreamMode>(&json).unwrap(), mode);
    }
}
