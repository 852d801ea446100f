//! The retransmission timer both loops run: [`Rto`], an RFC 6298 estimator (smoothed round
//! trip and its variation, Karn's rule, exponential backoff) bounded by the link's timeout.
//!
//! Pure arithmetic on durations: the loops measure, this decides how long to wait.

use super::backoff;
use std::time::Duration;

/// The shortest retransmission timeout, however short the measured round trip: well above a
/// LAN's or loopback's round trip, so a peer that pauses to write a block (or a scheduler
/// hiccup) does not make us resend a window it is about to acknowledge.
pub const MIN_RTO: Duration = Duration::from_millis(50);

/// RFC 6298's clock granularity G: the variation term is never less than this.
const GRANULARITY: Duration = Duration::from_millis(1);

/// How long to wait for an answer before retransmitting, learned from the round trips measured
/// on this transfer (RFC 6298): `SRTT + max(G, 4 * RTTVAR)`, never below [`MIN_RTO`] (or the
/// ceiling, if that is lower) and never above the ceiling, the link's timeout: the configured
/// one, or the one the client negotiated (RFC 2349), which is thus never exceeded.
///
/// Before the first sample the timer is the ceiling, so a transfer that measured nothing (or a
/// peer that answers nothing) behaves as with a fixed timeout. A sample must come from a packet
/// sent once (Karn's rule: the answer to a retransmitted packet could answer either copy); the
/// callers enforce that.
///
/// Backing off: each expiry doubles the timer (RFC 6298 section 5.5) until a new sample resets
/// it (Karn). Expiries below the ceiling are the adaptive timer's early retransmissions and do
/// not use up the link's retries; once the doubled timer reaches the ceiling, the timeouts are
/// counted and follow [`backoff`] from the ceiling, as a fixed timer's do. A transfer is
/// therefore never abandoned sooner than with the fixed timer: a peer whose own timer is slow
/// (tftp-hpa's is 5 s) or that pauses is still waited for.
#[derive(Debug, Clone)]
pub struct Rto {
    srtt: Option<Duration>,
    rttvar: Duration,
    ceiling: Duration,
    /// Doublings since the last sample.
    shift: u32,
}

impl Rto {
    /// A timer bounded by `ceiling` (the link's timeout), at the ceiling until a sample.
    pub fn new(ceiling: Duration) -> Self {
        Rto { srtt: None, rttvar: Duration::ZERO, ceiling, shift: 0 }
    }

    /// Takes a round trip measured on a packet sent once, and ends any backing off.
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            // RFC 6298 section 2.2.
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            // Section 2.3: RTTVAR with the old SRTT first, alpha 1/8, beta 1/4.
            Some(srtt) => {
                let deviation = if srtt > rtt { srtt - rtt } else { rtt - srtt };
                self.rttvar = (self.rttvar * 3 + deviation) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        self.shift = 0;
    }

    /// The smoothed round trip, once one was measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The timeout the samples give, within the bounds, before any backing off.
    pub fn estimate(&self) -> Duration {
        let Some(srtt) = self.srtt else { return self.ceiling };
        let rto = srtt.saturating_add(GRANULARITY.max(self.rttvar.saturating_mul(4)));
        rto.clamp(MIN_RTO.min(self.ceiling), self.ceiling)
    }

    /// How long to wait now, `retries` being the counted timeouts in a row (the loops reset
    /// them when the peer makes progress): the backed-off estimate while below the ceiling,
    /// then the ceiling backed off as [`backoff`] does.
    pub fn wait(&self, retries: u32) -> Duration {
        if retries == 0 {
            self.backed_off()
        } else {
            backoff(self.ceiling, retries)
        }
    }

    /// The timer ran out after [`Rto::wait`]`(retries)`: doubles it, and says whether this
    /// timeout counts against the link's retries (it does once the wait was the ceiling).
    pub fn expired(&mut self, retries: u32) -> bool {
        let counts = retries > 0 || self.backed_off() >= self.ceiling;
        self.shift = (self.shift + 1).min(31);
        counts
    }

    /// The estimate doubled once per expiry since the last sample, up to the ceiling.
    fn backed_off(&self) -> Duration {
        self.estimate().saturating_mul(1 << self.shift).min(self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// The estimate after each sample (RFC 6298 sections 2.2 and 2.3), with a 1 s ceiling.
    #[test]
    fn follows_the_round_trip() {
        // (sample ms, estimate in microseconds after it)
        let check = |samples: &[(u64, u128)]| {
            let mut rto = Rto::new(1000 * MS);
            assert_eq!(rto.estimate(), 1000 * MS, "the ceiling before any sample");
            for &(rtt, expected) in samples {
                rto.sample(Duration::from_millis(rtt));
                assert_eq!(rto.estimate().as_micros(), expected, "after {rtt} ms in {samples:?}");
            }
        };
        // First: SRTT 100, RTTVAR 50, RTO 100 + 4 * 50.
        // Second: RTTVAR (3 * 50 + 0) / 4 = 37.5, SRTT 100, RTO 100 + 150.
        check(&[(100, 300_000), (100, 250_000)]);
        // A jump: RTTVAR (3 * 50 + 300) / 4 = 112.5, SRTT (7 * 100 + 400) / 8 = 137.5.
        check(&[(100, 300_000), (400, 587_500)]);
        // The ceiling caps what a long round trip gives; loopback's is far below the floor.
        check(&[(400, 1_000_000)]);
        check(&[(0, 50_000), (1, 50_000)]);
    }

    #[test]
    fn never_leaves_its_bounds() {
        // A ceiling below the floor wins: a configured 20 ms timeout stays 20 ms.
        let mut rto = Rto::new(20 * MS);
        rto.sample(Duration::ZERO);
        assert_eq!(rto.estimate(), 20 * MS);
        let mut rto = Rto::new(Duration::from_secs(365 * 24 * 3600));
        rto.sample(Duration::from_secs(100_000));
        assert_eq!(rto.estimate(), Duration::from_secs(300_000));
        for _ in 0..40 {
            rto.expired(0);
        }
        assert_eq!(rto.wait(0), Duration::from_secs(365 * 24 * 3600));
    }

    /// Early expiries double the timer and are free; from the ceiling on they count and back
    /// off as the fixed timer does; a sample ends the backing off, progress alone does not.
    #[test]
    fn backs_off_and_counts_only_full_timeouts() {
        let mut rto = Rto::new(1000 * MS);
        rto.sample(Duration::ZERO);
        let mut retries = 0;
        let mut waits = Vec::new();
        for _ in 0..9 {
            waits.push(rto.wait(retries).as_millis());
            if rto.expired(retries) {
                retries += 1;
            }
        }
        assert_eq!(waits, [50, 100, 200, 400, 800, 1000, 2000, 4000, 8000]);
        assert_eq!(retries, 4);
        // Progress (the loop resets its retries) without a sample keeps the backed-off timer
        // (Karn: only a packet sent once measures the path).
        assert_eq!(rto.wait(0), 1000 * MS);
        rto.sample(Duration::ZERO);
        assert_eq!(rto.wait(0), 50 * MS);
    }

    /// Without samples the timer is the fixed one of old: every timeout counts, and the waits
    /// are [`backoff`]'s.
    #[test]
    fn without_samples_is_the_fixed_timer() {
        let mut rto = Rto::new(1000 * MS);
        for retries in 0..6 {
            assert_eq!(rto.wait(retries), backoff(1000 * MS, retries));
            assert!(rto.expired(retries));
        }
    }
}
