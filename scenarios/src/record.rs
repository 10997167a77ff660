//! Run records (the schema lives in the `reports` crate, which reads them back).

pub use reports::record::{FailureClass, RunRecord, Verdict};

/// The command that reproduces `id` at `seed` from a checkout.
pub fn repro_command(id: &str, seed: u64) -> String {
    format!("cargo run --release -p scenarios --bin chaos -- run {id} --seed {seed} --trace")
}
