//! When to try a busy session lock again: exponential backoff, optional symmetric jitter,
//! and a schedule that ends at the acquire timeout.
//!
//! A pure core: it takes the retry number, the time and a raw random draw and returns
//! decisions, so unit tests and the client drive the same code. Jitter is sampled from
//! a raw `u64` with our own integer arithmetic (BRIEF §3 rule 4), so a seed's delays never
//! change with a crate upgrade.
//!
//! Without jitter, clients refused at the same instant retry at the same instant again,
//! every time (the thundering herd of api.SCALE-001); `jitter: Some(0.1)` spreads each
//! delay uniformly over ±10 % of its nominal value.

use crate::workers::retry::exponential_delay;
use std::time::Duration;

/// How a session lock's acquire backs off while the lock is busy.
#[derive(Clone, Debug, PartialEq)]
pub struct LockBackoff {
    /// Delay after the first `BUSY`; each later delay is `factor` times the previous.
    pub first: Duration,
    pub factor: u32,
    /// No nominal delay is longer than this (jitter may add up to `jitter × cap`).
    pub cap: Duration,
    /// Symmetric jitter as a fraction of each delay (`0.1`: ±10 %), in `(0, 1]`.
    /// `None`: every client waits exactly the nominal delay.
    pub jitter: Option<f64>,
    /// The acquire gives up once this much time has passed since it started. The last
    /// try happens exactly at this bound (the delay before it is shortened to fit).
    pub acquire_timeout: Duration,
}

/// Parts per million: jitter fractions are turned into integers once, so the arithmetic
/// on draws is exact.
const PPM: u64 = 1_000_000;

impl LockBackoff {
    /// The session lock of the seed document, with its fix: 10 ms doubling up to 500 ms,
    /// ±10 % jitter, a 5 s acquire timeout.
    pub fn standard() -> Self {
        LockBackoff {
            first: Duration::from_millis(10),
            factor: 2,
            cap: Duration::from_millis(500),
            jitter: Some(0.1),
            acquire_timeout: Duration::from_secs(5),
        }
    }

    /// The same schedule with the given jitter (`None`: the seed's original code).
    pub fn with_jitter(self, jitter: Option<f64>) -> Self {
        LockBackoff { jitter, ..self }
    }

    /// Panics with the offending field when the backoff contradicts itself (it is
    /// configuration written by people).
    pub fn check(&self) {
        assert!(!self.first.is_zero(), "first delay must be positive");
        assert!(self.factor >= 1, "factor must be at least 1");
        assert!(
            self.first <= self.cap,
            "first delay {:?} exceeds cap {:?}",
            self.first,
            self.cap
        );
        assert!(
            self.cap <= self.acquire_timeout,
            "cap {:?} exceeds acquire_timeout {:?}: no delay may outlast the whole acquire",
            self.cap,
            self.acquire_timeout
        );
        if let Some(j) = self.jitter {
            assert!(
                j.is_finite() && j > 0.0 && j <= 1.0,
                "jitter {j} must be a fraction in (0, 1] (or None for no jitter)"
            );
        }
    }

    /// The jitter in parts per million (0 without jitter).
    fn jitter_ppm(&self) -> u64 {
        self.jitter
            .map_or(0, |j| ((j * PPM as f64).round() as u64).min(PPM))
    }

    /// The nominal delay after the `retry`-th `BUSY` (1-based; 0 counts as 1):
    /// `first × factor^(retry−1)`, at most `cap`.
    pub fn nominal(&self, retry: u32) -> Duration {
        exponential_delay(self.first, self.factor, self.cap, retry)
    }

    /// The delay after the `retry`-th `BUSY`, jittered by `draw` when jitter is on.
    pub fn delay(&self, retry: u32, draw: u64) -> Duration {
        jitter_symmetric(self.nominal(retry), self.jitter_ppm(), draw)
    }

