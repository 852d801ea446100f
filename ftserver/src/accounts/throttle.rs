//! Slowing down password guessing: the growing delay and the disconnect within one session
//! ([`SessionFailures`]), and the lockout of an address across sessions ([`AddressTracker`]).

pub use crate::auth::AfterFailure;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How hard guessing is made. The defaults follow vsftpd and pyftpdlib for one session
/// (a delay after each failure, disconnect after 3) and fail2ban's usual setting across
/// sessions (10 failures within 10 minutes lock the address out for 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPolicy {
    /// The delay after a session's first failed login; it doubles with each further one.
    pub failure_delay: Duration,
    /// The longest delay after one failure, however many came before.
    pub max_failure_delay: Duration,
    /// Failed logins in one session before it is disconnected.
    pub session_failures: u32,
    /// Failed logins from one address (an IPv6 address counts as its /64) before it is locked out.
    pub lockout_failures: u32,
    /// Failures older than this no longer count towards a lockout.
    pub lockout_window: Duration,
    /// How long a locked-out address is refused without its passwords being checked.
    pub lockout_duration: Duration,
    /// The most addresses remembered; past it the one that failed longest ago is forgotten, so
    /// a flood of addresses costs bounded memory.
    pub max_addresses: usize,
}

impl LoginPolicy {
    /// What follows a session's `count`-th failed login (1 for the first).
    pub fn after_failures(&self, count: u32) -> AfterFailure {
        let doublings = count.saturating_sub(1).min(16);
        let delay = self.failure_delay.saturating_mul(1 << doublings).min(self.max_failure_delay);
        AfterFailure { delay, disconnect: count >= self.session_failures }
    }
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            failure_delay: Duration::from_secs(1),
            max_failure_delay: Duration::from_secs(8),
            session_failures: 3,
            lockout_failures: 10,
            lockout_window: Duration::from_secs(10 * 60),
            lockout_duration: Duration::from_secs(15 * 60),
            max_addresses: 10_000,
        }
    }
}

/// The failed logins of one control connection. Each session owns one.
#[derive(Debug, Clone, Default)]
pub struct SessionFailures {
    count: u32,
}

impl SessionFailures {
    /// A session with no failures yet.
    pub fn new() -> Self {
        SessionFailures::default()
    }

    /// Records one failure: the delay is `failure_delay` doubled for each earlier failure (up
    /// to `max_failure_delay`); the `session_failures`-th failure also disconnects.
    pub fn record(&mut self, policy: &LoginPolicy) -> AfterFailure {
        self.count = self.count.saturating_add(1);
        policy.after_failures(self.count)
    }

    /// Failures so far.
    pub fn count(&self) -> u32 {
        self.count
    }
}

/// Failed logins by address across all sessions, shared by every session of a server.
#[derive(Debug)]
pub struct AddressTracker {
    policy: LoginPolicy,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures counted since `since`.
    failures: u32,
    since: Instant,
    last: Instant,
    locked_until: Option<Instant>,
}

impl AddressTracker {
    /// A tracker with no failures yet.
    pub fn new(policy: LoginPolicy) -> Self {
        AddressTracker { policy, entries: Mutex::new(HashMap::new()) }
    }

    /// The policy it applies.
    pub fn policy(&self) -> &LoginPolicy {
        &self.policy
    }

    /// If `peer` is locked out at `now`, how much longer.
    pub fn locked_out(&self, peer: IpAddr, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let until = entries.get(&key(peer))?.locked_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Records a failed login from `peer` at `now`; returns true when this failure locks the
    /// address out. A successful login does not clear the count: otherwise one known account
    /// would let an attacker reset the lockout between guesses at another.
    pub fn record_failure(&self, peer: IpAddr, now: Instant) -> bool {
        let policy = &self.policy;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let peer = key(peer);
        if !entries.contains_key(&peer) && entries.len() >= policy.max_addresses {
            entries.retain(|_, e| !expired(e, now, policy));
            if entries.len() >= policy.max_addresses {
                if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.last).map(|(ip, _)| *ip) {
                    entries.remove(&oldest);
                }
            }
        }
        let entry = entries.entry(peer).or_insert(Entry { failures: 0, since: now, last: now, locked_until: None });
        if now.saturating_duration_since(entry.since) > policy.lockout_window
            || entry.locked_until.is_some_and(|until| until <= now)
        {
            *entry = Entry { failures: 0, since: now, last: now, locked_until: None };
        }
        entry.failures += 1;
        entry.last = now;
        if entry.failures >= policy.lockout_failures && entry.locked_until.is_none() {
            entry.locked_until = Some(now + policy.lockout_duration);
            return true;
        }
        false
    }

