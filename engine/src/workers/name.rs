//! Worker names: what is accepted, and why.
//!
//! Documented behaviour (catalog pattern.4.x): a name is any UTF-8 string of at most
//! [`NAME_BYTES_MAX`] bytes without NUL. The empty name is accepted (it is a valid key;
//! refusing it would break callers that derive names from optional fields). Hyphens,
//! dots, colons, slashes, spaces, newlines and tabs are all accepted: the name is only a
//! map key and an argument, never a path or a shell word. NUL is refused because a
//! name is passed to the worker as an argument, and argv cannot hold NUL. Registering a
//! name twice replaces the first worker (last write wins; the old one is stopped).

use super::WorkerError;

/// Longest accepted name, in bytes.
pub const NAME_BYTES_MAX: usize = 4096;

pub(super) fn validate_name(name: &str) -> Result<(), WorkerError> {
    if name.len() > NAME_BYTES_MAX {
        return Err(WorkerError::InvalidName {
            name: shorten(name),
            reason: format!("{} bytes, longer than {NAME_BYTES_MAX}", name.len()),
        });
    }
    if name.contains('\0') {
        return Err(WorkerError::InvalidName {
            name: shorten(name),
            reason: "contains NUL, which no process argument can carry".to_string(),
        });
    }
    Ok(())
}

/// A name fit for an error message: escaped and cut to 64 characters.
pub(super) fn shorten(name: &str) -> String {
    let escaped: String = name.escape_debug().collect();
    if escaped.chars().count() <= 64 {
        return escaped;
    }
    let head: String = escaped.chars().take(61).collect();
    format!("{head}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_long_and_special_names_are_accepted() {
        for name in ["", "a-b_c.d:e/f g", "line\nbreak\ttab", &"n".repeat(1000)] {
            validate_name(name).unwrap();
        }
    }

    #[test]
    fn names_past_the_limit_or_with_nul_are_refused_with_a_reason() {
        let err = validate_name(&"n".repeat(NAME_BYTES_MAX + 1)).unwrap_err();
        assert!(err.to_string().contains("longer than 4096"), "{err}");
        let err = validate_name("a\0b").unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        assert!(shorten(&"x".repeat(500)).len() <= 64);
    }
}