    /// The longest single delay the backoff can hand out (the cap plus its jitter).
    pub fn delay_max(&self) -> Duration {
        let cap = self.cap.as_nanos();
        let extra = cap * u128::from(self.jitter_ppm()) / u128::from(PPM);
        Duration::from_nanos(u64::try_from(cap + extra).unwrap_or(u64::MAX))
    }
}

/// `nominal` moved uniformly (by `draw`) within `±ppm` parts per million of itself.
/// `ppm` 0 or a zero delay return `nominal` unchanged.
pub fn jitter_symmetric(nominal: Duration, ppm: u64, draw: u64) -> Duration {
    let ppm = ppm.min(PPM);
    let nanos = u64::try_from(nominal.as_nanos()).unwrap_or(u64::MAX);
    if ppm == 0 || nanos == 0 {
        return nominal;
    }
    let spread = u64::try_from(u128::from(nanos) * u128::from(ppm) / u128::from(PPM))
        .unwrap_or(u64::MAX / 4)
        .min(u64::MAX / 4);
    if spread == 0 {
        return nominal;
    }
    // Uniform in [nanos − spread, nanos + spread]; the bias of one modulo on a 64-bit
    // draw is below 2^-40 for any delay shorter than a day.
    let offset = draw % (2 * spread + 1);
    Duration::from_nanos((nanos - spread).saturating_add(offset))
}

/// What an acquire does after a refused (or failed) try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextTry {
    /// Try again after this delay.
    After(Duration),
    /// The acquire timeout has passed: stop.
    GiveUp { waited: Duration },
}

/// Where one acquire stands: when it started and how many tries were refused.
#[derive(Clone, Debug)]
pub struct AcquireSchedule {
    backoff: LockBackoff,
    started: Duration,
    refused: u32,
}

impl AcquireSchedule {
    /// An acquire that starts at `now` (time since any fixed origin).
    pub fn new(backoff: LockBackoff, now: Duration) -> Self {
        backoff.check();
        AcquireSchedule {
            backoff,
            started: now,
            refused: 0,
        }
    }

    /// The last instant at which a try may start.
    pub fn deadline(&self) -> Duration {
        self.started + self.backoff.acquire_timeout
    }

    /// Tries refused so far.
    pub fn refused(&self) -> u32 {
        self.refused
    }

