//! A file's bytes in shared blocks, copied on write.
//!
//! Scenarios write, sync and rewrite files of megabytes. As one `Vec<u8>` each such file
//! was grown by reallocation (copying it and touching fresh pages as it doubled) and
//! copied whole on every sync. In blocks, growth never moves written bytes, a sync
//! shares the blocks (the durable copy is a list of pointers), and a later write copies
//! only the blocks it changes. A full block of one repeated byte (the fill of a cache
//! file, zeros) is one shared block for the whole process: a scenario that fills a disk
//! of 96 MiB with such files costs pointers, not 96 MiB of memory.

use std::sync::{Arc, Mutex, OnceLock};

/// Bytes per block. Every block but the last is full; the last holds the rest, so a
/// small file costs its length, not a block.
pub(super) const BLOCK_BYTES: usize = 64 * 1024;

/// A block of content, shared between copies of a file's content.
type Block = Arc<Vec<u8>>;

/// The shared full block of `byte` repeated.
fn uniform_block(byte: u8) -> Block {
    static BLOCKS: OnceLock<Mutex<Vec<Option<Block>>>> = OnceLock::new();
    let blocks = BLOCKS.get_or_init(|| Mutex::new(vec![None; 256]));
    let mut blocks = blocks.lock().expect("uniform blocks poisoned");
    blocks[usize::from(byte)]
        .get_or_insert_with(|| Arc::new(vec![byte; BLOCK_BYTES]))
        .clone()
}

/// `Some(byte)` if `bytes` is one byte repeated: every byte equals the next, which is one
/// `memcmp` of the slice against itself shifted by one (a byte loop cost 5% of a gate).
fn uniform(bytes: &[u8]) -> Option<u8> {
    let first = *bytes.first()?;
    (bytes[1..] == bytes[..bytes.len() - 1]).then_some(first)
}

#[derive(Clone, Debug, Default)]
pub(super) struct Content {
    len: usize,
    blocks: Vec<Block>,
}

