//! The engine VOPR's speed: simulated engine life per second of wall time, on one core.
//!
//! `cargo bench -p scenarios --bench vopr -- [--seeds N] [--seed-start S]` runs
//! `vopr.engine` for seeds S to S+N-1 one after another on this thread (default 200
//! seeds from 1) and prints one `RESULT …` line: runs, simulated seconds, wall seconds,
//! the ratio, the median run, and what one simulated hour costs at that ratio.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "a benchmark measures real wall time around the simulation"
)]

use scenarios::registry;
use scenarios::runner::run_scenario;
use std::time::Instant;

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a whole number, not {v:?}"))
        })
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seeds = arg(&args, "--seeds", 200).max(1);
    let start = arg(&args, "--seed-start", 1);
    let scenario = registry::find("vopr.engine").expect("vopr.engine is registered");
    let mut walls = Vec::new();
    let (mut sim_s, mut failed) = (0.0, 0u64);
    let began = Instant::now();
    for seed in start..start + seeds {
        let t = Instant::now();
        let run = run_scenario(scenario, seed);
        walls.push(t.elapsed().as_secs_f64());
        sim_s += run.record.sim_time_ns as f64 / 1e9;
        failed += u64::from(run.record.failure_class.is_some());
    }
    let wall_s = began.elapsed().as_secs_f64();
    walls.sort_by(f64::total_cmp);
    let median_ms = walls[walls.len() / 2] * 1000.0;
    let ratio = sim_s / wall_s;
    println!(
        "RESULT bench=vopr runs={seeds} failed={failed} sim_s={sim_s:.0} wall_s={wall_s:.2} \
         sim_per_wall={ratio:.0} median_run_ms={median_ms:.1} one_sim_hour_wall_s={:.3}",
        3600.0 / ratio
    );
}
