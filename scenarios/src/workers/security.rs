//! What workers are handed and what they leave behind: hostile environment variables
//! (core.EC-116), paths outside the worker's directory (core.EC-123), a corrupt
//! snapshot (core.EC-124) and credentials in a snapshot across a host crash
//! (core.EC-125).
//!
//! Adversarial input is not a device fault: the engine counts it where it meets it
//! (`input.malicious_env`, `input.path_escape`); the oracles check what the simulated
//! process really received and what really is on the simulated disk.

use crate::kit::inputs::*;
use crate::kit::plans::{met, on_host, workers};
use crate::kit::workers::*;
use engine::env::{OpenMode, Task};
use engine::workers::program::protocol::{Reply, Request, SnapshotState};
use engine::workers::program::snapshot;
use engine::workers::sanitize::{BLOCKED_NAMES, BLOCKED_PREFIXES};
use sim::faults::SignalName;

pub fn all() -> Vec<&'static Scenario> {
    vec![
        &MALICIOUS_ENV,
        &PATH_ESCAPE,
        &CORRUPT_SNAPSHOT,
        &SECRETS_IN_SNAPSHOT,
    ]
}

workers_scenario!(
    MALICIOUS_ENV, "core.EC-116", "Plugin passes a malicious environment variable to a worker",
    proves: "A worker's configuration carries a seeded mix of hostile variables (LD_PRELOAD, a \
             PATH rewrite, other loader and interpreter hooks, names with '=' or spaces, values \
             with NUL) and harmless ones, one of which merely mentions LD_PRELOAD in its value. \
             The worker must start anyway; the simulated process must receive exactly the \
             harmless variables, in the order given, and nothing else; the supervisor must count \
             one refusal per hostile variable. After the worker is killed and restarted, the \
             new process must again receive exactly the harmless ones.",
    faults: ["input.malicious_env"], secs: 300,
    cores: ["engine/src/workers/sanitize.rs"],
    // The worker is killed when the body marks `kill`, so that it restarts.
    plan: |seed| workers(seed).after("kill", 0, on_host::signal(Some("plugin"), SignalName::Sigkill)),
    body: malicious_env
);
/// Where the scenario installs a worker that records the variables it was started with.
const ENV_PROBE: &str = "/usr/bin/worker-envprobe";

const HOSTILE_ENV: &[(&str, &str)] = &[
    ("LD_PRELOAD", "/tmp/evil.so"),
    ("LD_LIBRARY_PATH", "/tmp/evil"),
    ("PATH", "/tmp/evil:/usr/bin:/bin"),
    ("LD_AUDIT", "/tmp/audit.so"),
    ("ld_preload", "/tmp/evil.so"),
    ("DYLD_INSERT_LIBRARIES", "/tmp/evil.dylib"),
    ("GLIBC_TUNABLES", "glibc.malloc.check=3"),
    ("BASH_ENV", "/tmp/evil.sh"),
    ("NODE_OPTIONS", "--require /tmp/evil.js"),
    ("PYTHONPATH", "/tmp/evil"),
    ("PERL5OPT", "-Mevil"),
    ("IFS", "/"),
    ("SAFE=LD_PRELOAD", "/tmp/evil.so"),
    ("EVIL NAME", "x"),
    ("NUL_VALUE", "harmless\0/tmp/evil.so"),
];

const SAFE_ENV: &[(&str, &str)] = &[
    ("RUST_LOG", "info"),
    ("API_REGION", "eu-west-1"),
    ("LANG", "C.UTF-8"),
    ("NOTE", "LD_PRELOAD=/tmp/evil.so is only text here"),
    ("WORKSPACE_HINT", "/home/agent/project"),
];

