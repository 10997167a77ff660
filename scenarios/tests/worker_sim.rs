//! The worker as a simulated program: the same exchange as the real binary's test
//! (engine/tests/worker_binary.rs), in a world, and the same trace for the same seed.

use engine::env::{ChildProc, Disk, Env, NetAddr, OpenMode, ProcSpec, Signal};
use engine::workers::program::snapshot;
use engine::workers::program::{
    ErrorCode, LINE_BYTES_MAX, Line, LineReader, PROTOCOL_VERSION, Reply, Request, SnapshotState,
    decode_reply, encode_line,
};
use scenarios::stage::install_worker;
use sim::{World, WorldOptions, run_world};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const WORKER: &str = "/usr/bin/worker";
/// Virtual time: costs nothing, only catches a worker that never answers.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
const PORT: u16 = 7000;

struct Replies<R: AsyncRead + Unpin> {
    lines: LineReader<R>,
}

impl<R: AsyncRead + Unpin> Replies<R> {
    fn new(read: R) -> Self {
        Replies {
            lines: LineReader::new(read),
        }
    }

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

    async fn exit_status(&mut self) -> engine::env::ExitStatus {
        tokio::time::timeout(REPLY_TIMEOUT, self.child.wait())
            .await
            .expect("timed out waiting for the worker to exit")
            .unwrap()
    }

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

/// The whole exchange; returns what it saw of the heartbeats and the pids, so two runs
/// can be compared beyond their trace hashes.
async fn exchange(world: World) -> (Vec<u64>, Vec<u32>) {
    let node = world.add_host("node");
    let client = world.add_host("client");
    install_worker(node.procs(), WORKER);
    let env = node.env();
    let port = PORT.to_string();
    let mut w = Worker::start(
        &env,
        &[
            "--port",
            &port,
            "--heartbeat-ms",
            "500",
            "--snapshot",
            "state/snap",
        ],
    )
    .await;
    let mut pids = vec![w.child.pid()];
    assert_eq!(w.ready().await, (Some(PORT), SnapshotState::None));

    w.send(&Request::Ping { id: 1 }).await;
    assert_eq!(w.next().await, Reply::Pong { id: 1 });
    w.send(&Request::Run {
        id: 2,
        input: "alpha beta gamma".to_string(),
        pace_ms: None,
    })
    .await;
    for (seq, word) in [(1, "alpha"), (2, "beta"), (3, "gamma")] {
        let event = Reply::Event {
            id: 2,
            seq,
            data: word.to_string(),
            binary: false,
        };
        assert_eq!(w.next().await, event);
    }
    assert_eq!(w.next().await, Reply::Done { id: 2 });
    w.send_raw(b"not json\n").await;
    assert!(protocol_error(w.next().await).contains("not JSON"));
    let mut long = vec![b'x'; LINE_BYTES_MAX + 1];
    long.push(b'\n');
    w.send_raw(&long).await;
    assert!(protocol_error(w.next().await).contains("too long"));

    // The endpoint, from another host.
    let stream = client
        .env()
        .net()
        .connect(&NetAddr::new("node", PORT))
        .await
        .unwrap();
    let (read, mut write) = tokio::io::split(stream);
    let mut conn = Replies::new(read);
    send(&mut write, &Request::Ping { id: 3 }).await;
    assert_eq!(conn.next().await, Reply::Pong { id: 3 });
    send(&mut write, &Request::Shutdown).await;
    assert!(matches!(
        conn.next().await,
        Reply::Error {
            id: None,
            code: ErrorCode::Usage,
            ..
        }
    ));

    w.send(&Request::Stats { id: 4 }).await;
    let stats = Reply::Stats {
        id: 4,
        requests: 5,
        malformed_lines: 2,
        cache_evictions: 0,
    };
    assert_eq!(w.next().await, stats);

    // Heartbeats: one per 500 ms of virtual time, numbered from 1.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut beats = Vec::new();
    while beats.len() < 2 {
        if let Some(Reply::Heartbeat { seq }) = w.replies.next_any().await {
            beats.push(seq);
        }
    }
    assert_eq!(beats, vec![1, 2]);

    // Snapshots are scrubbed, and atomic.
    w.send(&Request::Snapshot {
        id: 5,
        state: "token=abc123 Bearer eyJhbGciOiJIUzI1NiJ9 ok".to_string(),
    })
    .await;
    assert_eq!(w.next().await, Reply::Done { id: 5 });
    let file = node.disk().open("state/snap", OpenMode::Read).unwrap();
    let mut bytes = vec![0; file.len().unwrap() as usize];
    assert_eq!(file.read_at(&mut bytes, 0).unwrap(), bytes.len());
    drop(file);
    assert_eq!(
        snapshot::decode(&bytes),
        Ok("token=[REDACTED] Bearer [REDACTED] ok".to_string())
    );
    assert!(node.disk().metadata("state/snap.tmp").is_err());

    // A full disk is NoSpace, and the partial file is given back.
    node.disk().set_capacity(node.disk().used_bytes() + 100_000);
    w.send(&Request::WriteCache {
        id: 6,
        name: "big".to_string(),
        bytes: 1_000_000,
    })
    .await;
    assert!(matches!(
        w.next().await,
        Reply::Error {
            id: Some(6),
            code: ErrorCode::NoSpace,
            ..
        }
    ));
    assert!(node.disk().metadata("cache/big").is_err());
    w.send(&Request::WriteCache {
        id: 7,
        name: "small".to_string(),
        bytes: 1000,
    })
    .await;
    assert_eq!(w.next().await, Reply::Done { id: 7 });
    assert_eq!(node.disk().metadata("cache/small").unwrap().len, 1000);
    w.send(&Request::WriteCache {
        id: 8,
        name: "../state/snap".to_string(),
        bytes: 1,
    })
    .await;
    assert!(matches!(
        w.next().await,
        Reply::Error {
            id: Some(8),
            code: ErrorCode::AccessDenied,
            ..
        }
    ));

    // SIGTERM is a graceful stop.
    w.child.signal(Signal::Term).unwrap();
    assert_eq!(w.next().await, Reply::Bye);
    assert_eq!(w.exit_status().await.code(), Some(0));
    assert_eq!(conn.next_any().await, None, "the connection is closed");

    // The next incarnation restores the snapshot; the port is free again.
    let mut again = Worker::start(&env, &["--port", &port, "--snapshot", "state/snap"]).await;
    pids.push(again.child.pid());
    assert_eq!(again.ready().await, (Some(PORT), SnapshotState::Restored));
    // A second worker on the same port is refused.
    let mut rival = Worker::start(&env, &["--port", &port]).await;
    pids.push(rival.child.pid());
    assert!(matches!(
        rival.next().await,
        Reply::Error {
            id: None,
            code: ErrorCode::AddrInUse,
            ..
        }
    ));
    assert_eq!(rival.exit_status().await.code(), Some(3));
    again.send(&Request::Shutdown).await;
    assert_eq!(again.next().await, Reply::Bye);
    assert_eq!(again.exit_status().await.code(), Some(0));

    // A damaged snapshot is ignored; SIGINT is not handled and kills.
    let file = node.disk().open("state/snap", OpenMode::ReadWrite).unwrap();
    let last = file.len().unwrap() - 1;
    file.write_at(b"#", last).unwrap();
    drop(file);
    let mut damaged = Worker::start(&env, &["--snapshot", "state/snap"]).await;
    pids.push(damaged.child.pid());
    assert_eq!(
        damaged.ready().await,
        (None, SnapshotState::CorruptFallback)
    );
    damaged.child.signal(Signal::Int).unwrap();
    assert_eq!(damaged.exit_status().await.signal(), Some(2));

    // Bad arguments.
    let mut bad = Worker::start(&env, &["--heartbeat-ms", "-1"]).await;
    pids.push(bad.child.pid());
    assert!(matches!(
        bad.next().await,
        Reply::Error {
            id: None,
            code: ErrorCode::Usage,
            ..
        }
    ));
    assert_eq!(bad.exit_status().await.code(), Some(2));

    // EOF on stdin is a graceful stop.
    let mut last = Worker::start(&env, &["--heartbeat-ms", "0"]).await;
    pids.push(last.child.pid());
    assert_eq!(last.ready().await, (None, SnapshotState::None));
    drop(last.stdin.take());
    assert_eq!(last.next().await, Reply::Bye);
    assert_eq!(last.exit_status().await.code(), Some(0));

    // Paths are relative to the working directory, as for the real binary.
    node.disk().create_dir_all("sess").unwrap();
    let mut spec = ProcSpec::new(WORKER);
    spec.args = vec!["--heartbeat-ms".to_string(), "0".to_string()];
    spec.cwd = Some("sess".to_string());
    let mut child = env.procs().spawn(&spec).await.unwrap();
    pids.push(child.pid());
    let mut stdin = child.take_stdin().unwrap();
    let mut replies = Replies::new(child.take_stdout().unwrap());
    assert!(matches!(replies.next().await, Reply::Ready { .. }));
    let write = Request::WriteCache {
        id: 1,
        name: "c".to_string(),
        bytes: 10,
    };
    send(&mut stdin, &write).await;
    assert_eq!(replies.next().await, Reply::Done { id: 1 });
    assert_eq!(node.disk().metadata("sess/cache/c").unwrap().len, 10);
    send(&mut stdin, &Request::Shutdown).await;
    assert_eq!(replies.next().await, Reply::Bye);
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    (beats, pids)
}

#[test]
fn the_simulated_worker_speaks_the_protocol() {
    let report = run_world(WorldOptions::new(11), exchange);
    let value = report.value.unwrap_or_else(|abort| panic!("{abort:?}"));
    assert_eq!(value.0, vec![1, 2]);
    let worker_lines: Vec<String> = report
        .trace
        .lines
        .iter()
        .filter(|e| e.target.starts_with("engine::workers::program") && &*e.host == "node")
        .map(|e| e.to_string())
        .collect();
    for expected in [
        "worker starting",
        "saving snapshot",
        "scrubbed=2",
        "snapshot restored",
        "snapshot is corrupt",
        "ending=terminated",
    ] {
        assert!(
            worker_lines.iter().any(|l| l.contains(expected)),
            "no {expected:?} in the worker's trace:\n{}",
            worker_lines.join("\n")
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let first = run_world(WorldOptions::new(42), exchange);
    let second = run_world(WorldOptions::new(42), exchange);
    assert!(first.value.is_ok(), "{:?}", first.value);
    assert_eq!(first.value, second.value);
    assert_eq!(first.trace.hash, second.trace.hash);
    assert_eq!(first.trace.events, second.trace.events);
    assert_eq!(first.sim_time_ns, second.sim_time_ns);
}
