//! `cargo fuzz run client_frame --sanitizer none`: see `scenarios::fuzzing` and fuzz/README.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| scenarios::fuzzing::client_frame(data));