async fn malicious_env(mut stage: Stage) -> Outcome {
    let log: EnvLog = EnvLog::default();
    install_env_probe(stage.host()?.procs(), ENV_PROBE, log.clone());
    let hostile_count = 1 + stage.rng.below(HOSTILE_ENV.len() as u64) as usize;
    let safe_count = 1 + stage.rng.below(SAFE_ENV.len() as u64) as usize;
    let pick = |rng: &mut sim::SimRng, table: &[(&'static str, &'static str)], count, bad| {
        let picked = shuffled(rng, table.to_vec()).into_iter().take(count);
        picked.map(move |(k, v)| (k.to_string(), v.to_string(), bad))
    };
    let hostile: Vec<_> = pick(&mut stage.rng, HOSTILE_ENV, hostile_count, true).collect();
    let safe: Vec<_> = pick(&mut stage.rng, SAFE_ENV, safe_count, false).collect();
    let offered = shuffled(&mut stage.rng, [hostile, safe].concat());
    let kept = offered.iter().filter(|(_, _, bad)| !bad);
    let expected: Vec<(String, String)> = kept.map(|(k, v, _)| (k.clone(), v.clone())).collect();

    let mut config = stage.config("plugin");
    config.program = ENV_PROBE.to_string();
    let env = offered.iter().map(|(k, v, _)| (k.clone(), v.clone()));
    config.env = env.collect();
    let worker = stage.start_worker("plugin", config).await?;
    let check = |spawns: usize| -> Outcome {
        let seen = log.lock().expect("env log poisoned").clone();
        let started = seen.len();
        ensure!(started == spawns, "{started} started, not {spawns}");
        let got = &seen[spawns - 1];
        ensure!(
            *got == expected,
            "process {spawns} received {got:?}; only the harmless {expected:?} were to pass"
        );
        for (name, _) in got {
            let upper = name.to_ascii_uppercase();
            ensure!(
                !BLOCKED_NAMES.contains(&upper.as_str())
                    && !BLOCKED_PREFIXES.iter().any(|p| upper.starts_with(p)),
                "process {spawns} received the blocked variable {name:?}"
            );
        }
        let rejections = worker.stats().env_rejections;
        ensure!(
            rejections == (spawns * hostile_count) as u64,
            "{rejections} refusals for {spawns} starts with {hostile_count} hostile variables"
        );
        Ok(())
    };
    check(1)?;

    // A restart sanitizes again.
    let pid = stage.manager.get("plugin").await.and_then(|i| i.pid);
    let pid = pid.or_fail("the started worker's pid")?;
    if met::signal_to(&stage.mark("kill"), "plugin").is_none() {
        // Not killed (a shrunk plan): the one process keeps what it received.
        check(1)?;
        return ensure_healthy(&worker, "without a restart").await;
    }
    let restarted = || replaced(&worker.status(), pid);
    eventually("the restart after the kill", secs(30), ms(10), restarted).await?;
    check(2)?;
    ensure_healthy(&worker, "after the restart").await?;
    Ok(())
}

workers_scenario!(
    PATH_ESCAPE, "core.EC-123", "Worker touches a path outside its allowed directories",
    proves: "A ready worker is asked, between harmless cache writes of seeded sizes, to write \
             cache files whose names climb out of its directory ('../', absolute paths, '..' \
             hidden in the middle); and a second worker is configured with a snapshot or cache \
             path outside its directory. Every escaping write must fail with an access-denied \
             error the user can read, the escaping configuration must make the start fail with \
             a usage error, and afterwards the disk must hold exactly the harmless files, with \
             their sizes, inside the first worker's cache directory and nothing anywhere else. \
             The first worker must stay healthy throughout.",
    faults: ["input.path_escape"], secs: 300,
    cores: ["engine/src/workers/program/cache.rs", "engine/src/workers/program/args.rs"],
    body: path_escape
);
const ESCAPING_NAMES: &[&str] = &[
    "../escape.bin",
    "../../outside.bin",
    "../../../../etc/passwd",
    "/etc/cron.d/evil",
    "/tmp/evil.sh",
    "sub/../../../x.bin",
    "..",
    "./../x.bin",
    "cache/../../../../root.bin",
    "..//..//x.bin",
];

const ESCAPING_ARGS: &[&[&str]] = &[
    &["--snapshot", "../../outside.snap"],
    &["--snapshot", "/etc/evil.snap"],
    &["--snapshot", "state/../../../../x.snap"],
    &["--cache-dir", "../../elsewhere"],
];

