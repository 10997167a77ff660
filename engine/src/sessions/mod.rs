//! Sessions: a table of live sessions, each backed by a worker from the pre-warm pool,
//! with admission at the limit, time and memory limits, resume and fork.
//!
//! Decisions live in pure cores: [`core`] (one session, sans-IO: its stream, queries,
//! lifecycle and limits, `handle_*` / `poll_*` / `poll_timeout`), [`lifecycle`],
//! [`limits`], [`admission`], [`replay`] (the replay log) and [`gate`] (the tool gate
//! asked before each tool and model call). The shells are thin: `session.rs` holds a
//! core and wakes tasks, `driver.rs` carries out a session's steps, `service.rs` is the
//! table, `durable.rs` the store, `upstream.rs` the model API glue, [`agent`] a query's
//! agent loop (turns, tools, budget, context, structured output).

mod admission;
mod agent;
mod config;
pub mod core;
mod driver;
mod durable;
mod egress;
pub mod gate;
mod lifecycle;
mod limits;
pub mod lock;
mod model_call;
pub mod replay;
mod resume_lock;
mod service;
mod session;
mod slow_stream;
mod upstream;

pub use admission::AdmissionMode;
pub use config::SessionsConfig;
pub use core::{QueryMode, SessionCore, SessionSettings, SessionStats};
pub(crate) use durable::check_store;
pub use gate::{GateCall, GateContext, GateDecision, GatePolicy, RoleTools, ToolGate};
pub use lifecycle::{IllegalTransition, SessionEvent, SessionState};
pub use limits::SessionLimits;
pub use service::{CreateError, ForkError, Resumed, Sessions, SessionsParts, Tombstone};
pub use session::Session;
pub use upstream::UpstreamCheck;
