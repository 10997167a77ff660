//! The network contract: what both the real TCP stack and SimNet promise.

use engine::env::{Env, NetAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

pub async fn net_contract(env: &Env) -> Result<(), String> {
    // Echo through a listener on an ephemeral port.
    let mut listener = env
        .net()
        .bind(0)
        .await
        .map_err(|e| format!("bind(0): {e}"))?;
    let addr = listener.local_addr();
    check(addr.port != 0, || {
        "bind(0) must report the port it picked".into()
    })?;
    let server_env = env.clone();
    let server = env.spawn("contract-echo", async move {
        let (mut stream, peer) = listener.accept().await?;
        let mut data = Vec::new();
        stream.read_to_end(&mut data).await?;
        stream.write_all(&data).await?;
        stream.shutdown().await?;
        drop(server_env);
        Ok::<_, std::io::Error>((data.len(), peer))
    });
    let mut client = env
        .net()
        .connect(&addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    client
        .write_all(&payload)
        .await
        .map_err(|e| format!("write: {e}"))?;
    client
        .shutdown()
        .await
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut echoed = Vec::new();
    client
        .read_to_end(&mut echoed)
        .await
        .map_err(|e| format!("read echo: {e}"))?;
    check(echoed == payload, || {
        format!(
            "echo returned {} bytes, not the {} sent in order",
            echoed.len(),
            payload.len()
        )
    })?;
    let (received, peer) = server
        .await
        .map_err(|e| format!("server task: {e}"))?
        .map_err(|e| format!("server: {e}"))?;
    check(received == payload.len(), || {
        format!("server read {received} bytes")
    })?;
    check(peer == client.local_addr(), || {
        format!(
            "accept saw peer {peer}, the client says it is {}",
            client.local_addr()
        )
    })?;

    // A second listener on a bound port fails with EADDRINUSE.
    let first = env
        .net()
        .bind(0)
        .await
        .map_err(|e| format!("bind(0): {e}"))?;
    let port = first.local_addr().port;
    let second = env.net().bind(port).await;
    check(
        second.as_ref().err().and_then(|e| e.raw_os_error()) == Some(98),
        || {
            format!(
                "second bind of port {port}: {:?}, expected EADDRINUSE (98)",
                second.as_ref().err()
            )
        },
    )?;

    // Once nothing listens, connecting is refused with ECONNREFUSED.
    let closed = NetAddr::new(first.local_addr().host, port);
    drop(first);
    let refused = env.net().connect(&closed).await;
    check(
        refused.as_ref().err().and_then(|e| e.raw_os_error()) == Some(111),
        || {
            format!(
                "connect to closed {closed}: {:?}, expected ECONNREFUSED (111)",
                refused.as_ref().err()
            )
        },
    )?;
    Ok(())
}