async fn path_escape(mut stage: Stage) -> Outcome {
    let config = stage.config("sandboxed");
    let dir = config.dir.clone();
    let worker = stage.start_worker("sandboxed", config).await?;
    let escapes = 2 + stage.rng.below(ESCAPING_NAMES.len() as u64 - 1) as usize;
    let safe = 1 + stage.rng.below(4) as usize;
    let mut requests: Vec<(String, u64, bool)> = shuffled(&mut stage.rng, ESCAPING_NAMES.to_vec())
        .into_iter()
        .take(escapes)
        .map(|n| (n.to_string(), 1 + stage.rng.below(100_000), true))
        .collect();
    requests
        .extend((0..safe).map(|i| (format!("ok-{i}.bin"), 1 + stage.rng.below(200_000), false)));
    let requests = shuffled(&mut stage.rng, requests);
    let mut expected_files: Vec<(String, u64)> = Vec::new();
    for (id, (file, bytes, escaping)) in (1..).zip(&requests) {
        let (name, bytes) = (file.clone(), *bytes);
        let request = Request::WriteCache { id, name, bytes };
        let result = worker.request(request).await;
        let name = file;
        if !*escaping {
            ensure!(result.is_ok(), "harmless write {name:?}: {result:?}");
            expected_files.push((format!("{dir}/cache/{name}"), bytes));
            continue;
        }
        let Err(error @ WorkerError::Refused { code, message, .. }) = &result else {
            return Err(Failure::correctness(format!(
                "the write to {name:?} gave {result:?}, not an access-denied refusal"
            )));
        };
        ensure!(
            code == "access_denied" && message.contains("refused"),
            "the write to {name:?} was refused with {code}: {message}"
        );
        let shown = error.to_string();
        ensure!(
            shown.contains("access_denied") && shown.contains("refused"),
            "the user would read {shown:?}, which does not say access was denied"
        );
    }
    ensure_healthy(&worker, "after the refusals").await?;

    // A configuration that points the worker outside its directory.
    let args = ESCAPING_ARGS[stage.rng.below(ESCAPING_ARGS.len() as u64) as usize];
    let mut escaper = stage.config("escaper");
    escaper.args = args.iter().map(|a| a.to_string()).collect();
    stage.register("escaper", escaper).await?;
    let result = within(
        "the escaping start",
        secs(30),
        stage.manager.start("escaper"),
    )
    .await?;
    let refused = match &result {
        Err(WorkerError::Refused { code, message, .. }) => {
            code == "usage" && message.contains(args[0])
        }
        Err(WorkerError::ExitedDuringInit { status, .. }) => status.contains("code 2"),
        _ => false,
    };
    ensure!(refused, "{args:?} started with {result:?}");
    let status = stage.status("escaper").await;
    let failed = matches!(status, Some(WorkerStatus::Failed { .. }));
    ensure!(failed, "the escaping worker's status is {status:?}");
    let what = "the refused worker's process being reaped";
    let reaped = || {
        stage
            .host()
            .is_ok_and(|h| h.procs().zombie_pids().is_empty())
    };
    eventually(what, WATCHDOG_INTERVAL + ms(500), ms(50), reaped).await?;

    // The disk: exactly the harmless files, nowhere else.
    let disk = stage.env.disk();
    let files = files_on_disk(disk).or_fail("listing the disk")?;
    expected_files.sort();
    let expected_paths: Vec<String> = expected_files.iter().map(|(p, _)| p.clone()).collect();
    ensure!(
        files == expected_paths,
        "the disk holds {files:?}; only {expected_paths:?} were allowed"
    );
    for (path, bytes) in &expected_files {
        let len = disk.metadata(path).or_fail(path)?.len;
        ensure!(len == *bytes, "{path}: {len} bytes, not {bytes}");
    }
    Ok(())
}

workers_scenario!(
    CORRUPT_SNAPSHOT, "core.EC-124", "Shell snapshot cache is corrupted",
    proves: "A worker saves a snapshot of a seeded session; then, by seed, either every disk \
             read flips a bit while the worker restarts, or another writer rewrites the file in \
             place without syncing and the host crashes, tearing it block by block. Started \
             directly, the worker must still write Ready, reporting corrupt_fallback exactly \
             when the file on disk (or as read) fails its checksum, and restored otherwise; \
             started by the supervisor, it must become ready with no crash and no error, answer \
             health checks, and overwrite the bad file with a good snapshot on the next save. \
             The session body is chosen so that no single flipped bit can leave a valid file.",
    faults: ["disk.bitflip", "disk.torn_write"], secs: 300,
    cores: ["engine/src/workers/program/snapshot.rs", "engine/src/workers/program/run.rs"],
    // On the torn-write path the host crashes when the body marks `crash` and restarts
    // when it marks `restart`.
    plan: |seed| workers(seed)
        .after("rot", 0, on_host::rot(sim::Ratio::ONE))
        .after("rot-over", 0, on_host::rot(sim::Ratio::ZERO))
        .after("crash", 0, on_host::crash())
        .after("restart", 0, on_host::restart()),
    body: corrupt_snapshot
);
const SNAPSHOT_PATH: &str = "state/session.snap";

