//! Scrubbing secrets out of text before it is persisted.
//!
//! A session's state can carry credentials a user pasted; a snapshot on disk outlives
//! the session, so what looks like a key or a token is replaced by [`REDACTED`] first.
//! Hand-written matchers (no regex engine): each knows its own shape and its own word
//! boundary, which keeps ordinary prose ("disk-usage-…", "Bearer bonds") untouched.
//! Scrubbing is idempotent: scrubbed text has nothing left to scrub.

/// What a secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Keys whose `KEY=value` value is a secret, matched case-insensitively anywhere (so
/// `access_token=` and `DB_PASSWORD=` count). The value runs up to whitespace.
const SECRET_KEYS: [&str; 3] = ["password=", "token=", "api_key="];

/// Returns the scrubbed text and how many secrets were replaced.
pub fn scrub_secrets(text: &str) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes[..copied] are already in `out`
    let mut count = 0;
    let mut at = 0;
    while at < bytes.len() {
        // Every pattern starts with an ASCII byte, so `at` and the ends of a match are
        // char boundaries whenever a match is found.
        match find_secret(bytes, at) {
            Some((start, end)) => {
                out.push_str(&text[copied..start]);
                out.push_str(REDACTED);
                copied = end;
                at = end;
                count += 1;
            }
            None => at += 1,
        }
    }
    out.push_str(&text[copied..]);
    (out, count)
}

