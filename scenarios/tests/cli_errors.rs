//! Every error path of the `chaos` command line a user can reach with bad input: each
//! ends with exit status 2, an `error:` line in words (no Rust type or variant name, no
//! panic) and a hint of its own (not the catch-all `--help` hint), or clap's pointer to
//! `--help` for a malformed command line.

mod common;
use common::{chaos, text};
use std::path::Path;

#[allow(clippy::disallowed_methods, reason = "the test writes its input files")]
fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Whether `text` holds a CamelCase word: a type or variant name leaking out.
fn has_camel_case(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric()).any(|w| {
        let c: Vec<char> = w.chars().collect();
        c.windows(2)
            .any(|p| p[0].is_lowercase() && p[1].is_uppercase())
    })
}

#[test]
fn every_error_path_is_in_words_with_a_hint_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    write(&dir.path().join("garbage.json"), b"garbage");
    write(&dir.path().join("binary.json"), b"\xff\xfe\x00");
    write(&dir.path().join("empty.json"), b"");
    write(&dir.path().join("not-a-plan.json"), br#"{"actions": 3}"#);
    write(
        &dir.path().join("policy.toml"),
        b"[coverage]\nblock_planned = [\"hihg\"]\n",
    );
    std::fs::create_dir(dir.path().join("adir")).unwrap();
    let (garbage, binary, empty, adir) = (
        d("garbage.json"),
        d("binary.json"),
        d("empty.json"),
        d("adir"),
    );
    let (nope, bad_plan, policy, out) = (
        d("nope.json"),
        d("not-a-plan.json"),
        d("policy.toml"),
        d("out"),
    );
    let id = "core.EC-001";
    let own_hint: &[&[&str]] = &[
        // run
        &["run", "core.EC-00", "--seed", "1"],
        &["run", "nope", "--seed", "1"],
        &["run", id, "--seed", "1", "--plan", &garbage],
        &["run", id, "--seed", "1", "--plan", &bad_plan],
        &["run", id, "--seed", "1", "--plan", &binary],
        &["run", id, "--seed", "1", "--plan", &adir],
        &["run", id, "--seed", "1", "--plan", &nope],
        &["run", id, "--seed", "1", "--real"],
        &["run", id, "--seed", "1", "-o", "/proc/nope/x"],
        // list
        &["list", "--status", "done"],
        // sweep
        &["sweep", "--prefix", "zzz."],
        &["sweep", "--id", "core.EC-999"],
        &["sweep", "--filter", "zzz*"],
        &[
            "sweep",
            "--seeds",
            "2",
            "--seed-start",
            "18446744073709551615",
        ],
        // report
        &["report", &garbage, "--out", &out],
        &["report", &binary, "--out", &out],
        &["report", &empty, "--out", &out],
        &["report", &adir, "--out", &out],
        &["report", &nope, "--out", &out],
        &["report", &garbage, "--out", &out, "--formats", "pdf"],
        &["report", &garbage, "--out", &out, "--policy", &policy],
        &["report", &garbage, "--out", &out, "--previous", &garbage],
        // repro
        &["repro", &garbage],
        &["repro", &adir],
        &["repro", id],
        &["repro", "nope", "--seed", "1"],
        // gate
        &["gate", "--baseline", &garbage],
        &["gate", "--baseline", &nope],
        &["gate", "--accept", "--prefix", "core"],
        &[
            "gate",
            "--accept",
            "--accept-failure",
            "core.EC-999",
            "--reason",
            "r",
        ],
        // shrink
        &["shrink", "nope", "--seed", "1"],
        &[
            "shrink",
            "sim.clock.skew-does-not-bend-timeouts",
            "--seed",
            "1",
        ],
    ];
    let malformed: &[&[&str]] = &[
        &["run", id, "--seed", "abc"],
        &["run", id, "--seed", "99999999999999999999"],
        &["sweep", "--partition", "hash:1/2"],
        &["sweep", "--shard", "3/2"],
        &["sweep", "--seeds", "0"],
        &["frobnicate"],
    ];
    let mut problems = Vec::new();
    let cases = own_hint
        .iter()
        .map(|a| (a, true))
        .chain(malformed.iter().map(|a| (a, false)));
    for (args, needs_own_hint) in cases {
        let result = chaos(args);
        let stderr = text(&result.stderr);
        let said = |what: &str| format!("chaos {}: {what}:\n{stderr}", args.join(" "));
        if result.status.code() != Some(2) {
            problems.push(said(&format!("exit status {:?}", result.status.code())));
        }
        if stderr.contains("panicked") || !stderr.starts_with("error: ") {
            problems.push(said("not a plain error"));
        }
        // The temporary directory's random name is not the CLI's wording.
        let worded = stderr.replace(dir.path().to_str().unwrap(), "DIR");
        if has_camel_case(&worded.replace("--help", "")) {
            problems.push(said("a type or variant name"));
        }
        let command = args[0];
        let hint = stderr.lines().find_map(|l| l.strip_prefix("hint: "));
        match (needs_own_hint, hint) {
            (true, Some(h)) if h == scenarios::cli::generic_hint(command) => {
                problems.push(said("only the catch-all hint"))
            }
            (true, None) => problems.push(said("no hint")),
            (false, _) if !stderr.contains("try '--help'") => {
                problems.push(said("no pointer to --help"))
            }
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{} error path(s) fall short:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn the_camel_case_check_finds_a_variant_name() {
    assert!(has_camel_case("invalid token: InvalidToken"));
    assert!(!has_camel_case(
        "invalid token: the signature does not match"
    ));
}
