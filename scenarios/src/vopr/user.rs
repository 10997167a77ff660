//! The VOPR's users: each carries out its own operations in order (users run side by
//! side), with a tab per slot. A tab's connection is read by a task of the user's host
//! that records every message into the slot's delivery record (the exactly-once oracle)
//! and shows it to the observer; operations only write.

use super::cluster::Cluster;
use super::config::MESSAGE_CHARS_MAX;
use super::observer::{Issued, Observer, marker};
use super::ops::Op;
use crate::scenario::Failure;
use crate::stage::client::{ConnectError, Delivery, SharedDelivery, SimClient, http};
use engine::env::{NetStream, Task};
use engine::protocol::{ServerEvent, ServerMessage};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = WebSocketStream<Box<dyn NetStream>>;

/// A connect (handshake and welcome) that takes longer than this failed.
const CONNECT_BOUND: Duration = Duration::from_secs(20);
/// The observer's count of each malformed kind sent.
const MALFORMED_SENT: [&str; 5] = [
    "malformed: bad json sent",
    "malformed: unknown type sent",
    "malformed: oversized sent",
    "malformed: binary sent",
    "malformed: bad field sent",
];
/// A slow reader takes this long per message.
const SLOW_READ: Duration = Duration::from_millis(400);

/// One open connection of a tab.
struct Conn {
    sink: SplitSink<Ws, Message>,
    closed: Arc<AtomicBool>,
    reader: Task<()>,
}

impl Drop for Conn {
    /// A dropped connection is gone for the tab: its reader stops at once (a reader left
    /// running would record the old connection's messages beside the new one's).
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One tab of a user: a session it opened and its connection, if any.
pub struct Slot {
    pub session: String,
    conn: Option<Conn>,
    /// The current stream epoch's delivery record (a resume after a restart starts a
    /// new stream; a reconnect with `last_seq` continues one).
    pub delivery: SharedDelivery,
    pub abandoned: bool,
    /// The session told this tab it ended.
    pub ended: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    /// The tab was connected to a live session when the engine crashed (its reader saw
    /// the connection go with the host): its owner must get it back under its id.
    must_survive: Arc<AtomicBool>,
}

/// What a tab's reader tells the tab.
#[derive(Clone, Default)]
struct Flags {
    ended: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    must_survive: Arc<AtomicBool>,
}

impl Slot {
    fn flags(&self) -> Flags {
        Flags {
            ended: self.ended.clone(),
            slow: self.slow.clone(),
            must_survive: self.must_survive.clone(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| !c.closed.load(Ordering::Relaxed))
    }

    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }
}

pub struct User {
    pub index: usize,
    token: String,
    pub exp_s: u64,
    pub slots: Vec<Slot>,
    queries: u64,
}

/// What the users share: the world, the oracles and every delivery record ever made.
pub struct Crowd {
    pub cluster: Arc<Cluster>,
    pub observer: Arc<Observer>,
    pub deliveries: Mutex<Vec<SharedDelivery>>,
    /// Whether the durability oracle applies: not when the disk may refuse writes (a
    /// session whose record could not be written was never durable).
    pub durability: bool,
}

impl Crowd {
    fn new_delivery(&self) -> SharedDelivery {
        let d: SharedDelivery = Arc::new(Mutex::new(Delivery::default()));
        self.deliveries
            .lock()
            .expect("deliveries poisoned")
            .push(d.clone());
        d
    }
}

/// How a connect went.
enum Opened {
    Welcome(Conn, ServerMessage),
    Refused(String),
}

impl User {
    pub fn new(index: usize, crowd: &Crowd) -> User {
        let ttl = crowd.cluster.config.users[index].token_ttl;
        let (token, exp_s) = crowd.cluster.token(index, ttl);
        User {
            index,
            token,
            exp_s,
            slots: Vec::new(),
            queries: 0,
        }
    }

    /// A fresh token, as after a login.
    pub fn renew_token(&mut self, crowd: &Crowd) {
        let ttl = crowd.cluster.config.users[self.index].token_ttl;
        (self.token, self.exp_s) = crowd.cluster.token(self.index, ttl);
    }

