//! The peer workloads (../shared/bench/peers/README.md) on our substrate.
//!
//! `cargo bench -p sim --bench workloads -- w1|w2|floor|all [--seed N] [--secs S]
//! [--clients C] [--tasks T] [--iters I] [--rounds R]` prints one `RESULT …` line per
//! workload in the peers' format, so `summarize`-style tooling and side-by-side runs
//! compare like with like. `floor` is W2 on a bare paused tokio runtime (plain
//! `tokio::spawn`, nothing of ours: the peers' `floor_tokio_w2`), built here so the
//! ratio ours/floor comes from one binary; `all` runs W1, W2 and the floor alternately
//! `--rounds` times (default 5) and prints the medians and that ratio.
//!
//! W1 rpc-echo: one server and 8 client hosts; each client does sequential
//! request/response (4-byte length + 64-byte payload, echo checked) until 60 simulated
//! seconds have passed; one-way latency uniform in 1–5 ms per message.
//! W2 sparse timers: 10,000 tasks each sleep 10 times for a duration uniform in
//! [1 s, 3600 s) at 1 ms resolution, drawn from splitmix64 exactly as the peers do.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a benchmark measures real wall time around the simulation"
)]

use engine::env::NetAddr;
use sim::seed::Fnv;
use sim::{WorldOptions, run_world};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MSG: usize = 64;
const PORT: u16 = 9000;

struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

fn args() -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mut i = 0;
    while i < argv.len() {
        let key = argv[i].trim_start_matches("--").to_string();
        if i + 1 < argv.len() && !argv[i + 1].starts_with("--") && argv[i].starts_with("--") {
            map.insert(key, argv[i + 1].clone());
            i += 2;
        } else {
            map.insert(key, "1".to_string());
            i += 1;
        }
    }
    map
}

fn num(args: &BTreeMap<String, String>, key: &str, default: u64) -> u64 {
    match args.get(key) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("--{key} takes a non-negative integer, not {v:?}");
            std::process::exit(2)
        }),
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    let mut buf = [0u8; 4 + MSG];
    loop {
        if let Err(e) = s.read_exact(&mut buf[..4]).await {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return Ok(());
            }
            return Err(e);
        }
        let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        assert!(len <= MSG, "request length {len} above {MSG}");
        s.read_exact(&mut buf[4..4 + len]).await?;
        s.write_all(&buf[..4 + len]).await?;
        s.flush().await?;
    }
}

fn w1(seed: u64, secs: u64, clients: u32) -> f64 {
    let wall0 = std::time::Instant::now();
    let log: Arc<Mutex<Vec<(u64, u32, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let log_in = log.clone();
    let mut options = WorldOptions::new(seed);
    options.sim_time_max = Duration::from_secs(secs + 60);
    let report = run_world(options, move |world| async move {
        let server = world.add_host("server").env();
        let server_env = server.clone();
        let _accept = server.spawn("accept", async move {
            let mut listener = server_env.net().bind(PORT).await.expect("bind");
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                let _conn = server_env.spawn("serve", async move {
                    let _ = serve(stream).await;
                });
            }
        });
        let mut joins = Vec::new();
        for c in 0..clients {
            let env = world.add_host(&format!("client{c}")).env();
            let log = log_in.clone();
            let w = world.clone();
            let until = secs * 1_000_000_000;
            joins.push(env.clone().spawn("client", async move {
                let mut s = loop {
                    match env.net().connect(&NetAddr::new("server", PORT)).await {
                        Ok(s) => break s,
                        Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                    }
                };
                let mut out = [0u8; 4 + MSG];
                let mut inb = [0u8; 4 + MSG];
                out[..4].copy_from_slice(&(MSG as u32).to_le_bytes());
                out[4..8].copy_from_slice(&c.to_le_bytes());
                let mut n = 0u64;
                while w.now_ns() < until {
                    out[8..16].copy_from_slice(&n.to_le_bytes());
                    s.write_all(&out).await.expect("write");
                    s.flush().await.expect("flush");
                    s.read_exact(&mut inb).await.expect("read");
                    assert_eq!(out, inb, "echo mismatch");
                    n += 1;
                    log.lock().expect("log").push((w.now_ns(), c, n));
                }
                n
            }));
        }
        let mut total = 0;
        for j in joins {
            total += j.await.expect("client task");
        }
        (total, world.now_ns())
    });
    let wall = wall0.elapsed().as_secs_f64();
    let (rts, sim_ns) = report.value.expect("w1 world aborted");
    let log = log.lock().expect("log");
    assert_eq!(log.len() as u64, rts);
    // The peers' W3 log hash: (time, client, round trip) records in completion order.
    let mut h = Fnv::default();
    for (t, c, n) in log.iter() {
        h.bytes(&t.to_le_bytes());
        h.bytes(&c.to_le_bytes());
        h.bytes(&n.to_le_bytes());
    }
    let sim_s = sim_ns as f64 / 1e9;
    println!(
        "RESULT bench=w1 sim=ours seed={seed} wall_s={wall:.4} sim_s={sim_s:.3} round_trips={rts} rt_per_wall_s={:.0} sim_per_wall={:.2} ns_per_rt={:.0} trace_hash={} hash={:016x}",
        rts as f64 / wall,
        sim_s / wall,
        wall * 1e9 / rts as f64,
        report.trace.hash,
        h.0
    );
    wall * 1e9 / rts as f64
}

