//! `ReplayLog` against a reference model over random steps (appends of random sizes at
//! random times, acks, expiries, replays): the log holds a contiguous run of the most
//! recent messages within its count, byte and age bounds; numbers are gap-free from the
//! start; `replay_after(l)` answers exactly the messages after `l` when it holds them
//! all, `Gap` naming exactly the missing range when it does not, and `Ahead` beyond the
//! last number. This is the core of the channel's exactly-once promise.

use engine::sessions::replay::{ReplayError, ReplayLimits, ReplayLog};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Step {
    Append { bytes: usize, after_ms: u64 },
    Ack { back: u64 },
    Expire { after_ms: u64 },
    Replay { back: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1..400usize, 0..400u64).prop_map(|(bytes, after_ms)| Step::Append { bytes, after_ms }),
        1 => (0..20u64).prop_map(|back| Step::Ack { back }),
        1 => (0..3_000u64).prop_map(|after_ms| Step::Expire { after_ms }),
        3 => (0..40u64).prop_map(|back| Step::Replay { back }),
    ]
}

/// The model: what a log with these bounds must hold, as (seq, at, bytes).
struct Model {
    limits: ReplayLimits,
    held: VecDeque<(u64, Duration, usize)>,
    last: u64,
}

impl Model {
    fn bytes(&self) -> usize {
        self.held.iter().map(|e| e.2).sum()
    }

    fn trim(&mut self, now: Duration) {
        while self
            .held
            .front()
            .is_some_and(|e| now.saturating_sub(e.1) > self.limits.age)
        {
            self.held.pop_front();
        }
        while self.held.len() > self.limits.count || self.bytes() > self.limits.bytes {
            self.held.pop_front();
        }
    }
}

proptest! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_log_is_the_model(
        count in 1..30usize,
        bytes in 200..4_000usize,
        age_ms in 100..2_000u64,
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let limits = ReplayLimits { count, bytes, age: Duration::from_millis(age_ms) };
        let mut log = ReplayLog::new(limits);
        let mut model = Model { limits, held: VecDeque::new(), last: 0 };
        let mut now = Duration::ZERO;
        for step in steps {
            match step {
                Step::Append { bytes: size, after_ms } => {
                    now += Duration::from_millis(after_ms);
                    let (seq, text) = log
                        .append(now, |seq| format!("{seq:>width$}", width = size))
                        .expect("the sequence space is not near its end");
                    model.last += 1;
                    prop_assert_eq!(seq, model.last, "numbers are gap-free from 1");
                    model.trim(now);
                    if text.len() <= limits.bytes {
                        model.held.push_back((seq, now, text.len()));
                    } else {
                        // Never held, and nothing before it can be replayed across it.
                        model.held.clear();
                    }
                    model.trim(now);
                }
                Step::Ack { back } => {
                    let upto = model.last.saturating_sub(back);
                    log.ack(upto);
                    while model.held.front().is_some_and(|e| e.0 <= upto) {
                        model.held.pop_front();
                    }
                }
                Step::Expire { after_ms } => {
                    now += Duration::from_millis(after_ms);
                    log.expire(now);
                    while model.held.front().is_some_and(|e| now.saturating_sub(e.1) > limits.age) {
                        model.held.pop_front();
                    }
                }
                Step::Replay { back } => {
                    let from = model.last.saturating_sub(back);
                    let answer = log.replay_after(from);
                    let wanted: Vec<u64> = (from + 1..=model.last).collect();
                    let held: Vec<u64> = model.held.iter().map(|e| e.0).collect();
                    match answer {
                        Ok(messages) => {
                            let seqs: Vec<u64> = messages.iter().map(|m| m.0).collect();
                            prop_assert_eq!(seqs, wanted.clone(), "exactly the messages after {}", from);
                            for (seq, text) in &messages {
                                prop_assert_eq!(text.trim().parse::<u64>().ok(), Some(*seq));
                            }
                        }
                        Err(ReplayError::Gap { from: gap_from, to }) => {
                            prop_assert_eq!(gap_from, from + 1);
                            let first_held = held.first().copied().unwrap_or(model.last + 1);
                            prop_assert!(first_held > from + 1, "a gap reported while {} is held", from + 1);
                            prop_assert_eq!(to, first_held - 1, "the gap ends right before the first held");
                        }
                        Err(ReplayError::Ahead { .. }) => prop_assert!(false, "{} is not ahead of {}", from, model.last),
                    }
                }
            }
            prop_assert!(log.len() <= limits.count && log.bytes() <= limits.bytes);
            prop_assert_eq!(log.len(), model.held.len(), "held count");
            prop_assert_eq!(log.bytes(), model.bytes(), "held bytes");
            prop_assert_eq!(log.first_held(), model.held.front().map(|e| e.0));
            let ahead = model.last + 1;
            prop_assert!(
                matches!(log.replay_after(ahead), Err(ReplayError::Ahead { .. })),
                "{} is ahead of {}", ahead, model.last
            );
        }
    }
}
