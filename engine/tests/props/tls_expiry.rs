//! `decide_expiry` against what `upstream/tls/expiry.rs` promises: any failure other
//! than expiry is refused whatever the policy; an expired certificate is refused in
//! blocking mode and checked again as of its own notAfter in warning mode (refused if
//! that cannot be read); a valid one warns exactly when its notAfter is within the
//! window of now, with the time left, and the policy plays no part; as the clock moves
//! on, a valid certificate's warning never goes away and its time left only shrinks.

use engine::upstream::{CertificateCheck, ExpiredPolicy, ExpiryDecision, decide_expiry};
use proptest::prelude::*;
use std::time::Duration;

fn policy() -> impl Strategy<Value = ExpiredPolicy> {
    prop_oneof![Just(ExpiredPolicy::Block), Just(ExpiredPolicy::Warn)]
}

fn check() -> impl Strategy<Value = CertificateCheck> {
    prop_oneof![
        Just(CertificateCheck::Valid),
        Just(CertificateCheck::Expired),
        Just(CertificateCheck::Invalid),
    ]
}

fn secs() -> impl Strategy<Value = Duration> {
    // Around 2026, a few years either way, whole seconds as X.509 keeps them.
    (1_700_000_000u64..1_900_000_000).prop_map(Duration::from_secs)
}

fn window() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        (0u64..60 * 86_400).prop_map(Duration::from_secs)
    ]
}

proptest! {
    #![proptest_config(crate::config(512))]

    #[test]
    fn each_decision_is_the_documented_one(
        policy in policy(),
        window in window(),
        now in secs(),
        not_after in proptest::option::of(secs()),
        checked in check(),
    ) {
        let decision = decide_expiry(policy, window, now, not_after, checked);
        let expected = match checked {
            CertificateCheck::Invalid => ExpiryDecision::Reject,
            CertificateCheck::Expired => match (policy, not_after) {
                (ExpiredPolicy::Block, _) => ExpiryDecision::RejectExpired,
                (ExpiredPolicy::Warn, Some(at)) => ExpiryDecision::RecheckAt { at },
                (ExpiredPolicy::Warn, None) => ExpiryDecision::Reject,
            },
            CertificateCheck::Valid => match not_after {
                Some(at) if at <= now + window => ExpiryDecision::AcceptExpiringSoon {
                    left: at.saturating_sub(now),
                },
                _ => ExpiryDecision::Accept,
            },
        };
        prop_assert_eq!(decision, expected);
        if checked == CertificateCheck::Valid {
            let other = match policy {
                ExpiredPolicy::Block => ExpiredPolicy::Warn,
                ExpiredPolicy::Warn => ExpiredPolicy::Block,
            };
            prop_assert_eq!(decision, decide_expiry(other, window, now, not_after, checked));
        }
    }

    #[test]
    fn a_valid_certificates_warning_only_grows_as_the_clock_moves_on(
        policy in policy(),
        window in window(),
        now in secs(),
        later_by in 0u64..90 * 86_400,
        not_after in secs(),
    ) {
        let later = now + Duration::from_secs(later_by);
        let at = |t| decide_expiry(policy, window, t, Some(not_after), CertificateCheck::Valid);
        match (at(now), at(later)) {
            (ExpiryDecision::AcceptExpiringSoon { left: a }, ExpiryDecision::AcceptExpiringSoon { left: b }) => {
                prop_assert!(b <= a, "time left grew from {a:?} to {b:?}");
            }
            (ExpiryDecision::AcceptExpiringSoon { .. }, after) => {
                prop_assert!(false, "the warning went away later: {after:?}");
            }
            _ => {}
        }
    }
}
