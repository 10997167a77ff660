//! What a TLS handshake takes from the environment: its clock and, in a simulated world,
//! its randomness.
//!
//! rustls reads time through a `TimeProvider` (here the host's wall clock, so a
//! simulated clock jump makes a certificate expire inside a run) and randomness through
//! the `CryptoProvider`'s `&'static dyn SecureRandom` and its key-exchange groups
//! (`&'static dyn SupportedKxGroup`). In the real environment ring's own randomness is
//! the right one. In a simulated world every random byte must come from the run's seed:
//! the handshake draws from the host's `Env::random()`.
//!
//! Why a thread-local and not a leaked object per engine: rustls wants `'static`
//! sources, and leaking one per `Engine::start` would grow without bound over a sweep
//! (thousands of runs and restarts per process) and keep each finished world's RNG
//! alive. One world is one OS thread, and rustls draws only while the handshake is being
//! driven, so each poll of a TLS stream (and the call that starts a client handshake)
//! runs inside [`with_random`], which names the host whose stream it is; the client
//! and the server of one world interleave on that thread, each poll under its own host.
//! A draw outside any scope fails the handshake (fail closed), never falls back to the
//! OS.

use crate::env::{Env, NetAddr, NetStream};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;
use rustls::{Error, NamedGroup, PeerMisbehaved};
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::UNIX_EPOCH;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The host's wall clock, as rustls reads time (certificate validity).
pub(crate) struct EnvTime(pub(crate) Env);

impl fmt::Debug for EnvTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvTime({})", self.0.host())
    }
}

impl TimeProvider for EnvTime {
    fn current_time(&self) -> Option<UnixTime> {
        // A clock before 1970 has no Unix time: rustls then refuses to judge validity.
        let since = self.0.wall_now().duration_since(UNIX_EPOCH).ok()?;
        Some(UnixTime::since_unix_epoch(since))
    }
}

/// The crypto provider for `env`: ring's as it is on a real machine; in a simulated
/// world ring's algorithms with the randomness drawn from the host's seeded stream.
pub(crate) fn provider(env: &Env) -> Arc<CryptoProvider> {
    // ring is the provider CI can build (aws-lc-rs needs cmake); its post-quantum
    // deprecation note does not apply to a model API reached by a classical group.
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    if env.random().os_entropy() {
        return Arc::new(ring);
    }
    Arc::new(CryptoProvider {
        kx_groups: vec![&SEEDED_X25519],
        secure_random: &SeededRandom,
        ..ring
    })
}

thread_local! {
    /// The random sources of the hosts whose TLS work runs on this thread now (a stack,
    /// innermost last).
    static CURRENT: RefCell<Vec<Env>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `env`'s random source as the one the handshake draws from.
pub(crate) fn with_random<T>(env: &Env, f: impl FnOnce() -> T) -> T {
    CURRENT.with(|c| c.borrow_mut().push(env.clone()));
    // Popped on unwind too, so a panicking poll cannot leave another host's source.
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            CURRENT.with(|c| c.borrow_mut().pop());
        }
    }
    let _pop = Pop;
    f()
}

fn fill_current(out: &mut [u8]) -> Result<(), GetRandomFailed> {
    CURRENT.with(|c| match c.borrow().last() {
        Some(env) => {
            env.random().fill_bytes(out);
            Ok(())
        }
        None => Err(GetRandomFailed),
    })
}

/// rustls' random source in a simulated world: the current scope's host.
#[derive(Debug)]
struct SeededRandom;

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        fill_current(buf)
    }
}

/// X25519 whose secret comes from the current scope's host (x25519-dalek: ring's own
/// draws from the OS and takes no source).
#[derive(Debug)]
struct SeededX25519;

static SEEDED_X25519: SeededX25519 = SeededX25519;

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut bytes = [0u8; 32];
        fill_current(&mut bytes)?;
        let secret = x25519_dalek::StaticSecret::from(bytes);
        let public = x25519_dalek::PublicKey::from(&secret);
        Ok(Box::new(SeededKeyExchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct SeededKeyExchange {
    secret: x25519_dalek::StaticSecret,
    public: x25519_dalek::PublicKey,
}

impl ActiveKeyExchange for SeededKeyExchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // A low-order peer key gives an all-zero secret (RFC 7748 §6.1): refuse it.
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_bytes()
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// A TLS stream (or a handshake future) driven under its host's random source.
pub(crate) struct Seeded<T> {
    pub(crate) env: Env,
    pub(crate) inner: T,
}

impl<T: Future + Unpin> Future for Seeded<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        with_random(&this.env, || Pin::new(&mut this.inner).poll(cx))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Seeded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        with_random(&this.env, || Pin::new(&mut this.inner).poll_read(cx, buf))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Seeded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        with_random(&this.env, || Pin::new(&mut this.inner).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        with_random(&this.env, || Pin::new(&mut this.inner).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        with_random(&this.env, || Pin::new(&mut this.inner).poll_shutdown(cx))
    }
}

/// A TLS stream over an environment stream is an environment stream too.
pub(crate) type ClientStream = Seeded<tokio_rustls::client::TlsStream<Box<dyn NetStream>>>;
pub(crate) type ServerStream = Seeded<tokio_rustls::server::TlsStream<Box<dyn NetStream>>>;

impl NetStream for ClientStream {
    fn peer_addr(&self) -> NetAddr {
        self.inner.get_ref().0.peer_addr()
    }
    fn local_addr(&self) -> NetAddr {
        self.inner.get_ref().0.local_addr()
    }
}

impl NetStream for ServerStream {
    fn peer_addr(&self) -> NetAddr {
        self.inner.get_ref().0.peer_addr()
    }
    fn local_addr(&self) -> NetAddr {
        self.inner.get_ref().0.local_addr()
    }
}
