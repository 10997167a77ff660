//! `upstream::pacing::Pacer` against what it promises, for any report and any caller
//! that sends whenever the pacer lets it (calls in flight together included): no more
//! calls go out before the window's reset than the report said were left; near the
//! limit, consecutive calls are spread at least evenly over the time left; no call is
//! made to wait past the reset; far from the limit, nothing waits.

use crate::reference::ms;
use engine::upstream::pacing::{NEAR_PERCENT, Pacer, RateReport};
use proptest::prelude::*;
use std::time::Duration;

proptest! {
    #[test]
    fn the_pace_keeps_the_budget(
        limit in 1..200u64,
        remaining_share in 0..=100u64,
        reset_ms in 1..120_000u64,
        // When callers ask (ms after the report), in any order: sorted below.
        mut asks in prop::collection::vec(0..130_000u64, 1..80),
    ) {
        let remaining = limit * remaining_share / 100;
        let mut pacer = Pacer::default();
        pacer.handle_report(Duration::ZERO, RateReport { limit, remaining, reset_in: ms(reset_ms) });
        asks.sort_unstable();
        let reset = ms(reset_ms);
        let mut sent_before_reset = 0u64;
        let mut last_sent: Option<Duration> = None;
        for ask in asks {
            // Time only moves on: a caller asking while another waited asks after it.
            let mut now = last_sent.map_or(ms(ask), |last| last.max(ms(ask)));
            let wait = pacer.poll_wait(now);
            if now < reset {
                prop_assert!(now + wait <= reset, "a call waits {wait:?} past the reset");
            }
            if remaining * 100 > limit * NEAR_PERCENT && sent_before_reset == 0 {
                prop_assert_eq!(wait, Duration::ZERO, "far from the limit a call waited");
            }
            now += wait;
            prop_assert_eq!(pacer.poll_wait(now), Duration::ZERO, "after its wait a call still may not go");
            if now < reset {
                sent_before_reset += 1;
                let left = remaining.saturating_sub(sent_before_reset - 1);
                if let Some(last) = last_sent
                    && left > 0
                    && left * 100 <= limit * NEAR_PERCENT
                {
                    // Spread over the time left (integer division may shave a nanosecond).
                    let spacing = (reset - last) / (left as u32 + 1);
                    prop_assert!(now - last + Duration::from_nanos(1) >= spacing.min(reset - last),
                        "calls {:?} apart near the limit, spacing {spacing:?}", now - last);
                }
            }
            pacer.handle_sent(now);
            last_sent = Some(now);
        }
        prop_assert!(
            sent_before_reset <= remaining,
            "{sent_before_reset} calls before the reset with {remaining} left"
        );
    }
}
