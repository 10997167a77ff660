//! The catalog file: TOML written by people, so anything may arrive.

use crate::catalog::{Catalog, Entry};
use serde::Serialize;

#[derive(Serialize)]
struct CatalogFile<'a> {
    entry: &'a [Entry],
}

/// Any text: parsing never panics; an accepted catalog serializes back to TOML that
/// parses to the same entries (so what `chaos` writes back, it can read).
pub fn catalog(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = Catalog::parse(&text) else {
        return;
    };
    let written = toml::to_string(&CatalogFile {
        entry: &parsed.entries,
    })
    .unwrap_or_else(|e| panic!("an accepted catalog does not serialize: {e}"));
    match Catalog::parse(&written) {
        Ok(again) => assert_eq!(again.entries, parsed.entries, "catalog round trip"),
        Err(e) => panic!("an accepted catalog, written back, is refused: {e}\n{written}"),
    }
}