    /// Opens `/ws?token=…{extra}` and starts its reader into `delivery`.
    async fn open(
        &self,
        crowd: &Crowd,
        extra: &str,
        delivery: &SharedDelivery,
        slot: usize,
        flags: &Flags,
    ) -> Opened {
        let host = &crowd.cluster.clients[self.index];
        let env = host.env();
        let query = format!("token={}{extra}", self.token);
        let connect = SimClient::connect(env.net(), &crowd.cluster.addr, &query, delivery.clone());
        let client = match tokio::time::timeout(CONNECT_BOUND, connect).await {
            Err(_) => return Opened::Refused("connect timed out".to_string()),
            Ok(Err(ConnectError::Closed(m))) => {
                return Opened::Refused(match m.event {
                    ServerEvent::Error { code, message } => format!("{code:?}: {message}"),
                    other => format!("{other:?}"),
                });
            }
            Ok(Err(e)) => return Opened::Refused(e.to_string()),
            Ok(Ok(client)) => client,
        };
        let welcome = client.welcome.clone();
        let (ws, delivery) = client.into_parts();
        let (sink, stream) = ws.split();
        let closed = Arc::new(AtomicBool::new(false));
        let reader = env.spawn(
            "vopr-reader",
            read(Reader {
                stream,
                delivery,
                observer: crowd.observer.clone(),
                cluster: crowd.cluster.clone(),
                user: self.index,
                slot,
                session: session_of(&welcome),
                closed: closed.clone(),
                flags: flags.clone(),
            }),
        );
        Opened::Welcome(
            Conn {
                sink,
                closed,
                reader,
            },
            welcome,
        )
    }

    /// A new tab on a new session (`extra`: `&fork=ID`, or `&session=ID` of a session
    /// created over HTTP).
    async fn new_slot(&mut self, crowd: &Crowd, extra: &str, issued: Issued) {
        let delivery = crowd.new_delivery();
        let flags = Flags::default();
        let index = self.slots.len();
        match self.open(crowd, extra, &delivery, index, &flags).await {
            Opened::Welcome(conn, welcome) => {
                let id = session_of(&welcome);
                crowd.observer.on_welcome(self.index, &id, issued);
                crowd.observer.count("sessions opened");
                self.slots.push(Slot {
                    session: id,
                    conn: Some(conn),
                    delivery,
                    abandoned: false,
                    ended: flags.ended,
                    slow: flags.slow,
                    must_survive: flags.must_survive,
                });
            }
            Opened::Refused(why) => {
                tracing::info!(target: "scenarios", user = self.index, "open refused: {why}");
                crowd.observer.count("opens refused");
            }
        }
    }

    /// Tab `index`, if it is still in use.
    fn slot(&mut self, index: usize) -> Option<&mut Slot> {
        self.slots
            .get_mut(index)
            .filter(|s| !s.abandoned && !s.is_ended())
    }

    /// The tab an operation's `slot` names: the `slot`-th of the tabs still in use,
    /// counted round (so an operation keeps a target after a shrink dropped the step
    /// that made the one it had).
    fn resolve(&self, slot: usize) -> Option<usize> {
        let usable: Vec<usize> = (0..self.slots.len())
            .filter(|&i| !self.slots[i].abandoned && !self.slots[i].is_ended())
            .collect();
        usable.get(slot % usable.len().max(1)).copied()
    }

    /// Sends `frame` on the slot's connection, if it is open.
    async fn send(&mut self, slot: usize, frame: Message) -> bool {
        let Some(conn) = self.slot(slot).and_then(|s| s.conn.as_mut()) else {
            return false;
        };
        if conn.closed.load(Ordering::Relaxed) {
            return false;
        }
        conn.sink.send(frame).await.is_ok()
    }

    /// Sends a query: `text` is recorded with the engine's clock and the token's expiry.
    pub async fn query(&mut self, crowd: &Crowd, slot: usize, text: String) -> bool {
        self.query_with(crowd, slot, text, None).await
    }

