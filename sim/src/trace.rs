//! The trace: every event of a run, stamped with simulated time and host.
//!
//! A `tracing` layer installed as the world thread's default subscriber receives the
//! events of our own crates (`engine`, `sim`, `scenarios`: other crates' logs may carry
//! addresses or timings that differ between runs) at DEBUG and above. Each event is
//! folded into a rolling FNV-1a hash, which is part of a run's outcome: two runs with
//! the same seed must end with the same hash (BRIEF §3 rule 5). The first
//! `lines_max` events are kept for printing (`chaos run --trace`) and JSON lines.

use crate::faults::FaultCounters;
use crate::seed::Fnv;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, Once};
use tokio::time::Instant;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::layer::{Layered, SubscriberExt};

/// Targets whose events belong to the trace.
const TRACED_CRATES: [&str; 3] = ["engine", "sim", "scenarios"];

/// Name used for events emitted outside any host's task (the scenario's own driver).
pub const WORLD_HOST: &str = "world";

/// Host index meaning "no host": the scenario's own driver.
const NO_HOST: usize = usize::MAX;

thread_local! {
    /// Index of the host whose task is being polled on this thread (set by the host's
    /// task gate). An index, not a name: this runs on every poll and must cost nothing.
    static CURRENT_HOST: Cell<usize> = const { Cell::new(NO_HOST) };
}

/// Makes host `index` the current host of this thread; returns the previous one, which
/// [`leave_host`] restores once the host's task has been polled.
pub(crate) fn enter_host(index: usize) -> usize {
    CURRENT_HOST.with(|c| c.replace(index))
}

/// Restores the current host [`enter_host`] replaced.
pub(crate) fn leave_host(previous: usize) {
    CURRENT_HOST.with(|c| c.set(previous));
}

/// Index of the current host, if a host's task is running.
pub fn current_host_index() -> Option<usize> {
    let index = CURRENT_HOST.with(Cell::get);
    (index != NO_HOST).then_some(index)
}

/// One traced event. Host, level and target are shared or static, so recording an
/// event allocates only its message (and keeping it twice, in `lines` and `tail`, clones
/// only that).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    pub t_ns: u64,
    #[serde(serialize_with = "serialize_shared_str")]
    pub host: Arc<str>,
    pub level: &'static str,
    pub target: &'static str,
    pub message: String,
}

fn serialize_shared_str<S: serde::Serializer>(value: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(value)
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>16} {:<10} {:<5} {}: {}",
            format_sim_time(self.t_ns),
            self.host,
            self.level,
            self.target,
            self.message
        )
    }
}

/// `12.345678901s`: simulated time, nanosecond exact.
pub fn format_sim_time(t_ns: u64) -> String {
    format!("{}.{:09}s", t_ns / 1_000_000_000, t_ns % 1_000_000_000)
}

/// What a finished run's trace amounts to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TraceSummary {
    /// Rolling hash of every event, as 16 hex digits.
    pub hash: String,
    pub events: u64,
    /// The first events, in order (at most `lines_max`).
    pub lines: Vec<TraceEvent>,
    /// Events not kept in `lines` (still hashed).
    pub lines_dropped: u64,
    /// The last events (at most [`TAIL_MAX`]), in order, numbered from 1 with the run's
    /// first event: where a failure shows, whatever the run's length.
    pub tail: Vec<(u64, TraceEvent)>,
}

/// Events kept at the end of a trace.
pub const TAIL_MAX: usize = 200;

struct TraceState {
    /// Host names by index, registered by the world.
    hosts: Vec<Arc<str>>,
    /// [`WORLD_HOST`], shared by every event outside a host's task.
    world: Arc<str>,
    hash: Fnv,
    events: u64,
    lines: Vec<TraceEvent>,
    lines_max: usize,
    lines_dropped: u64,
    tail: std::collections::VecDeque<(u64, TraceEvent)>,
}

/// Collects one world's trace. Shared by the layer and the world.
#[derive(Clone)]
pub struct TraceSink {
    start: Instant,
    state: Arc<Mutex<TraceState>>,
}

impl TraceSink {
    pub fn new(start: Instant, lines_max: usize) -> Self {
        TraceSink {
            start,
            state: Arc::new(Mutex::new(TraceState {
                hosts: Vec::new(),
                world: Arc::from(WORLD_HOST),
                hash: Fnv::default(),
                events: 0,
                lines: Vec::new(),
                lines_max,
                lines_dropped: 0,
                tail: std::collections::VecDeque::with_capacity(TAIL_MAX),
            })),
        }
    }

    /// Registers the name of host `index` (hosts are numbered from 0 in order).
    pub fn add_host(&self, index: usize, name: &str) {
        let mut state = self.state.lock().expect("trace poisoned");
        assert_eq!(
            state.hosts.len(),
            index,
            "hosts are registered in index order"
        );
        state.hosts.push(Arc::from(name));
    }

