//! Catalog coverage: entries counted by status, grouped by source, risk and subsystem.

use super::{Coverage, CoverageRow};
use crate::catalog::{CatalogEntry, EntryStatus, Risk};

pub(super) fn coverage(catalog: &[CatalogEntry]) -> Coverage {
    let mut total = CoverageRow {
        key: "all".to_string(),
        ..CoverageRow::default()
    };
    let mut by_source: Vec<CoverageRow> = Vec::new();
    let mut by_subsystem: Vec<CoverageRow> = Vec::new();
    let mut by_risk: Vec<CoverageRow> = Risk::ALL
        .iter()
        .map(|r| CoverageRow {
            key: r.name().to_string(),
            ..CoverageRow::default()
        })
        .collect();
    for e in catalog {
        count(&mut total, e.status);
        let source = row(&mut by_source, e.prefix());
        source.document.get_or_insert_with(|| e.source.clone());
        count(source, e.status);
        count(row(&mut by_subsystem, &e.subsystem), e.status);
        count(row(&mut by_risk, e.risk.name()), e.status);
    }
    Coverage {
        total,
        by_source,
        by_risk,
        by_subsystem,
    }
}

/// The row keyed `key`, appended on first sight so rows keep catalog order.
fn row<'a>(rows: &'a mut Vec<CoverageRow>, key: &str) -> &'a mut CoverageRow {
    let i = match rows.iter().position(|r| r.key == key) {
        Some(i) => i,
        None => {
            rows.push(CoverageRow {
                key: key.to_string(),
                ..CoverageRow::default()
            });
            rows.len() - 1
        }
    };
    &mut rows[i]
}

fn count(row: &mut CoverageRow, status: EntryStatus) {
    row.total += 1;
    match status {
        EntryStatus::Implemented => row.implemented += 1,
        EntryStatus::Planned => row.planned += 1,
        EntryStatus::NotApplicable => row.not_applicable += 1,
    }
}