    /// A query with `options` (the `options` object of a query frame), if any.
    pub async fn query_with(
        &mut self,
        crowd: &Crowd,
        slot: usize,
        text: String,
        options: Option<serde_json::Value>,
    ) -> bool {
        if !self.slot(slot).is_some_and(|s| s.is_open()) {
            return false;
        }
        let now = crowd.cluster.engine_wall_ms();
        crowd
            .observer
            .on_query_sent(self.index, slot, &text, now, self.exp_s);
        let mut frame = serde_json::json!({ "type": "query", "text": text });
        if let Some(options) = options {
            frame["options"] = options;
        }
        self.send(slot, Message::Text(frame.to_string().into()))
            .await
    }

    /// A query text with this user's next marker.
    pub fn query_text(&mut self, words: usize) -> String {
        self.queries += 1;
        let mut text = marker(self.index, self.queries);
        for w in 0..words {
            text.push_str(&format!(" w{w}"));
        }
        text
    }

    /// Drops the slot's connection without a close frame.
    fn drop_conn(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.conn = None;
        }
    }

    /// Reconnects the slot: with `last_seq` (the stream continues), or without (a
    /// resume: a live session gets a new tab, a stored one is restored; either way a
    /// new stream epoch). A reconnect refused because the session is not live here
    /// falls back to a resume, as a client that lost its session would.
    pub async fn reconnect(&mut self, crowd: &Crowd, slot: usize, last_seq: bool) {
        let Some(s) = self.slot(slot) else {
            return;
        };
        let id = s.session.clone();
        let flags = s.flags();
        let old = s.delivery.clone();
        self.drop_conn(slot);
        if last_seq {
            let last = old.lock().expect("delivery poisoned").last_seq();
            let extra = format!("&session={id}&last_seq={last}");
            match self.open(crowd, &extra, &old, slot, &flags).await {
                Opened::Welcome(conn, welcome) => {
                    crowd
                        .observer
                        .on_welcome(self.index, &session_of(&welcome), Issued::Same);
                    crowd.observer.count("reconnects");
                    if let Some(s) = self.slots.get_mut(slot) {
                        s.conn = Some(conn);
                    }
                    return;
                }
                Opened::Refused(why) if why.contains("SessionNotFound") => {
                    crowd.observer.count("reconnects refused: not live here");
                }
                Opened::Refused(why) => {
                    tracing::info!(target: "scenarios", user = self.index, "reconnect refused: {why}");
                    crowd.observer.count("reconnects refused");
                    return;
                }
            }
        }
        self.resume(crowd, slot).await;
    }

    /// Opens the slot's session without `last_seq`: a new stream epoch.
    async fn resume(&mut self, crowd: &Crowd, slot: usize) {
        let Some(s) = self.slots.get(slot) else {
            return;
        };
        let id = s.session.clone();
        let flags = s.flags();
        let delivery = crowd.new_delivery();
        let extra = format!("&session={id}");
        match self.open(crowd, &extra, &delivery, slot, &flags).await {
            Opened::Welcome(conn, welcome) => {
                let got = session_of(&welcome);
                let s = &mut self.slots[slot];
                s.conn = Some(conn);
                s.delivery = delivery;
                let must_survive = s.must_survive.swap(false, Ordering::Relaxed);
                if got == id {
                    crowd.observer.on_welcome(self.index, &got, Issued::Same);
                    crowd.observer.count("resumes: same session");
                    return;
                }
                let notice = notice_of(&welcome);
                crowd.observer.on_welcome(self.index, &got, Issued::New);
                crowd.observer.count("resumes: a fresh session");
                if must_survive && crowd.durability && notice.contains("was not found") {
                    crowd.observer.violation(format!(
                        "user{}'s session {id}, live when the engine crashed, was lost: {notice:?}",
                        self.index
                    ));
                }
                s.session = got;
            }
            Opened::Refused(why) => {
                tracing::info!(target: "scenarios", user = self.index, "resume refused: {why}");
                crowd.observer.count("resumes refused");
            }
        }
    }

