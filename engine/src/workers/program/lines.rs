//! A bounded line reader for the protocol, used by the worker and by its parent.
//!
//! A peer that never sends a newline must not make us buffer without bound, so the
//! reader holds at most [`LINE_BYTES_MAX`] bytes of an unfinished line plus one read
//! chunk. A longer line is reported once as [`Line::TooLong`] as soon as it crosses the
//! limit, and its remaining bytes are skipped up to the next newline.

use super::protocol::LINE_BYTES_MAX;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes asked for per read.
const READ_CHUNK_BYTES: usize = 8 * 1024;
/// The most bytes a reader ever buffers.
const BUFFER_BYTES_MAX: usize = LINE_BYTES_MAX + READ_CHUNK_BYTES;

/// One step of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// A line, without its newline. A last line not ended by a newline counts too.
    Text(Vec<u8>),
    /// A line longer than [`LINE_BYTES_MAX`]; its bytes are discarded.
    TooLong,
    /// The peer closed its side.
    Eof,
}

pub struct LineReader<R: AsyncRead + Unpin> {
    inner: R,
    /// Unconsumed input starts at `start`; the bytes before it were handed out.
    buf: Vec<u8>,
    /// Where each read lands before it is appended to `buf`.
    scratch: Box<[u8]>,
    start: usize,
    /// `buf[start..scanned]` is known to hold no newline (saves rescanning a long line).
    scanned: usize,
    /// Skipping the rest of a too-long line, up to and including its newline.
    discarding: bool,
    eof: bool,
    /// The longest line handed out ([`LINE_BYTES_MAX`] but in fuzzing, which scales the
    /// limit down so short inputs reach the too-long paths).
    line_bytes_max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, LINE_BYTES_MAX)
    }

    /// A reader whose lines may be at most `line_bytes_max` bytes (1..=[`LINE_BYTES_MAX`]).
    pub fn with_limit(inner: R, line_bytes_max: usize) -> Self {
        assert!(
            (1..=LINE_BYTES_MAX).contains(&line_bytes_max),
            "line limit {line_bytes_max} outside 1..={LINE_BYTES_MAX}"
        );
        LineReader {
            inner,
            buf: Vec::new(),
            scratch: vec![0; READ_CHUNK_BYTES].into_boxed_slice(),
            start: 0,
            scanned: 0,
            discarding: false,
            eof: false,
            line_bytes_max,
        }
    }

    /// The next line. Cancel-safe: all state lives in `self` and the only await is one
    /// read, which takes nothing from the stream when dropped before it completes, so it
    /// can be a branch of `tokio::select!`.
    pub async fn next_line(&mut self) -> io::Result<Line> {
        loop {
            if let Some(line) = self.take_buffered() {
                return Ok(line);
            }
            if self.eof {
                return Ok(self.take_last());
            }
            self.compact();
            // Read into the scratch chunk, not into `buf`: if this future is dropped
            // mid-read, `buf` is untouched.
            let n = self.inner.read(&mut self.scratch[..]).await?;
            if n == 0 {
                self.eof = true;
            } else {
                self.append(n);
            }
        }
    }

    /// Appends the first `n` scratch bytes. At most LINE_BYTES_MAX bytes are buffered
    /// before a read (`take_buffered` turns more into TooLong), so the buffer stays
    /// within LINE_BYTES_MAX + one chunk; its capacity is grown to no more than that.
    fn append(&mut self, n: usize) {
        let needed = self.buf.len() + n;
        if needed > self.buf.capacity() {
            let target = (2 * self.buf.capacity())
                .max(needed)
                .min(BUFFER_BYTES_MAX)
                .max(needed);
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(&self.scratch[..n]);
    }

    /// Takes a complete line (or a too-long report) out of the buffer, if there is one.
    fn take_buffered(&mut self) -> Option<Line> {
        loop {
            let pending = &self.buf[self.scanned..];
            match pending.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    let end = self.scanned + at;
                    let line_start = self.start;
                    self.start = end + 1;
                    self.scanned = self.start;
                    if self.discarding {
                        // The end of a line already reported as too long.
                        self.discarding = false;
                        continue;
                    }
                    if end - line_start > self.line_bytes_max {
                        return Some(Line::TooLong);
                    }
                    return Some(Line::Text(self.buf[line_start..end].to_vec()));
                }
                None => {
                    self.scanned = self.buf.len();
                    if self.discarding {
                        self.drop_consumed_all();
                        return None;
                    }
                    if self.buf.len() - self.start > self.line_bytes_max {
                        self.drop_consumed_all();
                        self.discarding = true;
                        return Some(Line::TooLong);
                    }
                    return None;
                }
            }
        }
    }

    /// At EOF: the unterminated last line, once, then `Eof` for ever.
    fn take_last(&mut self) -> Line {
        if self.discarding || self.start == self.buf.len() {
            self.drop_consumed_all();
            return Line::Eof;
        }
        let line = self.buf[self.start..].to_vec();
        self.drop_consumed_all();
        Line::Text(line)
    }

    fn drop_consumed_all(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
    }

    /// Moves the unconsumed bytes to the front before reading more.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
    }

    /// The stream being read (for a caller that wants to write on the same object).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// Hands out the given pieces, one per read, then EOF.
    struct Pieces {
        pieces: Vec<Vec<u8>>,
        biggest_ask: usize,
    }

    impl Pieces {
        fn new(pieces: &[&[u8]]) -> Self {
            Pieces {
                pieces: pieces.iter().rev().map(|p| p.to_vec()).collect(),
                biggest_ask: 0,
            }
        }
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.biggest_ask = self.biggest_ask.max(buf.remaining());
            if let Some(mut piece) = self.pieces.pop() {
                let n = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.pieces.push(piece.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    fn read_all(pieces: &[&[u8]]) -> Vec<Line> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reader = LineReader::new(Pieces::new(pieces));
            let mut lines = Vec::new();
            loop {
                let line = reader.next_line().await.unwrap();
                let done = line == Line::Eof;
                lines.push(line);
                if done {
                    // Eof stays Eof.
                    assert_eq!(reader.next_line().await.unwrap(), Line::Eof);
                    assert!(reader.buf.capacity() <= BUFFER_BYTES_MAX);
                    return lines;
                }
            }
        })
    }

    fn text(s: &[u8]) -> Line {
        Line::Text(s.to_vec())
    }

    #[test]
    fn lines_come_out_whole_however_the_reads_split_them() {
        let expected = vec![text(b"one"), text(b""), text(b"three"), Line::Eof];
        assert_eq!(read_all(&[b"one\n\nthree\n"]), expected);
        assert_eq!(read_all(&[b"o", b"ne\n", b"\nthr", b"ee", b"\n"]), expected);
        let bytes: Vec<&[u8]> = b"one\n\nthree\n".chunks(1).collect();
        assert_eq!(read_all(&bytes), expected);
    }

    #[test]
    fn an_unterminated_last_line_is_still_a_line() {
        assert_eq!(
            read_all(&[b"a\nlast"]),
            vec![text(b"a"), text(b"last"), Line::Eof]
        );
        assert_eq!(read_all(&[]), vec![Line::Eof]);
    }

    #[test]
    fn a_line_exactly_at_the_limit_passes_and_one_more_byte_does_not() {
        let at = vec![b'a'; LINE_BYTES_MAX];
        let mut input = at.clone();
        input.push(b'\n');
        assert_eq!(read_all(&[&input]), vec![Line::Text(at.clone()), Line::Eof]);
        // Unterminated at the limit, too.
        assert_eq!(read_all(&[&at]), vec![Line::Text(at.clone()), Line::Eof]);

        let mut over = vec![b'b'; LINE_BYTES_MAX + 1];
        over.extend_from_slice(b"\nnext\n");
        assert_eq!(
            read_all(&[&over]),
            vec![Line::TooLong, text(b"next"), Line::Eof]
        );
    }

    #[test]
    fn a_huge_line_is_reported_once_and_skipped_without_buffering_it() {
        let huge = vec![b'x'; 10 * LINE_BYTES_MAX];
        let pieces: Vec<&[u8]> = vec![b"before\n", &huge, b"\nafter\n"];
        assert_eq!(
            read_all(&pieces),
            vec![text(b"before"), Line::TooLong, text(b"after"), Line::Eof]
        );
        // A too-long line cut by EOF is reported and nothing more.
        assert_eq!(read_all(&[&huge]), vec![Line::TooLong, Line::Eof]);
    }

    #[test]
    fn a_too_long_line_ending_in_the_same_read_as_the_next_one_starts() {
        let mut input = vec![b'y'; LINE_BYTES_MAX + 5];
        input.extend_from_slice(b"\nok");
        let mut small: Vec<&[u8]> = Vec::new();
        let (head, tail) = input.split_at(LINE_BYTES_MAX - 3);
        small.push(head);
        small.push(tail);
        assert_eq!(
            read_all(&small),
            vec![Line::TooLong, text(b"ok"), Line::Eof]
        );
    }

    #[test]
    fn reads_never_ask_for_more_than_one_chunk() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let huge = vec![b'z'; 3 * LINE_BYTES_MAX];
            let mut reader = LineReader::new(Pieces::new(&[&huge]));
            assert_eq!(reader.next_line().await.unwrap(), Line::TooLong);
            assert_eq!(reader.next_line().await.unwrap(), Line::Eof);
            assert!(reader.get_mut().biggest_ask <= READ_CHUNK_BYTES);
        });
    }

    #[test]
    fn read_errors_are_passed_on() {
        struct Broken;
        impl AsyncRead for Broken {
            fn poll_read(
                self: Pin<&mut Self>,
                _cx: &mut Context<'_>,
                _buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Err(io::Error::from_raw_os_error(5)))
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut reader = LineReader::new(Broken);
            let err = reader.next_line().await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(5));
        });
    }
}
