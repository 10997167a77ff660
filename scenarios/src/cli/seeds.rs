//! Seeds on the command line: any unsigned 64-bit integer, and ranges that must not run
//! past the largest one.

use super::CliError;

/// A seed: a whole number from 0 to `u64::MAX`, with the bounds in the message when it
/// is not one (clap shows the message).
pub fn parse_seed(text: &str) -> Result<u64, String> {
    text.trim().parse::<u64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => format!(
            "{text} is larger than the largest seed, {} (seeds are 0..={})",
            u64::MAX,
            u64::MAX
        ),
        _ => format!(
            "{text:?} is not a seed: a seed is a whole number from 0 to {}",
            u64::MAX
        ),
    })
}

/// The last seed of `seeds` seeds (at least 1) from `start`, or an error saying how far
/// the range may go.
pub fn last_seed(start: u64, seeds: u64) -> Result<u64, CliError> {
    start.checked_add(seeds - 1).ok_or_else(|| {
        CliError::new(format!(
            "{seeds} seeds from {start} run past the largest seed, {}",
            u64::MAX
        ))
        .hint(format!(
            "with --seeds {seeds}, --seed-start can be at most {}",
            u64::MAX - (seeds - 1)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_in_range_parse_and_the_rest_say_the_maximum() {
        assert_eq!(parse_seed("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_seed("0"), Ok(0));
        let err = parse_seed("99999999999999999999").unwrap_err();
        assert!(err.contains("largest seed, 18446744073709551615"), "{err}");
        assert!(
            parse_seed("-1")
                .unwrap_err()
                .contains("whole number from 0")
        );
        assert_eq!(last_seed(u64::MAX, 1).unwrap(), u64::MAX);
        let err = last_seed(u64::MAX - 1, 3).unwrap_err();
        assert_eq!(
            err.hint.as_deref(),
            Some("with --seeds 3, --seed-start can be at most 18446744073709551613")
        );
    }
}