    /// Carries out one operation (its `slot` resolved to one of the tabs in use).
    pub async fn apply(&mut self, crowd: &Crowd, op: &Op) {
        let mut op = op.clone();
        if let Some(named) = op.slot_mut() {
            match self.resolve(*named) {
                Some(index) => *named = index,
                None => return,
            }
        }
        match op {
            Op::Create { .. } => self.new_slot(crowd, "", Issued::New).await,
            Op::CreateHttp { .. } => self.create_http(crowd).await,
            Op::Query {
                slot,
                words,
                tool,
                refresh_word,
                ..
            } => {
                let text = if refresh_word {
                    // A user asking about the word itself (no marker: its answer is
                    // its own text).
                    "refresh_token".to_string()
                } else {
                    let t = self.query_text(words);
                    if tool { format!("tool:shell {t}") } else { t }
                };
                if self.query(crowd, slot, text).await {
                    crowd.observer.count("queries sent");
                }
            }
            Op::Burst { slot, n, .. } => {
                for _ in 0..n {
                    let text = self.query_text(1);
                    self.query(crowd, slot, text).await;
                }
            }
            Op::Interrupt { slot, .. } => {
                let frame = r#"{"type":"interrupt"}"#.to_string();
                self.send(slot, Message::Text(frame.into())).await;
            }
            Op::Extend { slot, .. } => {
                let frame = r#"{"type":"extend"}"#.to_string();
                self.send(slot, Message::Text(frame.into())).await;
            }
            Op::Fork { slot, .. } => {
                if let Some(id) = self.slot(slot).map(|s| s.session.clone()) {
                    self.new_slot(crowd, &format!("&fork={id}"), Issued::New)
                        .await;
                }
            }
            Op::Reconnect { slot, last_seq, .. } => self.reconnect(crowd, slot, last_seq).await,
            Op::Drop { slot, .. } => self.drop_conn(slot),
            Op::Abandon { slot, .. } => {
                if let Some(s) = self.slot(slot) {
                    if let Some(mut conn) = s.conn.take() {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), conn.sink.close()).await;
                    }
                    s.abandoned = true;
                    crowd.observer.count("tabs abandoned");
                }
            }
            Op::Malformed { slot, kind, .. } => {
                let frame = match kind {
                    0 => Message::Text("{not json".to_string().into()),
                    1 => Message::Text(r#"{"type":"dance"}"#.to_string().into()),
                    2 => {
                        // One character over the limit, with a marker: if the engine
                        // let it through, its echo would say so.
                        let text = self.query_text(1);
                        crowd.observer.on_forbidden_sent(&text);
                        Message::Text(oversized_query(&text).into())
                    }
                    3 => Message::Binary(vec![0u8, 159, 146, 150].into()),
                    _ => Message::Text(r#"{"type":"ack","seq":"seven"}"#.to_string().into()),
                };
                if self.send(slot, frame).await {
                    let what = MALFORMED_SENT[kind as usize % 5];
                    tracing::debug!(target: "scenarios", user = self.index, slot, "{what}");
                    crowd.observer.count(what);
                }
            }
            Op::Refresh { .. } => {
                self.renew_token(crowd);
                let frame =
                    serde_json::json!({ "type": "refresh_token", "token": self.token }).to_string();
                for slot in 0..self.slots.len() {
                    self.send(slot, Message::Text(frame.clone().into())).await;
                }
            }
            Op::Snoop { .. } => {}
            Op::SlowRead { slot, on, .. } => {
                if let Some(s) = self.slot(slot) {
                    s.slow.store(on, Ordering::Relaxed);
                }
            }
            Op::ModelQuery {
                slot, words, model, ..
            } => {
                let text = self.query_text(words);
                let options = serde_json::json!({ "model": super::ops::model_name(model) });
                if self.query_with(crowd, slot, text, Some(options)).await {
                    crowd.observer.count("queries naming a model sent");
                }
            }
            Op::AgentQuery {
                slot,
                words,
                uses,
                max_turns,
                budget_micros,
                structured,
                ..
            } => {
                let text = self.query_text(words);
                let text = match uses {
                    0 => text,
                    n => format!("use:read*{n} {text}"),
                };
                let mut options = serde_json::json!({ "tools": ["read"], "max_turns": max_turns });
                if budget_micros > 0 {
                    options["max_budget_usd"] = (f64::from(budget_micros) / 1e6).into();
                }
                if structured {
                    options["output_schema"] = serde_json::json!({
                        "type": "object",
                        "required": ["answer"],
                        "properties": {"answer": {"type": "string"}}
                    });
                }
                if self.query_with(crowd, slot, text, Some(options)).await {
                    crowd.observer.count("agent queries sent");
                }
            }
            Op::Upstream { .. } | Op::Lock { .. } => {}
        }
    }