async fn corrupt_snapshot(mut stage: Stage) -> Outcome {
    let words = 100 + stage.rng.below(400) as usize;
    let first = session_body(&mut stage.rng, words)?;
    let mut config = stage.config("shell");
    config.args = vec!["--snapshot".to_string(), SNAPSHOT_PATH.to_string()];
    let dir = config.dir.clone();
    let file = format!("{dir}/{SNAPSHOT_PATH}");
    provision_durably(stage.env.disk(), &format!("{dir}/state"))?;
    stage.start_worker("shell", config.clone()).await?;
    save_snapshot(&stage, "shell", 1, &first).await?;
    let saved = read_file(stage.env.disk(), &file).or_fail("reading the snapshot")?;
    ensure!(
        snapshot::decode(&saved).as_deref() == Ok(first.as_str()),
        "the saved snapshot does not hold the session"
    );
    stage.manager.stop("shell").await.or_fail("stop")?;

    let host = stage.host()?.clone();
    let bitflip = stage.rng.below(2) == 0;
    let expected = if bitflip {
        // The media rots (the plan's): every read flips a bit, until `rot-over`.
        if stage.mark("rot").is_empty() {
            SnapshotState::Restored
        } else {
            SnapshotState::CorruptFallback
        }
    } else {
        // Another writer (an older tool) rewrites the file in place and never syncs;
        // the host dies before the disk wrote it all.
        let mut options = host.disk().options();
        options.block_bytes = 64;
        host.disk().set_options(options);
        let rewritten = snapshot::encode(&rotated(&first));
        ensure!(rewritten.len() == saved.len(), "length changed");
        let handle = stage.env.disk().open(&file, OpenMode::ReadWrite);
        let handle = handle.or_fail("opening the snapshot")?;
        handle.write_at(&rewritten, 0).or_fail("rewrite")?;
        drop(handle);
        if met::crashes_host(&stage.mark("crash")) {
            tokio::time::sleep(secs(1)).await;
            if !met::restarts_host(&stage.mark("restart")) {
                // The host stays down (a plan without the restart): nothing more runs.
                return Ok(());
            }
            // The old supervisor died with the host; a new one takes over.
            stage.restart_engine().await?;
        }
        let durable = read_file(stage.env.disk(), &file).or_fail("reading the torn snapshot")?;
        if snapshot::decode(&durable).is_ok() {
            SnapshotState::Restored
        } else {
            SnapshotState::CorruptFallback
        }
    };

    let state = snapshot_state_at_start(&stage, &dir, SNAPSHOT_PATH).await?;
    ensure!(state == expected, "reported {state:?}, not {expected:?}");
    let flips = stage.faults.count("disk.bitflip");
    let rotted = expected == SnapshotState::CorruptFallback;
    ensure!(!bitflip || !rotted || flips >= 1, "no bit flipped");

    // Under the supervisor: no hard failure, and the next save repairs the file.
    if bitflip {
        let restarted = stage.manager.start("shell").await;
        restarted.or_fail("restart over a corrupt snapshot")?;
    } else {
        stage.start_worker("shell", config).await?;
    }
    stage.mark("rot-over");
    let worker = stage.worker("shell").await?;
    ensure_healthy(&worker, "over a bad snapshot").await?;
    let stats = worker.stats();
    let failed = stats.crashes > 0 || stats.spawn_failures > 0;
    ensure!(!failed, "the worker failed over its snapshot: {stats:?}");
    let next = session_body(&mut stage.rng, 50)?;
    save_snapshot(&stage, "shell", 2, &next).await?;
    let repaired = snapshot_at(stage.env.disk(), &file)?;
    ensure!(repaired == next, "the bad snapshot stayed");
    Ok(())
}

