//! Unit tests of SimNet's semantics and fault contract.

use crate::faults::PartitionMode;
use crate::world::{World, WorldOptions, run_world};
use engine::env::{Env, NetAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn run<T: Send + 'static, Fut: std::future::Future<Output = T> + 'static>(
    seed: u64,
    body: impl FnOnce(World) -> Fut + Send + 'static,
) -> T {
    let report = run_world(WorldOptions::new(seed), body);
    match report.value {
        Ok(v) => v,
        Err(e) => panic!("world aborted: {e:?}"),
    }
}

/// Starts an echo server on `env` port 7.
fn echo_server(env: &Env) {
    let server_env = env.clone();
    let _task = env.spawn("echo", async move {
        let mut listener = server_env.net().bind(7).await.expect("bind");
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let _conn = server_env.spawn("echo-conn", async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
}

#[test]
fn echo_round_trip_takes_two_latencies() {
    let rtt = run(1, |world| async move {
        let server = world.add_host("server");
        let client = world.add_host("client");
        echo_server(&server.env());
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut stream = client
            .env()
            .net()
            .connect(&NetAddr::new("server", 7))
            .await
            .expect("connect");
        let t0 = Instant::now();
        stream.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        Instant::now() - t0
    });
    assert!(
        rtt >= Duration::from_millis(2) && rtt <= Duration::from_millis(10),
        "rtt {rtt:?}"
    );
}

#[test]
fn connect_to_a_closed_port_is_refused_with_econnrefused() {
    let code = run(2, |world| async move {
        world.add_host("server");
        let client = world.add_host("client");
        let err = match client.env().net().connect(&NetAddr::new("server", 9)).await {
            Ok(_) => panic!("connect to a closed port succeeded"),
            Err(err) => err,
        };
        err.raw_os_error()
    });
    assert_eq!(code, Some(111));
}

#[test]
fn binding_a_bound_port_fails_with_eaddrinuse() {
    run(3, |world| async move {
        let env = world.add_host("h").env();
        let _first = env.net().bind(80).await.unwrap();
        let second = env.net().bind(80).await;
        assert_eq!(second.err().and_then(|e| e.raw_os_error()), Some(98));
        assert_eq!(world.faults().count("net.addr_in_use"), 1);
        drop(_first);
        assert!(
            env.net().bind(80).await.is_ok(),
            "port is free once the listener is dropped"
        );
        assert_eq!(world.faults().count("net.addr_in_use"), 1);
    });
}

#[test]
fn a_slow_reader_back_pressures_the_writer() {
    run(4, |world| async move {
        let mut options = world.net().options();
        options.in_flight_bytes_max = 64 * 1024;
        world.net().set_options(options);
        let a = world.add_host("a").env();
        let b = world.add_host("b").env();
        let mut listener = b.net().bind(5).await.unwrap();
        let writer_env = a.clone();
        let writer = a.spawn("writer", async move {
            let mut s = writer_env
                .net()
                .connect(&NetAddr::new("b", 5))
                .await
                .unwrap();
            s.write_all(&vec![7u8; 1024 * 1024]).await.unwrap();
            Instant::now()
        });
        let (mut conn, _) = listener.accept().await.unwrap();
        // Read nothing for 10 s: the writer must be stuck.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            !writer.is_finished(),
            "1 MiB went through a 64 KiB window with no reader"
        );
        let reading_started = Instant::now();
        let mut total = 0usize;
        let mut buf = vec![0u8; 8192];
        while total < 1024 * 1024 {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0);
            assert!(buf[..n].iter().all(|b| *b == 7));
            total += n;
        }
        let finished = writer.await.unwrap();
        assert!(
            finished >= reading_started,
            "writer finished only after the reader read"
        );
    });
}

#[test]
fn reset_mid_stream_fails_both_ends_with_econnreset() {
    run(5, |world| async move {
        let a = world.add_host("a").env();
        let b = world.add_host("b").env();
        let mut listener = b.net().bind(5).await.unwrap();
        let mut client = a.net().connect(&NetAddr::new("b", 5)).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"abc").await.unwrap();
        assert_eq!(world.net().reset_between("a", "b"), 1);
        let mut buf = [0u8; 3];
        let read = server.read(&mut buf).await;
        assert_eq!(read.err().and_then(|e| e.raw_os_error()), Some(104));
        let write = client.write_all(b"more").await;
        assert_eq!(write.err().and_then(|e| e.raw_os_error()), Some(104));
        assert_eq!(world.faults().count("net.reset"), 1);
    });
}

#[test]
fn a_held_partition_delays_but_loses_nothing() {
    run(6, |world| async move {
        let a = world.add_host("a").env();
        let b = world.add_host("b").env();
        let mut listener = b.net().bind(5).await.unwrap();
        let mut client = a.net().connect(&NetAddr::new("b", 5)).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        world.net().partition("a", "b", PartitionMode::Hold, false);
        let net = world.net().clone();
        let _healer = b.spawn("healer", async move {
            tokio::time::sleep(Duration::from_secs(30)).await;
            net.heal("a", "b");
        });
        let t0 = Instant::now();
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&payload).await.unwrap();
        let mut got = vec![0u8; payload.len()];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, payload, "bytes arrive complete and in order");
        assert!(
            Instant::now() - t0 >= Duration::from_secs(30),
            "nothing crossed the partition"
        );
        assert!(world.faults().count("net.partition_hold") >= 1);
    });
}

