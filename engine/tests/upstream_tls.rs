//! The upstream client over TLS to the local model server, for real on loopback (ring's
//! own randomness, the machine's clock): a certificate valid, inside the warning window,
//! expired under each policy, and expired from an issuer the engine does not trust.

use engine::env::real::{RealEnvOptions, real_env};
use engine::env::{Env, NetAddr};
use engine::upstream::{
    ExpiredPolicy, LocalUpstream, TlsConfig, TlsIdentity, TlsStats, UpstreamClient, UpstreamConfig,
    UpstreamError,
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, PKCS_ED25519};
use std::sync::Arc;
use std::time::Duration;

const DAY: i64 = 86_400;

/// A CA (its root, DER) and a leaf for `localhost` it signs, valid until `now + days`.
fn pki(now_secs: i64, days: i64) -> (Vec<u8>, TlsIdentity) {
    let at = |secs: i64| time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let ca_key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = at(now_secs - 400 * DAY);
    ca.not_after = at(now_secs + 400 * DAY);
    let root = ca.self_signed(&ca_key).unwrap().der().to_vec();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.not_before = at(now_secs - 300 * DAY);
    leaf.not_after = at(now_secs + days * DAY);
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let identity = TlsIdentity {
        cert_chain: vec![leaf.der().to_vec()],
        key_pkcs8: leaf_key.serialize_der(),
    };
    (root, identity)
}

async fn serve_tls(env: &Env, identity: TlsIdentity) -> NetAddr {
    let upstream = LocalUpstream::new("key-1", None);
    let listener = env.net().bind(0).await.expect("bind loopback");
    let addr = NetAddr::new("127.0.0.1", listener.local_addr().port);
    let serve_env = env.clone();
    env.spawn("upstream", async move {
        upstream
            .serve_tls(serve_env, listener, &identity)
            .await
            .expect("the identity builds")
    });
    addr
}

fn client(env: &Env, addr: &NetAddr, root: Vec<u8>, expired: ExpiredPolicy) -> Arc<UpstreamClient> {
    let mut config = UpstreamConfig::new(addr.clone(), "key-1");
    config.tls = Some(TlsConfig {
        expired,
        expiring_soon_window: Duration::from_secs(14 * DAY as u64),
        ..TlsConfig::new(vec![root], "localhost")
    });
    UpstreamClient::try_new(env.clone(), config).expect("the TLS configuration builds")
}

#[tokio::test]
async fn certificates_are_judged_by_the_clock_and_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    let now = (env.wall_unix_ms() / 1000) as i64;

    let (root, identity) = pki(now, 60);
    let addr = serve_tls(&env, identity).await;
    let c = client(&env, &addr, root, ExpiredPolicy::Block);
    assert_eq!(c.complete("over tls").await.expect("answer"), "over tls");
    assert_eq!(c.stats().tls, TlsStats::default(), "nothing to warn of");

    let (root, identity) = pki(now, 3);
    let addr = serve_tls(&env, identity).await;
    let c = client(&env, &addr, root, ExpiredPolicy::Block);
    assert_eq!(c.complete("soon").await.expect("answer"), "soon");
    assert_eq!(c.stats().tls.expiring_soon, 1);

    let (root, identity) = pki(now, -1);
    let addr = serve_tls(&env, identity).await;
    let blocking = client(&env, &addr, root.clone(), ExpiredPolicy::Block);
    match blocking.complete("refused").await {
        Err(UpstreamError::Unavailable { detail }) => {
            assert!(
                detail.contains("expired"),
                "the error names the expiry: {detail}"
            )
        }
        other => panic!("an expired certificate in blocking mode: {other:?}"),
    }
    assert_eq!(blocking.stats().tls.expired_rejected, 1);
    let warning = client(&env, &addr, root, ExpiredPolicy::Warn);
    assert_eq!(warning.complete("warned").await.expect("answer"), "warned");
    assert_eq!(
        warning.stats().tls,
        TlsStats {
            expired_accepted: 1,
            ..TlsStats::default()
        }
    );

    // Expired and from an issuer the engine does not trust: refused even when warning.
    let (other_root, _) = pki(now, 60);
    let stranger = client(&env, &addr, other_root, ExpiredPolicy::Warn);
    assert!(matches!(
        stranger.complete("stranger").await,
        Err(UpstreamError::Unavailable { .. })
    ));
    assert_eq!(stranger.stats().tls, TlsStats::default());
}

#[tokio::test]
async fn a_configuration_that_cannot_build_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    let addr = NetAddr::new("127.0.0.1", 9);
    let mut config = UpstreamConfig::new(addr, "key-1");
    config.tls = Some(TlsConfig::new(
        vec![b"not a certificate".to_vec()],
        "localhost",
    ));
    let e = UpstreamClient::try_new(env.clone(), config.clone())
        .err()
        .expect("refused");
    assert!(e.contains("TLS root 0"), "{e}");
    config.tls = Some(TlsConfig::new(Vec::new(), "localhost"));
    assert!(UpstreamClient::try_new(env, config).is_err());
}
