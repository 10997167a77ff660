//! Records which build this is, for the provenance the `chaos` CLI writes into run
//! records, sweep files and gate baselines: the git commit, whether the checkout had
//! uncommitted changes, and the compiler. Every value falls back to "unknown" (and the
//! dirty flag to false) when git or rustc cannot say, so a build from a source tarball
//! still works.
#![allow(
    clippy::disallowed_methods,
    reason = "a build script asks git and rustc about the build; it runs no simulation"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace = manifest.parent().unwrap_or(&manifest).to_path_buf();
    let commit = git(&workspace, &["rev-parse", "HEAD"]);
    let dirty = git(&workspace, &["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let toolchain = Command::new(rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let target = std::env::var("TARGET").ok();
    println!(
        "cargo:rustc-env=CHAOS_BUILD_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rustc-env=CHAOS_BUILD_DIRTY={dirty}");
    println!(
        "cargo:rustc-env=CHAOS_BUILD_TOOLCHAIN={}",
        toolchain.as_deref().unwrap_or("unknown")
    );
    println!(
        "cargo:rustc-env=CHAOS_BUILD_TARGET={}",
        target.as_deref().unwrap_or("unknown")
    );
    // Rerun when the commit moves (HEAD, the branch it points at, packed refs) or the
    // index changes (a `git add`), and when the sources change: an edit makes the
    // checkout dirty, and is rebuilt anyway.
    let mut watched: Vec<PathBuf> = ["HEAD", "index", "packed-refs"]
        .iter()
        .filter_map(|name| git(&workspace, &["rev-parse", "--git-path", name]))
        .map(|p| workspace.join(p))
        .collect();
    if let Some(branch) = git(&workspace, &["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&workspace, &["rev-parse", "--git-path", &branch])
    {
        watched.push(workspace.join(path));
    }
    for crate_dir in ["engine", "sim", "reports", "scenarios"] {
        for part in ["src", "Cargo.toml"] {
            watched.push(workspace.join(crate_dir).join(part));
        }
    }
    watched.push(workspace.join("scenarios").join("catalog.toml"));
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// `git ARGS` in `dir`, its trimmed output; `None` when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