#[test]
fn a_one_way_partition_holds_one_direction_only() {
    run(7, |world| async move {
        let a = world.add_host("a").env();
        let b = world.add_host("b").env();
        let mut listener = b.net().bind(5).await.unwrap();
        let mut client = a.net().connect(&NetAddr::new("b", 5)).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        world.net().partition("a", "b", PartitionMode::Hold, true);
        server.write_all(b"down").await.unwrap();
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"down", "b -> a still flows");
        client.write_all(b"up").await.unwrap();
        let held =
            tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut buf[..2])).await;
        assert!(held.is_err(), "a -> b must be held");
        world.net().heal_all();
        server.read_exact(&mut buf[..2]).await.unwrap();
        assert_eq!(&buf[..2], b"up");
    });
}

#[test]
fn a_dropping_partition_resets_connections_and_times_out_connects() {
    run(8, |world| async move {
        let a = world.add_host("a").env();
        let b = world.add_host("b").env();
        let mut listener = b.net().bind(5).await.unwrap();
        let mut client = a.net().connect(&NetAddr::new("b", 5)).await.unwrap();
        let _accepted = listener.accept().await.unwrap();
        world.net().partition("a", "b", PartitionMode::Drop, false);
        let mut buf = [0u8; 1];
        assert_eq!(
            client
                .read(&mut buf)
                .await
                .err()
                .and_then(|e| e.raw_os_error()),
            Some(104)
        );
        let t0 = Instant::now();
        let again = a.net().connect(&NetAddr::new("b", 5)).await;
        assert_eq!(again.err().and_then(|e| e.raw_os_error()), Some(110));
        assert!(Instant::now() - t0 >= world.net().options().connect_timeout);
        world.net().heal_all();
        assert!(a.net().connect(&NetAddr::new("b", 5)).await.is_ok());
    });
}

#[test]
fn a_crashed_host_resets_connections_and_its_tasks_die() {
    run(9, |world| async move {
        let server = world.add_host("server");
        let client = world.add_host("client").env();
        echo_server(&server.env());
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut stream = client
            .net()
            .connect(&NetAddr::new("server", 7))
            .await
            .unwrap();
        stream.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        stream.read_exact(&mut buf).await.unwrap();
        server.crash();
        assert_eq!(
            stream
                .read(&mut buf)
                .await
                .err()
                .and_then(|e| e.raw_os_error()),
            Some(104)
        );
        let down = client.net().connect(&NetAddr::new("server", 7)).await;
        assert_eq!(
            down.err().and_then(|e| e.raw_os_error()),
            Some(110),
            "a dead host sends no RST"
        );
        server.restart();
        let refused = client.net().connect(&NetAddr::new("server", 7)).await;
        assert_eq!(
            refused.err().and_then(|e| e.raw_os_error()),
            Some(111),
            "the echo task died with the crash and no boot program restarts it"
        );
        assert_eq!(world.faults().count("host.crash"), 1);
    });
}

#[test]
fn same_seed_same_trace_and_latencies_differ_by_seed() {
    let body = |world: World| async move {
        let a = world.add_host("a").env();
        let b = world.add_host("b").env();
        echo_server(&b);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let mut s = a.net().connect(&NetAddr::new("b", 7)).await.unwrap();
        let mut times = Vec::new();
        for i in 0..20u8 {
            s.write_all(&[i]).await.unwrap();
            let mut buf = [0u8; 1];
            s.read_exact(&mut buf).await.unwrap();
            tracing::info!(target: "sim::test", "round trip {i} done");
            times.push(world.now_ns());
        }
        times
    };
    let one = run_world(WorldOptions::new(11), body);
    let two = run_world(WorldOptions::new(11), body);
    let other = run_world(WorldOptions::new(12), body);
    assert_eq!(one.value, two.value);
    assert_eq!(one.trace.hash, two.trace.hash);
    assert_ne!(one.value, other.value);
    assert_ne!(one.trace.hash, other.trace.hash);
}

#[test]
fn a_link_can_have_its_own_latency() {
    run(13, |world| async move {
        let a = world.add_host("a").env();
        let b = world.add_host("b").env();
        world.net().set_link_latency(
            "a",
            "b",
            Some((Duration::from_millis(200), Duration::from_millis(200))),
        );
        let mut listener = b.net().bind(5).await.unwrap();
        let mut client = a.net().connect(&NetAddr::new("b", 5)).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let t0 = Instant::now();
        client.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(
            Instant::now() - t0,
            Duration::from_millis(200),
            "a -> b is slow"
        );
        let t1 = Instant::now();
        server.write_all(b"y").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert!(
            Instant::now() - t1 <= Duration::from_millis(6),
            "b -> a keeps the default"
        );
    });
}

