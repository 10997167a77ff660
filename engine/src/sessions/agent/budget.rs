//! A session's spending cap (sans-IO): what its model calls have cost, a warning once
//! 80 % of the cap is spent, and no further call once all of it is. A call is checked
//! before it goes, and its cost is known only after it answers, so the cap is exceeded
//! by at most the cost of the one call that crossed it.

use crate::protocol::Usd;

/// The share of the cap at which the user is warned, in percent.
pub(crate) const WARN_PERCENT: u64 = 80;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Budget {
    cap: Option<Usd>,
    spent: Usd,
    /// The 80 % warning was given for the current cap.
    warned: bool,
    /// Calls sent while the cap in force was spent: never, if every query checks
    /// before each call (what the oracles hold the engine to).
    calls_past_cap: u32,
}

impl Budget {
    pub(crate) fn cap(&self) -> Option<Usd> {
        self.cap
    }

    pub(crate) fn spent(&self) -> Usd {
        self.spent
    }

    /// The session's cap from now on. A raised cap may warn again.
    pub(crate) fn handle_cap(&mut self, cap: Usd) {
        if self.cap != Some(cap) {
            self.cap = Some(cap);
            self.warned = self.is_past(WARN_PERCENT);
        }
    }

    /// Before a call: `Some((spent, cap))` when the cap is spent and no call may go.
    pub(crate) fn poll_exhausted(&self) -> Option<(Usd, Usd)> {
        let cap = self.cap?;
        (self.spent >= cap).then_some((self.spent, cap))
    }

    /// A call is sent now (the oracles' record: one sent past the cap is counted).
    pub(crate) fn handle_call_sent(&mut self) {
        if self.poll_exhausted().is_some() {
            self.calls_past_cap += 1;
        }
    }

    /// Calls sent while the cap was already spent.
    pub(crate) fn calls_past_cap(&self) -> u32 {
        self.calls_past_cap
    }

    /// A call answered and cost `cost`: the warning to give, the first time 80 % of the
    /// cap is spent.
    pub(crate) fn handle_spent(&mut self, cost: Usd) -> Option<String> {
        self.spent = Usd::from_micros(self.spent.micros.saturating_add(cost.micros));
        let cap = self.cap?;
        if self.warned || !self.is_past(WARN_PERCENT) {
            return None;
        }
        self.warned = true;
        Some(format!(
            "{} of the session's {} spending cap is spent ({WARN_PERCENT} % or more): its queries stop once all of it is",
            self.spent, cap
        ))
    }

    fn is_past(&self, percent: u64) -> bool {
        self.cap.is_some_and(|cap| {
            u128::from(self.spent.micros) * 100 >= u128::from(cap.micros) * u128::from(percent)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(micros: u64) -> Usd {
        Usd::from_micros(micros)
    }

    #[test]
    fn warns_once_at_eighty_percent_and_stops_calls_once_spent() {
        let mut b = Budget::default();
        assert_eq!(b.handle_spent(usd(500)), None, "no cap, no warning");
        b.handle_cap(usd(1000));
        assert_eq!(b.poll_exhausted(), None);
        assert_eq!(b.handle_spent(usd(299)), None);
        assert!(b.handle_spent(usd(1)).is_some(), "800 of 1000 warns");
        assert_eq!(b.handle_spent(usd(100)), None, "warned once");
        assert_eq!(b.poll_exhausted(), None, "900 of 1000 still allows a call");
        b.handle_spent(usd(250));
        assert_eq!(b.poll_exhausted(), Some((usd(1150), usd(1000))));
        // A raised cap allows calls again, and warns again past its own 80 %.
        b.handle_cap(usd(10_000));
        assert_eq!(b.poll_exhausted(), None);
        assert!(b.handle_spent(usd(7_000)).is_some());
    }

    #[test]
    fn a_call_sent_past_the_cap_is_counted() {
        let mut b = Budget::default();
        b.handle_cap(usd(100));
        b.handle_call_sent();
        b.handle_spent(usd(150));
        assert_eq!(
            b.calls_past_cap(),
            0,
            "the crossing call was sent under the cap"
        );
        b.handle_call_sent();
        assert_eq!(b.calls_past_cap(), 1);
    }
}
