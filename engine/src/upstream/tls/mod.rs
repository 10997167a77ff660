//! TLS to the model API: rustls (on ring) over the environment's streams.
//!
//! The client's configuration is built once per upstream client (`Engine::start`):
//! trusted roots, the name the certificate must carry, and what an expired or
//! soon-expiring certificate means (`expiry.rs`). Certificates are judged by the host's
//! wall clock and a simulated world's handshakes draw their randomness from the run's
//! seed (`from_env.rs`). TLS 1.3 only, and no session resumption: every call is a new
//! connection whose certificate is checked again (a resumed session would skip the
//! check, so a certificate that expired meanwhile would go unnoticed).
//! `server.rs` is the local model server's side.

mod expiry;
mod from_env;
mod server;

pub use expiry::{Checked, Decision, ExpiredPolicy, decide};
pub use server::TlsIdentity;
pub(crate) use server::TlsServer;

use crate::env::{Env, NetStream};
use expiry::{ExpiryVerifier, TlsCounters};
use from_env::{EnvTime, Seeded, with_random};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// How the engine reaches its model API over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificates trusted as roots, DER-encoded.
    pub roots: Vec<Vec<u8>>,
    /// The name the API's certificate must carry (a DNS name or an IP address).
    pub server_name: String,
    /// What an expired certificate means.
    pub expired: ExpiredPolicy,
    /// A valid certificate expiring within this long of the host's clock is warned of
    /// (`tls.expiring_soon`).
    pub expiring_soon_window: Duration,
}

impl TlsConfig {
    /// Trusts `roots` for `server_name`, blocking expired certificates and warning 14
    /// days ahead (the usual renewal lead of automated certificates is 30 days; 14
    /// leaves room for one failed renewal to be noticed).
    pub fn new(roots: Vec<Vec<u8>>, server_name: impl Into<String>) -> Self {
        TlsConfig {
            roots,
            server_name: server_name.into(),
            expired: ExpiredPolicy::Block,
            expiring_soon_window: Duration::from_secs(14 * 86_400),
        }
    }
}

/// The certificates of a PEM text, DER-encoded, in order (at least one).
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM text".to_string());
    }
    Ok(certs)
}

/// What the TLS checks met, for the client's stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Handshakes whose certificate was valid but inside the expiring-soon window.
    pub expiring_soon: u64,
    /// Expired certificates accepted with a warning (`ExpiredPolicy::Warn`).
    pub expired_accepted: u64,
    /// Expired certificates refused (`ExpiredPolicy::Block`).
    pub expired_rejected: u64,
}

/// The client side, built once per upstream client.
pub(crate) struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    counters: Arc<TlsCounters>,
}

impl TlsClient {
    /// Builds the client for `env`'s host; a root that does not parse or a bad name is
    /// an error that says which.
    pub(crate) fn new(env: &Env, tls: &TlsConfig) -> Result<TlsClient, String> {
        let provider = from_env::provider(env);
        let mut roots = RootCertStore::empty();
        for (i, der) in tls.roots.iter().enumerate() {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| format!("TLS root {i} is not a usable certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("TLS is configured without a trusted root".to_string());
        }
        let server_name = ServerName::try_from(tls.server_name.clone())
            .map_err(|e| format!("TLS server name {:?}: {e}", tls.server_name))?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("TLS verifier: {e}"))?;
        let counters = Arc::new(TlsCounters::default());
        let verifier = Arc::new(ExpiryVerifier {
            inner,
            policy: tls.expired,
            window: tls.expiring_soon_window,
            counters: counters.clone(),
            warned: std::sync::Mutex::new(None),
        });
        let mut config =
            ClientConfig::builder_with_details(provider, Arc::new(EnvTime(env.clone())))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| format!("TLS versions: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
        config.resumption = Resumption::disabled();
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
            counters,
        })
    }

    /// Runs the handshake over `stream`; the certificate is judged as configured. A
    /// refused certificate fails with an error naming why (its expiry, its issuer...).
    pub(crate) async fn connect(
        &self,
        env: &Env,
        stream: Box<dyn NetStream>,
    ) -> io::Result<Box<dyn NetStream>> {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        // The ClientHello (its random, its key share) is made here, synchronously.
        let connecting = with_random(env, || connector.connect(self.server_name.clone(), stream));
        let tls = Seeded {
            env: env.clone(),
            inner: connecting,
        }
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
        Ok(Box::new(Seeded {
            env: env.clone(),
            inner: tls,
        }))
    }

    pub(crate) fn stats(&self) -> TlsStats {
        let c = &self.counters;
        TlsStats {
            expiring_soon: c.expiring_soon.load(Ordering::Relaxed),
            expired_accepted: c.expired_accepted.load(Ordering::Relaxed),
            expired_rejected: c.expired_rejected.load(Ordering::Relaxed),
        }
    }
}
