//! The VOPR's workload as data: what users (and the model API's operator) do, at what
//! virtual time. A seeded generator writes it; the plan carries it (`WorkloadStep`,
//! one JSON operation each), so a failing run's workload is printed with its faults,
//! shrunk with them, and replayed exactly.
//!
//! An operation names a user by index and one of that user's sessions by its *slot*
//! (the k-th session the user opened: a tab). An operation whose slot does not exist
//! (yet, or any more after a shrink dropped the step that made it) does nothing.

use super::config::{SAFETY_MS, VoprConfig};
use serde::{Deserialize, Serialize};
use sim::SimRng;
use sim::faults::WorkloadStep;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A new session over a WebSocket (a new tab).
    Create {
        user: usize,
    },
    /// A new session with `POST /sessions`, then a WebSocket to it.
    CreateHttp {
        user: usize,
    },
    /// A query of `words` words (each query carries a marker naming its user); `tool`:
    /// it asks for the shell tool; `refresh_word`: its text mentions `refresh_token`.
    Query {
        user: usize,
        slot: usize,
        words: usize,
        tool: bool,
        refresh_word: bool,
    },
    /// `n` queries at once (the rate limit).
    Burst {
        user: usize,
        slot: usize,
        n: usize,
    },
    Interrupt {
        user: usize,
        slot: usize,
    },
    Extend {
        user: usize,
        slot: usize,
    },
    /// A new session copying the slot's session (a new slot).
    Fork {
        user: usize,
        slot: usize,
    },
    /// Drop the connection (if any) and connect again: with `last_seq` (a reconnect),
    /// or without (a resume, as after a restart).
    Reconnect {
        user: usize,
        slot: usize,
        last_seq: bool,
    },
    /// Drop the connection abruptly (no close frame); the slot may come back.
    Drop {
        user: usize,
        slot: usize,
    },
    /// Close the tab and never come back.
    Abandon {
        user: usize,
        slot: usize,
    },
    /// A frame the server must refuse: 0 bad JSON, 1 unknown type, 2 over the size
    /// limit, 3 binary, 4 a bad field.
    Malformed {
        user: usize,
        slot: usize,
        kind: u8,
    },
    /// The user gets a fresh token and sends it on every open connection.
    Refresh {
        user: usize,
    },
    /// The user tries to resume another user's session by its id.
    Snoop {
        user: usize,
        victim: usize,
    },
    /// The slot's reader slows down (or back to normal).
    SlowRead {
        user: usize,
        slot: usize,
        on: bool,
    },
    /// The user takes lock key `key` (through the engine's lock service), holds it
    /// for `hold_ms` and releases it; its other operations go on meanwhile.
    Lock {
        user: usize,
        key: u64,
        hold_ms: u64,
    },
    /// The model API's operator: 0 serving, 1 rate limited, 2 failing, 3 slow, 4 slower
    /// than the client's request timeout; 5 answers dropped mid-stream, 6 empty
    /// answers, 7 a trickling stream, 8 bursts, 9 the default model overloaded, 10 an
    /// account budget of 30 calls a minute, 11 structured answers in prose (the last
    /// seven from the model stream).
    Upstream {
        mode: u8,
    },
    /// A query of `words` words naming a model: 0 another known one, 1 one the engine
    /// does not know, 2 the fallback model.
    ModelQuery {
        user: usize,
        slot: usize,
        words: usize,
        model: u8,
    },
    /// An agent query: the model asks for the `read` tool `uses` times (0: answers at
    /// once) within `max_turns`; the session's cap set to `budget_micros` millionths of
    /// a dollar (0: left as it is); the answer structured when `structured`.
    AgentQuery {
        user: usize,
        slot: usize,
        words: usize,
        uses: u8,
        max_turns: u8,
        budget_micros: u32,
        structured: bool,
    },
}

/// The model a `ModelQuery` names.
pub fn model_name(model: u8) -> &'static str {
    match model {
        0 => "local-echo-2",
        1 => "gpt-imaginary-9",
        _ => "local-echo-lite",
    }
}

impl Op {
    /// The user the operation belongs to (`None`: the operator's).
    pub fn user(&self) -> Option<usize> {
        match self {
            Op::Create { user }
            | Op::CreateHttp { user }
            | Op::Query { user, .. }
            | Op::Burst { user, .. }
            | Op::Interrupt { user, .. }
            | Op::Extend { user, .. }
            | Op::Fork { user, .. }
            | Op::Reconnect { user, .. }
            | Op::Drop { user, .. }
            | Op::Abandon { user, .. }
            | Op::Malformed { user, .. }
            | Op::Refresh { user }
            | Op::Snoop { user, .. }
            | Op::SlowRead { user, .. }
            | Op::Lock { user, .. }
            | Op::ModelQuery { user, .. }
            | Op::AgentQuery { user, .. } => Some(*user),
            Op::Upstream { .. } => None,
        }
    }

