//! `cargo fuzz run fault_plan --sanitizer none`: see `scenarios::fuzzing` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scenarios::fuzzing::fault_plan(data));