/// The byte range of a secret starting its pattern at `at`, if there is one.
fn find_secret(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    key_value(bytes, at)
        .or_else(|| prefixed_key(bytes, at))
        .or_else(|| bearer(bytes, at))
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// True when the byte before `at` cannot be part of the same token.
fn starts_token(bytes: &[u8], at: usize) -> bool {
    at == 0 || !is_key_byte(bytes[at - 1])
}

/// Length of the run at `from` of bytes satisfying `ok`.
fn run_len(bytes: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    bytes[from..].iter().take_while(|&&b| ok(b)).count()
}

fn starts_with_ignore_case(bytes: &[u8], at: usize, prefix: &str) -> bool {
    bytes
        .get(at..at + prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// `password=VALUE`, `token=VALUE`, `api_key=VALUE`: the value, up to whitespace.
fn key_value(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let key = SECRET_KEYS
        .iter()
        .find(|key| starts_with_ignore_case(bytes, at, key))?;
    let start = at + key.len();
    let len = run_len(bytes, start, |b| !b.is_ascii_whitespace());
    let value = &bytes[start..start + len];
    // Nothing to hide, or already hidden (keeps scrubbing idempotent).
    if len == 0 || value == REDACTED.as_bytes() {
        return None;
    }
    Some((start, start + len))
}

/// Provider keys with a fixed prefix: `sk-` + at least 16 of `[A-Za-z0-9_-]` (OpenAI,
/// Anthropic…), `AKIA` + 16 upper-case letters or digits (AWS access key ids), `ghp_` +
/// at least 36 letters or digits (GitHub tokens). The whole key is replaced.
fn prefixed_key(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    if !starts_token(bytes, at) {
        return None;
    }
    let rest = &bytes[at..];
    let body = if rest.starts_with(b"sk-") {
        let len = run_len(bytes, at + 3, is_key_byte);
        (len >= 16).then_some(3 + len)
    } else if rest.starts_with(b"AKIA") {
        let len = run_len(bytes, at + 4, |b| {
            b.is_ascii_uppercase() || b.is_ascii_digit()
        });
        // Exactly 16, and not glued to more of a word.
        let next = bytes.get(at + 4 + len).copied();
        (len == 16 && !next.is_some_and(|b| b.is_ascii_alphanumeric())).then_some(4 + len)
    } else if rest.starts_with(b"ghp_") {
        let len = run_len(bytes, at + 4, |b| b.is_ascii_alphanumeric());
        (len >= 36).then_some(4 + len)
    } else {
        None
    }?;
    Some((at, at + body))
}

/// `Bearer TOKEN` (any case): the token is replaced, the word `Bearer` kept. A token is
/// at least 8 bytes of the RFC 6750 token68 alphabet and does not look like a word (all
/// letters, lower case after the first): "Bearer bonds" and "Bearer Responsibilities"
/// are prose, "Bearer eyJhbGci…" and "Bearer abc123def" are tokens.
fn bearer(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    const WORD: &str = "bearer";
    if !starts_token(bytes, at) || !starts_with_ignore_case(bytes, at, WORD) {
        return None;
    }
    let spaces = run_len(bytes, at + WORD.len(), |b| b == b' ' || b == b'\t');
    if spaces == 0 {
        return None;
    }
    let start = at + WORD.len() + spaces;
    let is_token68 = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
    let len = run_len(bytes, start, is_token68);
    let token = &bytes[start..start + len];
    let word_like = token
        .iter()
        .enumerate()
        .all(|(i, &b)| b.is_ascii_lowercase() || (i == 0 && b.is_ascii_uppercase()));
    (len >= 8 && !word_like).then_some((start, start + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub(text: &str) -> (String, usize) {
        let (out, count) = scrub_secrets(text);
        // Idempotent: nothing is left to scrub.
        assert_eq!(scrub_secrets(&out), (out.clone(), 0), "rescrubbing {out:?}");
        (out, count)
    }

    #[test]
    fn provider_keys_are_replaced_whole() {
        assert_eq!(
            scrub("key sk-abcdefghijklmnop1234 used"),
            ("key [REDACTED] used".to_string(), 1)
        );
        assert_eq!(
            scrub("sk-proj-AbC_dEf-123456789012"),
            ("[REDACTED]".to_string(), 1)
        );
        assert_eq!(
            scrub("aws AKIAIOSFODNN7EXAMPLE."),
            ("aws [REDACTED].".to_string(), 1)
        );
        let github = format!("(ghp_{})", "a1B2".repeat(9));
        assert_eq!(scrub(&github), ("([REDACTED])".to_string(), 1));
    }

    #[test]
    fn key_values_keep_the_key_and_lose_the_value() {
        assert_eq!(
            scrub("user=ann password=hunter2 next"),
            ("user=ann password=[REDACTED] next".to_string(), 1)
        );
        assert_eq!(
            scrub("ACCESS_TOKEN=abc&x=1\nApi_Key=\"q w\""),
            (
                "ACCESS_TOKEN=[REDACTED]\nApi_Key=[REDACTED] w\"".to_string(),
                2
            )
        );
        // A key inside a key=value is one secret, not two.
        assert_eq!(
            scrub("token=sk-abcdefghijklmnop1234"),
            ("token=[REDACTED]".to_string(), 1)
        );
        assert_eq!(scrub("password= x"), ("password= x".to_string(), 0));
    }

    #[test]
    fn bearer_tokens_are_replaced_and_the_scheme_kept() {
        assert_eq!(
            scrub("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
            ("Authorization: Bearer [REDACTED]".to_string(), 1)
        );
        assert_eq!(
            scrub("bearer   abc123def456"),
            ("bearer   [REDACTED]".to_string(), 1)
        );
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "",
            "The quick brown fox jumps over the lazy dog.",
            "disk-usage-for-the-whole-cluster is high; task-scheduler-queue-length too",
            "sk-short",
            "risk-assessment-of-the-quarter",
            "AKIA is a prefix; AKIAIOSFODNN7EXAMPLEX is too long",
            "xAKIAIOSFODNN7EXAMPLE",
            "ghp_short",
            "Bearer bonds and a Bearer Responsibilities clause; Bearer <token>",
            "The token is valid; enter your password below",
            "ünïcödé text — with “quotes” and emoji 🎉 sk- ☃",
        ] {
            assert_eq!(scrub(text), (text.to_string(), 0), "{text:?}");
        }
    }

    #[test]
    fn several_secrets_are_all_counted_and_unicode_survives() {
        let text = "é password=p1 ☃ Bearer Zm9vYmFyYmF6 ü sk-0123456789abcdefXYZ";
        assert_eq!(
            scrub(text),
            (
                "é password=[REDACTED] ☃ Bearer [REDACTED] ü [REDACTED]".to_string(),
                3
            )
        );
    }
}
