//! "Did you mean …?" for ids.

/// Levenshtein distance, for short ids.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                previous
            } else {
                1 + previous.min(row[j]).min(row[j + 1])
            };
            previous = current;
        }
    }
    row[b.len()]
}

/// Up to three distinct known ids closest to `wanted` (case-insensitive prefix matches
/// first). `known` may list an id twice (a catalog entry and its scenario): it is
/// suggested once.
pub fn closest<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let lower = wanted.to_lowercase();
    let mut scored: Vec<(usize, &str)> = known
        .map(|id| {
            let score = if id.to_lowercase().starts_with(&lower) {
                0
            } else {
                distance(&lower, &id.to_lowercase())
            };
            (score, id)
        })
        .filter(|(score, _)| *score <= 3.max(wanted.len() / 3))
        .collect();
    scored.sort();
    // One id always gets one score, so its copies are neighbours after the sort.
    scored.dedup();
    scored.into_iter().take(3).map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_and_nothing_for_nonsense() {
        let ids = [
            "core.EC-001",
            "core.EC-002",
            "sim.net.partition-heal-no-loss",
        ];
        assert_eq!(closest("core.EC-01", ids.iter().copied())[0], "core.EC-001");
        assert_eq!(
            closest("CORE.ec-002", ids.iter().copied())[0],
            "core.EC-002"
        );
        assert_eq!(
            closest("sim.net", ids.iter().copied()),
            vec!["sim.net.partition-heal-no-loss"]
        );
        assert!(closest("zzzzzzzzzzzzzzzzzzzzzzzz", ids.iter().copied()).is_empty());
    }

    #[test]
    fn an_id_known_twice_is_suggested_once() {
        let twice = ["core.EC-001", "core.EC-002", "core.EC-001", "core.EC-002"];
        assert_eq!(
            closest("core.EC-00", twice.iter().copied()),
            ["core.EC-001", "core.EC-002"]
        );
    }
}