    /// The slot the operation names, if it names one.
    pub fn slot_mut(&mut self) -> Option<&mut usize> {
        match self {
            Op::Query { slot, .. }
            | Op::Burst { slot, .. }
            | Op::Interrupt { slot, .. }
            | Op::Extend { slot, .. }
            | Op::Fork { slot, .. }
            | Op::Reconnect { slot, .. }
            | Op::Drop { slot, .. }
            | Op::Abandon { slot, .. }
            | Op::Malformed { slot, .. }
            | Op::SlowRead { slot, .. }
            | Op::ModelQuery { slot, .. }
            | Op::AgentQuery { slot, .. } => Some(slot),
            _ => None,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("operations always serialize")
    }

    pub fn decode(text: &str) -> Result<Op, String> {
        serde_json::from_str(text).map_err(|e| format!("bad VOPR operation {text:?}: {e}"))
    }
}

/// The workload of run `seed` (stream `vopr/workload`): every user opens a session
/// early, then operations at random times through the safety phase.
pub fn generate(seed: u64, config: &VoprConfig) -> Vec<WorkloadStep> {
    let mut rng = SimRng::new(seed, "vopr/workload");
    let users = config.users.len() as u64;
    let mut steps = Vec::new();
    let mut push = |at_ms: u64, op: Op| {
        steps.push(WorkloadStep {
            at_ms,
            op: op.encode(),
        })
    };
    for user in 0..config.users.len() {
        push(500 + rng.below(5_000), Op::Create { user });
    }
    let count = 150 + rng.below(250);
    for _ in 0..count {
        let at = 2_000 + rng.below(SAFETY_MS - 60_000);
        let user = rng.below(users) as usize;
        let slot = rng.below(3) as usize;
        let op = match rng.below(100) {
            0..=29 => Op::Query {
                user,
                slot,
                words: 1 + rng.below(12) as usize,
                tool: rng.below(8) == 0,
                refresh_word: rng.below(6) == 0,
            },
            30..=35 => Op::Create { user },
            36..=38 => Op::CreateHttp { user },
            39..=41 => Op::Burst {
                user,
                slot,
                n: 5 + rng.below(30) as usize,
            },
            42..=46 => Op::Interrupt { user, slot },
            47..=49 => Op::Extend { user, slot },
            50..=53 => Op::Fork { user, slot },
            54..=63 => Op::Reconnect {
                user,
                slot,
                last_seq: rng.below(3) != 0,
            },
            64..=69 => Op::Drop { user, slot },
            70..=72 => Op::Abandon { user, slot },
            73..=78 => Op::Malformed {
                user,
                slot,
                kind: rng.below(5) as u8,
            },
            79..=82 => Op::Refresh { user },
            83..=86 => Op::Snoop {
                user,
                victim: rng.below(users) as usize,
            },
            87..=90 => Op::SlowRead {
                user,
                slot,
                on: rng.below(2) == 0,
            },
            _ if config.upstream => Op::Upstream {
                mode: rng.below(5) as u8,
            },
            _ => Op::Query {
                user,
                slot,
                words: 1 + rng.below(12) as usize,
                tool: false,
                refresh_word: false,
            },
        };
        push(at, op);
    }
    if config.lock {
        generate_locks(seed, config, &mut push);
    }
    if config.upstream {
        generate_models(seed, config, &mut push);
        generate_agents(seed, config, &mut push);
    }
    steps.sort_by_key(|s| s.at_ms);
    steps
}

/// Agent queries (stream `vopr/agents`): tool rounds that fit their turn limit or not,
/// spending caps from tight (a few calls) to loose, some structured.
fn generate_agents(seed: u64, config: &VoprConfig, push: &mut impl FnMut(u64, Op)) {
    let mut rng = SimRng::new(seed, "vopr/agents");
    let users = config.users.len() as u64;
    for _ in 0..10 + rng.below(20) {
        let budget_micros = match rng.below(3) {
            0 => 0,
            1 => 300 + rng.below(3_000) as u32,
            _ => 10_000 + rng.below(100_000) as u32,
        };
        let op = Op::AgentQuery {
            user: rng.below(users) as usize,
            slot: rng.below(3) as usize,
            words: 1 + rng.below(30) as usize,
            uses: rng.below(4) as u8,
            max_turns: 1 + rng.below(4) as u8,
            budget_micros,
            structured: rng.below(4) == 0,
        };
        push(2_000 + rng.below(SAFETY_MS - 60_000), op);
    }
}

/// The model API's newer operations (stream `vopr/models`, so the rest of the workload
/// is what it was without them): queries naming models, and the operator's stream
/// faults, each undone 5 to 60 s later.
fn generate_models(seed: u64, config: &VoprConfig, push: &mut impl FnMut(u64, Op)) {
    let mut rng = SimRng::new(seed, "vopr/models");
    let users = config.users.len() as u64;
    for _ in 0..20 + rng.below(40) {
        let op = Op::ModelQuery {
            user: rng.below(users) as usize,
            slot: rng.below(3) as usize,
            words: 1 + rng.below(40) as usize,
            model: rng.below(3) as u8,
        };
        push(2_000 + rng.below(SAFETY_MS - 60_000), op);
    }
    for _ in 0..2 + rng.below(5) {
        let at = 5_000 + rng.below(SAFETY_MS - 120_000);
        push(
            at,
            Op::Upstream {
                mode: 5 + rng.below(7) as u8,
            },
        );
        push(at + 5_000 + rng.below(55_000), Op::Upstream { mode: 0 });
    }
}

/// The lock holders' operations (stream `vopr/locks`, so the rest of the workload is
/// what it was without them): mostly short holds, some of seconds, a few past the
/// lease (the lease then runs out under its holder).
fn generate_locks(seed: u64, config: &VoprConfig, push: &mut impl FnMut(u64, Op)) {
    let mut rng = SimRng::new(seed, "vopr/locks");
    let users = config.users.len() as u64;
    for _ in 0..40 + rng.below(120) {
        let at = 2_000 + rng.below(SAFETY_MS - 60_000);
        let hold_ms = match rng.below(10) {
            0..=6 => 5 + rng.below(2_000),
            7..=8 => 2_000 + rng.below(20_000),
            _ => 20_000 + rng.below(40_000),
        };
        let op = Op::Lock {
            user: rng.below(users) as usize,
            key: rng.below(super::locks::KEYS),
            hold_ms,
        };
        push(at, op);
    }
}