impl Content {
    pub fn from_vec(bytes: &[u8]) -> Self {
        Content {
            len: bytes.len(),
            blocks: bytes
                .chunks(BLOCK_BYTES)
                .map(|b| Arc::new(b.to_vec()))
                .collect(),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.len);
        for block in &self.blocks {
            bytes.extend_from_slice(block);
        }
        bytes
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Copies bytes from `offset` into `buf`; returns how many (0 at or past the end).
    pub fn read(&self, buf: &mut [u8], offset: usize) -> usize {
        let n = buf.len().min(self.len.saturating_sub(offset));
        let mut done = 0;
        while done < n {
            let at = offset + done;
            let block = &self.blocks[at / BLOCK_BYTES];
            let within = at % BLOCK_BYTES;
            let step = (n - done).min(block.len() - within);
            buf[done..done + step].copy_from_slice(&block[within..within + step]);
            done += step;
        }
        n
    }

    /// Writes `buf` at `offset`, zero-filling any gap past the end first.
    pub fn write(&mut self, buf: &[u8], offset: usize) {
        if offset > self.len {
            self.resize(offset);
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done;
            let index = at / BLOCK_BYTES;
            let within = at % BLOCK_BYTES;
            let step = (buf.len() - done).min(BLOCK_BYTES - within);
            let whole = (step == BLOCK_BYTES)
                .then(|| uniform(&buf[done..done + step]))
                .flatten();
            if index == self.blocks.len() {
                self.blocks.push(Arc::default());
            }
            if let Some(byte) = whole {
                self.blocks[index] = uniform_block(byte);
                done += step;
                continue;
            }
            let block = Arc::make_mut(&mut self.blocks[index]);
            let overlap = block.len().saturating_sub(within).min(step);
            block[within..within + overlap].copy_from_slice(&buf[done..done + overlap]);
            block.extend_from_slice(&buf[done + overlap..done + step]);
            done += step;
        }
        self.len = self.len.max(offset + buf.len());
    }

    /// Truncates, or extends with zeros.
    pub fn resize(&mut self, len: usize) {
        let blocks = len.div_ceil(BLOCK_BYTES);
        self.blocks.truncate(blocks);
        // The old last block, now full or the new last one, gets its new length.
        let kept = self.blocks.len();
        if let Some(last) = self.blocks.last_mut() {
            let last_len = (len - (kept - 1) * BLOCK_BYTES).min(BLOCK_BYTES);
            if last.len() != last_len {
                Arc::make_mut(last).resize(last_len, 0);
            }
        }
        while self.blocks.len() < blocks {
            let start = self.blocks.len() * BLOCK_BYTES;
            let size = (len - start).min(BLOCK_BYTES);
            self.blocks.push(if size == BLOCK_BYTES {
                uniform_block(0)
            } else {
                Arc::new(vec![0; size])
            });
        }
        self.len = len;
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .blocks
                .iter()
                .zip(&other.blocks)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }
}

impl Eq for Content {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation checked against a plain `Vec<u8>` doing the same.
    #[test]
    fn blocks_behave_as_one_vector() {
        let mut rng = crate::seed::SimRng::new(7, "content");
        let mut model: Vec<u8> = Vec::new();
        let mut content = Content::default();
        let mut synced = content.clone();
        let mut synced_model = model.clone();
        for step in 0..2_000u32 {
            let span = 3 * BLOCK_BYTES as u64;
            match rng.below(4) {
                0 => {
                    let offset = rng.below(span) as usize;
                    let len = rng.below(BLOCK_BYTES as u64 + 10) as usize;
                    // Half the writes are one byte repeated (shared full blocks), half
                    // are not.
                    let buf: Vec<u8> = if step % 2 == 0 {
                        vec![(step % 251) as u8 + 1; len]
                    } else {
                        (0..len).map(|i| (i % 253) as u8).collect()
                    };
                    if offset > model.len() {
                        model.resize(offset, 0);
                    }
                    let end = offset + len;
                    if end > model.len() {
                        model.resize(end, 0);
                    }
                    model[offset..end].copy_from_slice(&buf);
                    content.write(&buf, offset);
                }
                1 => {
                    let len = rng.below(span) as usize;
                    model.resize(len, 0);
                    content.resize(len);
                }
                2 => {
                    synced = content.clone();
                    synced_model = model.clone();
                }
                _ => {
                    let offset = rng.below(span) as usize;
                    let mut buf = vec![0; rng.below(BLOCK_BYTES as u64 * 2) as usize];
                    let n = content.read(&mut buf, offset);
                    let want = buf.len().min(model.len().saturating_sub(offset));
                    assert_eq!(n, want, "read length at step {step}");
                    let expected = model.get(offset..offset + n).unwrap_or_default();
                    assert_eq!(&buf[..n], expected, "read at step {step}");
                }
            }
            assert_eq!(content.len(), model.len(), "length at step {step}");
            assert_eq!(content.to_vec(), model, "content at step {step}");
            assert_eq!(
                synced.to_vec(),
                synced_model,
                "a shared copy changed at step {step}"
            );
            assert_eq!(
                content == synced,
                model == synced_model,
                "equality at step {step}"
            );
        }
        assert_eq!(Content::from_vec(&model), content);
    }

    /// Full blocks of one repeated byte are shared, and changing one copies it first.
    #[test]
    fn uniform_blocks_are_shared_and_copied_on_change() {
        let mut a = Content::default();
        a.write(&vec![b'x'; 2 * BLOCK_BYTES], 0);
        let mut b = Content::default();
        b.write(&vec![b'x'; BLOCK_BYTES], 0);
        assert!(Arc::ptr_eq(&a.blocks[0], &a.blocks[1]));
        assert!(Arc::ptr_eq(&a.blocks[0], &b.blocks[0]));
        a.write(b"y", 5);
        assert_eq!(
            b.to_vec(),
            vec![b'x'; BLOCK_BYTES],
            "the shared block is unchanged"
        );
        assert_eq!(a.to_vec()[5], b'y');
        assert_eq!(a.to_vec()[BLOCK_BYTES + 5], b'x');
    }
}
