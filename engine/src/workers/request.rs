//! Requests to a ready worker over its endpoint, and the worker's disk usage.

use super::WorkerError;
use super::oversight::LargeFile;
use super::worker::WorkerShared;
use crate::env::{Disk, NetAddr};
use crate::workers::program::lines::{Line, LineReader};
use crate::workers::program::protocol::{ErrorCode, Reply, Request, decode_reply, encode_line};
use tokio::io::AsyncWriteExt;

/// Replies collected for one request at most (a bound against a runaway stream).
pub(super) const REPLIES_MAX: usize = 100_000;

fn request_id(request: &Request) -> Option<u64> {
    match request {
        Request::Ping { id }
        | Request::Run { id, .. }
        | Request::WriteCache { id, .. }
        | Request::ReadCache { id, .. }
        | Request::Snapshot { id, .. }
        | Request::Checkpoint { id }
        | Request::ReadOnly { id, .. }
        | Request::Stats { id } => Some(*id),
        Request::Shutdown => None,
    }
}

pub(crate) async fn exchange(
    shared: &WorkerShared,
    port: u16,
    request: Request,
) -> Result<Vec<Reply>, WorkerError> {
    let mut replies = Vec::new();
    exchange_into(shared, port, request, &mut replies).await?;
    Ok(replies)
}

/// Where an exchange puts the replies it reads.
pub(crate) trait ReplySink {
    /// Takes one reply; `false`: the taker is gone, stop reading.
    async fn put(&mut self, reply: Reply) -> bool;
}

impl ReplySink for Vec<Reply> {
    async fn put(&mut self, reply: Reply) -> bool {
        self.push(reply);
        true
    }
}

/// A bounded channel: a taker that does not keep up stops the reading, so the worker's
/// writes back up (back-pressure reaches the producer instead of a growing buffer).
impl ReplySink for tokio::sync::mpsc::Sender<Reply> {
    async fn put(&mut self, reply: Reply) -> bool {
        self.send(reply).await.is_ok()
    }
}

/// Reads the replies to `request` into `sink` as they arrive, the ending one included.
pub(crate) async fn exchange_into(
    shared: &WorkerShared,
    port: u16,
    request: Request,
    sink: &mut impl ReplySink,
) -> Result<(), WorkerError> {
    let name = &shared.name;
    let protocol = |detail: String| WorkerError::Protocol {
        name: name.clone(),
        detail,
    };
    let addr = NetAddr::new(shared.env.host(), port);
    let mut stream = shared
        .env
        .net()
        .connect(&addr)
        .await
        .map_err(|e| protocol(format!("connect {addr}: {e}")))?;
    stream
        .write_all(encode_line(&request).as_bytes())
        .await
        .map_err(|e| protocol(format!("send: {e}")))?;
    let id = request_id(&request);
    let mut lines = LineReader::new(stream);
    let mut received = 0usize;
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| protocol(format!("receive: {e}")))?;
        let bytes = match line {
            Line::Text(bytes) => bytes,
            Line::TooLong => return Err(protocol("reply line too long".into())),
            Line::Eof => {
                return Err(protocol(format!(
                    "connection closed after {received} replies"
                )));
            }
        };
        let reply = decode_reply(&bytes).map_err(|e| protocol(e.to_string()))?;
        let ends = match &reply {
            Reply::Pong { id: r } | Reply::Done { id: r } | Reply::Stats { id: r, .. } => {
                Some(*r) == id
            }
            Reply::Error { id: r, .. } => *r == id || r.is_none(),
            _ => false,
        };
        if let Reply::Error { code, message, .. } = &reply {
            return Err(match code {
                ErrorCode::NoSpace | ErrorCode::QuotaExceeded => WorkerError::DiskQuotaExceeded {
                    name: name.clone(),
                    quota_bytes: shared.config.disk.as_ref().map(|d| d.quota_bytes),
                    detail: message.clone(),
                },
                ErrorCode::ReadOnly => WorkerError::ReadOnly {
                    name: name.clone(),
                    detail: message.clone(),
                },
                ErrorCode::TooManyFiles => WorkerError::FdExhausted {
                    name: name.clone(),
                    detail: message.clone(),
                },
                other => WorkerError::Refused {
                    name: name.clone(),
                    code: other.name().to_string(),
                    message: message.clone(),
                },
            });
        }
        if received == REPLIES_MAX {
            return Err(protocol(format!(
                "more than {REPLIES_MAX} replies to one request"
            )));
        }
        received += 1;
        if !sink.put(reply).await || ends {
            return Ok(());
        }
    }
}

/// Files under `dir` larger than `bytes`, by path.
pub(crate) fn files_over(disk: &dyn Disk, dir: &str, bytes: u64) -> Vec<LargeFile> {
    let mut found = Vec::new();
    for_each_file(disk, dir, &mut |path, len| {
        if len > bytes {
            found.push(LargeFile {
                path: path.to_string(),
                bytes: len,
            });
        }
    });
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Bytes held by the files under `dir` (0 if it does not exist).
pub(crate) fn dir_bytes(disk: &dyn Disk, dir: &str) -> u64 {
    let mut total = 0;
    for_each_file(disk, dir, &mut |_, len| total += len);
    total
}

/// Calls `visit(path, length)` for every file under `dir`, subdirectories included;
/// what cannot be listed or read is skipped (it holds nothing we can count).
fn for_each_file(disk: &dyn Disk, dir: &str, visit: &mut dyn FnMut(&str, u64)) {
    let Ok(names) = disk.list(dir) else {
        return;
    };
    for n in names {
        let path = format!("{dir}/{n}");
        match disk.metadata(&path) {
            Ok(meta) if meta.is_dir => for_each_file(disk, &path, visit),
            Ok(meta) => visit(&path, meta.len),
            Err(_) => {}
        }
    }
}
