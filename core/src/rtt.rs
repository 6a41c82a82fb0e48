//! How long a bank waits for another bank's answer: measured, not fixed. A token pass that is
//! not answered makes the holder retry once and then give the token to the bank after; a
//! prepare, decide or finish that is not answered aborts (or leaves to the resolver) what it
//! carried. While the token's holder waits, nobody else commits anything, so this wait is what a
//! paused, isolated or silent bank costs the whole consortium. A fixed `peer_timeout` (2 s by
//! default) cost 2 s per such call, 4 s per pass; the round trip on a LAN is a few ms.
//!
//! The estimate is RFC 6298's (smoothed round trip and its variation), kept per peer and per
//! kind of call (a prepare's round trip includes the peer's group commit, a pass's does not);
//! the wait is `srtt + 4 * rttvar`, never below a floor (a local setting: a slow disk or a busy
//! machine must not look like a dead bank) and never above the peer timeout. A peer with no
//! sample yet, or whose last call failed, gets the full peer timeout: a bank coming back is
//! given time before it is judged again. A pass's retry waits twice as long as the first try.

use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl Rtt {
    /// A measured round trip of an answered pass.
    pub fn sample(&mut self, d: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(d);
                self.rttvar = d / 2;
            }
            Some(s) => {
                // rttvar = 3/4 rttvar + 1/4 |srtt - d|; srtt = 7/8 srtt + 1/8 d.
                self.rttvar = (self.rttvar * 3 + s.abs_diff(d)) / 4;
                self.srtt = Some((s * 7 + d) / 8);
            }
        }
    }

    /// The peer did not answer: forget the estimate (the next pass waits the longest).
    pub fn failed(&mut self) {
        *self = Rtt::default();
    }

    /// How long to wait for an answer: `srtt + 4 * rttvar` within `[floor, cap]`; `cap`
    /// without an estimate.
    pub fn timeout(&self, floor: Duration, cap: Duration) -> Duration {
        match self.srtt {
            None => cap,
            Some(s) => (s + self.rttvar * 4).clamp(floor.min(cap), cap),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn waits_the_cap_until_measured_then_a_few_round_trips_within_floor_and_cap() {
        let mut r = Rtt::default();
        assert_eq!(r.timeout(200 * MS, 2000 * MS), 2000 * MS, "nothing measured yet");
        for _ in 0..50 {
            r.sample(5 * MS);
        }
        assert_eq!(r.timeout(200 * MS, 2000 * MS), 200 * MS, "a fast LAN: the floor");
        assert!(r.timeout(MS, 2000 * MS) < 10 * MS, "without a floor, about the round trip: {:?}", r.timeout(MS, 2000 * MS));
        // The link slows down: the wait follows within a few samples.
        for _ in 0..8 {
            r.sample(300 * MS);
        }
        let t = r.timeout(200 * MS, 2000 * MS);
        assert!(t > 300 * MS && t < 2000 * MS, "{t:?}");
        // Jittery answers widen the wait beyond the mean.
        let mut j = Rtt::default();
        for i in 0..40 {
            j.sample(if i % 2 == 0 { 10 * MS } else { 190 * MS });
        }
        assert!(j.timeout(MS, 2000 * MS) > 190 * MS, "{:?}", j.timeout(MS, 2000 * MS));
        r.failed();
        assert_eq!(r.timeout(200 * MS, 2000 * MS), 2000 * MS, "a failed peer is given the longest wait again");
        assert_eq!(Rtt::default().timeout(3000 * MS, 2000 * MS), 2000 * MS, "a floor above the cap is the cap");
    }
}
