//! Property tests of the engine's pure cores: the worker lifecycle, the restart breaker,
//! the retry schedule, the disk and memory watches, the cache index, the replay log,
//! the upstream breaker, the resolver chain, the TLS expiry decision, the pace of
//! model calls, the egress buffer and probes. Each core takes time and randomness as
//! arguments, so proptest drives it directly, step by step, beside a reference model
//! (`proptest-state-machine`) or against its documented properties.
//!
//! Failing seeds persist in `engine/tests/proptest-regressions/<module>.txt` (proptest's
//! `SourceParallel`: a folder beside the one holding this `main.rs`); they are committed
//! and replayed before any new case. A comment above each seed names the planted bug it
//! was found with.

mod breaker;
mod cache_index;
mod disk_watch;
mod dns_chain;
mod egress;
mod lifecycle;
mod memory_watch;
mod reference;
mod replay;
mod retry;
mod session;
mod tls_expiry;
mod upstream_breaker;
mod upstream_pacing;
mod upstream_retry;

use proptest::test_runner::{Config, FileFailurePersistence};

/// A configuration with `cases` cases that persists failing seeds in the committed
/// regressions folder. Case counts are explicit (not proptest's environment default) so
/// the suite's run time is known: well under a minute in a debug build.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}
