//! The server side of TLS, for the local model server: a certificate chain and its key,
//! each connection's handshake driven under the serving host's clock and randomness.

use super::from_env::{self, EnvTime, Seeded, with_random};
use crate::env::{Env, NetStream};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::io;
use std::sync::Arc;

/// What a TLS server presents: its certificate chain (leaf first, DER) and the leaf's
/// private key (PKCS#8 DER; Ed25519, whose signatures draw no randomness).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    pub cert_chain: Vec<Vec<u8>>,
    pub key_pkcs8: Vec<u8>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        write!(f, "TlsIdentity({} certificates)", self.cert_chain.len())
    }
}

impl TlsIdentity {
    /// From PEM text: the certificate chain (leaf first) and the leaf's PKCS#8 key
    /// (`engine upstream --tls-cert --tls-key`).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<TlsIdentity, String> {
        let cert_chain = super::certificates_from_pem(chain_pem)?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(key_pem)
            .map_err(|e| format!("the TLS key is not a PKCS#8 PEM key: {e}"))?;
        Ok(TlsIdentity {
            cert_chain,
            key_pkcs8: key.secret_pkcs8_der().to_vec(),
        })
    }
}

pub(crate) struct TlsServer {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TlsServer {
    pub(crate) fn new(env: &Env, identity: &TlsIdentity) -> Result<TlsServer, String> {
        let chain = identity
            .cert_chain
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.clone()));
        let mut config = ServerConfig::builder_with_details(
            from_env::provider(env),
            Arc::new(EnvTime(env.clone())),
        )
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS certificate or key: {e}"))?;
        // Clients do not resume (every call's certificate is checked): no tickets.
        config.send_tls13_tickets = 0;
        Ok(TlsServer {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub(crate) async fn accept(
        &self,
        env: &Env,
        stream: Box<dyn NetStream>,
    ) -> io::Result<Box<dyn NetStream>> {
        let accepting = with_random(env, || self.acceptor.accept(stream));
        let tls = Seeded {
            env: env.clone(),
            inner: accepting,
        }
        .await?;
        Ok(Box::new(Seeded {
            env: env.clone(),
            inner: tls,
        }))
    }
}
