//! Replays every committed fuzz input through the same functions the cargo-fuzz targets
//! call: the seed corpus (`fuzz/seeds/<target>/`) and the minimized crashers found so
//! far (`fuzz/regressions/<target>/`). Runs on stable, without cargo-fuzz.

#![allow(
    clippy::disallowed_methods,
    reason = "the test reads the committed fuzz inputs from this checkout"
)]

use scenarios::fuzzing::TARGETS;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The input files of a folder, in name order (markers and notes skipped).
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.') && !name.ends_with(".md")
        })
        .collect();
    files.sort();
    files
}

/// Runs `target` over every file of `dir`; returns the files it panicked on.
fn replay(target: fn(&[u8]), dir: &Path) -> (usize, Vec<String>) {
    let files = inputs(dir);
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    (files.len(), failed)
}

#[test]
fn every_target_has_seeds_and_passes_them() {
    let mut failed = Vec::new();
    for (name, target) in TARGETS {
        let (count, mut bad) = replay(target, &fuzz_dir().join("seeds").join(name));
        assert!(count > 0, "fuzz/seeds/{name}/ has no seed inputs");
        failed.append(&mut bad);
    }
    assert!(failed.is_empty(), "seed inputs that fail: {failed:#?}");
}

#[test]
fn every_committed_regression_passes() {
    let mut failed = Vec::new();
    for (name, target) in TARGETS {
        let (_, mut bad) = replay(target, &fuzz_dir().join("regressions").join(name));
        failed.append(&mut bad);
    }
    assert!(
        failed.is_empty(),
        "regressions that fail again: {failed:#?}"
    );
}

#[test]
fn every_target_has_a_cargo_fuzz_binary() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for (name, _) in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        assert!(
            fuzz_dir().join(format!("fuzz_targets/{name}.rs")).is_file(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
    }
}
