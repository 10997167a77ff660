//! The durable/pending model: inodes, the volatile and durable namespaces, and what a
//! crash does to them. Pure data and rules: no faults, no handles (see `mod.rs`).

use super::content::Content;
use super::errno::{EEXIST, EFBIG, EINVAL, EISDIR, ENOENT, ENOSPC, ENOTDIR, ENOTEMPTY, os};
use super::tear::tear;
use crate::seed::SimRng;
use engine::env::OpenMode;
use std::collections::{BTreeMap, BTreeSet};
use std::io;

pub(super) type Ino = u64;

/// The root directory's inode, `""` (or `"."`) by path.
pub(super) const ROOT: Ino = 0;

/// Bytes: the longest a simulated file may grow. Content lives in memory, so a write at
/// an absurd offset fails with EFBIG instead of allocating it (the real disk would make a
/// sparse file; no engine code should rely on that).
pub(super) const FILE_LEN_MAX: u64 = 1 << 30;

enum Node {
    /// Content blocks are shared copy-on-write (see `content`): `sync_data` makes
    /// `durable` share `pending`'s blocks, and a later write copies only what it changes.
    File {
        /// What survives a crash for sure.
        durable: Content,
        /// What the host reads and writes.
        pending: Content,
    },
    Dir {
        /// The volatile namespace: what `list` and lookups see.
        entries: BTreeMap<String, Ino>,
        /// What a crash reverts `entries` to; updated by `sync_dir`.
        durable: BTreeMap<String, Ino>,
    },
}

/// What a crash destroyed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct CrashLoss {
    /// Directories whose unsynced entries (creations, renames, removals) were lost.
    pub dirs_reverted: u64,
    /// Files whose unsynced content was lost, in whole or in part.
    pub files_reverted: u64,
    /// Of those, files left with a mix of old and new blocks: (inode, kept, reverted).
    pub torn: Vec<(Ino, u64, u64)>,
}

/// One host's files and directories.
pub(super) struct Fs {
    nodes: BTreeMap<Ino, Node>,
    ino_next: Ino,
    /// Sum of the pending lengths of all files: what capacity limits.
    used_bytes: u64,
    /// Open handles per inode: an open file outlives its last name until closed.
    open: BTreeMap<Ino, u32>,
}

/// `""` and `"."` name the root; other paths must pass `check_relative_path`.
pub(super) fn components(path: &str) -> Vec<&str> {
    if path.is_empty() || path == "." {
        return Vec::new();
    }
    path.split('/').collect()
}

