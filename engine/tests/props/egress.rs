//! The egress cores against a reference model and their documented properties.
//! `EgressBuffer`: over any sequence of pushes, sends and expiries it behaves as a plain
//! FIFO with the two bounds (a push past the count bound handed back with
//! `BufferFull`, requests that waited the age bound or longer expired from the front,
//! oldest first), never holds more than its bound, and every request pushed leaves
//! exactly once (refused, expired, sent) or is still held. `ProbeCore`: over any outage,
//! probes are due exactly when their drawn delay is over, numbered from 1, each delay
//! at most its exponential nominal value; a probe that connects ends the outage.

use crate::reference::ms;
use engine::egress::{EgressBuffer, EgressError, ProbeCore, ProbeSchedule};
use engine::env::NetAddr;
use engine::workers::retry::exponential_delay;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Clone, Debug)]
enum Op {
    /// Time passes (ms), then a request is pushed.
    Push(u64),
    /// The front request was answered.
    Sent,
    /// Time passes (ms), then expired requests are taken.
    Expire(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..120_000u64).prop_map(Op::Push),
        2 => Just(Op::Sent),
        2 => (0..200_000u64).prop_map(Op::Expire),
    ]
}

proptest! {
    #![proptest_config(crate::config(256))]

    #[test]
    fn the_buffer_is_a_bounded_fifo(
        count_max in 1..6usize,
        age_s in 1..400u64,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let age = Duration::from_secs(age_s);
        let mut buffer = EgressBuffer::new(count_max, age);
        let mut model: VecDeque<(Duration, u64)> = VecDeque::new();
        let (mut now, mut next) = (Duration::ZERO, 0u64);
        let (mut left, mut pushed) = (0u64, 0u64);
        for op in ops {
            match op {
                Op::Push(dt) => {
                    now += ms(dt);
                    next += 1;
                    pushed += 1;
                    match buffer.handle_push(now, next) {
                        Ok(()) => {
                            prop_assert!(model.len() < count_max, "taken past the bound");
                            model.push_back((now, next));
                        }
                        Err((back, e)) => {
                            prop_assert_eq!(back, next);
                            prop_assert_eq!(e, EgressError::BufferFull { bound: count_max });
                            prop_assert_eq!(model.len(), count_max, "refused below the bound");
                            left += 1;
                        }
                    }
                }
                Op::Sent => {
                    let sent = buffer.handle_sent();
                    prop_assert_eq!(sent, model.pop_front().map(|(_, id)| id));
                    left += u64::from(sent.is_some());
                }
                Op::Expire(dt) => {
                    now += ms(dt);
                    let expired = buffer.poll_expired(now);
                    let mut expected = Vec::new();
                    while model.front().is_some_and(|(since, _)| now - *since >= age) {
                        let (since, id) = model.pop_front().expect("front");
                        expected.push((id, EgressError::Expired { waited: now - since, bound: age }));
                    }
                    left += expired.len() as u64;
                    prop_assert_eq!(expired, expected);
                }
            }
            prop_assert_eq!(buffer.len(), model.len());
            prop_assert!(buffer.peak() <= count_max);
            prop_assert_eq!(buffer.front(), model.front().map(|(_, id)| id));
            prop_assert_eq!(buffer.poll_timeout(), model.front().map(|(since, _)| *since + age));
            prop_assert_eq!(left + model.len() as u64, pushed, "a request vanished");
        }
    }

    #[test]
    fn probes_follow_the_backoff_rule(
        jitter in prop_oneof![Just(100u32), 0..=100u32],
        draws in prop::collection::vec(any::<u64>(), 2..20),
        connect_ms in 0..5_000u64,
        succeed in any::<bool>(),
    ) {
        let schedule = ProbeSchedule {
            first: Duration::from_secs(1),
            factor: 2,
            cap: Duration::from_secs(60),
            jitter_percent: jitter,
        };
        let mut core = ProbeCore::new(schedule);
        let target = NetAddr::new("outside-0", 80);
        let mut now = Duration::from_secs(3);
        prop_assert!(core.handle_unreachable(now, &target, draws[0]));
        prop_assert!(!core.is_up());
        for (n, &draw) in draws[1..].iter().enumerate() {
            let due = core.poll_timeout().expect("down: a probe is due");
            prop_assert!(due >= now);
            if due > now {
                prop_assert!(core.poll_probe(due - Duration::from_nanos(1)).is_none());
            }
            let (to, delay) = core.poll_probe(due).expect("due");
            prop_assert_eq!(&to, &target);
            prop_assert_eq!(delay.attempt, n as u32 + 1);
            let nominal = exponential_delay(schedule.first, schedule.factor, schedule.cap, delay.attempt);
            prop_assert_eq!(delay.nominal, nominal);
            prop_assert!(delay.delay <= nominal);
            if jitter == 0 {
                prop_assert_eq!(delay.delay, nominal);
            }
            prop_assert_eq!(delay.from + delay.delay, due);
            now = due + ms(connect_ms);
            core.handle_probe_failed(now, draw);
            prop_assert!(!core.is_up());
        }
        if succeed {
            let down_for = core.handle_probe_ok(now);
            prop_assert_eq!(down_for, Some(now - Duration::from_secs(3)));
            prop_assert!(core.is_up());
            prop_assert_eq!(core.poll_timeout(), None);
            prop_assert_eq!(core.outages(), 1);
        }
    }
}
