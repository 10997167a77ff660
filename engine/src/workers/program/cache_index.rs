//! Which cache files exist, how large they are and when each was last used: the
//! bookkeeping behind the cache cap (evict the least recently used file first).
//!
//! Pure data, so eviction choices are tested without a disk: unit tests here and a
//! model-based property test in `engine/tests/props` (the reason this module is public).
//! Recency is a counter bumped on every use, never a clock, so it is deterministic; files
//! found on disk at start-up (a previous incarnation's) count as used in name order,
//! before any use of this incarnation.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    bytes: u64,
    used: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheIndex {
    files: BTreeMap<String, Entry>,
    clock: u64,
    total: u64,
}

impl CacheIndex {
    /// Bytes held by all cache files.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn bytes_of(&self, name: &str) -> Option<u64> {
        self.files.get(name).map(|e| e.bytes)
    }

    /// Records that `name` now holds `bytes` bytes and was just used.
    pub fn record(&mut self, name: &str, bytes: u64) {
        self.forget(name);
        self.clock += 1;
        self.files.insert(
            name.to_string(),
            Entry {
                bytes,
                used: self.clock,
            },
        );
        self.total += bytes;
    }

    /// Marks `name` as just used; false if there is no such file.
    pub fn touch(&mut self, name: &str) -> bool {
        self.clock += 1;
        match self.files.get_mut(name) {
            Some(entry) => {
                entry.used = self.clock;
                true
            }
            None => false,
        }
    }

    /// Brings sizes up to date with the disk (`size_of` gives a file's size, `None` if
    /// it is gone): files removed or changed by someone else (an approved cleanup, an
    /// operator) stop counting. Recency is kept.
    pub fn refresh(&mut self, size_of: impl Fn(&str) -> Option<u64>) {
        let mut total = 0;
        self.files.retain(|name, entry| match size_of(name) {
            Some(bytes) => {
                entry.bytes = bytes;
                total += bytes;
                true
            }
            None => false,
        });
        self.total = total;
    }

    pub fn forget(&mut self, name: &str) {
        if let Some(old) = self.files.remove(name) {
            self.total -= old.bytes;
        }
    }

    /// The files to evict, least recently used first, so that `name` rewritten with
    /// `bytes` bytes fits under `cap`. `None` when it cannot fit even alone.
    pub fn victims(&self, name: &str, bytes: u64, cap: u64) -> Option<Vec<String>> {
        if bytes > cap {
            return None;
        }
        let mut total = self.total - self.bytes_of(name).unwrap_or(0);
        let mut by_age: Vec<(&String, &Entry)> = self
            .files
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .collect();
        by_age.sort_by_key(|(_, e)| e.used);
        let mut victims = Vec::new();
        for (victim, entry) in by_age {
            if total + bytes <= cap {
                break;
            }
            total -= entry.bytes;
            victims.push(victim.clone());
        }
        debug_assert!(total + bytes <= cap);
        Some(victims)
    }

    /// Bytes held once `victims` are gone and `name` holds `bytes`.
    pub fn total_after(&self, name: &str, bytes: u64, victims: &[String]) -> u64 {
        let freed: u64 = victims.iter().filter_map(|v| self.bytes_of(v)).sum();
        self.total - self.bytes_of(name).unwrap_or(0) - freed + bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(files: &[(&str, u64)]) -> CacheIndex {
        let mut index = CacheIndex::default();
        for (name, bytes) in files {
            index.record(name, *bytes);
        }
        index
    }

    #[test]
    fn the_least_recently_used_go_first() {
        let mut cache = index(&[("a", 40), ("b", 30), ("c", 20)]);
        assert_eq!(cache.total(), 90);
        assert_eq!(cache.victims("d", 10, 100), Some(vec![]));
        assert_eq!(cache.victims("d", 20, 100), Some(vec!["a".to_string()]));
        assert!(cache.touch("a"));
        assert_eq!(cache.victims("d", 20, 100), Some(vec!["b".to_string()]));
        assert_eq!(
            cache.victims("d", 60, 100),
            Some(vec!["b".to_string(), "c".to_string()])
        );
        assert_eq!(cache.victims("d", 101, 100), None);
        assert!(!cache.touch("missing"));
    }

    #[test]
    fn rewriting_a_file_replaces_its_size_and_never_evicts_itself() {
        let mut cache = index(&[("a", 40), ("b", 30)]);
        assert_eq!(cache.victims("a", 70, 100), Some(vec![]));
        assert_eq!(cache.victims("a", 80, 100), Some(vec!["b".to_string()]));
        assert_eq!(cache.total_after("a", 80, &["b".to_string()]), 80);
        cache.record("a", 5);
        assert_eq!(cache.total(), 35);
        cache.forget("b");
        cache.forget("b");
        assert_eq!(cache.total(), 5);
        assert_eq!(cache.bytes_of("a"), Some(5));
    }

    #[test]
    fn refresh_drops_vanished_files_and_keeps_recency() {
        let mut cache = index(&[("a", 40), ("b", 30), ("c", 20)]);
        cache.refresh(|name| match name {
            "a" => Some(45),
            "c" => Some(20),
            _ => None,
        });
        assert_eq!(cache.total(), 65);
        assert_eq!(cache.bytes_of("b"), None);
        assert_eq!(cache.victims("d", 40, 100), Some(vec!["a".to_string()]));
    }
}
