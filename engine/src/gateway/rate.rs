//! Per-user rate limits, checked when a message enters (never against a query already
//! running): a token bucket per user, a pure core over `now`.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages a user may send at once.
    pub burst: u32,
    /// One more message allowed per `refill`.
    pub refill: Duration,
}

impl RateLimit {
    pub fn check(&self) {
        assert!(self.burst > 0, "a rate limit's burst must be positive");
        assert!(
            !self.refill.is_zero(),
            "a rate limit's refill must be positive"
        );
    }
}

#[derive(Clone, Debug)]
struct Bucket {
    tokens: u32,
    /// When the bucket was last topped up.
    at: Duration,
}

/// Token buckets by user id.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: BTreeMap<String, Bucket>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        limit.check();
        RateLimiter {
            limit,
            buckets: BTreeMap::new(),
        }
    }

    /// Takes one message from `user`'s bucket, or says how long until one is allowed.
    pub fn admit(&mut self, user: &str, now: Duration) -> Result<(), Duration> {
        let limit = self.limit;
        let bucket = self.buckets.entry(user.to_string()).or_insert(Bucket {
            tokens: limit.burst,
            at: now,
        });
        let elapsed = now.saturating_sub(bucket.at);
        let earned = (elapsed.as_nanos() / limit.refill.as_nanos()) as u64;
        if earned > 0 {
            bucket.tokens = (bucket.tokens as u64 + earned).min(limit.burst as u64) as u32;
            bucket.at += limit.refill * earned.min(u32::MAX as u64) as u32;
        }
        if bucket.tokens == limit.burst {
            bucket.at = now;
        }
        if bucket.tokens == 0 {
            return Err((bucket.at + limit.refill).saturating_sub(now));
        }
        bucket.tokens -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_refill_paces() {
        let mut r = RateLimiter::new(RateLimit {
            burst: 2,
            refill: Duration::from_secs(10),
        });
        let t = Duration::from_secs;
        assert!(r.admit("a", t(0)).is_ok());
        assert!(r.admit("a", t(0)).is_ok());
        assert_eq!(r.admit("a", t(1)), Err(t(9)));
        assert!(r.admit("b", t(1)).is_ok(), "users have their own buckets");
        assert!(r.admit("a", t(10)).is_ok());
        assert!(r.admit("a", t(11)).is_err());
        assert!(r.admit("a", t(100)).is_ok());
        assert!(r.admit("a", t(100)).is_ok());
        assert!(
            r.admit("a", t(100)).is_err(),
            "the bucket holds at most the burst"
        );
    }
}
