//! The session lock as an engine instance uses it: `acquire(key)` retries `BUSY` on the
//! backoff schedule until the acquire timeout, `release` gives the lease back.
//!
//! Each acquire has its own owner token (`<owner>#<n>`), so two acquires of one
//! instance exclude each other like those of two instances. Connections to the service
//! are kept and reused (one per concurrent request); one that fails or does not answer
//! within `request_timeout` is dropped and the try counts as refused.

use super::backoff::{AcquireSchedule, LockBackoff, NextTry};
use super::protocol::{LockCommand, LockReply, check_token};
use crate::env::{Env, NetAddr, NetStream};
use crate::workers::program::lines::{Line, LineReader};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

/// How a [`SessionLock`] behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionLockConfig {
    pub backoff: LockBackoff,
    /// The lease each grant carries: a holder that dies frees its key after this.
    pub ttl: Duration,
    /// One request (connect, send, reply) fails after this long.
    pub request_timeout: Duration,
}

impl SessionLockConfig {
    /// The standard backoff (10 ms doubling to 500 ms, ±10 %, 5 s), 30 s leases, 1 s
    /// per request.
    pub fn standard() -> Self {
        SessionLockConfig {
            backoff: LockBackoff::standard(),
            ttl: Duration::from_secs(30),
            request_timeout: Duration::from_secs(1),
        }
    }

    pub fn check(&self) {
        self.backoff.check();
        let ttl_ms = self.ttl.as_millis();
        assert!(
            self.ttl.subsec_nanos().is_multiple_of(1_000_000)
                && (1..=u128::from(super::protocol::TTL_MS_MAX)).contains(&ttl_ms),
            "ttl {:?} must be whole milliseconds within 1 ms..=1 h",
            self.ttl
        );
        assert!(
            !self.request_timeout.is_zero(),
            "request_timeout must be positive"
        );
    }
}

/// A lock that is held: give it back with [`SessionLock::release`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub key: String,
    /// The owner token this acquire used.
    pub token: String,
    /// From the call to `acquire` until the grant.
    pub waited: Duration,
    /// Tries made, the granted one included.
    pub attempts: u32,
    /// Tries answered `BUSY`.
    pub busy: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockError {
    /// The key stayed busy for the whole acquire timeout.
    Timeout {
        key: String,
        waited: Duration,
        attempts: u32,
        busy: u32,
    },
    /// The acquire timeout passed and the last try could not reach the service.
    Unreachable {
        key: String,
        detail: String,
        waited: Duration,
        attempts: u32,
    },
    /// RELEASE of a lease that had expired (someone else may have taken the key since).
    NotOwner { key: String, token: String },
    /// A key the protocol cannot carry.
    InvalidKey { key: String, reason: String },
    /// The service answered something this client does not expect (`ERR …`, or a reply
    /// that does not fit the command).
    Protocol { detail: String },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Timeout {
                key,
                waited,
                attempts,
                busy,
            } => write!(
                f,
                "lock {key:?} still busy after {} ms ({attempts} tries, {busy} busy): \
                 acquire timed out; the key is contended, retry later or spread the load",
                waited.as_millis()
            ),
            LockError::Unreachable {
                key,
                detail,
                waited,
                attempts,
            } => write!(
                f,
                "lock {key:?}: the lock service could not be reached within {} ms \
                 ({attempts} tries; last error: {detail})",
                waited.as_millis()
            ),
            LockError::NotOwner { key, token } => write!(
                f,
                "lock {key:?} was no longer held by {token} at release: its lease expired \
                 (raise the TTL above the longest critical section)"
            ),
            LockError::InvalidKey { key, reason } => {
                write!(f, "lock key {key:?} is not valid: {reason}")
            }
            LockError::Protocol { detail } => write!(f, "lock service protocol error: {detail}"),
        }
    }
}

impl std::error::Error for LockError {}

type Conn = LineReader<Box<dyn NetStream>>;

/// Why one try did not get an answer.
enum TryError {
    /// Connect, write, read or the request timeout failed: the try counts as refused.
    Io(String),
    /// The service answered nonsense.
    Protocol(String),
}

