//! Test-only certificates for the TLS scenarios: a CA root and a leaf it signs, both
//! Ed25519 (whose signatures draw no randomness) with keys made from seeded bytes, so a
//! run's certificates are a function of its seed. Never use these outside a simulated
//! world: the keys are as predictable as the seed.

use crate::scenario::Failure;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use engine::upstream::TlsIdentity;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ED25519,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use sim::SimRng;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A CA root (what the engine trusts) and the identity its server presents.
pub struct TestPki {
    pub root: Vec<u8>,
    pub identity: TlsIdentity,
    /// The leaf's notAfter (whole seconds, as X.509 keeps it).
    pub leaf_not_after: SystemTime,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::correctness(format!("test certificates: {what}: {e}"))
}

/// An Ed25519 key pair (PKCS#8 DER and rcgen's view of it) from the seeded stream.
fn seeded_key(rng: &mut SimRng) -> Result<(Vec<u8>, KeyPair), Failure> {
    let mut secret = [0u8; 32];
    rng.fill(&mut secret);
    let pkcs8 = ed25519_dalek::SigningKey::from_bytes(&secret)
        .to_pkcs8_der()
        .map_err(|e| failed("PKCS#8", e))?
        .as_bytes()
        .to_vec();
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(pkcs8.as_slice()),
        &PKCS_ED25519,
    )
    .map_err(|e| failed("key", e))?;
    Ok((pkcs8, pair))
}

fn x509_time(t: SystemTime) -> Result<time::OffsetDateTime, Failure> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|e| failed("time", e))?;
    time::OffsetDateTime::from_unix_timestamp(secs.as_secs() as i64).map_err(|e| failed("time", e))
}

/// A root valid from a day before `from` for ten years, and a leaf for `name` valid
/// from a day before `from` until `leaf_not_after`; keys from `seed`.
pub fn test_pki(
    seed: u64,
    name: &str,
    from: SystemTime,
    leaf_not_after: SystemTime,
) -> Result<TestPki, Failure> {
    let mut rng = SimRng::new(seed, "tls.test_pki");
    let day = Duration::from_secs(86_400);
    let not_before = x509_time(from - day)?;

    let (_, ca_key) = seeded_key(&mut rng)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA", e))?;
    ca.distinguished_name
        .push(DnType::CommonName, "scenario test CA (test only)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = x509_time(from + day * 3650)?;
    let root = ca.self_signed(&ca_key).map_err(|e| failed("CA", e))?;
    let issuer = Issuer::new(ca, ca_key);

    let (leaf_pkcs8, leaf_key) = seeded_key(&mut rng)?;
    let mut leaf = CertificateParams::new(vec![name.to_string()]).map_err(|e| failed("leaf", e))?;
    leaf.distinguished_name.push(DnType::CommonName, name);
    leaf.not_before = not_before;
    leaf.not_after = x509_time(leaf_not_after)?;
    let leaf = leaf
        .signed_by(&leaf_key, &issuer)
        .map_err(|e| failed("leaf", e))?;
    let whole_secs = leaf_not_after
        .duration_since(UNIX_EPOCH)
        .map_err(|e| failed("time", e))?
        .as_secs();
    Ok(TestPki {
        root: root.der().to_vec(),
        identity: TlsIdentity {
            cert_chain: vec![leaf.der().to_vec()],
            key_pkcs8: leaf_pkcs8,
        },
        leaf_not_after: UNIX_EPOCH + Duration::from_secs(whole_secs),
    })
}
