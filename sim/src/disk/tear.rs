//! What a crash leaves of a file whose pending content was never made durable.

use crate::seed::SimRng;

/// The content a crash leaves, and how it relates to what the host had written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Tear {
    pub content: Vec<u8>,
    /// Blocks whose pending (new) content survived the crash.
    pub blocks_kept: u64,
    /// Blocks that reverted to their durable (old) content.
    pub blocks_reverted: u64,
}

impl Tear {
    /// The crash lost some of what was written but kept some of it: a torn write.
    pub fn is_torn(&self, pending_len: usize) -> bool {
        self.blocks_kept > 0 && (self.blocks_reverted > 0 || self.content.len() != pending_len)
    }
}

/// Tears `pending` against `durable` at `block` granularity.
///
/// The length survives as pending or reverts to durable (one fair draw when they differ:
/// the size is inode metadata, written back on its own schedule). Then every block
/// inside that length whose pending and durable bytes differ independently keeps its
/// new bytes or reverts to its old ones (one fair draw each). Bytes past the end of the
/// durable content read as zeros when reverted (an unwritten extent), never as garbage.
/// A byte is never torn inside a block.
pub(super) fn tear(durable: &[u8], pending: &[u8], block: usize, rng: &mut SimRng) -> Tear {
    assert!(block > 0, "tear block size must be positive");
    assert!(
        durable != pending,
        "tear called on a file with nothing pending"
    );
    let len = if durable.len() == pending.len() || rng.below(2) == 1 {
        pending.len()
    } else {
        durable.len()
    };
    let mut content = Vec::with_capacity(len);
    let mut blocks_kept = 0u64;
    let mut blocks_reverted = 0u64;
    let mut start = 0usize;
    while start < len {
        let end = (start + block).min(len);
        let new = padded(pending, start, end);
        let old = padded(durable, start, end);
        if new == old {
            content.extend_from_slice(&new);
        } else if start >= pending.len() {
            // Only the durable file has bytes here (an unsynced truncation whose length
            // reverted): the old bytes come back with the old length, no draw.
            content.extend_from_slice(&old);
        } else if rng.below(2) == 1 {
            blocks_kept += 1;
            content.extend_from_slice(&new);
        } else {
            blocks_reverted += 1;
            content.extend_from_slice(&old);
        }
        start = end;
    }
    assert_eq!(content.len(), len, "tear built a file of the wrong length");
    Tear {
        content,
        blocks_kept,
        blocks_reverted,
    }
}

/// Bytes `[start, end)` of `data`, zero-filled past its end.
fn padded(data: &[u8], start: usize, end: usize) -> Vec<u8> {
    let mut out = vec![0u8; end - start];
    if start < data.len() {
        let have = end.min(data.len());
        out[..have - start].copy_from_slice(&data[start..have]);
    }
    out
}
