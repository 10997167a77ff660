//! Expiry as policy: the model API's certificate is checked by webpki against the host's
//! clock, and what an expired or soon-expiring certificate means is decided here.
//!
//! `decide` is the core (plain values in, a decision out); `ExpiryVerifier` wraps
//! rustls' `WebPkiServerVerifier` and carries the decision out. In `Warn` mode an
//! expired certificate is accepted only if it is otherwise valid: it is checked again
//! as of its own last valid second (chain, signatures, name), so an expired certificate
//! from the wrong issuer is still refused. A certificate not yet valid (the host's clock
//! set back) is refused whatever the policy.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do with an expired certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiredPolicy {
    /// Refuse it: the handshake fails and the call fails as unavailable.
    Block,
    /// Accept it (if otherwise valid) with a warning.
    Warn,
}

/// The first check's outcome, as `decide` needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    Valid,
    Expired,
    /// Any other failure (unknown issuer, wrong name, bad signature, not yet valid).
    Invalid,
}

/// What the verifier does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// Valid, but expires within the warning window.
    AcceptExpiringSoon {
        left: Duration,
    },
    /// Expired, warn mode: check it again as of `at` (its notAfter); accept with a
    /// warning if that passes.
    RecheckAt {
        at: Duration,
    },
    /// Expired, block mode.
    RejectExpired,
    Reject,
}

/// Decides on a certificate checked at `now` (both durations since the Unix epoch;
/// `not_after` is the leaf's, when it could be read).
pub fn decide(
    policy: ExpiredPolicy,
    window: Duration,
    now: Duration,
    not_after: Option<Duration>,
    checked: Checked,
) -> Decision {
    match (checked, policy, not_after) {
        (Checked::Invalid, _, _) => Decision::Reject,
        (Checked::Expired, ExpiredPolicy::Block, _) => Decision::RejectExpired,
        (Checked::Expired, ExpiredPolicy::Warn, Some(at)) => Decision::RecheckAt { at },
        // Expired, but the leaf cannot be read: nothing to check it again with.
        (Checked::Expired, ExpiredPolicy::Warn, None) => Decision::Reject,
        (Checked::Valid, _, Some(at)) if at.saturating_sub(now) <= window => {
            Decision::AcceptExpiringSoon {
                left: at.saturating_sub(now),
            }
        }
        (Checked::Valid, _, _) => Decision::Accept,
    }
}

/// What the verifier met, for the client's stats.
#[derive(Debug, Default)]
pub(crate) struct TlsCounters {
    pub(crate) expiring_soon: AtomicU64,
    pub(crate) expired_accepted: AtomicU64,
    pub(crate) expired_rejected: AtomicU64,
}

/// webpki's verdict, with expiry decided by policy.
#[derive(Debug)]
pub(crate) struct ExpiryVerifier {
    pub(crate) inner: Arc<WebPkiServerVerifier>,
    pub(crate) policy: ExpiredPolicy,
    pub(crate) window: Duration,
    pub(crate) counters: Arc<TlsCounters>,
    /// The last warning logged for the operator, as (kind, notAfter): each certificate's
    /// warning is logged once per kind, not at every call (each call still counts).
    pub(crate) warned: Mutex<Option<(&'static str, u64)>>,
}

/// The leaf's notAfter, since the Unix epoch (`None` if it does not parse).
fn not_after(leaf: &CertificateDer<'_>) -> Option<Duration> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(leaf.as_ref()).ok()?;
    Some(cert.tbs_certificate.validity.not_after.to_unix_duration())
}

fn is_expiry(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    )
}

