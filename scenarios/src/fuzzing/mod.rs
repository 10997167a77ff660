//! Fuzz targets as plain functions: the cargo-fuzz binaries in `fuzz/` call them with
//! libFuzzer's bytes, and `cargo test` (`scenarios/tests/fuzz_replay.rs`) calls them with
//! every committed corpus seed and regression, on stable, without cargo-fuzz.
//!
//! A target panics when it finds a bug: a parser that panics or breaks its own contract
//! (a decoded message that does not encode back to itself, an error without a message),
//! or a simulated world whose oracle fails. Bad input that is refused with a clear error
//! is the expected outcome, not a finding.
//!
//! | target | input | checks |
//! |---|---|---|
//! | `worker_protocol` | bytes of a worker stream, either direction | line reader bounds; decode → encode → decode is identity |
//! | `catalog` | catalog TOML | parse never panics; accepted catalogs round-trip and stay valid |
//! | `config` | worker arguments, shard specs, gate baselines, egress targets | parse never panics; accepted values satisfy their own checks |
//! | `fault_plan` | fault plans, shrunk records, sweep files | parse never panics; accepted records round-trip |
//! | `simulation` | a whole world's fault plan (via `arbitrary`) | the world's oracles hold |
//! | `client_frame` | a client's WebSocket text frame | decoding never panics; the size limit holds; decoded frames round-trip |
//! | `upstream_stream` | a streamed model answer's body, cut into reads | decoding never panics; the bound holds; whole only after `message_stop`; the cut changes nothing |

mod catalog;
mod client_frame;
mod config;
mod poll;
mod protocol;
mod records;
pub mod simulation;
mod upstream_stream;

pub use catalog::catalog;
pub use client_frame::client_frame;
pub use config::config;
pub use protocol::worker_protocol;
pub use records::fault_plan;
pub use simulation::simulation;
pub use upstream_stream::upstream_stream;

/// A fuzz target: bytes in, a panic when it finds a bug.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/` names them (the replay test walks this list).
pub const TARGETS: [(&str, Target); 7] = [
    ("worker_protocol", worker_protocol),
    ("catalog", catalog),
    ("config", config),
    ("fault_plan", fault_plan),
    ("simulation", simulation),
    ("client_frame", client_frame),
    ("upstream_stream", upstream_stream),
];
