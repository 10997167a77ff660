//! The real worker binary, driven over its stdio and its TCP endpoint by the real
//! environment's launcher, in a temporary directory.

use engine::env::real::{RealEnvOptions, real_env};
use engine::env::{ChildProc, Env, NetAddr, OpenMode, ProcSpec, Signal};
use engine::workers::program::snapshot;
use engine::workers::program::{
    ErrorCode, LINE_BYTES_MAX, Line, LineReader, PROTOCOL_VERSION, Reply, Request, SnapshotState,
    decode_reply, encode_line,
};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");
/// Generous: the machine may be busy building.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// The worker's working directory inside the test's data directory.
const CWD: &str = "w";

struct Fixture {
    _dir: tempfile::TempDir,
    env: Env,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let env = real_env(RealEnvOptions::loopback(dir.path()));
    env.disk().create_dir_all(CWD).unwrap();
    Fixture { _dir: dir, env }
}

/// Reads replies off a stream.
struct Replies<R: AsyncRead + Unpin> {
    lines: LineReader<R>,
}

impl<R: AsyncRead + Unpin> Replies<R> {
    fn new(read: R) -> Self {
        Replies {
            lines: LineReader::new(read),
        }
    }

    /// The next line as a reply, or `None` at EOF.
    async fn next_any(&mut self) -> Option<Reply> {
        let line = tokio::time::timeout(REPLY_TIMEOUT, self.lines.next_line())
            .await
            .expect("timed out waiting for a reply")
            .expect("reading replies");
        match line {
            Line::Text(bytes) => Some(decode_reply(&bytes).unwrap_or_else(|e| {
                panic!("bad reply {:?}: {e}", String::from_utf8_lossy(&bytes))
            })),
            Line::TooLong => panic!("reply line too long"),
            Line::Eof => None,
        }
    }