    /// A try was refused at `now`: the delay before the next one, shortened so the next
    /// try starts no later than the deadline, or `GiveUp` once the deadline has passed.
    /// `draw` is a raw random draw (ignored without jitter).
    pub fn on_refused(&mut self, now: Duration, draw: u64) -> NextTry {
        let waited = now.saturating_sub(self.started);
        let deadline = self.deadline();
        if now >= deadline {
            return NextTry::GiveUp { waited };
        }
        self.refused = self.refused.saturating_add(1);
        let delay = self.backoff.delay(self.refused, draw).min(deadline - now);
        NextTry::After(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A spread of draws (splitmix-like), to sample jitter without an RNG crate.
    fn draws(n: u64) -> impl Iterator<Item = u64> {
        (1..=n).map(|i| {
            let mut z = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    #[test]
    fn nominal_delays_double_from_the_first_up_to_the_cap() {
        let b = LockBackoff::standard().with_jitter(None);
        let delays: Vec<u64> = (1..=9)
            .map(|r| b.delay(r, 12345).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 320, 500, 500, 500]);
        assert_eq!(b.nominal(0), ms(10), "retry 0 counts as the first");
        assert_eq!(
            b.nominal(u32::MAX),
            ms(500),
            "huge retry numbers stay capped"
        );
        let triple = LockBackoff {
            factor: 3,
            ..LockBackoff::standard()
        };
        assert_eq!(triple.nominal(3), ms(90));
        assert_eq!(triple.delay_max(), ms(550), "cap plus 10 %");
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads_over_the_band() {
        let b = LockBackoff::standard();
        for retry in 1..=10 {
            let nominal = b.nominal(retry);
            let band = nominal / 10;
            let seen: Vec<Duration> = draws(2_000).map(|d| b.delay(retry, d)).collect();
            let (lo, hi) = (seen.iter().min().unwrap(), seen.iter().max().unwrap());
            assert!(
                *lo >= nominal - band && *hi <= nominal + band,
                "retry {retry}: {lo:?}..{hi:?} outside {nominal:?} ± {band:?}"
            );
            // Both halves of the band are used, nearly to its edges.
            assert!(
                *lo < nominal - band * 9 / 10,
                "retry {retry}: low edge unused ({lo:?})"
            );
            assert!(
                *hi > nominal + band * 9 / 10,
                "retry {retry}: high edge unused ({hi:?})"
            );
            let below = seen.iter().filter(|d| **d < nominal).count();
            assert!(
                (800..=1_200).contains(&below),
                "retry {retry}: {below} of 2000 delays below nominal: not symmetric"
            );
            let mean = seen.iter().sum::<Duration>() / seen.len() as u32;
            let off = mean.abs_diff(nominal);
            assert!(
                off < band / 10,
                "retry {retry}: mean {mean:?} is {off:?} off nominal"
            );
        }
    }

    #[test]
    fn jitter_of_draw_extremes_hits_the_band_edges_exactly() {
        // spread = 1 ms of 10 ms: offsets 0..=2 ms in ns, so the modulus is 2_000_001.
        assert_eq!(jitter_symmetric(ms(10), 100_000, 0), ms(9));
        assert_eq!(jitter_symmetric(ms(10), 100_000, 2_000_000), ms(11));
        assert_eq!(jitter_symmetric(ms(10), 100_000, 1_000_000), ms(10));
        assert_eq!(jitter_symmetric(ms(10), 0, 777), ms(10), "no jitter");
        assert_eq!(
            jitter_symmetric(Duration::ZERO, 100_000, 777),
            Duration::ZERO
        );
        // Full jitter reaches 0 and twice the nominal value.
        assert_eq!(jitter_symmetric(ms(10), PPM, 0), Duration::ZERO);
        assert_eq!(jitter_symmetric(ms(10), PPM, 20_000_000), ms(20));
    }

    #[test]
    fn the_same_draws_give_the_same_schedule_and_other_draws_another() {
        let b = LockBackoff::standard();
        let start = Duration::from_secs(7);
        let (first, waited) = refused_throughout(&b, start);
        let (again, waited_again) = refused_throughout(&b, start);
        assert_eq!(first, again, "a seeded acquire must replay exactly");
        assert_eq!(waited, waited_again);
        // Shifted draws (another client's stream): the same band, other instants.
        let mut schedule = AcquireSchedule::new(b.clone(), start);
        let mut now = start;
        let mut other = Vec::new();
        for draw in draws(10_000).skip(1) {
            match schedule.on_refused(now, draw) {
                NextTry::After(d) => {
                    other.push(d);
                    now += d;
                }
                NextTry::GiveUp { .. } => break,
            }
        }
        assert_ne!(
            first[..6],
            other[..6],
            "jitter must decorrelate two clients"
        );
        for (retry, (x, y)) in (1..).zip(first.iter().zip(&other)).take(6) {
            let nominal = b.nominal(retry);
            assert!(x.abs_diff(nominal) <= nominal / 10 && y.abs_diff(nominal) <= nominal / 10);
        }
    }

    #[test]
    fn the_cap_holds_with_jitter_and_any_factor() {
        for factor in [1, 2, 3, 10, u32::MAX] {
            let b = LockBackoff {
                factor,
                ..LockBackoff::standard()
            };
            for retry in [1, 2, 5, 20, 64, u32::MAX] {
                assert!(b.nominal(retry) <= b.cap, "factor {factor}, retry {retry}");
                for draw in draws(50) {
                    assert!(b.delay(retry, draw) <= b.delay_max());
                }
            }
        }
        assert_eq!(LockBackoff::standard().delay_max(), ms(550));
    }

    #[test]
    fn without_jitter_every_client_waits_the_same() {
        let b = LockBackoff::standard().with_jitter(None);
        let all: Vec<Duration> = draws(100).map(|d| b.delay(4, d)).collect();
        assert!(all.iter().all(|d| *d == ms(80)), "{all:?}");
    }

    /// Runs one acquire whose every try is refused at once (replies take no time):
    /// returns the delays handed out and where it gave up.
    fn refused_throughout(b: &LockBackoff, start: Duration) -> (Vec<Duration>, Duration) {
        let mut schedule = AcquireSchedule::new(b.clone(), start);
        let mut now = start;
        let mut delays = Vec::new();
        for draw in draws(10_000) {
            match schedule.on_refused(now, draw) {
                NextTry::After(d) => {
                    delays.push(d);
                    now += d;
                }
                NextTry::GiveUp { waited } => {
                    assert_eq!(waited, now - start);
                    return (delays, waited);
                }
            }
        }
        panic!("the schedule never gave up");
    }

    #[test]
    fn the_schedule_ends_exactly_at_the_acquire_timeout() {
        let start = Duration::from_secs(1_000);
        for jitter in [None, Some(0.1), Some(1.0)] {
            let b = LockBackoff::standard().with_jitter(jitter);
            let (delays, waited) = refused_throughout(&b, start);
            assert_eq!(
                waited,
                ms(5_000),
                "jitter {jitter:?}: gave up after {waited:?}"
            );
            assert_eq!(delays.iter().sum::<Duration>(), ms(5_000));
            assert!(delays.iter().all(|d| *d <= b.delay_max()));
        }
        // Without jitter the tries are the documented ones: 10+20+…+320 = 630 ms, then
        // 500 ms steps, the last one shortened to land on 5 s.
        let b = LockBackoff::standard().with_jitter(None);
        let (delays, _) = refused_throughout(&b, start);
        let millis: Vec<u64> = delays.iter().map(|d| d.as_millis() as u64).collect();
        assert_eq!(&millis[..7], &[10, 20, 40, 80, 160, 320, 500]);
        assert_eq!(millis.len(), 15, "{millis:?}");
        assert_eq!(millis[14], 5_000 - 630 - 8 * 500);
    }

    #[test]
    fn a_refusal_after_the_deadline_gives_up_and_one_before_waits_at_most_until_it() {
        let b = LockBackoff::standard();
        let mut s = AcquireSchedule::new(b.clone(), ms(100));
        assert_eq!(s.deadline(), ms(5_100));
        // A slow reply can push `now` past the deadline: no further try.
        assert_eq!(
            s.on_refused(ms(5_300), 1),
            NextTry::GiveUp { waited: ms(5_200) }
        );
        assert_eq!(s.refused(), 0);
        let mut s = AcquireSchedule::new(b, ms(100));
        assert_eq!(s.on_refused(ms(5_099), 1), NextTry::After(ms(1)));
        assert_eq!(s.refused(), 1);
        assert_eq!(
            s.on_refused(ms(5_100), 1),
            NextTry::GiveUp { waited: ms(5_000) }
        );
    }

    #[test]
    #[should_panic(expected = "exceeds acquire_timeout")]
    fn a_cap_beyond_the_timeout_is_refused() {
        LockBackoff {
            cap: Duration::from_secs(6),
            ..LockBackoff::standard()
        }
        .check();
    }

    #[test]
    #[should_panic(expected = "must be a fraction")]
    fn negative_jitter_is_refused() {
        LockBackoff::standard().with_jitter(Some(-0.1)).check();
    }

    #[test]
    #[should_panic(expected = "must be a fraction")]
    fn nan_jitter_is_refused() {
        LockBackoff::standard().with_jitter(Some(f64::NAN)).check();
    }
}
