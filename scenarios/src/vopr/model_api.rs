//! The model API's oracle: once the engine has read a 429 with a `Retry-After`, none of
//! its calls reaches the model API before that window ends. The window is the
//! engine's (one client for every session and the pre-warm checks), so any call inside
//! it counts, whoever made it.
//!
//! Both ends are observed beside the system: when the engine read each 429 comes from
//! a tap on the wire from the model API to the engine (a 429 lost to a reset or a
//! partition was never read, so it opens no window), and when each call arrived from
//! the model API's own log. A call admitted just before the read arrives up to a
//! connect's round trip and a write later (three one-way latencies): one arriving that
//! soon is not judged (each latency rounded up to the timer's millisecond tick), nor one
//! whose engine was paused in between (admitted before the
//! pause, sent after it). A restarted engine knows nothing of its predecessor's window,
//! so a start in between ends it.

use super::cluster::Cluster;
use super::observer::Observer;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Past three one-way latencies: a tick for each, as each is delivered at the first
/// millisecond tick at or after it is due (a 1.3 ms latency takes 2 ms).
const IN_FLIGHT_SLACK: Duration = Duration::from_millis(3);

/// The 429s the engine read, with their `Retry-After`, in the order it read them.
#[derive(Clone, Default)]
pub struct RateLimitsRead(Arc<Mutex<Vec<(Instant, Duration)>>>);

impl RateLimitsRead {
    /// Taps the wire from the model API's host to the engine's.
    pub fn tap(&self, world: &sim::World, upstream_host: &str, engine_host: &str) {
        let read = self.0.clone();
        world.net().tap(
            upstream_host,
            engine_host,
            Arc::new(move |bytes: &[u8]| {
                if let Some(after) = retry_after_of_429(bytes) {
                    read.lock()
                        .expect("rate limits poisoned")
                        .push((Instant::now(), after));
                }
            }),
        );
    }

    fn read(&self) -> Vec<(Instant, Duration)> {
        self.0.lock().expect("rate limits poisoned").clone()
    }
}

/// The `Retry-After` of a 429 response head in `bytes` (whole seconds, as the local
/// server sends it).
fn retry_after_of_429(bytes: &[u8]) -> Option<Duration> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.starts_with("HTTP/1.1 429") {
        return None;
    }
    let head = text.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().parse().ok().map(Duration::from_secs))?
    })
}

/// Judges every call the model API logged against the windows the engine read.
/// `paused`: when the engine's host was paused (from, to), from the plan.
pub fn check_rate_limits(
    cluster: &Cluster,
    read: &RateLimitsRead,
    paused: &[(Instant, Instant)],
    observer: &Observer,
) {
    let Some(upstream) = &cluster.upstream else {
        return;
    };
    let starts = cluster.starts();
    let in_flight = cluster.config.latency_max * 3 + IN_FLIGHT_SLACK;
    let windows = read.read();
    let mut exempt = 0u64;
    for call in upstream.requests() {
        // The windows the engine was inside when this call arrived.
        for &(at, after) in &windows {
            if call.at <= at || call.at >= at + after {
                continue;
            }
            if starts.iter().any(|&s| s > at && s <= call.at) {
                continue;
            }
            let was_paused = paused
                .iter()
                .any(|&(from, to)| from <= call.at && to + in_flight > at);
            if call.at <= at + in_flight || was_paused {
                exempt += 1;
                continue;
            }
            observer.violation(format!(
                "the engine called the model API ({}) {} ms into a {} ms Retry-After window it had read",
                call.path,
                (call.at - at).as_millis(),
                after.as_millis()
            ));
            return;
        }
    }
    for _ in 0..exempt {
        observer.count("model API calls in flight at a 429");
    }
}

/// Shows the observer what each call to the model API asked.
pub fn check_model_inputs(cluster: &Cluster, observer: &Observer) {
    let Some(upstream) = &cluster.upstream else {
        return;
    };
    for call in upstream.requests() {
        if let Some(head) = &call.input_head {
            observer.on_model_input(head);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_head_gives_its_retry_after() {
        let head = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nRetry-After: 5\r\n\r\n{}";
        assert_eq!(retry_after_of_429(head), Some(Duration::from_secs(5)));
        assert_eq!(
            retry_after_of_429(b"HTTP/1.1 200 OK\r\nretry-after: 5\r\n\r\n"),
            None
        );
        assert_eq!(
            retry_after_of_429(b"HTTP/1.1 429 x\r\n\r\nretry-after: 5"),
            None
        );
    }
}
