//! The egress shell: one per engine. A request goes straight out while egress is up
//! and nothing waits; a request that cannot reach its target marks egress down and
//! waits in the buffer with every later one; one drain task (running while anything
//! waits) fails the requests past the age bound, probes when the probe core says, and
//! once a probe connects sends the waiting requests in the order they came.

use super::buffer::EgressBuffer;
use super::config::EgressConfig;
use super::error::EgressError;
use super::exchange::{self, ExchangeError, Target};
use super::probe::{ProbeCore, ProbeDelay, ProbeSchedule};
use crate::env::Env;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

type Reply = oneshot::Sender<Result<String, EgressError>>;

/// A buffered request: its number, where it goes, who waits for it.
struct Pending {
    number: u64,
    target: Target,
    reply: Reply,
}

/// One probe, as the engine made it (read by scenarios and operators).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeRecord {
    pub outage: u64,
    pub delay: ProbeDelay,
    pub started_at: Duration,
    /// When it connected or gave up (a held connect may complete once a partition
    /// heals, so a probe begun before a heal can connect).
    pub ended_at: Duration,
    /// The target answered (connected, or refused the connection).
    pub connected: bool,
}

/// What egress did so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressStats {
    pub outages: u64,
    pub restores: u64,
    /// Requests that waited in the buffer; the most that waited at once.
    pub buffered: u64,
    pub buffered_peak: usize,
    pub refused_full: u64,
    pub expired: u64,
    /// The numbers of the requests that waited, in the order they entered the buffer.
    pub buffered_order: Vec<u64>,
    /// The numbers of the buffered requests sent once egress was back, in the order
    /// they were answered.
    pub sent_from_buffer: Vec<u64>,
    pub probes: Vec<ProbeRecord>,
}

/// How a request began.
pub(crate) enum Sent {
    /// Answered (or failed) without waiting.
    Done(Result<String, EgressError>),
    /// It waits in the buffer: egress is down (outage number `outage`), or (`None`) up
    /// again with the requests of the outage still going out ahead of it.
    Buffered {
        outage: Option<u64>,
        reply: oneshot::Receiver<Result<String, EgressError>>,
    },
    /// The buffer is full: refused (`outage` as for `Buffered`).
    Refused {
        outage: Option<u64>,
        error: EgressError,
    },
}

struct State {
    probe: ProbeCore,
    buffer: EgressBuffer<Pending>,
    draining: bool,
    next_number: u64,
    /// Sessions told of an outage (its number), until told it is over.
    told: BTreeMap<String, u64>,
    stats: EgressStats,
}

pub struct Egress {
    env: Env,
    config: EgressConfig,
    origin: Instant,
    state: Mutex<State>,
    restored: watch::Sender<u64>,
}

impl Egress {
    pub fn new(env: Env, config: EgressConfig) -> Arc<Egress> {
        config.check();
        let schedule = ProbeSchedule {
            first: config.probe_first,
            factor: config.probe_factor,
            cap: config.probe_cap,
            jitter_percent: config.probe_jitter_percent,
        };
        Arc::new(Egress {
            env,
            origin: Instant::now(),
            state: Mutex::new(State {
                probe: ProbeCore::new(schedule),
                buffer: EgressBuffer::new(config.buffered_max, config.age_max),
                draining: false,
                next_number: 0,
                told: BTreeMap::new(),
                stats: EgressStats::default(),
            }),
            config,
            restored: watch::channel(0).0,
        })
    }

    pub fn config(&self) -> &EgressConfig {
        &self.config
    }