impl TryError {
    /// The error of a single request about `key`, `waited` after it was asked.
    fn for_key(self, key: &str, waited: Duration) -> LockError {
        match self {
            TryError::Io(detail) => LockError::Unreachable {
                key: key.to_string(),
                detail,
                waited,
                attempts: 1,
            },
            TryError::Protocol(detail) => LockError::Protocol { detail },
        }
    }
}

/// The client of one engine instance.
pub struct SessionLock {
    env: Env,
    server: NetAddr,
    owner: String,
    config: SessionLockConfig,
    idle: Mutex<Vec<Conn>>,
    next_token: AtomicU64,
}

impl SessionLock {
    /// A client of the lock service at `server`, acquiring as `owner` (a name for this
    /// instance: printable ASCII without spaces; each acquire appends `#<n>`).
    pub fn new(env: Env, server: NetAddr, owner: &str, config: SessionLockConfig) -> Self {
        config.check();
        if let Err(reason) = check_token("owner", &format!("{owner}#{}", u64::MAX)) {
            panic!("lock owner {owner:?} is not valid: {reason}");
        }
        SessionLock {
            env,
            server,
            owner: owner.to_string(),
            config,
            idle: Mutex::new(Vec::new()),
            next_token: AtomicU64::new(1),
        }
    }

    pub fn config(&self) -> &SessionLockConfig {
        &self.config
    }

    /// Takes `key`, retrying while it is busy, for at most the acquire timeout (plus the
    /// last try's round trip).
    pub async fn acquire(&self, key: &str) -> Result<Held, LockError> {
        check_token("key", key).map_err(|reason| LockError::InvalidKey {
            key: key.to_string(),
            reason,
        })?;
        let token = format!(
            "{}#{}",
            self.owner,
            self.next_token.fetch_add(1, Ordering::Relaxed)
        );
        let command = LockCommand::Acquire {
            key: key.to_string(),
            owner: token.clone(),
            ttl: self.config.ttl,
        };
        let started = Instant::now();
        let mut schedule = AcquireSchedule::new(self.config.backoff.clone(), Duration::ZERO);
        let (mut attempts, mut busy) = (0u32, 0u32);
        loop {
            attempts += 1;
            let last_error = match self.request(&command).await {
                Ok(LockReply::Ok) => {
                    return Ok(Held {
                        key: key.to_string(),
                        token,
                        waited: started.elapsed(),
                        attempts,
                        busy,
                    });
                }
                Ok(LockReply::Busy) => {
                    busy += 1;
                    None
                }
                Ok(other) => {
                    return Err(LockError::Protocol {
                        detail: format!("ACQUIRE {key} answered {other}"),
                    });
                }
                Err(TryError::Protocol(detail)) => return Err(LockError::Protocol { detail }),
                Err(TryError::Io(detail)) => Some(detail),
            };
            // Draw only when jitter uses it, so turning jitter off moves no other draw.
            let draw = if self.config.backoff.jitter.is_some() {
                self.env.random().next_u64()
            } else {
                0
            };
            match schedule.on_refused(started.elapsed(), draw) {
                NextTry::After(delay) => tokio::time::sleep(delay).await,
                NextTry::GiveUp { waited } => {
                    tracing::debug!(
                        target: "engine::sessions::lock",
                        "acquire of {key} by {token} gave up after {} ms and {attempts} tries",
                        waited.as_millis()
                    );
                    return Err(match last_error {
                        None => LockError::Timeout {
                            key: key.to_string(),
                            waited,
                            attempts,
                            busy,
                        },
                        Some(detail) => LockError::Unreachable {
                            key: key.to_string(),
                            detail,
                            waited,
                            attempts,
                        },
                    });
                }
            }
        }
    }

    /// Gives `held` back. `NotOwner` means the lease had expired before the release:
    /// the critical section may have overlapped another holder's.
    pub async fn release(&self, held: Held) -> Result<(), LockError> {
        let command = LockCommand::Release {
            key: held.key.clone(),
            owner: held.token.clone(),
        };
        match self.request(&command).await {
            Ok(LockReply::Ok) => Ok(()),
            Ok(LockReply::NotOwner) => Err(LockError::NotOwner {
                key: held.key,
                token: held.token,
            }),
            Ok(other) => Err(LockError::Protocol {
                detail: format!("RELEASE {} answered {other}", held.key),
            }),
            // Unreachable: the lease runs out by itself; say so rather than hide it.
            Err(e) => Err(e.for_key(&held.key, Duration::ZERO)),
        }
    }