/// The peers' W2 schedule: per task, `iters` sleeps in [1 s, 3600 s) at 1 ms resolution.
fn w2_schedule(seed: u64, tasks: usize, iters: usize) -> Vec<Vec<u64>> {
    let mut r = SplitMix64(seed);
    (0..tasks)
        .map(|_| (0..iters).map(|_| r.range(1_000, 3_600_000)).collect())
        .collect()
}

/// One W2 task: sleeps its schedule; returns its wake-ups and its largest lateness.
async fn sleeper(schedule: Vec<u64>) -> (u64, Duration) {
    let mut n = 0u64;
    let mut late = Duration::ZERO;
    for ms in schedule {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
        tokio::time::sleep_until(deadline).await;
        late = late.max(tokio::time::Instant::now().duration_since(deadline));
        n += 1;
    }
    (n, late)
}

fn w2(seed: u64, tasks: usize, iters: usize) -> f64 {
    let sched = w2_schedule(seed, tasks, iters);
    let wall0 = std::time::Instant::now();
    let mut options = WorldOptions::new(seed);
    options.sim_time_max = Duration::from_secs(3600 * (iters as u64 + 1));
    let report = run_world(options, move |world| async move {
        let env = world.add_host("timers").env();
        let mut handles = Vec::with_capacity(tasks);
        for s in sched {
            handles.push(env.spawn("sleeper", sleeper(s)));
        }
        let (mut wakeups, mut max_late) = (0u64, Duration::ZERO);
        for h in handles {
            let (n, late) = h.await.expect("sleeper");
            wakeups += n;
            max_late = max_late.max(late);
        }
        (wakeups, max_late, world.now_ns())
    });
    let wall = wall0.elapsed().as_secs_f64();
    let (wakeups, max_late, sim_ns) = report.value.expect("w2 world aborted");
    let sim_s = sim_ns as f64 / 1e9;
    println!(
        "RESULT bench=w2 sim=ours seed={seed} cap_s=0 wall_s={wall:.4} sim_s={sim_s:.1} wakeups={wakeups} max_late_us={} sim_per_wall={:.0}",
        max_late.as_micros(),
        sim_s / wall
    );
    wall
}

/// W2 on a bare paused tokio `current_thread` runtime: what a simulator built on paused
/// tokio cannot go below (the peers' `floor_tokio_w2`, same schedule, same output).
fn floor(seed: u64, tasks: usize, iters: usize) -> f64 {
    let sched = w2_schedule(seed, tasks, iters);
    let wall0 = std::time::Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a paused current-thread runtime builds");
    let (wakeups, max_late, sim_s) = runtime.block_on(async move {
        let t0 = tokio::time::Instant::now();
        let mut handles = Vec::with_capacity(tasks);
        for s in sched {
            handles.push(tokio::spawn(sleeper(s)));
        }
        let (mut wakeups, mut max_late) = (0u64, Duration::ZERO);
        for h in handles {
            let (n, late) = h.await.expect("sleeper");
            wakeups += n;
            max_late = max_late.max(late);
        }
        (wakeups, max_late, t0.elapsed().as_secs_f64())
    });
    let wall = wall0.elapsed().as_secs_f64();
    println!(
        "RESULT bench=w2 sim=tokio-paused seed={seed} cap_s=0 wall_s={wall:.4} sim_s={sim_s:.1} wakeups={wakeups} max_late_us={} sim_per_wall={:.0}",
        max_late.as_micros(),
        sim_s / wall
    );
    wall
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// W1, W2 and the floor, alternately, `rounds` times: medians and the W2/floor ratio.
fn all(args: &BTreeMap<String, String>, seed: u64) {
    let rounds = num(args, "rounds", 5).max(1);
    let tasks = num(args, "tasks", 10_000) as usize;
    let iters = num(args, "iters", 10) as usize;
    let (mut w1_ns, mut w2_s, mut floor_s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        w1_ns.push(w1(
            seed,
            num(args, "secs", 60),
            num(args, "clients", 8) as u32,
        ));
        w2_s.push(w2(seed, tasks, iters));
        floor_s.push(floor(seed, tasks, iters));
    }
    let (w1_ns, w2_s, floor_s) = (median(w1_ns), median(w2_s), median(floor_s));
    println!(
        "SUMMARY rounds={rounds} w1_ns_per_rt={w1_ns:.0} w2_wall_s={w2_s:.4} floor_wall_s={floor_s:.4} w2_over_floor={:.3}",
        w2_s / floor_s
    );
}

fn main() {
    let args = args();
    let seed = num(&args, "seed", 1);
    if args.contains_key("all") {
        all(&args, seed);
        return;
    }
    let w1_wanted = args.contains_key("w1");
    let w2_wanted = args.contains_key("w2");
    let floor_wanted = args.contains_key("floor");
    if !w1_wanted && !w2_wanted && !floor_wanted {
        eprintln!("usage: cargo bench -p sim --bench workloads -- w1|w2|floor|all [--seed N]");
        std::process::exit(2);
    }
    if w1_wanted {
        w1(
            seed,
            num(&args, "secs", 60),
            num(&args, "clients", 8) as u32,
        );
    }
    if w2_wanted {
        w2(
            seed,
            num(&args, "tasks", 10_000) as usize,
            num(&args, "iters", 10) as usize,
        );
    }
    if floor_wanted {
        floor(
            seed,
            num(&args, "tasks", 10_000) as usize,
            num(&args, "iters", 10) as usize,
        );
    }
}