    /// Monotonic time since egress was built.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("egress state poisoned")
    }

    pub fn is_up(&self) -> bool {
        self.state().probe.is_up()
    }

    pub fn stats(&self) -> EgressStats {
        let s = self.state();
        let mut stats = s.stats.clone();
        stats.buffered_peak = s.buffer.peak();
        stats
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.state().buffer.len()
    }

    /// GET `target` (`[http://]HOST:PORT[/PATH]`): its body, waiting while egress is down.
    pub async fn send(self: &Arc<Self>, target: &str) -> Result<String, EgressError> {
        match self.begin(target).await {
            Sent::Done(result) => result,
            Sent::Buffered { reply, .. } => reply.await.unwrap_or(Err(EgressError::Abandoned)),
            Sent::Refused { error, .. } => Err(error),
        }
    }

    /// Begins a request: straight out while up and nothing waits (so nothing overtakes
    /// a waiting request), else into the buffer.
    pub(crate) async fn begin(self: &Arc<Self>, target: &str) -> Sent {
        let target = match Target::parse(target) {
            Ok(t) => t,
            Err(e) => return Sent::Done(Err(e)),
        };
        let number = {
            let mut s = self.state();
            s.next_number += 1;
            let number = s.next_number;
            if !s.probe.is_up() || s.draining {
                drop(s);
                return self.enqueue(number, target);
            }
            number
        };
        match self.exchange(&target, number).await {
            Ok(body) => Sent::Done(Ok(body)),
            Err(ExchangeError::Answered(e)) => Sent::Done(Err(e)),
            Err(ExchangeError::Unreached(e)) => {
                self.mark_down(&target, &e);
                self.enqueue(number, target)
            }
        }
    }

    async fn exchange(&self, target: &Target, number: u64) -> Result<String, ExchangeError> {
        let c = &self.config;
        let get = exchange::get(&self.env, target, number, c.connect_timeout, c.body_max);
        match tokio::time::timeout(c.exchange_timeout, get).await {
            Ok(result) => result,
            Err(_) => Err(ExchangeError::Unreached(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no whole answer within {} s", c.exchange_timeout.as_secs()),
            ))),
        }
    }

    fn mark_down(&self, target: &Target, why: &std::io::Error) {
        let random = self.env.random().next_u64();
        let mut s = self.state();
        if s.probe.handle_unreachable(self.now(), &target.addr, random) {
            s.stats.outages += 1;
            crate::met!(
                "egress.degraded",
                "egress down: {} not reached ({why}); requests wait, probes follow",
                target.addr
            );
        }
    }

    fn enqueue(self: &Arc<Self>, number: u64, target: Target) -> Sent {
        let (tx, rx) = oneshot::channel();
        let item = Pending {
            number,
            target,
            reply: tx,
        };
        let mut s = self.state();
        // Up again, the backlog draining: this one only waits its turn.
        let outage = (!s.probe.is_up()).then(|| s.probe.outages());
        match s.buffer.handle_push(self.now(), item) {
            Ok(()) => {
                s.stats.buffered += 1;
                s.stats.buffered_order.push(number);
                if !s.draining {
                    s.draining = true;
                    self.env.spawn("egress-drain", self.clone().drain());
                }
                Sent::Buffered { outage, reply: rx }
            }
            Err((_, error)) => {
                s.stats.refused_full += 1;
                crate::met!("egress.buffer_full", "request {number} refused: {error}");
                Sent::Refused { outage, error }
            }
        }
    }

    /// Runs while requests wait: expires, probes, sends in order.
    async fn drain(self: Arc<Self>) {
        loop {
            let now = self.now();
            let (expired, step) = {
                let mut s = self.state();
                let expired = s.buffer.poll_expired(now);
                s.stats.expired += expired.len() as u64;
                let step = if s.buffer.is_empty() && s.probe.is_up() {
                    s.draining = false;
                    Step::Stop
                } else if let Some(p) = s.probe.poll_probe(now) {
                    Step::Probe(p)
                } else if s.probe.is_up() {
                    let front = s.buffer.front().expect("not empty");
                    Step::Send(front.target.clone(), front.number)
                } else {
                    let next = [s.probe.poll_timeout(), s.buffer.poll_timeout()];
                    Step::Sleep(next.into_iter().flatten().min().unwrap_or(now))
                };
                (expired, step)
            };
            for (pending, error) in expired {
                crate::met!("egress.expired", "request {}: {error}", pending.number);
                let _ = pending.reply.send(Err(error));
            }
            match step {
                Step::Stop => return,
                Step::Sleep(at) => tokio::time::sleep_until(self.origin + at).await,
                Step::Probe((addr, delay)) => self.probe(addr, delay).await,
                Step::Send(target, number) => {
                    let result = match self.exchange(&target, number).await {
                        Ok(body) => Ok(body),
                        Err(ExchangeError::Answered(e)) => Err(e),
                        Err(ExchangeError::Unreached(e)) => {
                            // Down again: it stays at the front, probes follow.
                            self.mark_down(&target, &e);
                            continue;
                        }
                    };
                    let mut s = self.state();
                    let pending = s.buffer.handle_sent().expect("the front was sent");
                    debug_assert_eq!(pending.number, number);
                    s.stats.sent_from_buffer.push(number);
                    drop(s);
                    let _ = pending.reply.send(result);
                }
            }
        }
    }

    async fn probe(&self, addr: crate::env::NetAddr, delay: ProbeDelay) {
        let started_at = self.now();
        // A refusal is an answer from the host: the way out works again.
        let connected = match exchange::connect(&self.env, &addr, self.config.connect_timeout).await
        {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        };
        let random = self.env.random().next_u64();
        let mut s = self.state();
        let outage = s.probe.outages();
        s.stats.probes.push(ProbeRecord {
            outage,
            delay,
            started_at,
            ended_at: self.now(),
            connected,
        });
        if !connected {
            s.probe.handle_probe_failed(self.now(), random);
            return;
        }
        if let Some(down_for) = s.probe.handle_probe_ok(self.now()) {
            s.stats.restores += 1;
            crate::met!(
                "egress.restored",
                "egress back after {} ms ({} probes); {} requests waiting go out in order",
                down_for.as_millis(),
                delay.attempt,
                s.buffer.len()
            );
            drop(s);
            self.restored.send_modify(|n| *n += 1);
        }
    }

    /// True the first time `session` is told of outage `outage` (it is then told when
    /// egress is back); false once that outage is over (nothing to tell any more).
    pub(crate) fn note_told(&self, session: &str, outage: u64) -> bool {
        let mut s = self.state();
        if s.probe.is_up() || s.probe.outages() != outage {
            return false;
        }
        s.told.insert(session.to_string(), outage) != Some(outage)
    }

    /// Waits for the next end of an outage; the sessions told of it (or of an earlier
    /// one), who are then to be told it is over.
    pub(crate) async fn wait_restored(&self, seen: &mut watch::Receiver<u64>) -> Vec<String> {
        if seen.changed().await.is_err() {
            return std::future::pending().await;
        }
        let mut s = self.state();
        if !s.probe.is_up() {
            // Down again already: they stay told, until this outage ends.
            return Vec::new();
        }
        std::mem::take(&mut s.told).into_keys().collect()
    }

    pub(crate) fn subscribe_restored(&self) -> watch::Receiver<u64> {
        self.restored.subscribe()
    }
}

enum Step {
    Stop,
    Sleep(Duration),
    Probe((crate::env::NetAddr, ProbeDelay)),
    Send(Target, u64),
}