    /// `POST /sessions`, then a tab on the session it made.
    async fn create_http(&mut self, crowd: &Crowd) {
        let env = crowd.cluster.clients[self.index].env();
        let auth = format!("Bearer {}", self.token);
        let created = tokio::time::timeout(
            CONNECT_BOUND,
            http(
                env.net(),
                &crowd.cluster.addr,
                "POST",
                "/sessions",
                &[("authorization", &auth)],
            ),
        )
        .await;
        let Ok(Ok((201, _, body))) = created else {
            crowd.observer.count("http creates refused");
            return;
        };
        let Some(id) = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["session_id"].as_str().map(str::to_string))
        else {
            crowd.observer.violation(format!(
                "POST /sessions answered 201 without a session id: {body:?}"
            ));
            return;
        };
        crowd.observer.on_welcome(self.index, &id, Issued::New);
        self.new_slot(crowd, &format!("&session={id}"), Issued::Same)
            .await;
    }

    /// User `self` tries to open `id`, another user's session.
    pub async fn snoop(&mut self, crowd: &Crowd, id: &str) {
        let delivery = crowd.new_delivery();
        let extra = format!("&session={id}");
        if let Opened::Welcome(conn, welcome) = self
            .open(crowd, &extra, &delivery, usize::MAX, &Flags::default())
            .await
        {
            let got = session_of(&welcome);
            let issued = if got == id { Issued::Same } else { Issued::New };
            crowd.observer.on_welcome(self.index, &got, issued);
            crowd.observer.count("snoops answered with a fresh session");
            // The fresh session is left behind, as a tab closed at once.
            drop(conn);
        } else {
            crowd.observer.count("snoops refused");
        }
    }

    /// Whether the slot's current stream has a result whose text contains `needle`.
    pub fn has_result(&self, slot: usize, needle: &str) -> bool {
        let Some(s) = self.slots.get(slot) else {
            return false;
        };
        s.delivery
            .lock()
            .expect("delivery poisoned")
            .messages
            .iter()
            .any(|m| matches!(&m.event, ServerEvent::Result { text, .. } if text.contains(needle)))
    }

    /// The latest error the slot's stream got, if any.
    pub fn last_error(&self, slot: usize) -> Option<String> {
        let s = self.slots.get(slot)?;
        let d = s.delivery.lock().expect("delivery poisoned");
        d.messages.iter().rev().find_map(|m| match &m.event {
            ServerEvent::Error { code, message } => Some(format!("{code:?}: {message}")),
            _ => None,
        })
    }
}

/// How long one settle attempt waits for its answer before asking again.
const SETTLE_ATTEMPT: Duration = Duration::from_secs(20);
/// Between reconnect tries in the liveness phase.
const SETTLE_RETRY: Duration = Duration::from_secs(5);

/// The spending cap the liveness phase's queries set: far above what a run can spend.
const SETTLE_BUDGET_USD: f64 = 1_000.0;

