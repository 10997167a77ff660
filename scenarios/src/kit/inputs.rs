//! Seeded and hostile inputs: orders, session texts (with secrets to scrub, or with
//! checksums no single bit flip can keep valid), and a worker program that records the
//! environment it was started with.

use crate::scenario::Failure;
use engine::env::{BoxFuture, Signal};
use engine::workers::program::snapshot;
use engine::workers::program::{WorkerIo, run_worker};
use sim::SimRng;
use sim::procs::{ProgramCtx, SimProcs};
use std::sync::{Arc, Mutex};

/// `items` in a seeded order.
pub fn shuffled<T>(rng: &mut SimRng, mut items: Vec<T>) -> Vec<T> {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
    items
}

/// The variables of every process the env-recording worker started, in order.
pub type EnvLog = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// Installs the worker at `path`, recording the variables of every process started.
pub fn install_env_probe(procs: &SimProcs, path: &str, log: EnvLog) {
    procs.install(
        path,
        Arc::new(move |ctx: ProgramCtx| {
            log.lock().expect("env log poisoned").push(ctx.vars.clone());
            Box::pin(probe_main(ctx))
        }),
    );
}

/// The worker program, as `stage::install_worker` runs it (disk scoped to the working
/// directory, SIGTERM as the graceful stop).
async fn probe_main(ctx: ProgramCtx) -> i32 {
    ctx.handle_signals();
    let ProgramCtx {
        pid,
        args,
        stdin,
        stdout,
        env,
        mut signals,
        cwd,
        ..
    } = ctx;
    let Some(env) = crate::stage::rooted_at(env, cwd) else {
        return 127;
    };
    let terminate: BoxFuture<'static, ()> = Box::pin(async move {
        while let Some(signal) = signals.recv().await {
            if signal == Signal::Term {
                return;
            }
        }
        std::future::pending::<()>().await
    });
    let io = WorkerIo {
        stdin,
        stdout,
        terminate: Some(terminate),
        pid,
    };
    run_worker(io, env, args).await
}

const WORDS: &[&str] = &[
    "cd", "repo", "cargo", "build", "ls", "src", "git", "status", "export", "editor", "vim",
    "alias", "ll", "history", "shell", "prompt", "profile", "loaded", "cwd", "home", "agent",
    "session", "step", "done", "queue", "path", "bin", "local", "share", "config",
];

/// A session body of `words` seeded words whose checksum is written with digits only.
/// The snapshot header accepts upper-case hex, so a flipped bit turning `a` into `A`
/// would leave a valid file; with digits only, every single flipped bit is detectable.
pub fn session_body(rng: &mut SimRng, words: usize) -> Result<String, Failure> {
    let text: Vec<&str> = (0..words)
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect();
    let prefix = format!("{} nonce ", text.join(" "));
    // About one body in 1,850 qualifies; the bound is far beyond what is ever needed.
    // The prefix is hashed once and each try hashes only its nonce's digits; the
    // checksum's hex is all digits exactly when every nibble is below 10.
    let prefix_hash = snapshot::fnv64_extend(snapshot::FNV64_START, prefix.as_bytes());
    for nonce in 0..1_000_000u32 {
        let digits = nonce.to_string();
        let checksum = snapshot::fnv64_extend(prefix_hash, digits.as_bytes());
        if (0..16).all(|nibble| (checksum >> (4 * nibble)) & 0xf < 10) {
            return Ok(prefix + &digits);
        }
    }
    Err(Failure::correctness(
        "no session body with a decimal checksum".to_string(),
    ))
}

/// The same length and shape as `body`, with every letter and digit changed.
pub fn rotated(body: &str) -> String {
    body.chars()
        .map(|c| match c {
            'a'..='y' | '0'..='8' => char::from(c as u8 + 1),
            'z' => 'a',
            '9' => '0',
            other => other,
        })
        .collect()
}

const PROSE: &[&str] = &[
    "deploy the billing service to staging",
    "the user pasted their credentials below",
    "retry the migration after lunch",
    "step 42 finished in 3.5 s",
    "ünïcode stays as it is ☃",
    "tokens are counted per request",
    "remember the bearer bonds joke",
];

/// `len_min` plus up to `len_extra` - 1 seeded characters of `alphabet`.
fn random_from(rng: &mut SimRng, alphabet: &[u8], len_min: usize, len_extra: u64) -> String {
    let len = len_min + rng.below(len_extra.max(1)) as usize;
    (0..len)
        .map(|_| char::from(alphabet[rng.below(alphabet.len() as u64) as usize]))
        .collect()
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const KEY_BYTES: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const VALUE_BYTES: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*";

/// A session state with secrets: the text, the text as it must be persisted, and the
/// secret values that must never reach the disk.
pub fn session_with_secrets(rng: &mut SimRng) -> (String, String, Vec<String>) {
    let mut raw = Vec::new();
    let mut scrubbed = Vec::new();
    let mut secrets = Vec::new();
    let pieces = 4 + rng.below(6);
    for _ in 0..pieces {
        let prose = PROSE[rng.below(PROSE.len() as u64) as usize];
        raw.push(prose.to_string());
        scrubbed.push(prose.to_string());
        let (text, kept, secret) = match rng.below(7) {
            0 => {
                let key = format!("sk-{}", random_from(rng, KEY_BYTES, 16, 25));
                (key.clone(), "[REDACTED]".to_string(), key)
            }
            1 => {
                let key = format!("AKIA{}", random_from(rng, UPPER_DIGITS, 16, 1));
                (key.clone(), "[REDACTED]".to_string(), key)
            }
            2 => {
                let key = format!("ghp_{}", random_from(rng, ALNUM, 36, 5));
                (key.clone(), "[REDACTED]".to_string(), key)
            }
            3..=5 => {
                let field = ["password=", "api_key=", "token="][rng.below(3) as usize];
                let value = random_from(rng, VALUE_BYTES, 10, 20);
                (
                    format!("{field}{value}"),
                    format!("{field}[REDACTED]"),
                    value,
                )
            }
            _ => {
                // A digit makes it a token, never a word.
                let token = format!("{}{}", rng.below(10), random_from(rng, ALNUM, 20, 20));
                (
                    format!("Authorization: Bearer {token}"),
                    "Authorization: Bearer [REDACTED]".to_string(),
                    token,
                )
            }
        };
        raw.push(text);
        scrubbed.push(kept);
        secrets.push(secret);
    }
    let separators: Vec<&str> = (0..raw.len())
        .map(|_| if rng.below(3) == 0 { "\n" } else { " " })
        .collect();
    let join = |parts: &[String]| {
        let mut out = String::new();
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push_str(separators[i]);
            }
            out.push_str(part);
        }
        out
    };
    (join(&raw), join(&scrubbed), secrets)
}
