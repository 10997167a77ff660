//! The worker: the program behind one session, supervised by a parent over its stdio.
//!
//! The parent starts it, waits for its `Ready` line, sends requests on its stdin (or on
//! its optional TCP endpoint) and reads replies on its stdout, one JSON message per
//! line ([`protocol`]). The worker persists a scrubbed snapshot of its state
//! ([`snapshot`], [`scrub`]), writes cache files on request, beats a heartbeat, and
//! stops gracefully on `Shutdown`, SIGTERM or EOF.
//!
//! [`run_worker`] is written against `Env` and [`WorkerIo`] only, so the real binary
//! (`src/bin/worker.rs`) and a simulated process run the very same code.

pub mod args;
mod cache;
pub mod cache_index;
mod errors;
mod handle;
pub use handle::{PAYLOAD_PART_BYTES, WordParts, binary_byte, expand_word};
pub mod lines;
pub mod protocol;
mod run;
pub mod scrub;
pub mod snapshot;

pub use args::WorkerArgs;
pub use lines::{Line, LineReader};
pub use protocol::{
    ErrorCode, LINE_BYTES_MAX, PROTOCOL_VERSION, ProtocolError, Reply, Request, SnapshotState,
    decode_reply, decode_request, encode_line,
};
pub use run::{EXIT_BIND, EXIT_OK, EXIT_USAGE, WorkerIo, run_worker};
pub use scrub::scrub_secrets;