impl User {
    /// The liveness phase, everything healed: every tab still in use gets back to its
    /// session (a fresh token first: liveness is about the engine, not old logins) and
    /// a last query of its is answered within `bound`. A tab the engine cannot take
    /// back because every session slot is taken is counted, not failed.
    pub async fn settle(&mut self, crowd: &Crowd, bound: Duration) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::now() + bound;
        self.renew_token(crowd);
        // Every tab back on its session first, as a user would: a tab left off while
        // another waits would hold a place the waiting one needs.
        for slot in 0..self.slots.len() {
            if self.slot(slot).is_some_and(|s| !s.is_open()) {
                self.reconnect(crowd, slot, true).await;
            }
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].abandoned || self.slots[slot].is_ended() {
                continue;
            }
            let mut markers: Vec<String> = Vec::new();
            loop {
                if self.slots[slot].is_ended() {
                    break;
                }
                if markers.iter().any(|m| self.has_result(slot, m)) {
                    crowd.observer.count("settled tabs");
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Failure::liveness(format!(
                        "user{}'s tab {slot} (session {}) got no answer within {} s of the heal (last error {:?}, open {}; engine: {})",
                        self.index,
                        self.slots[slot].session,
                        bound.as_secs(),
                        self.last_error(slot),
                        self.slots[slot].is_open(),
                        crowd.cluster.describe_sessions()
                    )));
                }
                if !self.slots[slot].is_open() {
                    // A short-lived token may have run out meanwhile.
                    self.renew_token(crowd);
                    self.reconnect(crowd, slot, true).await;
                    if !self.slots[slot].is_open() {
                        if crowd.cluster.full_of_clients() {
                            // Every place is held by a session its client is on: the
                            // engine is right to refuse this tab.
                            crowd.observer.count("tabs left out at the session limit");
                            break;
                        }
                        // Within the per-address rate limit (two connects a try).
                        tokio::time::sleep(SETTLE_RETRY).await;
                        continue;
                    }
                } else {
                    self.renew_token(crowd);
                    let frame = serde_json::json!({ "type": "refresh_token", "token": self.token });
                    self.send(slot, Message::Text(frame.to_string().into()))
                        .await;
                }
                let text = self.query_text(1);
                markers.push(text.clone());
                // A session whose spending cap ran out refuses queries until it is
                // raised: the last query raises it, as its user would to go on.
                let options = serde_json::json!({ "max_budget_usd": SETTLE_BUDGET_USD });
                self.query_with(crowd, slot, text, Some(options)).await;
                let asked = tokio::time::Instant::now();
                while asked.elapsed() < SETTLE_ATTEMPT
                    && !markers.iter().any(|m| self.has_result(slot, m))
                    && self.slots[slot].is_open()
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Ok(())
    }
}

/// One user's task: its operations in order, then the liveness phase once the
/// operations end (the channel closes). The user comes back with the outcome: its
/// tabs stay connected until every user is done (a user who left early would leave
/// sessions without a client, holding places the others need).
pub async fn run(
    mut user: User,
    crowd: Arc<Crowd>,
    mut ops: tokio::sync::mpsc::UnboundedReceiver<Op>,
    bound: Duration,
) -> (User, Result<(), Failure>) {
    while let Some(op) = ops.recv().await {
        if let Op::Snoop { victim, .. } = op {
            let target = crowd.observer.sessions_of(victim).into_iter().next();
            if let Some(id) = target.filter(|_| victim != user.index) {
                user.snoop(&crowd, &id).await;
            }
            continue;
        }
        user.apply(&crowd, &op).await;
    }
    let settled = user.settle(&crowd, bound).await;
    (user, settled)
}

fn session_of(welcome: &ServerMessage) -> String {
    match &welcome.event {
        ServerEvent::Welcome { session_id, .. } => session_id.clone(),
        _ => String::new(),
    }
}

fn notice_of(welcome: &ServerMessage) -> String {
    match &welcome.event {
        ServerEvent::Welcome { notice, .. } => notice.clone().unwrap_or_default(),
        _ => String::new(),
    }
}

struct Reader {
    stream: SplitStream<Ws>,
    delivery: SharedDelivery,
    observer: Arc<Observer>,
    cluster: Arc<Cluster>,
    user: usize,
    slot: usize,
    /// The session the connection was welcomed to.
    session: String,
    closed: Arc<AtomicBool>,
    flags: Flags,
}