impl ExpiryVerifier {
    fn warn_once(&self, kind: &'static str, not_after: u64, log: impl FnOnce()) {
        let mut warned = self.warned.lock().expect("TLS warnings poisoned");
        if *warned != Some((kind, not_after)) {
            *warned = Some((kind, not_after));
            log();
        }
    }
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl ServerCertVerifier for ExpiryVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verify = |at: UnixTime| {
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, at)
        };
        let first = verify(now);
        let checked = match &first {
            Ok(_) => Checked::Valid,
            Err(e) if is_expiry(e) => Checked::Expired,
            Err(_) => Checked::Invalid,
        };
        let now_d = Duration::from_secs(now.as_secs());
        let leaf_not_after = not_after(end_entity);
        let name = server_name.to_str();
        let expiry = leaf_not_after.map_or(0, |d| d.as_secs());
        match decide(self.policy, self.window, now_d, leaf_not_after, checked) {
            Decision::Accept | Decision::Reject => first,
            Decision::AcceptExpiringSoon { left } => {
                count(&self.counters.expiring_soon);
                crate::met!(
                    "tls.expiring_soon",
                    "the model API's certificate for {name} expires in {} s (not after {expiry} s since the epoch)",
                    left.as_secs()
                );
                self.warn_once("expiring_soon", expiry, || {
                    tracing::warn!(
                        "the model API's certificate for {name} expires in {} h: renew it",
                        left.as_secs() / 3600
                    )
                });
                first
            }
            Decision::RejectExpired => {
                count(&self.counters.expired_rejected);
                crate::met!(
                    "tls.expired_rejected",
                    "the model API's certificate for {name} expired (not after {expiry} s, now {} s since the epoch): refused",
                    now.as_secs()
                );
                self.warn_once("expired_rejected", expiry, || {
                    tracing::error!(
                        "refusing the model API's expired certificate for {name}: every call fails until it is renewed (or blocking is turned off)"
                    )
                });
                first
            }
            Decision::RecheckAt { at } => {
                let verified = verify(UnixTime::since_unix_epoch(at))?;
                let ago = now_d.saturating_sub(at).as_secs();
                count(&self.counters.expired_accepted);
                crate::met!(
                    "tls.expired_accepted",
                    "the model API's certificate for {name} expired {ago} s ago: accepted with a warning (blocking is off)"
                );
                self.warn_once("expired_accepted", expiry, || {
                    tracing::warn!(
                        "accepting the model API's expired certificate for {name} (expired {ago} s ago): blocking is off; renew it"
                    )
                });
                Ok(verified)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Checked::*;
    use ExpiredPolicy::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(days: u32) -> Duration {
        DAY * days
    }

    #[test]
    fn a_valid_certificate_far_from_expiry_is_accepted_silently() {
        for policy in [Block, Warn] {
            assert_eq!(
                decide(policy, DAY * 7, at(10), Some(at(30)), Valid),
                Decision::Accept
            );
        }
    }

    #[test]
    fn a_valid_certificate_inside_the_window_warns_with_the_time_left() {
        assert_eq!(
            decide(Block, DAY * 7, at(25), Some(at(30)), Valid),
            Decision::AcceptExpiringSoon { left: DAY * 5 }
        );
        // The window's edge counts as inside it.
        assert_eq!(
            decide(Warn, DAY * 7, at(23), Some(at(30)), Valid),
            Decision::AcceptExpiringSoon { left: DAY * 7 }
        );
    }

    #[test]
    fn an_expired_certificate_is_refused_in_block_mode_and_rechecked_in_warn_mode() {
        assert_eq!(
            decide(Block, DAY, at(31), Some(at(30)), Expired),
            Decision::RejectExpired
        );
        assert_eq!(
            decide(Warn, DAY, at(31), Some(at(30)), Expired),
            Decision::RecheckAt { at: at(30) }
        );
        // Without a readable notAfter there is nothing to recheck against.
        assert_eq!(decide(Warn, DAY, at(31), None, Expired), Decision::Reject);
    }

    #[test]
    fn any_other_failure_is_refused_whatever_the_policy() {
        for policy in [Block, Warn] {
            assert_eq!(
                decide(policy, DAY, at(1), Some(at(30)), Invalid),
                Decision::Reject
            );
        }
    }
}