    /// Records an event. `host` names the host it concerns when the event says so (a
    /// `host` field); otherwise it is the host whose task is running, or the world.
    pub fn record(
        &self,
        level: &Level,
        target: &'static str,
        host: Option<String>,
        message: String,
    ) {
        let t_ns = crate::clock::virtual_ns_since(self.start);
        let mut state = self.state.lock().expect("trace poisoned");
        let host: Arc<str> = match host {
            Some(named) => Arc::from(named),
            None => current_host_index()
                .and_then(|i| state.hosts.get(i).cloned())
                .unwrap_or_else(|| state.world.clone()),
        };
        let hash = &mut state.hash;
        hash.u64(t_ns);
        hash.bytes(host.as_bytes());
        hash.bytes(&[0]);
        hash.bytes(level.as_str().as_bytes());
        hash.bytes(target.as_bytes());
        hash.bytes(&[0]);
        hash.bytes(message.as_bytes());
        hash.bytes(&[0xff]);
        state.events += 1;
        let event = TraceEvent {
            t_ns,
            host,
            level: level.as_str(),
            target,
            message,
        };
        if state.tail.len() == TAIL_MAX {
            state.tail.pop_front();
        }
        let number = state.events;
        if state.lines.len() < state.lines_max {
            state.lines.push(event.clone());
        } else {
            state.lines_dropped += 1;
        }
        state.tail.push_back((number, event));
    }

    pub fn hash(&self) -> u64 {
        self.state.lock().expect("trace poisoned").hash.0
    }

    pub fn events(&self) -> u64 {
        self.state.lock().expect("trace poisoned").events
    }

    pub fn summary(&self) -> TraceSummary {
        let state = self.state.lock().expect("trace poisoned");
        TraceSummary {
            hash: format!("{:016x}", state.hash.0),
            events: state.events,
            lines: state.lines.clone(),
            lines_dropped: state.lines_dropped,
            tail: state.tail.iter().cloned().collect(),
        }
    }
}

thread_local! {
    /// The sink of the world running on this thread, if any.
    static SINK: RefCell<Option<TraceSink>> = const { RefCell::new(None) };
    /// The fault counters of the world running on this thread: edge cases the engine
    /// met (`engine::met` events) count there, whether or not the trace is recorded.
    static MET: RefCell<Option<FaultCounters>> = const { RefCell::new(None) };
}

/// Target of the engine's "met an edge case" events (`engine::met!`).
const MET_TARGET: &str = "engine::met";

/// Routes this thread's traced events to `sink` (when the trace is recorded) and its
/// `engine::met` events to `counters`, until the guard is dropped.
///
/// One process-wide subscriber (installed on first use) forwards each event to the sink
/// of the world running on the event's thread. A per-thread default subscriber would be
/// simpler, but `tracing` caches per-callsite interest across all dispatchers, and
/// parallel worlds setting and dropping thread-local dispatchers race on that cache: an
/// event could be lost in one run and not the other, which breaks the trace hash.
pub fn route_to(sink: Option<TraceSink>, counters: FaultCounters) -> TraceRoute {
    static GLOBAL: Once = Once::new();
    GLOBAL.call_once(|| {
        let subscriber = tracing_subscriber::registry().with(WorldLayer);
        // If the process already has a global subscriber we do not replace it; the
        // fallback below then scopes ours to this thread.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    SINK.with(|s| *s.borrow_mut() = sink);
    MET.with(|m| *m.borrow_mut() = Some(counters));
    let fallback = if tracing::dispatcher::get_default(|d| d.is::<Layered<WorldLayer, Registry>>())
    {
        None
    } else {
        let subscriber = tracing_subscriber::registry().with(WorldLayer);
        Some(tracing::subscriber::set_default(subscriber))
    };
    TraceRoute {
        _fallback: fallback,
    }
}

/// Keeps a thread's events routed to its world's sink; dropping it stops that.
pub struct TraceRoute {
    _fallback: Option<tracing::subscriber::DefaultGuard>,
}

impl Drop for TraceRoute {
    fn drop(&mut self) {
        SINK.with(|s| *s.borrow_mut() = None);
        MET.with(|m| *m.borrow_mut() = None);
    }
}

/// Whether an event belongs in a trace: our crates, DEBUG and above.
fn traced(metadata: &Metadata<'_>) -> bool {
    if *metadata.level() > Level::DEBUG {
        return false;
    }
    let target = metadata.target();
    TRACED_CRATES.iter().any(|krate| {
        target
            .strip_prefix(krate)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The layer behind the process-wide subscriber.
struct WorldLayer;

impl<S: Subscriber> Layer<S> for WorldLayer {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // "Sometimes": whether an event is wanted depends on the thread (a world or not),
        // so it is decided per event in `enabled`, never cached.
        if traced(metadata) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        traced(metadata)
            && (SINK.with(|s| s.borrow().is_some())
                || (metadata.target() == MET_TARGET && MET.with(|m| m.borrow().is_some())))
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() == MET_TARGET {
            let mut kind = KindVisitor::default();
            event.record(&mut kind);
            if let Some(kind) = kind.0 {
                MET.with(|m| {
                    if let Some(counters) = m.borrow().as_ref() {
                        counters.count_met(&kind);
                    }
                });
            }
        }
        let Some(sink) = SINK.with(|s| s.borrow().clone()) else {
            return;
        };
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let metadata = event.metadata();
        let host = visitor.host.take();
        sink.record(metadata.level(), metadata.target(), host, visitor.finish());
    }
}

/// Reads the `kind` field of an `engine::met` event.
#[derive(Default)]
struct KindVisitor(Option<String>);

impl Visit for KindVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "kind" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

/// Formats `message` first, then `key=value` for every other field, in field order.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
    /// A `host` field: the host the event concerns.
    host: Option<String>,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields
        } else {
            format!("{} {}", self.message, self.fields)
        }
    }

    fn field(&mut self, name: &str, value: fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{name}={value}");
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "host" {
            self.host = Some(value.to_string());
        } else if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.field(field.name(), format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.field(field.name(), format_args!("{value:?}"));
        }
    }
}
