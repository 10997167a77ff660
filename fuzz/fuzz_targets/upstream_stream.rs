//! `cargo fuzz run upstream_stream --sanitizer none`: see `scenarios::fuzzing` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scenarios::fuzzing::upstream_stream(data));
