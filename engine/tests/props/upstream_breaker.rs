//! The upstream's circuit breaker against a reference model over random steps (time
//! passing, calls admitted or refused, successes, failures): it opens exactly on the
//! `failures_to_open`-th consecutive failure, refuses every call while open and tells
//! how long is left, lets exactly one trial through per open period, and closes only on
//! a success. A breaker that never opens, or never closes, fails here.

use engine::upstream::{Breaker, BreakerPolicy};
use proptest::prelude::*;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Step {
    Wait { ms: u64 },
    Admit,
    Succeed,
    Fail,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..20_000u64).prop_map(|ms| Step::Wait { ms }),
        3 => Just(Step::Admit),
        2 => Just(Step::Succeed),
        3 => Just(Step::Fail),
    ]
}

/// The model: consecutive failures while closed, or the instant the next call may go.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Model {
    Closed(u32),
    /// Open (or a trial out) until this instant.
    Until(Duration),
}

proptest! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_breaker_follows_the_model(
        failures_to_open in 1..5u32,
        open_secs in 1..40u64,
        steps in proptest::collection::vec(step(), 1..120),
    ) {
        let policy = BreakerPolicy { failures_to_open, open_for: Duration::from_secs(open_secs) };
        let mut b = Breaker::new(policy.clone());
        let mut model = Model::Closed(0);
        let mut now = Duration::ZERO;
        let (mut opened, mut closed) = (0u64, 0u64);
        for s in steps {
            match s {
                Step::Wait { ms } => now += Duration::from_millis(ms),
                Step::Admit => {
                    let expected = match model {
                        Model::Closed(_) => Ok(()),
                        Model::Until(t) if now < t => Err(t - now),
                        Model::Until(_) => {
                            model = Model::Until(now + policy.open_for);
                            Ok(())
                        }
                    };
                    prop_assert_eq!(b.admit(now), expected);
                }
                Step::Succeed => {
                    let recovered = matches!(model, Model::Until(_));
                    closed += u64::from(recovered);
                    model = Model::Closed(0);
                    prop_assert_eq!(b.succeeded(), recovered);
                }
                Step::Fail => {
                    let opens = model == Model::Closed(failures_to_open - 1);
                    model = match model {
                        Model::Closed(n) if n + 1 < failures_to_open => Model::Closed(n + 1),
                        _ => Model::Until(now + policy.open_for),
                    };
                    opened += u64::from(opens);
                    prop_assert_eq!(b.failed(now), opens);
                }
            }
            prop_assert_eq!(b.is_open(), matches!(model, Model::Until(_)));
            let left = match model {
                Model::Closed(_) => Duration::ZERO,
                Model::Until(t) => t.saturating_sub(now),
            };
            prop_assert_eq!(b.retry_in(now), left);
            prop_assert_eq!((b.opened, b.closed), (opened, closed));
        }
    }
}
