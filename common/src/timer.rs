//! Socket timeouts for deadlines: which timeout to give a socket before a blocking call, so it
//! is set only when it no longer fits. Pure arithmetic on `Duration`s; the callers own the
//! sockets.

use core::time::Duration;

/// The timeout a socket is given (`SO_RCVTIMEO`, `SO_SNDTIMEO`) before each blocking call that
/// must end by a deadline, kept while it still fits so that it is not set again before every
/// call (in lock-step TFTP that is one system call in three). A call may wake before the
/// deadline (the caller looks at the clock and waits again), never after it.
#[derive(Debug, Default, Clone, Copy)]
pub struct SocketTimeout {
    current: Option<Duration>,
}

/// Waits shorter than this get the exact timeout instead of half of it.
const EXACT_BELOW: Duration = Duration::from_millis(10);

impl SocketTimeout {
    /// No timeout set yet.
    pub const fn new() -> Self {
        SocketTimeout { current: None }
    }

    /// For a wait of at most `left` (not zero): the timeout to set now, or `None` when the one
    /// set last still fits, that is when it ends between half way and the end of `left`. A new
    /// timeout is half of `left` (exact below 10 ms), so the next wait, which in a steady
    /// transfer is as long as this one or a little shorter, keeps it.
    pub fn update(&mut self, left: Duration) -> Option<Duration> {
        if self.current.is_some_and(|c| c <= left && left <= c * 2) {
            return None;
        }
        let set = (left / 2).max(left.min(EXACT_BELOW));
        self.current = Some(set);
        Some(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_timeout_is_set_only_when_it_no_longer_fits() {
        let ms = Duration::from_millis;
        let mut t = SocketTimeout::new();
        // A steady transfer: each wait as long as the last, or a little shorter.
        assert_eq!(t.update(ms(500)), Some(ms(250)));
        assert_eq!(t.update(ms(500)), None);
        assert_eq!(t.update(ms(499)), None);
        assert_eq!(t.update(ms(300)), None);
        // Past the deadline's half: closer.
        assert_eq!(t.update(ms(240)), Some(ms(120)));
        // A longer wait (backed off) is not cut to a fraction of itself.
        assert_eq!(t.update(ms(2000)), Some(ms(1000)));
        // Short waits are exact, so the deadline is reached, not approached for ever.
        assert_eq!(t.update(ms(15)), Some(ms(10)));
        assert_eq!(t.update(ms(5)), Some(ms(5)));
        assert_eq!(t.update(ms(5)), None);
        assert_eq!(t.update(Duration::from_micros(3)), Some(Duration::from_micros(3)));
    }
}
