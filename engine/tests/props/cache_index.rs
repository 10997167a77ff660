//! `CacheIndex` beside a plain LRU list (least recently used first) over random records,
//! touches, forgets, refreshes and cache writes. Sizes, the total and recency must agree
//! with the list; a write's victims must be the shortest least-recently-used-first
//! prefix of the other files that brings the total under the cap, never the file being
//! written, and `None` exactly when the file cannot fit even alone.
//!
//! A write is carried out the way `worker::cache` does it: victims, forget each, record.

use engine::workers::program::cache_index::CacheIndex;
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

/// Few names, so steps keep meeting the same files.
const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

#[derive(Clone, Debug, Default)]
pub struct Model {
    /// (name, bytes), least recently used first.
    files: Vec<(String, u64)>,
    /// The victims the last write called for, as of before it.
    expected_victims: Option<Vec<String>>,
}

impl Model {
    fn position(&self, name: &str) -> Option<usize> {
        self.files.iter().position(|(n, _)| n == name)
    }

    fn bytes_of(&self, name: &str) -> Option<u64> {
        self.position(name).map(|i| self.files[i].1)
    }

    fn total(&self) -> u64 {
        self.files.iter().map(|(_, b)| b).sum()
    }

    fn forget(&mut self, name: &str) {
        if let Some(i) = self.position(name) {
            self.files.remove(i);
        }
    }

    /// Moves `name` to the most recently used end with `bytes`.
    fn record(&mut self, name: &str, bytes: u64) {
        self.forget(name);
        self.files.push((name.to_string(), bytes));
    }

    /// The shortest prefix of the other files, least recently used first, whose removal
    /// lets `name` hold `bytes` within `cap`.
    fn victims(&self, name: &str, bytes: u64, cap: u64) -> Option<Vec<String>> {
        if bytes > cap {
            return None;
        }
        let others: Vec<&(String, u64)> = self.files.iter().filter(|(n, _)| n != name).collect();
        let mut held: u64 = others.iter().map(|(_, b)| b).sum();
        let mut victims = Vec::new();
        for (other, other_bytes) in others {
            if held + bytes <= cap {
                break;
            }
            held -= other_bytes;
            victims.push(other.clone());
        }
        Some(victims)
    }
}

#[derive(Clone, Debug)]
pub enum Step {
    Record {
        name: &'static str,
        bytes: u64,
    },
    Touch(&'static str),
    Forget(&'static str),
    /// Someone else changed the directory: per name, its size on disk now (`None`: gone).
    Refresh([Option<u64>; NAMES.len()]),
    /// Make room for `name` with `bytes` under `cap`, then write it.
    Write {
        name: &'static str,
        bytes: u64,
        cap: u64,
    },
}

pub struct CacheMachine;

fn name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&NAMES[..])
}

fn bytes() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 0..=100u64]
}

impl ReferenceStateMachine for CacheMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Step> {
        let refresh = prop::array::uniform6(prop::option::weighted(0.8, bytes()));
        prop_oneof![
            3 => (name(), bytes()).prop_map(|(name, bytes)| Step::Record { name, bytes }),
            3 => name().prop_map(Step::Touch),
            1 => name().prop_map(Step::Forget),
            1 => refresh.prop_map(Step::Refresh),
            4 => (name(), bytes(), 0..=300u64)
                .prop_map(|(name, bytes, cap)| Step::Write { name, bytes, cap }),
        ]
        .boxed()
    }

    fn apply(mut model: Model, step: &Step) -> Model {
        match step {
            Step::Record { name, bytes } => model.record(name, *bytes),
            Step::Touch(name) => {
                if let Some(bytes) = model.bytes_of(name) {
                    model.record(name, bytes);
                }
            }
            Step::Forget(name) => model.forget(name),
            Step::Refresh(sizes) => {
                model.files = model
                    .files
                    .into_iter()
                    .filter_map(|(name, _)| {
                        let index = NAMES.iter().position(|n| *n == name).expect("known name");
                        sizes[index].map(|bytes| (name, bytes))
                    })
                    .collect();
            }
            Step::Write { name, bytes, cap } => {
                model.expected_victims = model.victims(name, *bytes, *cap);
                for victim in model.expected_victims.clone().iter().flatten() {
                    model.forget(victim);
                }
                if model.expected_victims.is_some() {
                    model.record(name, *bytes);
                }
            }
        }
        model
    }
}

impl StateMachineTest for CacheMachine {
    type SystemUnderTest = CacheIndex;
    type Reference = CacheMachine;

    fn init_test(_: &Model) -> CacheIndex {
        CacheIndex::default()
    }

    fn apply(mut index: CacheIndex, model: &Model, step: Step) -> CacheIndex {
        match step {
            Step::Record { name, bytes } => index.record(name, bytes),
            Step::Touch(name) => {
                let known = index.bytes_of(name).is_some();
                assert_eq!(index.touch(name), known, "touch({name:?})");
            }
            Step::Forget(name) => index.forget(name),
            Step::Refresh(sizes) => index.refresh(|name| {
                let at = NAMES.iter().position(|n| *n == name);
                sizes[at.expect("only known names are recorded")]
            }),
            Step::Write { name, bytes, cap } => {
                let victims = index.victims(name, bytes, cap);
                assert_eq!(
                    victims, model.expected_victims,
                    "victims for {name:?} of {bytes} bytes under a cap of {cap}"
                );
                if let Some(victims) = victims {
                    assert!(!victims.iter().any(|v| v == name), "evicts itself");
                    let after = index.total_after(name, bytes, &victims);
                    assert!(after <= cap, "{after} bytes after eviction, cap {cap}");
                    for victim in &victims {
                        index.forget(victim);
                    }
                    index.record(name, bytes);
                    assert_eq!(index.total(), after, "total_after");
                } else {
                    assert!(bytes > cap, "refused {bytes} bytes under a cap of {cap}");
                }
            }
        }
        index
    }

    fn check_invariants(index: &CacheIndex, model: &Model) {
        assert_eq!(index.total(), model.total(), "total");
        for name in NAMES {
            assert_eq!(
                index.bytes_of(name),
                model.bytes_of(name),
                "bytes_of({name:?})"
            );
        }
        // Recency, observed through eviction: making room for a new file as large as
        // the cap evicts files least recently used first until only empty ones are
        // left, which shows the whole order of the non-empty files.
        let everything = model.total() + 1;
        assert_eq!(
            index.victims("z", everything, everything),
            model.victims("z", everything, everything),
            "eviction order"
        );
    }
}

prop_state_machine! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_cache_index_is_a_least_recently_used_list(sequential 1..60 => CacheMachine);
}
