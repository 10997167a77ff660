//! The worker's command line: `--name NAME --port N --cache-dir DIR --snapshot FILE
//! --heartbeat-ms N --cache-cap-bytes N --disk-quota-bytes N`, each also accepted as
//! `--flag=value`.

use crate::env::check_relative_path;

/// Cache directory when `--cache-dir` is absent.
pub const CACHE_DIR_DEFAULT: &str = "cache";
/// Heartbeat period when `--heartbeat-ms` is absent.
pub const HEARTBEAT_MS_DEFAULT: u64 = 1000;
/// Longest heartbeat period accepted (a day): bounds the timer arithmetic.
pub const HEARTBEAT_MS_MAX: u64 = 24 * 3600 * 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerArgs {
    /// The session's name, for logs (default "worker").
    pub name: String,
    /// Port of the TCP endpoint; `None` (flag absent or 0): no endpoint.
    pub port: Option<u16>,
    /// Disk path (relative) of the directory `WriteCache` writes into.
    pub cache_dir: String,
    /// Disk path (relative) of the snapshot file; `None`: no snapshots.
    pub snapshot: Option<String>,
    /// Milliseconds between heartbeats on stdout; 0: none.
    pub heartbeat_ms: u64,
    /// Bytes the cache directory may hold: older files are evicted (least recently
    /// used first) to make room; `None`: no cap.
    pub cache_cap_bytes: Option<u64>,
    /// Bytes the worker may write in all (cache and snapshot): a write past it is
    /// refused with `quota_exceeded`; `None`: only the disk's capacity limits it.
    pub disk_quota_bytes: Option<u64>,
}

impl Default for WorkerArgs {
    fn default() -> Self {
        WorkerArgs {
            name: "worker".to_string(),
            port: None,
            cache_dir: CACHE_DIR_DEFAULT.to_string(),
            snapshot: None,
            heartbeat_ms: HEARTBEAT_MS_DEFAULT,
            cache_cap_bytes: None,
            disk_quota_bytes: None,
        }
    }
}

pub const USAGE: &str = "usage: worker [--name NAME] [--port N] [--cache-dir DIR] \
                         [--snapshot FILE] [--heartbeat-ms N] [--cache-cap-bytes N] \
                         [--disk-quota-bytes N]";

/// Parses the arguments after the program name. The error says what was wrong and ends
/// with the usage line.
pub fn parse(args: &[String]) -> Result<WorkerArgs, String> {
    parse_inner(args).map_err(|e| format!("{e}; {USAGE}"))
}

fn parse_inner(args: &[String]) -> Result<WorkerArgs, String> {
    let mut parsed = WorkerArgs::default();
    let mut seen: Vec<&str> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        if !matches!(
            flag,
            "--name"
                | "--port"
                | "--cache-dir"
                | "--snapshot"
                | "--heartbeat-ms"
                | "--cache-cap-bytes"
                | "--disk-quota-bytes"
        ) {
            return Err(format!("unknown argument {arg:?}"));
        }
        if seen.contains(&flag) {
            return Err(format!("{flag} given twice"));
        }
        seen.push(flag);
        let value = match inline {
            Some(value) => value,
            None => rest
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        match flag {
            "--name" => parsed.name = value,
            "--port" => {
                let port: u16 = value
                    .parse()
                    .map_err(|_| format!("--port {value:?} is not a port (0..=65535)"))?;
                parsed.port = (port != 0).then_some(port);
            }
            "--cache-dir" => parsed.cache_dir = disk_path(flag, value)?,
            "--snapshot" => parsed.snapshot = Some(disk_path(flag, value)?),
            "--cache-cap-bytes" => parsed.cache_cap_bytes = Some(byte_count(flag, &value)?),
            "--disk-quota-bytes" => parsed.disk_quota_bytes = Some(byte_count(flag, &value)?),
            _ => {
                let ms: u64 = value
                    .parse()
                    .ok()
                    .filter(|ms| *ms <= HEARTBEAT_MS_MAX)
                    .ok_or_else(|| {
                        format!("--heartbeat-ms {value:?} is not a number of milliseconds (0..={HEARTBEAT_MS_MAX})")
                    })?;
                parsed.heartbeat_ms = ms;
            }
        }
    }
    Ok(parsed)
}

/// A positive number of bytes.
fn byte_count(flag: &str, value: &str) -> Result<u64, String> {
    value
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{flag} {value:?} is not a positive number of bytes"))
}

/// Disk paths are relative to the worker's data directory and may not escape it.
fn disk_path(flag: &str, value: String) -> Result<String, String> {
    check_relative_path(&value).map_err(|e| {
        crate::met!("input.path_escape", "{flag} refused: {e}");
        format!("{flag}: {e}")
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        assert_eq!(parse(&[]), Ok(WorkerArgs::default()));
        assert_eq!(WorkerArgs::default().cache_dir, "cache");
        assert_eq!(WorkerArgs::default().heartbeat_ms, 1000);
    }

    #[test]
    fn every_flag_parses_in_both_forms() {
        let parsed = parse(&args(&[
            "--name",
            "session one",
            "--port=8080",
            "--cache-dir",
            "data/cache",
            "--snapshot=state/snap",
            "--heartbeat-ms",
            "0",
            "--cache-cap-bytes=4096",
            "--disk-quota-bytes",
            "8192",
        ]))
        .unwrap();
        assert_eq!(
            parsed,
            WorkerArgs {
                name: "session one".to_string(),
                port: Some(8080),
                cache_dir: "data/cache".to_string(),
                snapshot: Some("state/snap".to_string()),
                heartbeat_ms: 0,
                cache_cap_bytes: Some(4096),
                disk_quota_bytes: Some(8192),
            }
        );
        assert_eq!(parse(&args(&["--port", "0"])).unwrap().port, None);
        assert_eq!(parse(&args(&["--name="])).unwrap().name, "");
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        let cases: [(&[&str], &str); 12] = [
            (
                &["--cache-cap-bytes", "0"],
                "not a positive number of bytes",
            ),
            (
                &["--disk-quota-bytes", "-5"],
                "not a positive number of bytes",
            ),
            (&["--disk-quota-bytes", "lots"], "--disk-quota-bytes"),
            (&["--bogus", "1"], "unknown argument \"--bogus\""),
            (&["extra"], "unknown argument"),
            (&["--port"], "--port needs a value"),
            (&["--port", "65536"], "not a port"),
            (&["--port", "-1"], "not a port"),
            (&["--heartbeat-ms", "soon"], "not a number"),
            (&["--heartbeat-ms", "86400001"], "not a number"),
            (&["--cache-dir", "../up"], "--cache-dir"),
            (&["--name", "a", "--name", "b"], "given twice"),
        ];
        for (list, expected) in cases {
            let err = parse(&args(list)).unwrap_err();
            assert!(err.contains(expected), "{list:?}: {err}");
            assert!(err.ends_with(USAGE), "{err}");
        }
        assert!(parse(&args(&["--snapshot", "/etc/passwd"])).is_err());
        assert!(parse(&args(&["--snapshot", ""])).is_err());
    }
}