#[test]
fn a_tap_sees_what_a_host_read_when_it_read_it_and_nothing_it_never_got() {
    run(14, |world| async move {
        let a = world.add_host("a").env();
        let b = world.add_host("b").env();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        world.net().tap(
            "b",
            "a",
            std::sync::Arc::new(move |bytes: &[u8]| {
                log.lock().unwrap().push((Instant::now(), bytes.to_vec()));
            }),
        );
        let mut listener = b.net().bind(5).await.unwrap();
        let mut client = a.net().connect(&NetAddr::new("b", 5)).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"not tapped: a to b").await.unwrap();
        let mut buf = [0u8; 18];
        server.read_exact(&mut buf).await.unwrap();
        server.write_all(b"reply").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(seen.lock().unwrap().is_empty(), "written is not read");
        let mut reply = [0u8; 5];
        client.read_exact(&mut reply).await.unwrap();
        let read_at = Instant::now();
        assert_eq!(*seen.lock().unwrap(), vec![(read_at, b"reply".to_vec())]);
        // A reply lost to a reset was never read: the tap never sees it.
        server.write_all(b"lost").await.unwrap();
        world.net().reset_between("a", "b");
        assert!(client.read(&mut reply).await.is_err());
        assert_eq!(seen.lock().unwrap().len(), 1);
    });
}

/// A client host beside an echo server (port 7) whose links take 2.3 ms there and
/// 1.2 ms back (a request arrives at the tick after, at +3 ms; its echo at +5 ms),
/// a millisecond into the run.
async fn client_of_uneven_echo(world: &World) -> crate::Host {
    let server = world.add_host("server");
    let client = world.add_host("client");
    echo_server(&server.env());
    let one_way = |us| Some((Duration::from_micros(us), Duration::from_micros(us)));
    world
        .net()
        .set_link_latency("client", "server", one_way(2_300));
    world
        .net()
        .set_link_latency("server", "client", one_way(1_200));
    tokio::time::sleep(Duration::from_millis(1)).await;
    client
}

/// The delivery alarm (`deliveries.rs`): a message is readable at the first 1 ms tick at
/// or after its delivery instant, never earlier, however many readers wait on that tick,
/// and a reader that stops waiting and waits again still gets it on time.
#[test]
fn messages_are_read_at_their_delivery_tick_by_every_waiting_reader() {
    let read_after = run(5, |world| async move {
        let client = client_of_uneven_echo(&world).await;
        let client_env = client.env();
        let mut streams = Vec::new();
        for _ in 0..10 {
            let net = client_env.net();
            streams.push(net.connect(&NetAddr::new("server", 7)).await.unwrap());
        }
        // Every request leaves at one instant, on a tick: each reaches the server at
        // +3 ms (2.3 ms, rounded up to the tick) and its echo returns at +5 ms.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let t0 = Instant::now();
        for (i, stream) in streams.iter_mut().enumerate() {
            stream.write_all(&[i as u8]).await.unwrap();
        }
        let mut read_after = Vec::new();
        for (i, stream) in streams.iter_mut().enumerate() {
            let mut byte = [0u8; 1];
            if i == 0 {
                let early = tokio::time::timeout(Duration::from_millis(4), stream.read(&mut byte));
                assert!(
                    early.await.is_err(),
                    "the echo is not readable before +5 ms"
                );
            }
            stream.read_exact(&mut byte).await.unwrap();
            assert_eq!(byte[0], i as u8);
            read_after.push(Instant::now() - t0);
        }
        read_after
    });
    assert_eq!(read_after, vec![Duration::from_millis(5); 10]);
}

/// A reader dropped while its message is in flight gives its seat in the delivery queue
/// (`deliveries.rs`) to a later reader, which is woken for its own message at that
/// message's tick; the dropped reader's queued wake-up stays harmless.
#[test]
fn a_dropped_reader_gives_its_seat_to_the_next_without_crossing_wake_ups() {
    let read_after = run(6, |world| async move {
        let client = client_of_uneven_echo(&world).await;
        let env = client.env();
        let addr = NetAddr::new("server", 7);
        let mut first = env.net().connect(&addr).await.unwrap();
        first.write_all(b"a").await.unwrap();
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(2), first.read(&mut byte));
        assert!(early.await.is_err(), "the first echo is still in flight");
        drop(first);
        let mut second = env.net().connect(&addr).await.unwrap();
        let t0 = Instant::now();
        second.write_all(b"b").await.unwrap();
        second.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"b");
        Instant::now() - t0
    });
    // 2.3 ms there (read at the 3 ms tick), 1.2 ms back: read at +5 ms.
    assert_eq!(read_after, Duration::from_millis(5));
}