    /// The next reply that is not a heartbeat.
    async fn next(&mut self) -> Reply {
        loop {
            match self.next_any().await {
                Some(Reply::Heartbeat { .. }) => continue,
                Some(reply) => return reply,
                None => panic!("EOF while waiting for a reply"),
            }
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(out: &mut W, request: &Request) {
    out.write_all(encode_line(request).as_bytes())
        .await
        .unwrap();
    out.flush().await.unwrap();
}

struct Worker {
    child: Box<dyn ChildProc>,
    stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    replies: Replies<Box<dyn AsyncRead + Send + Unpin>>,
}

impl Worker {
    async fn start(env: &Env, args: &[&str]) -> Worker {
        let mut spec = ProcSpec::new(WORKER);
        spec.args = args.iter().map(|a| a.to_string()).collect();
        spec.cwd = Some(CWD.to_string());
        let mut child = env.procs().spawn(&spec).await.unwrap();
        let stdin = child.take_stdin();
        let stdout = child.take_stdout().unwrap();
        Worker {
            child,
            stdin,
            replies: Replies::new(stdout),
        }
    }

    async fn send(&mut self, request: &Request) {
        send(self.stdin.as_mut().unwrap(), request).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).await.unwrap();
        stdin.flush().await.unwrap();
    }

    async fn next(&mut self) -> Reply {
        self.replies.next().await
    }

    async fn exit_code(&mut self) -> Option<i32> {
        let status = tokio::time::timeout(REPLY_TIMEOUT, self.child.wait())
            .await
            .expect("timed out waiting for the worker to exit")
            .unwrap();
        status.code()
    }

    /// Expects `Ready` and returns its port and snapshot state.
    async fn ready(&mut self) -> (Option<u16>, SnapshotState) {
        match self.next().await {
            Reply::Ready {
                pid,
                port,
                version,
                snapshot,
            } => {
                assert_eq!(pid, self.child.pid());
                assert_eq!(version, PROTOCOL_VERSION);
                (port, snapshot)
            }
            other => panic!("expected Ready, got {other:?}"),
        }
    }
}

fn protocol_error(reply: Reply) -> String {
    match reply {
        Reply::Error {
            id: None,
            code: ErrorCode::Protocol,
            message,
        } => message,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_over_stdin_are_answered_and_shutdown_exits_zero() {
    let f = fixture();
    let mut w = Worker::start(&f.env, &["--name", "t1", "--heartbeat-ms", "0"]).await;
    assert_eq!(w.ready().await, (None, SnapshotState::None));

    w.send(&Request::Ping { id: 1 }).await;
    assert_eq!(w.next().await, Reply::Pong { id: 1 });

    w.send(&Request::Run {
        id: 2,
        input: " alpha beta\tgamma ".to_string(),
        pace_ms: None,
    })
    .await;
    for (seq, word) in [(1, "alpha"), (2, "beta"), (3, "gamma")] {
        assert_eq!(
            w.next().await,
            Reply::Event {
                id: 2,
                seq,
                data: word.to_string(),
                binary: false,
            }
        );
    }
    assert_eq!(w.next().await, Reply::Done { id: 2 });

    w.send_raw(b"this is not json\n").await;
    assert!(protocol_error(w.next().await).contains("not JSON"));
    let mut long = vec![b'{'; LINE_BYTES_MAX + 10];
    long.push(b'\n');
    w.send_raw(&long).await;
    assert!(protocol_error(w.next().await).contains("too long"));
    w.send_raw(b"{\"type\":\"reboot\",\"id\":9}\n").await;
    assert!(protocol_error(w.next().await).contains("unknown request type"));
    w.send_raw(b"\xff\xfe\n").await;
    assert!(protocol_error(w.next().await).contains("not UTF-8"));

    w.send(&Request::Stats { id: 3 }).await;
    assert_eq!(
        w.next().await,
        Reply::Stats {
            id: 3,
            requests: 3,
            malformed_lines: 4,
            cache_evictions: 0,
        }
    );

    w.send(&Request::WriteCache {
        id: 4,
        name: "blob".to_string(),
        bytes: 100_000,
    })
    .await;
    assert_eq!(w.next().await, Reply::Done { id: 4 });
    let meta = f.env.disk().metadata("w/cache/blob").unwrap();
    assert_eq!(meta.len, 100_000);
    for (id, name) in [(5, "../escape"), (6, "/etc/passwd"), (7, ""), (8, "a/b")] {
        w.send(&Request::WriteCache {
            id,
            name: name.to_string(),
            bytes: 1,
        })
        .await;
        match w.next().await {
            Reply::Error {
                id: Some(got),
                code: ErrorCode::AccessDenied,
                ..
            } => assert_eq!(got, id),
            other => panic!("{name:?}: expected AccessDenied, got {other:?}"),
        }
    }
    assert!(f.env.disk().metadata("escape").is_err());

    w.send(&Request::Snapshot {
        id: 9,
        state: "s".to_string(),
    })
    .await;
    assert!(matches!(
        w.next().await,
        Reply::Error {
            id: Some(9),
            code: ErrorCode::Usage,
            ..
        }
    ));

    w.send(&Request::Shutdown).await;
    assert_eq!(w.next().await, Reply::Bye);
    assert_eq!(w.replies.next_any().await, None, "nothing after Bye");
    assert_eq!(w.exit_code().await, Some(0));
}

/// A port nothing listens on right now (the small race with other processes is
/// acceptable in a test).
async fn free_port(env: &Env) -> u16 {
    let listener = env.net().bind(0).await.unwrap();
    listener.local_addr().port
}

#[tokio::test]
async fn the_endpoint_answers_and_sigterm_stops_gracefully() {
    let f = fixture();
    let port = free_port(&f.env).await;
    let port_arg = port.to_string();
    let mut w = Worker::start(
        &f.env,
        &[
            "--port",
            &port_arg,
            "--heartbeat-ms",
            "20",
            "--snapshot",
            "state/snap",
        ],
    )
    .await;
    assert_eq!(w.ready().await, (Some(port), SnapshotState::None));

    let stream = f
        .env
        .net()
        .connect(&NetAddr::new("127.0.0.1", port))
        .await
        .unwrap();
    let (read, mut write) = tokio::io::split(stream);
    let mut conn = Replies::new(read);
    send(&mut write, &Request::Ping { id: 7 }).await;
    assert_eq!(conn.next().await, Reply::Pong { id: 7 });
    send(&mut write, &Request::Shutdown).await;
    assert!(matches!(
        conn.next().await,
        Reply::Error {
            id: None,
            code: ErrorCode::Usage,
            ..
        }
    ));
    write.write_all(b"garbage\n").await.unwrap();
    assert!(protocol_error(conn.next().await).contains("not JSON"));

    // Stats are worker-wide: the endpoint's requests and malformed lines count.
    w.send(&Request::Stats { id: 8 }).await;
    assert_eq!(
        w.next().await,
        Reply::Stats {
            id: 8,
            requests: 3,
            malformed_lines: 1,
            cache_evictions: 0,
        }
    );

    w.send(&Request::Snapshot {
        id: 10,
        state: "user=ann password=hunter2 key sk-abcdefghijklmnop1234".to_string(),
    })
    .await;
    assert_eq!(w.next().await, Reply::Done { id: 10 });
    let file = f.env.disk().open("w/state/snap", OpenMode::Read).unwrap();
    let mut bytes = vec![0; file.len().unwrap() as usize];
    assert_eq!(file.read_at(&mut bytes, 0).unwrap(), bytes.len());
    assert_eq!(
        snapshot::decode(&bytes),
        Ok("user=ann password=[REDACTED] key [REDACTED]".to_string())
    );

    // Heartbeats flow on stdout.
    let mut beats = Vec::new();
    while beats.len() < 2 {
        if let Some(Reply::Heartbeat { seq }) = w.replies.next_any().await {
            beats.push(seq);
        }
    }
    assert!(beats[1] > beats[0], "{beats:?}");

    w.child.signal(Signal::Term).unwrap();
    assert_eq!(w.next().await, Reply::Bye);
    assert_eq!(w.exit_code().await, Some(0));
    assert_eq!(conn.next_any().await, None, "the connection is closed");

    // The next incarnation restores the snapshot; a damaged one is ignored.
    let mut again = Worker::start(&f.env, &["--snapshot", "state/snap"]).await;
    assert_eq!(again.ready().await.1, SnapshotState::Restored);
    drop(again.stdin.take()); // EOF on stdin is a graceful stop too
    assert_eq!(again.next().await, Reply::Bye);
    assert_eq!(again.exit_code().await, Some(0));

    let file = f
        .env
        .disk()
        .open("w/state/snap", OpenMode::ReadWrite)
        .unwrap();
    let last = file.len().unwrap() - 1;
    file.write_at(b"X", last).unwrap();
    let mut damaged = Worker::start(&f.env, &["--snapshot", "state/snap"]).await;
    assert_eq!(damaged.ready().await.1, SnapshotState::CorruptFallback);
    damaged.send(&Request::Shutdown).await;
    assert_eq!(damaged.next().await, Reply::Bye);
    assert_eq!(damaged.exit_code().await, Some(0));
}

#[tokio::test]
async fn a_taken_port_is_reported_and_exits_3() {
    let f = fixture();
    let listener = f.env.net().bind(0).await.unwrap();
    let port = listener.local_addr().port.to_string();
    let mut w = Worker::start(&f.env, &["--port", &port]).await;
    assert!(matches!(
        w.next().await,
        Reply::Error {
            id: None,
            code: ErrorCode::AddrInUse,
            ..
        }
    ));
    assert_eq!(w.exit_code().await, Some(3));
}

#[tokio::test]
async fn bad_arguments_are_reported_and_exit_2() {
    let f = fixture();
    let mut w = Worker::start(&f.env, &["--port", "http"]).await;
    match w.next().await {
        Reply::Error {
            id: None,
            code: ErrorCode::Usage,
            message,
        } => assert!(message.contains("--port"), "{message}"),
        other => panic!("expected a usage error, got {other:?}"),
    }
    assert_eq!(w.exit_code().await, Some(2));
}

fn error_code(reply: Reply) -> (ErrorCode, String) {
    match reply {
        Reply::Error { code, message, .. } => (code, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_cache_evicts_least_recently_used_files_and_honours_quota_and_read_only() {
    let f = fixture();
    let mut w = Worker::start(
        &f.env,
        &[
            "--heartbeat-ms=0",
            "--cache-cap-bytes=300",
            "--disk-quota-bytes=400",
            "--snapshot=snap",
        ],
    )
    .await;
    assert!(matches!(w.next().await, Reply::Ready { .. }));
    let write = |id: u64, name: &str, bytes: u64| Request::WriteCache {
        id,
        name: name.to_string(),
        bytes,
    };
    let exists = |name: &str| {
        f.env
            .disk()
            .metadata(&format!("{CWD}/cache/{name}"))
            .is_ok()
    };
    for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
        w.send(&write(id, name, 100)).await;
        assert_eq!(w.next().await, Reply::Done { id });
    }
    // A use of `a` makes `b` the least recently used: the next write evicts it.
    w.send(&Request::ReadCache {
        id: 4,
        name: "a".to_string(),
    })
    .await;
    assert_eq!(w.next().await, Reply::Done { id: 4 });
    w.send(&write(5, "d", 100)).await;
    assert_eq!(w.next().await, Reply::Done { id: 5 });
    assert!(exists("a") && !exists("b") && exists("c") && exists("d"));
    // Larger than the cap on its own: refused, nothing evicted.
    w.send(&write(6, "huge", 301)).await;
    let (code, message) = error_code(w.next().await);
    assert_eq!(code, ErrorCode::QuotaExceeded, "{message}");
    assert!(message.contains("cache cap of 300 bytes"), "{message}");
    assert!(exists("a") && exists("c") && exists("d"));
    // The snapshot counts against the quota: 300 cached + a snapshot of ~150 > 400.
    w.send(&Request::Snapshot {
        id: 7,
        state: "s".repeat(100),
    })
    .await;
    assert_eq!(w.next().await, Reply::Done { id: 7 });
    w.send(&write(8, "e", 100)).await;
    let (code, message) = error_code(w.next().await);
    assert_eq!(code, ErrorCode::QuotaExceeded, "{message}");
    assert!(message.contains("disk quota of 400 bytes"), "{message}");
    // Read-only mode refuses writes until lifted.
    w.send(&Request::ReadOnly { id: 9, on: true }).await;
    assert_eq!(w.next().await, Reply::Done { id: 9 });
    w.send(&write(10, "a", 10)).await;
    assert_eq!(error_code(w.next().await).0, ErrorCode::ReadOnly);
    w.send(&Request::ReadOnly { id: 11, on: false }).await;
    assert_eq!(w.next().await, Reply::Done { id: 11 });
    w.send(&write(12, "a", 10)).await;
    assert_eq!(w.next().await, Reply::Done { id: 12 });
    w.send(&Request::ReadCache {
        id: 13,
        name: "b".to_string(),
    })
    .await;
    assert_eq!(error_code(w.next().await).0, ErrorCode::NotFound);
    w.send(&Request::Stats { id: 14 }).await;
    assert!(matches!(
        w.next().await,
        Reply::Stats {
            cache_evictions: 1,
            ..
        }
    ));
    w.send(&Request::Shutdown).await;
    assert_eq!(w.next().await, Reply::Bye);
    assert_eq!(w.exit_code().await, Some(0));
}

#[tokio::test]
async fn a_checkpoint_persists_the_session_with_the_runs_since_its_snapshot() {
    let f = fixture();
    let args = ["--heartbeat-ms=0", "--snapshot=state/snap"];
    let mut w = Worker::start(&f.env, &args).await;
    assert!(matches!(w.next().await, Reply::Ready { .. }));
    w.send(&Request::Snapshot {
        id: 1,
        state: "base".to_string(),
    })
    .await;
    assert_eq!(w.next().await, Reply::Done { id: 1 });
    for (id, input) in [(2, "first question"), (3, "second")] {
        w.send(&Request::Run {
            id,
            input: input.to_string(),
            pace_ms: None,
        })
        .await;
        while w.next().await != (Reply::Done { id }) {}
    }
    w.send(&Request::Checkpoint { id: 4 }).await;
    assert_eq!(w.next().await, Reply::Done { id: 4 });
    w.send(&Request::Shutdown).await;
    assert_eq!(w.next().await, Reply::Bye);
    assert_eq!(w.exit_code().await, Some(0));
    // The next incarnation restores it, and checkpoints it again unchanged.
    let mut w = Worker::start(&f.env, &args).await;
    assert!(matches!(
        w.next().await,
        Reply::Ready {
            snapshot: SnapshotState::Restored,
            ..
        }
    ));
    let expected = "base\nfirst question\nsecond";
    let file = f
        .env
        .disk()
        .open(&format!("{CWD}/state/snap"), OpenMode::Read)
        .unwrap();
    let mut bytes = vec![0; file.len().unwrap() as usize];
    file.read_at(&mut bytes, 0).unwrap();
    assert_eq!(snapshot::decode(&bytes).as_deref(), Ok(expected));
    w.send(&Request::Checkpoint { id: 5 }).await;
    assert_eq!(w.next().await, Reply::Done { id: 5 });
    let file = f
        .env
        .disk()
        .open(&format!("{CWD}/state/snap"), OpenMode::Read)
        .unwrap();
    let mut again = vec![0; file.len().unwrap() as usize];
    file.read_at(&mut again, 0).unwrap();
    assert_eq!(again, bytes);
    w.send(&Request::Shutdown).await;
    assert_eq!(w.next().await, Reply::Bye);
}