/// A connection's reader: every message into the delivery record and to the observer.
/// A connection that goes while the engine host is down went with a crash.
async fn read(mut r: Reader) {
    while let Some(Ok(frame)) = r.stream.next().await {
        let Message::Text(text) = frame else {
            if matches!(frame, Message::Close(_)) {
                break;
            }
            continue;
        };
        let m = match ServerMessage::decode(&text) {
            Ok(m) => m,
            Err(e) => {
                r.observer
                    .violation(format!("user{} got a frame it cannot decode: {e}", r.user));
                continue;
            }
        };
        let broken = {
            let mut d = r.delivery.lock().expect("delivery poisoned");
            let before = d.violations.len();
            d.record(&m);
            d.violations.get(before).cloned()
        };
        if let Some(v) = broken {
            r.observer.violation(format!(
                "exactly-once delivery broken for user{} tab {}: {v} (at {})",
                r.user,
                r.slot,
                m.encode()
            ));
        }
        if r.slot != usize::MAX {
            r.observer.on_message(r.user, r.slot, &m);
        }
        if matches!(m.event, ServerEvent::SessionEnded { .. }) {
            r.flags.ended.store(true, Ordering::Relaxed);
        }
        if r.flags.slow.load(Ordering::Relaxed) {
            tokio::time::sleep(SLOW_READ).await;
        }
    }
    // A session the engine ended before the crash (its notice still in flight, held by
    // a partition) need not survive it: the crashed engine remembers why it ended.
    if !r.cluster.engine_host.is_up()
        && !r.flags.ended.load(Ordering::Relaxed)
        && !r.cluster.ended_before_crash(&r.session)
    {
        r.flags.must_survive.store(true, Ordering::Relaxed);
    }
    r.closed.store(true, Ordering::Relaxed);
}

/// A query frame of `MESSAGE_CHARS_MAX + 1` characters whose text starts with `text`.
fn oversized_query(text: &str) -> String {
    let frame = |pad: usize| {
        let padded = format!("{text} {}", "x".repeat(pad));
        serde_json::json!({ "type": "query", "text": padded }).to_string()
    };
    let pad = MESSAGE_CHARS_MAX + 1 - frame(0).len();
    let out = frame(pad);
    assert_eq!(out.chars().count(), MESSAGE_CHARS_MAX + 1);
    out
}

/// Fails the run with the first exactly-once violation of any delivery record, or the
/// first model delta lost, repeated or reordered on its way to a client (which a retry
/// after the first streamed byte would also show: the answer streamed twice).
pub fn check_deliveries(crowd: &Crowd) -> Result<(), Failure> {
    for d in crowd.deliveries.lock().expect("deliveries poisoned").iter() {
        let d = d.lock().expect("delivery poisoned");
        d.check()?;
        crate::kit::model::check_model_deltas(&d)?;
        check_streamed_once(&d)?;
    }
    Ok(())
}

/// No model answer reached a client twice, whole or in part: each VOPR query starts
/// with its unique marker, so the marker twice in one query's deltas means the answer
/// was streamed again (a retry after its first streamed byte). A query's turns are
/// separate answers (a structured answer asked for again repeats the marker). Query
/// numbers restart with a session's stream: a tab that moved to another session has
/// two queries 1, told apart by the stream epoch (its sequence numbers' high half).
fn check_streamed_once(d: &Delivery) -> Result<(), Failure> {
    let mut joined: std::collections::BTreeMap<(u64, u64, u32), String> = Default::default();
    for m in &d.messages {
        if let ServerEvent::ModelDelta { query, text, turn } = &m.event {
            let epoch = m.seq.unwrap_or(0) >> 32;
            joined
                .entry((epoch, *query, *turn))
                .or_default()
                .push_str(text);
        }
    }
    for ((_, query, _), text) in joined {
        let Some(first) = text.split_whitespace().next() else {
            continue;
        };
        if super::observer::marker_user(first).is_some() && text.matches(first).count() > 1 {
            return Err(Failure::correctness(format!(
                "query {query}'s model answer reached the client more than once: {:?}",
                text.chars().take(120).collect::<String>()
            )));
        }
    }
    Ok(())
}
