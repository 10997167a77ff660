//! What the CLI tests share: driving the real `chaos` binary and reading what it wrote.
//! Each test file uses a part of it.
#![allow(dead_code, reason = "each test file uses only some of these helpers")]

use std::path::Path;
use std::process::{Command, Output};

/// `chaos ARGS`, with the CI variables that change its output removed.
pub fn command(args: &[&str]) -> Command {
    #[allow(clippy::disallowed_methods, reason = "the test drives the real binary")]
    let mut command = Command::new(env!("CARGO_BIN_EXE_chaos"));
    command
        .args(args)
        .env_remove("CI")
        .env_remove("GITHUB_ACTIONS");
    command
}

/// Runs `chaos ARGS` to completion.
pub fn chaos(args: &[&str]) -> Output {
    command(args).output().expect("chaos runs")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn stdout(out: &Output) -> String {
    text(&out.stdout)
}

pub fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

#[allow(clippy::disallowed_methods, reason = "reading the CLI's output files")]
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[allow(clippy::disallowed_methods, reason = "writing test input files")]
pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[allow(clippy::disallowed_methods, reason = "writing test input files")]
pub fn write_bytes(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}
