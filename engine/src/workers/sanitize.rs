//! Environment variables handed to a worker, sanitized.
//!
//! Variables come from configuration and from plugins, which are not trusted. A
//! variable that changes what code the dynamic loader runs (`LD_PRELOAD` and friends)
//! or where programs are found (`PATH`) would let a plugin run its own code inside
//! every worker, so those are refused. The worker starts from an empty environment;
//! nothing is inherited.

/// Variables never passed to a worker, whatever their value.
pub const BLOCKED_NAMES: &[&str] = &[
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "LD_DEBUG_OUTPUT",
    "LD_PROFILE",
    "PATH",
    "IFS",
    "BASH_ENV",
    "ENV",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "NODE_OPTIONS",
    "PERL5OPT",
    "RUBYOPT",
];

/// Name prefixes refused (macOS loader variables, glibc tunables).
pub const BLOCKED_PREFIXES: &[&str] = &["DYLD_", "GLIBC_TUNABLES", "LD_"];

/// Longest value passed, in bytes.
pub const VALUE_BYTES_MAX: usize = 32 * 1024;

/// One refused variable and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvRejection {
    pub name: String,
    pub reason: &'static str,
}

/// Splits `vars` into those passed to the worker and those refused, keeping order.
/// Every refusal is logged with the variable's name (never its value: it may be a
/// secret or an exploit).
pub fn sanitize_env(
    worker: &str,
    vars: &[(String, String)],
) -> (Vec<(String, String)>, Vec<EnvRejection>) {
    let mut kept = Vec::new();
    let mut refused = Vec::new();
    for (name, value) in vars {
        match refusal(name, value) {
            None => kept.push((name.clone(), value.clone())),
            Some(reason) => {
                tracing::warn!(worker, variable = %name.escape_debug(), reason, "environment variable refused");
                crate::met!(
                    "input.malicious_env",
                    "worker {worker}: variable {} refused ({reason})",
                    name.escape_debug()
                );
                refused.push(EnvRejection {
                    name: name.clone(),
                    reason,
                });
            }
        }
    }
    for (name, _) in &kept {
        tracing::debug!(worker, variable = %name, "environment variable passed");
    }
    (kept, refused)
}

fn refusal(name: &str, value: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name.contains('=') || name.contains('\0') {
        return Some("name contains '=' or NUL");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Some("name is not [A-Za-z0-9_]");
    }
    if value.contains('\0') {
        return Some("value contains NUL");
    }
    if value.len() > VALUE_BYTES_MAX {
        return Some("value too long");
    }
    let upper = name.to_ascii_uppercase();
    if BLOCKED_NAMES.contains(&upper.as_str()) {
        return Some("blocked: changes what code runs or where programs are found");
    }
    if BLOCKED_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return Some("blocked: dynamic loader variable");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn loader_and_path_variables_are_refused_and_the_rest_kept_in_order() {
        let input = vars(&[
            ("RUST_LOG", "info"),
            ("LD_PRELOAD", "/tmp/evil.so"),
            ("PATH", "/tmp/evil:/usr/bin"),
            ("ld_library_path", "/tmp"),
            ("DYLD_INSERT_LIBRARIES", "x"),
            ("LD_BIND_NOW", "1"),
            ("API_REGION", "eu"),
        ]);
        let (kept, refused) = sanitize_env("w", &input);
        assert_eq!(kept, vars(&[("RUST_LOG", "info"), ("API_REGION", "eu")]));
        let names: Vec<&str> = refused.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "LD_PRELOAD",
                "PATH",
                "ld_library_path",
                "DYLD_INSERT_LIBRARIES",
                "LD_BIND_NOW"
            ]
        );
    }

    #[test]
    fn malformed_names_and_values_are_refused() {
        let long = "x".repeat(VALUE_BYTES_MAX + 1);
        let input = vars(&[
            ("", "v"),
            ("A=B", "v"),
            ("SPACE NAME", "v"),
            ("NUL", "a\0b"),
            ("LONG", &long),
        ]);
        let (kept, refused) = sanitize_env("w", &input);
        assert!(kept.is_empty());
        assert_eq!(refused.len(), 5);
    }
}