impl Fs {
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            ROOT,
            Node::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
        );
        Fs {
            nodes,
            ino_next: ROOT + 1,
            used_bytes: 0,
            open: BTreeMap::new(),
        }
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    fn entries(&self, ino: Ino) -> io::Result<&BTreeMap<String, Ino>> {
        match self.nodes.get(&ino) {
            Some(Node::Dir { entries, .. }) => Ok(entries),
            Some(Node::File { .. }) => Err(os(ENOTDIR)),
            None => panic!("disk inode {ino} is referenced but missing"),
        }
    }

    fn entries_mut(&mut self, ino: Ino) -> &mut BTreeMap<String, Ino> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir { entries, .. }) => entries,
            _ => panic!("disk inode {ino} is not a directory"),
        }
    }

    fn is_dir(&self, ino: Ino) -> bool {
        matches!(self.nodes.get(&ino), Some(Node::Dir { .. }))
    }

    /// Resolves a path in the volatile namespace. ENOENT if a component is missing,
    /// ENOTDIR if one before the last is a file.
    pub fn lookup(&self, comps: &[&str]) -> io::Result<Ino> {
        let mut ino = ROOT;
        for name in comps {
            ino = *self.entries(ino)?.get(*name).ok_or_else(|| os(ENOENT))?;
        }
        Ok(ino)
    }

    /// The parent directory of a non-root path and the last component's name.
    fn lookup_parent<'p>(&self, comps: &[&'p str]) -> io::Result<(Ino, &'p str)> {
        let (name, parents) = comps.split_last().ok_or_else(|| os(EINVAL))?;
        let parent = self.lookup(parents)?;
        self.entries(parent)?;
        Ok((parent, name))
    }

    fn alloc(&mut self, node: Node) -> Ino {
        let ino = self.ino_next;
        self.ino_next += 1;
        self.nodes.insert(ino, node);
        ino
    }

    /// Opens (and by `mode` creates or truncates) a file; returns its inode. The caller
    /// counts the handle with [`Fs::handle_opened`].
    pub fn open(&mut self, comps: &[&str], mode: OpenMode) -> io::Result<Ino> {
        let (parent, name) = self.lookup_parent(comps)?;
        let existing = self.entries(parent)?.get(name).copied();
        let ino = match existing {
            Some(_) if mode == OpenMode::CreateNew => return Err(os(EEXIST)),
            Some(ino) if self.is_dir(ino) => return Err(os(EISDIR)),
            Some(ino) => ino,
            None if !mode.creates() => return Err(os(ENOENT)),
            None => {
                let ino = self.alloc(Node::File {
                    durable: Content::default(),
                    pending: Content::default(),
                });
                self.entries_mut(parent).insert(name.to_string(), ino);
                ino
            }
        };
        if mode == OpenMode::Truncate {
            self.set_len(ino, 0, u64::MAX)?;
        }
        Ok(ino)
    }

    pub fn handle_opened(&mut self, ino: Ino) {
        *self.open.entry(ino).or_insert(0) += 1;
    }

    pub fn handle_closed(&mut self, ino: Ino) {
        let count = self
            .open
            .get_mut(&ino)
            .expect("closing a handle never opened");
        *count -= 1;
        if *count == 0 {
            self.open.remove(&ino);
            self.collect();
        }
    }

    pub fn rename(&mut self, from: &[&str], to: &[&str]) -> io::Result<()> {
        let (from_parent, from_name) = self.lookup_parent(from)?;
        let ino = *self
            .entries(from_parent)?
            .get(from_name)
            .ok_or_else(|| os(ENOENT))?;
        let (to_parent, to_name) = self.lookup_parent(to)?;
        if from == to {
            return Ok(());
        }
        if self.is_dir(ino) && to.starts_with(from) {
            return Err(os(EINVAL)); // a directory cannot move into itself
        }
        if let Some(&target) = self.entries(to_parent)?.get(to_name) {
            match (self.is_dir(ino), self.is_dir(target)) {
                (false, true) => return Err(os(EISDIR)),
                (true, false) => return Err(os(ENOTDIR)),
                (true, true) if !self.entries(target)?.is_empty() => return Err(os(ENOTEMPTY)),
                _ => {}
            }
        }
        self.entries_mut(from_parent).remove(from_name);
        self.entries_mut(to_parent).insert(to_name.to_string(), ino);
        self.collect();
        Ok(())
    }

    /// Removes a file's name. Directories are not removable (EISDIR).
    pub fn remove(&mut self, comps: &[&str]) -> io::Result<()> {
        let (parent, name) = self.lookup_parent(comps)?;
        let ino = *self.entries(parent)?.get(name).ok_or_else(|| os(ENOENT))?;
        if self.is_dir(ino) {
            return Err(os(EISDIR));
        }
        self.entries_mut(parent).remove(name);
        self.collect();
        Ok(())
    }

    pub fn list(&self, comps: &[&str]) -> io::Result<Vec<String>> {
        let ino = self.lookup(comps)?;
        // BTreeMap keys come sorted by byte order, as the real disk sorts its names.
        Ok(self.entries(ino)?.keys().cloned().collect())
    }

    /// (length, is_dir); directories have length 0.
    pub fn metadata(&self, comps: &[&str]) -> io::Result<(u64, bool)> {
        let ino = self.lookup(comps)?;
        Ok(match &self.nodes[&ino] {
            Node::File { pending, .. } => (pending.len() as u64, false),
            Node::Dir { .. } => (0, true),
        })
    }

    pub fn create_dir_all(&mut self, comps: &[&str]) -> io::Result<()> {
        let mut ino = ROOT;
        for (i, name) in comps.iter().enumerate() {
            let next = self.entries(ino)?.get(*name).copied();
            ino = match next {
                Some(next) if self.is_dir(next) => next,
                Some(_) if i + 1 == comps.len() => return Err(os(EEXIST)),
                Some(_) => return Err(os(ENOTDIR)),
                None => {
                    let dir = self.alloc(Node::Dir {
                        entries: BTreeMap::new(),
                        durable: BTreeMap::new(),
                    });
                    self.entries_mut(ino).insert((*name).to_string(), dir);
                    dir
                }
            };
        }
        Ok(())
    }

    /// Makes the directory's current entries durable (not its children's entries).
    pub fn sync_dir(&mut self, comps: &[&str]) -> io::Result<()> {
        let ino = self.lookup(comps)?;
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir { entries, durable }) => {
                durable.clone_from(entries);
                // A removal made durable may free the last name of a file.
                self.collect();
                Ok(())
            }
            _ => Err(os(ENOTDIR)),
        }
    }

    fn file(&self, ino: Ino) -> (&Content, &Content) {
        match self.nodes.get(&ino) {
            Some(Node::File { durable, pending }) => (durable, pending),
            _ => panic!("disk inode {ino} is not an open file"),
        }
    }

    pub fn len(&self, ino: Ino) -> u64 {
        self.file(ino).1.len() as u64
    }

    pub fn read(&self, ino: Ino, buf: &mut [u8], offset: u64) -> usize {
        let Ok(start) = usize::try_from(offset) else {
            return 0;
        };
        self.file(ino).1.read(buf, start)
    }

    /// Checks that file `ino` may be `len` bytes long: EFBIG past the longest file,
    /// ENOSPC if its growth would pass `capacity`. Returns its current length.
    fn check_len(&self, ino: Ino, len: u64, capacity: u64) -> io::Result<u64> {
        if len > FILE_LEN_MAX {
            return Err(os(EFBIG));
        }
        let old = self.len(ino);
        if len > old && self.used_bytes + (len - old) > capacity {
            return Err(os(ENOSPC));
        }
        Ok(old)
    }

    fn pending_mut(&mut self, ino: Ino) -> &mut Content {
        match self.nodes.get_mut(&ino) {
            Some(Node::File { pending, .. }) => pending,
            _ => panic!("disk inode {ino} is not an open file"),
        }
    }

    fn set_used(&mut self, old: u64, len: u64, capacity: u64) {
        self.used_bytes = self.used_bytes + len - old;
        assert!(
            len <= old || self.used_bytes <= capacity,
            "disk grew past capacity"
        );
    }

    /// Resizes the pending content, charging growth against `capacity`.
    pub fn set_len(&mut self, ino: Ino, len: u64, capacity: u64) -> io::Result<()> {
        let old = self.check_len(ino, len, capacity)?;
        self.pending_mut(ino).resize(len as usize);
        self.set_used(old, len, capacity);
        Ok(())
    }

    /// Writes all of `buf` at `offset` of the pending content, or nothing.
    pub fn write(&mut self, ino: Ino, buf: &[u8], offset: u64, capacity: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| os(EFBIG))?;
        let old = self.check_len(ino, end.max(self.len(ino)), capacity)?;
        self.pending_mut(ino).write(buf, offset as usize);
        self.set_used(old, old.max(end), capacity);
        Ok(())
    }

    pub fn sync_data(&mut self, ino: Ino) {
        if let Some(Node::File { durable, pending }) = self.nodes.get_mut(&ino) {
            *durable = pending.clone();
        }
    }

    /// Drops inodes no name (volatile or durable) and no open handle refers to.
    fn collect(&mut self) {
        let mut live = BTreeSet::new();
        let mut todo: Vec<Ino> = vec![ROOT];
        todo.extend(self.open.keys());
        while let Some(ino) = todo.pop() {
            if !live.insert(ino) {
                continue;
            }
            if let Some(Node::Dir { entries, durable }) = self.nodes.get(&ino) {
                todo.extend(entries.values().chain(durable.values()));
            }
        }
        let dead: Vec<Ino> = self
            .nodes
            .keys()
            .filter(|i| !live.contains(i))
            .copied()
            .collect();
        for ino in dead {
            if let Some(Node::File { pending, .. }) = self.nodes.remove(&ino) {
                self.used_bytes -= pending.len() as u64;
            }
        }
    }

    /// A host crash: every handle is gone, the namespace reverts to its durable version,
    /// unsynced file content is torn at `block` granularity.
    pub fn crash(&mut self, block: usize, rng: &mut SimRng) -> CrashLoss {
        let mut loss = CrashLoss::default();
        self.open.clear();
        for node in self.nodes.values_mut() {
            if let Node::Dir { entries, durable } = node
                && entries != durable
            {
                loss.dirs_reverted += 1;
                entries.clone_from(durable);
            }
        }
        self.collect();
        for (ino, node) in self.nodes.iter_mut() {
            let Node::File { durable, pending } = node else {
                continue;
            };
            if durable == pending {
                continue;
            }
            let pending_bytes = pending.to_vec();
            let torn = tear(&durable.to_vec(), &pending_bytes, block, rng);
            if torn.content != pending_bytes {
                loss.files_reverted += 1;
            }
            if torn.is_torn(pending.len()) {
                loss.torn
                    .push((*ino, torn.blocks_kept, torn.blocks_reverted));
            }
            *durable = Content::from_vec(&torn.content);
            *pending = durable.clone();
        }
        self.used_bytes = self.recount();
        loss
    }

    fn recount(&self) -> u64 {
        self.nodes
            .values()
            .map(|node| match node {
                Node::File { pending, .. } => pending.len() as u64,
                Node::Dir { .. } => 0,
            })
            .sum()
    }

    /// Checks the model's invariants (tests and debug builds call it after operations).
    pub fn assert_invariants(&self) {
        assert_eq!(self.used_bytes, self.recount(), "disk used_bytes drifted");
        for (ino, node) in &self.nodes {
            if let Node::Dir { entries, durable } = node {
                for child in entries.values().chain(durable.values()) {
                    assert!(
                        self.nodes.contains_key(child),
                        "dir {ino} names missing inode {child}"
                    );
                }
            }
        }
        assert!(self.is_dir(ROOT), "the root directory is gone");
        for ino in self.open.keys() {
            assert!(
                !self.is_dir(*ino),
                "an open handle refers to directory {ino}"
            );
        }
    }
}
