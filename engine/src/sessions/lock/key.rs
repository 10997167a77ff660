//! The lock key of a session: what a resume locks before it checks and claims the
//! session in the store.

use super::protocol::check_token;
use crate::store::checksum;

/// `session:<id>` when the id fits the protocol (printable ASCII without spaces, short
/// enough), else `session#<FNV-1a 64 of the id, hex>`: a resume's id comes from the
/// client and may be anything. The two forms never meet (`:` against `#`), and a hash
/// collision only makes two sessions' resumes wait for each other.
pub fn session_key(id: &str) -> String {
    let readable = format!("session:{id}");
    if check_token("key", &readable).is_ok() {
        readable
    } else {
        format!("session#{:016x}", checksum(id.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_gets_a_valid_key() {
        assert_eq!(session_key("b-s000001"), "session:b-s000001");
        assert_eq!(session_key(""), "session:");
        let odd = ["a b", "é", "x\ny", &"z".repeat(300)];
        for id in odd {
            let key = session_key(id);
            assert!(key.starts_with("session#"), "{id:?} → {key}");
            check_token("key", &key).unwrap();
        }
        assert_ne!(session_key("a b"), session_key("a c"));
    }
}
