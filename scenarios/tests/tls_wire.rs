//! A simulated world's TLS is a function of its seed: the bytes on the wire between the
//! engine's upstream client and the model API (ClientHello random, key shares,
//! ciphertext) are the same for the same seed and differ for another. The trace hash
//! does not cover payload bytes, so this reads them through the network's tap: a
//! handshake drawing from the OS (ring's own randomness) would fail it.

use engine::env::NetAddr;
use engine::upstream::{ExpiredPolicy, TlsConfig, UpstreamClient, UpstreamConfig};
use scenarios::kit::tls::test_pki;
use scenarios::stage::host_upstream_over;
use sim::{World, WorldOptions, run_world};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

const UPSTREAM: &str = "upstream-0";

/// FNV-1a over everything `upstream-0` sent the engine host, and the answer.
async fn exchange(world: World) -> (u64, String) {
    let epoch = UNIX_EPOCH + Duration::from_nanos(sim::clock::EPOCH_UNIX_NS);
    let pki = test_pki(7, UPSTREAM, epoch, epoch + Duration::from_secs(90 * 86_400))
        .expect("test certificates");
    let engine = world.add_host("engine-0");
    host_upstream_over(&world, UPSTREAM, 443, "key", Some(pki.identity.clone()))
        .await
        .expect("upstream");
    let seen = Arc::new(Mutex::new(0xcbf2_9ce4_8422_2325_u64));
    let tapped = seen.clone();
    world.net().tap(
        UPSTREAM,
        "engine-0",
        Arc::new(move |bytes: &[u8]| {
            let mut h = tapped.lock().unwrap();
            for b in bytes {
                *h = (*h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
        }),
    );
    let mut config = UpstreamConfig::new(NetAddr::new(UPSTREAM, 443), "key");
    config.tls = Some(TlsConfig {
        expired: ExpiredPolicy::Block,
        ..TlsConfig::new(vec![pki.root.clone()], UPSTREAM)
    });
    let client = UpstreamClient::try_new(engine.env(), config).expect("client");
    let answer = client.complete("over the wire").await.expect("answer");
    let hash = *seen.lock().unwrap();
    (hash, answer)
}

#[test]
fn the_bytes_on_the_wire_are_a_function_of_the_seed() {
    let first = run_world(WorldOptions::new(5), exchange)
        .value
        .expect("ran");
    let second = run_world(WorldOptions::new(5), exchange)
        .value
        .expect("ran");
    let other = run_world(WorldOptions::new(6), exchange)
        .value
        .expect("ran");
    assert_eq!(first.1, "over the wire");
    assert_eq!(first, second, "the same seed, other bytes on the wire");
    assert_ne!(first.0, other.0, "another seed, the same bytes on the wire");
}