    /// Holds `key` for `hold` from now at the service (see `lock::holds`), waiting at
    /// most `within` for its answer.
    pub async fn hold(&self, key: &str, hold: Duration, within: Duration) -> Result<(), LockError> {
        let command = LockCommand::Hold {
            key: key.to_string(),
            hold,
        };
        let started = Instant::now();
        match self.request_within(&command, within).await {
            Ok(LockReply::Ok) => Ok(()),
            Ok(other) => Err(LockError::Protocol {
                detail: format!("HOLD {key} answered {other}"),
            }),
            Err(e) => Err(e.for_key(key, started.elapsed())),
        }
    }

    /// How much of `key`'s hold is left at the service (`None`: not held), waiting at
    /// most `within` for its answer.
    pub async fn check(&self, key: &str, within: Duration) -> Result<Option<Duration>, LockError> {
        let command = LockCommand::Check {
            key: key.to_string(),
        };
        let started = Instant::now();
        match self.request_within(&command, within).await {
            Ok(LockReply::Clear) => Ok(None),
            Ok(LockReply::Held(left)) => Ok(Some(left)),
            Ok(other) => Err(LockError::Protocol {
                detail: format!("CHECK {key} answered {other}"),
            }),
            Err(e) => Err(e.for_key(key, started.elapsed())),
        }
    }

    async fn request(&self, command: &LockCommand) -> Result<LockReply, TryError> {
        self.request_within(command, self.config.request_timeout)
            .await
    }

    /// One command and its reply, on a kept connection or a new one, within `within`.
    /// A kept connection may have broken while idle (the service restarted, a reset):
    /// a command that may be repeated is then sent again on a new connection, within
    /// what is left of `within`.
    async fn request_within(
        &self,
        command: &LockCommand,
        within: Duration,
    ) -> Result<LockReply, TryError> {
        let started = Instant::now();
        let kept = self.idle.lock().expect("lock client poisoned").pop();
        let was_kept = kept.is_some();
        match self.exchange_within(command, kept, within).await {
            Err(TryError::Io(detail)) if was_kept && command.may_repeat() => {
                let left = within.saturating_sub(started.elapsed());
                if left.is_zero() {
                    return Err(TryError::Io(detail));
                }
                tracing::debug!(
                    target: "engine::sessions::lock",
                    "a kept connection to the lock service failed ({detail}): a new one"
                );
                self.exchange_within(command, None, left).await
            }
            other => other,
        }
    }

    async fn exchange_within(
        &self,
        command: &LockCommand,
        kept: Option<Conn>,
        within: Duration,
    ) -> Result<LockReply, TryError> {
        let exchange = async {
            let mut conn = match kept {
                Some(conn) => conn,
                None => LineReader::new(
                    self.env
                        .net()
                        .connect(&self.server)
                        .await
                        .map_err(|e| TryError::Io(format!("connect {}: {e}", self.server)))?,
                ),
            };
            conn.get_mut()
                .write_all(command.encode().as_bytes())
                .await
                .map_err(|e| TryError::Io(format!("send: {e}")))?;
            let line = conn
                .next_line()
                .await
                .map_err(|e| TryError::Io(format!("receive: {e}")))?;
            let reply = match line {
                Line::Text(bytes) => LockReply::parse(&bytes).map_err(TryError::Protocol)?,
                Line::TooLong => return Err(TryError::Protocol("reply line too long".into())),
                Line::Eof => return Err(TryError::Io("the service closed the connection".into())),
            };
            Ok((conn, reply))
        };
        match tokio::time::timeout(within, exchange).await {
            Err(_) => Err(TryError::Io(format!(
                "no reply within {} ms",
                within.as_millis()
            ))),
            Ok(Err(e)) => Err(e),
            Ok(Ok((conn, reply))) => {
                if let LockReply::Err(reason) = &reply {
                    return Err(TryError::Protocol(format!(
                        "the service refused the command: {reason}"
                    )));
                }
                self.idle.lock().expect("lock client poisoned").push(conn);
                Ok(reply)
            }
        }
    }
}