    /// Addresses remembered now (for tests and statistics).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Are no addresses remembered?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Is this entry of no further use: its window has passed and it is not locked out?
fn expired(entry: &Entry, now: Instant, policy: &LoginPolicy) -> bool {
    let window_over = now.saturating_duration_since(entry.since) > policy.lockout_window;
    let lock_over = !matches!(entry.locked_until, Some(until) if until > now);
    window_over && lock_over
}

/// The key an address is counted under: an IPv4-mapped IPv6 address as its IPv4 address, any
/// other IPv6 address as its /64 (one subscriber usually holds a whole /64).
fn key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn session_delay_grows_and_the_third_failure_disconnects() {
        let policy = LoginPolicy::default();
        let mut session = SessionFailures::new();
        let seen: Vec<_> = (0..4).map(|_| session.record(&policy)).collect();
        let secs = |s| Duration::from_secs(s);
        assert_eq!(
            seen,
            [
                AfterFailure { delay: secs(1), disconnect: false },
                AfterFailure { delay: secs(2), disconnect: false },
                AfterFailure { delay: secs(4), disconnect: true },
                AfterFailure { delay: secs(8), disconnect: true },
            ]
        );
        let mut long = SessionFailures::new();
        let last = (0..40).map(|_| long.record(&policy)).last().unwrap();
        assert_eq!(last.delay, policy.max_failure_delay);
    }

    #[test]
    fn lockout_after_n_failures_for_m_minutes() {
        let policy = LoginPolicy { lockout_failures: 3, ..LoginPolicy::default() };
        let tracker = AddressTracker::new(policy.clone());
        let t0 = Instant::now();
        let peer = ip("192.0.2.7");
        assert!(!tracker.record_failure(peer, t0));
        assert!(!tracker.record_failure(peer, t0 + Duration::from_secs(1)));
        assert_eq!(tracker.locked_out(peer, t0 + Duration::from_secs(1)), None);
        assert!(tracker.record_failure(peer, t0 + Duration::from_secs(2)));
        let left = tracker.locked_out(peer, t0 + Duration::from_secs(2)).unwrap();
        assert_eq!(left, policy.lockout_duration);
        assert_eq!(tracker.locked_out(ip("192.0.2.8"), t0), None, "other addresses are unaffected");
        let after = t0 + Duration::from_secs(2) + policy.lockout_duration;
        assert_eq!(tracker.locked_out(peer, after), None, "the lockout ends");
        assert!(!tracker.record_failure(peer, after), "and the count starts again");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let policy = LoginPolicy { lockout_failures: 2, ..LoginPolicy::default() };
        let tracker = AddressTracker::new(policy.clone());
        let t0 = Instant::now();
        let peer = ip("192.0.2.7");
        assert!(!tracker.record_failure(peer, t0));
        assert!(!tracker.record_failure(peer, t0 + policy.lockout_window + Duration::from_secs(1)));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_addresses_as_ipv4() {
        let policy = LoginPolicy { lockout_failures: 2, ..LoginPolicy::default() };
        let tracker = AddressTracker::new(policy);
        let t0 = Instant::now();
        tracker.record_failure(ip("2001:db8:1:2::1"), t0);
        assert!(tracker.record_failure(ip("2001:db8:1:2:ffff::9"), t0));
        assert!(tracker.locked_out(ip("2001:db8:1:2::77"), t0).is_some());
        assert!(tracker.locked_out(ip("2001:db8:1:3::1"), t0).is_none());
        tracker.record_failure(ip("::ffff:192.0.2.1"), t0);
        assert!(tracker.record_failure(ip("192.0.2.1"), t0));
    }

    #[test]
    fn memory_is_bounded() {
        let policy = LoginPolicy { max_addresses: 4, ..LoginPolicy::default() };
        let tracker = AddressTracker::new(policy);
        let t0 = Instant::now();
        for i in 0..20u8 {
            tracker.record_failure(IpAddr::from([192, 0, 2, i]), t0 + Duration::from_secs(u64::from(i)));
        }
        assert_eq!(tracker.len(), 4);
    }
}