workers_scenario!(
    SECRETS_IN_SNAPSHOT, "core.EC-125", "Worker persists credentials into session state",
    proves: "A worker saves two snapshots of a seeded session whose state carries API keys \
             (sk-, AKIA, ghp_), password=, api_key= and token= values and a Bearer token amid \
             ordinary text; the host crashes at a seeded moment during the second save (disk \
             operations take 1 to 4 ms). After the restart no file on the disk may contain any \
             of the secrets; the snapshot must be exactly the first or the second state with \
             each secret replaced by [REDACTED] and every other byte kept (the second if its \
             save was acknowledged before the crash), and a worker started over it must restore \
             it.",
    faults: ["host.crash"], secs: 300,
    cores: ["engine/src/workers/program/scrub.rs", "engine/src/workers/program/snapshot.rs"],
    // The host crashes when the body marks `crash` (a seeded moment into the second
    // save) and restarts when it marks `restart`.
    plan: |seed| workers(seed)
        .after("crash", 0, on_host::crash())
        .after("restart", 0, on_host::restart()),
    body: secrets_in_snapshot
);
async fn secrets_in_snapshot(mut stage: Stage) -> Outcome {
    let host = stage.host()?.clone();
    disk_latency(&host, ms(1), ms(4));

    let (first, first_scrubbed, first_secrets) = session_with_secrets(&mut stage.rng);
    let (second, second_scrubbed, second_secrets) = session_with_secrets(&mut stage.rng);
    let mut config = stage.config("session");
    config.args = vec!["--snapshot".to_string(), SNAPSHOT_PATH.to_string()];
    let dir = config.dir.clone();
    let file = format!("{dir}/{SNAPSHOT_PATH}");
    provision_durably(stage.env.disk(), &format!("{dir}/state"))?;
    let worker = stage.start_worker("session", config.clone()).await?;
    save_snapshot(&stage, "session", 1, &first).await?;

    // The second save, and a crash at a seeded moment around it.
    let (id, state) = (2, second.clone());
    let request = Request::Snapshot { id, state };
    let save: Task<Result<Vec<Reply>, WorkerError>> = stage
        .env
        .spawn("second-save", async move { worker.request(request).await });
    tokio::time::sleep(ms(stage.rng.below(40))).await;
    let finished = save.is_finished();
    let crashed = met::crashes_host(&stage.mark("crash"));
    // Without a crash (a shrunk plan) the save completes, acknowledged.
    let acknowledged = (finished || !crashed)
        && matches!(save.await, Ok(Ok(replies)) if replies == vec![Reply::Done { id: 2 }]);
    let restarted = if crashed {
        tokio::time::sleep(secs(1)).await;
        met::restarts_host(&stage.mark("restart"))
    } else {
        false
    };
    if crashed && !restarted {
        // The host stays down (a plan without the restart): nothing more runs.
        return Ok(());
    }
    disk_latency(&host, Duration::ZERO, Duration::ZERO);

    // Every byte on the disk, after the crash.
    let disk = stage.env.disk();
    for path in &files_on_disk(disk).or_fail("listing the disk")? {
        let bytes = read_file(disk, path).or_fail(&format!("reading {path}"))?;
        let text = String::from_utf8_lossy(&bytes);
        for secret in first_secrets.iter().chain(&second_secrets) {
            let kept = text.contains(secret.as_str());
            ensure!(!kept, "{path} holds the secret {secret:?} after the crash");
        }
    }
    let body = snapshot_at(disk, &file)?;
    if acknowledged {
        ensure!(body == second_scrubbed, "acknowledged save lost: {body:?}");
    } else {
        ensure!(
            body == first_scrubbed || body == second_scrubbed,
            "the snapshot after the crash is neither save, scrubbed: {body:?}\nfirst: {first_scrubbed:?}\nsecond: {second_scrubbed:?}"
        );
    }
    ensure!(first != first_scrubbed, "the first state had no secret");

    // A later resume restores the scrubbed state: after the host restart, a new
    // supervisor; without a crash, the first one stops its worker.
    if restarted {
        stage.restart_engine().await?;
    } else {
        stage.manager.stop_all().await;
    }
    let state = snapshot_state_at_start(&stage, &dir, SNAPSHOT_PATH).await?;
    let restored = state == SnapshotState::Restored;
    ensure!(restored, "over the scrubbed snapshot: {state:?}");
    stage.start_worker("session", config).await?;
    Ok(())
}
