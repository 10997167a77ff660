//! Which address a request came from (`api.CONFIG-001`): `X-Forwarded-For` is believed
//! only when the direct peer is a configured trusted proxy; otherwise anyone could
//! claim any address and walk around per-address limits.

/// The client's address: the peer's, or, when the peer is a trusted proxy, the
/// right-most address in `forwarded_for` that is not itself a trusted proxy.
pub(super) fn client_addr(peer: &str, forwarded_for: Option<&str>, trusted: &[String]) -> String {
    let is_trusted = |addr: &str| trusted.iter().any(|t| t == addr);
    let Some(header) = forwarded_for else {
        return peer.to_string();
    };
    if !is_trusted(peer) {
        crate::met!(
            "client.forwarded_for",
            "X-Forwarded-For from {peer}, not a trusted proxy: ignored, the peer's address counts"
        );
        return peer.to_string();
    }
    let client = header
        .split(',')
        .map(str::trim)
        .rev()
        .find(|a| !a.is_empty() && !is_trusted(a))
        .unwrap_or(peer)
        .to_string();
    crate::met!(
        "client.forwarded_for",
        "X-Forwarded-For from trusted proxy {peer}: {client} counts"
    );
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let proxies = vec!["10.0.0.1".to_string()];
        assert_eq!(
            client_addr("10.0.0.9", Some("1.2.3.4"), &proxies),
            "10.0.0.9"
        );
        assert_eq!(
            client_addr("10.0.0.1", Some("1.2.3.4"), &proxies),
            "1.2.3.4"
        );
        assert_eq!(
            client_addr("10.0.0.1", Some("6.6.6.6, 1.2.3.4, 10.0.0.1"), &proxies),
            "1.2.3.4",
            "a client-supplied left part cannot override what the proxy appended"
        );
        assert_eq!(client_addr("10.0.0.1", None, &proxies), "10.0.0.1");
        assert_eq!(client_addr("10.0.0.1", Some("1.2.3.4"), &[]), "10.0.0.1");
    }
}
