//! Configuration from outside: the worker program's command line, `--shard i/n`, the
//! gate's baseline file, and a `tool:fetch` query's egress target.

use engine::workers::program::args;
use reports::gate::Baseline;
use reports::shard::Shard;

/// First byte picks the parser; the rest is its input (arguments separated by NUL).
pub fn config(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 4 {
        0 => worker_args(&text),
        1 => shard(&text),
        2 => baseline(&text),
        _ => egress_target(&text),
    }
}

/// An accepted target is written back in a form that reads as itself; a refusal says
/// what is wrong.
fn egress_target(text: &str) {
    match engine::egress::normalize_target(text) {
        Ok(full) => {
            let again = engine::egress::normalize_target(&full);
            assert_eq!(again.as_ref(), Ok(&full), "target round trip of {text:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty(), "a refusal without a message"),
    }
}

fn worker_args(text: &str) {
    let argv: Vec<String> = text.split('\0').map(str::to_string).collect();
    match args::parse(&argv) {
        Ok(parsed) => {
            assert!(
                parsed.heartbeat_ms <= args::HEARTBEAT_MS_MAX,
                "accepted heartbeat {} ms from {argv:?}",
                parsed.heartbeat_ms
            );
            assert!(
                parsed.cache_cap_bytes != Some(0) && parsed.disk_quota_bytes != Some(0),
                "accepted a zero byte count from {argv:?}"
            );
            assert!(parsed.port != Some(0), "accepted port 0 as a port");
        }
        Err(e) => assert!(
            e.ends_with(args::USAGE),
            "a refusal without the usage line: {e}"
        ),
    }
}

fn shard(text: &str) {
    if let Ok(shard) = Shard::parse(text) {
        assert!(
            (1..=shard.count).contains(&shard.index),
            "accepted shard {}/{} from {text:?}",
            shard.index,
            shard.count
        );
        let again = Shard::parse(&format!("{}/{}", shard.index, shard.count));
        assert_eq!(again.ok(), Some(shard), "shard round trip of {text:?}");
    }
}

fn baseline(text: &str) {
    if let Ok(baseline) = Baseline::parse(text) {
        assert!(baseline.seeds >= 1, "accepted a baseline with no seeds");
        let written = serde_json::to_string(&baseline)
            .unwrap_or_else(|e| panic!("an accepted baseline does not serialize: {e}"));
        match Baseline::parse(&written) {
            Ok(again) => assert_eq!(again, baseline, "baseline round trip"),
            Err(e) => panic!("an accepted baseline, written back, is refused: {e}"),
        }
    }
}
