//! This build's provenance (`reports::provenance`), as the CLI writes it into run
//! records, sweep files and gate baselines: the build script's commit, dirty flag,
//! toolchain and target, the crate version, and the host name and date at run time.

use reports::provenance::{Provenance, UNKNOWN, format_utc};

/// The build and machine running now.
pub fn current() -> Provenance {
    Provenance {
        commit: env!("CHAOS_BUILD_COMMIT").to_string(),
        dirty: env!("CHAOS_BUILD_DIRTY") == "true",
        version: env!("CARGO_PKG_VERSION").to_string(),
        toolchain: env!("CHAOS_BUILD_TOOLCHAIN").to_string(),
        target: env!("CHAOS_BUILD_TARGET").to_string(),
        host: host_name(),
        date: now_utc(),
    }
}

/// The machine's name: the kernel's, else `/etc/hostname`, else `$HOSTNAME`.
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| super::files::read_text(std::path::Path::new(path)).ok())
        .map(|text| text.trim().to_string())
        .chain(std::env::var_os("HOSTNAME").map(|h| h.to_string_lossy().trim().to_string()))
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| UNKNOWN.to_string())
}

/// The current time, UTC, to the second: when a file or report was made, for people.
pub(super) fn now_utc() -> String {
    #[allow(
        clippy::disallowed_methods,
        reason = "files and reports state when they were made; never compared or hashed"
    )]
    let now = std::time::SystemTime::now();
    format_utc(
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}
