//! How a data connection is made: passive listeners (accepting only the control peer, closed
//! when nobody connects in time, and shared fairly when the port range is small) and active
//! connections (from the control connection's local address).

use common::hostport::canonical_ip;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the next transfer gets its data connection (set by PASV/EPSV or PORT/EPRT, used once).
#[derive(Debug)]
pub enum DataPlan {
    /// The client connects to this listener.
    Passive(PassiveListener),
    /// The server connects to this address (already checked against the control peer).
    Active(SocketAddr),
}

/// A listening socket for one passive data connection.
#[derive(Debug)]
pub struct PassiveListener {
    socket: Socket,
    port: u16,
    /// When it was opened: a listener nobody connects to is closed after the data timeout.
    opened: Instant,
    /// Its place in the client address's share of the port range.
    _share: Option<ShareClaim>,
}

/// The passive listeners each client address holds, so that with a small `--pasv-ports` range
/// one address (ten idle sessions, say) cannot take every port and lock everyone else out.
#[derive(Debug)]
pub struct PassiveShares {
    /// The most listeners one address may hold at once; `None`: no limit (the kernel's
    /// ephemeral range is large, and each session holds one listener at most anyway).
    limit: Option<usize>,
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl PassiveShares {
    /// Shares of `ports` (the configured range, if any): a quarter of a range each, at least 2.
    pub fn new(ports: Option<&RangeInclusive<u16>>) -> Arc<PassiveShares> {
        let limit = ports.map(|r| (usize::from(*r.end() - *r.start()) + 1).div_ceil(4).max(2));
        Arc::new(PassiveShares { limit, held: Mutex::new(HashMap::new()) })
    }

    /// Takes one more listener for `ip`, or `None` when its share is used up.
    pub fn claim(self: &Arc<Self>, ip: IpAddr) -> Option<ShareClaim> {
        let ip = canonical_ip(ip);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let count = held.entry(ip).or_insert(0);
        if self.limit.is_some_and(|limit| *count >= limit) {
            return None;
        }
        *count += 1;
        Some(ShareClaim { shares: Arc::clone(self), ip })
    }
}

/// One listener counted against an address's share; dropping it gives the place back.
#[derive(Debug)]
pub struct ShareClaim {
    shares: Arc<PassiveShares>,
    ip: IpAddr,
}

impl Drop for ShareClaim {
    fn drop(&mut self) {
        let mut held = self.shares.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// Connections from strangers can queue up; a few suffice for the one real client.
const PASSIVE_BACKLOG: i32 = 8;

/// Random ports tried in the ephemeral range before the kernel is asked to choose one.
const RANDOM_TRIES: u32 = 32;

/// An unbound TCP socket for a passive listener on `ip`'s family.
fn passive_socket(ip: IpAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(SocketAddr::new(ip, 0)), Type::STREAM, Some(Protocol::TCP))?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Every finished data connection leaves its port in TIME_WAIT for a minute; without
    // SO_REUSEADDR those ports cannot be listened on again, and a busy server (tens of
    // thousands of small transfers a minute) runs out of passive ports and answers 425.
    // Only this listener's own port is reused; connections are still unique 4-tuples.
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`, which applies to IPv6
/// too): ports no service expects to own, so a passive listener there never keeps a daemon
/// from starting.
fn ephemeral_ports() -> RangeInclusive<u16> {
    static RANGE: std::sync::OnceLock<RangeInclusive<u16>> = std::sync::OnceLock::new();
    RANGE
        .get_or_init(|| {
            let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
            let mut ports = text.split_whitespace().filter_map(|p| p.parse::<u16>().ok());
            match (ports.next(), ports.next()) {
                (Some(lo), Some(hi)) if 1024 <= lo && lo <= hi => lo..=hi,
                _ => 32768..=60999,
            }
        })
        .clone()
}

/// How often a waiting accept looks at the server's stop flag.
const STOP_POLL: Duration = Duration::from_millis(500);

impl PassiveListener {
    /// Listens on `ip`, on a free port from `ports` (tried from a random starting point, so
    /// ports are not predictable) or, without a configured range, from the kernel's ephemeral
    /// port range.
    ///
    /// Why not let the kernel choose (bind to port 0): every finished data connection leaves its
    /// port in TIME_WAIT for a minute, and the kernel's search for a free port walks past all of
    /// them under a lock. Measured on Linux 6.18 with 1000-file tree downloads: 9000 files/s
    /// with few TIME_WAIT sockets fell to 1000 files/s with 15,000, nearly all of the time spent
    /// in `inet_csk_get_port`. Binding a chosen port is one hash lookup, and with SO_REUSEADDR
    /// a port whose only users are in TIME_WAIT is free to listen on (vsftpd picks its passive
    /// ports the same way).
    pub fn bind(
        ip: IpAddr,
        ports: Option<&RangeInclusive<u16>>,
        share: Option<ShareClaim>,
    ) -> io::Result<PassiveListener> {
        let (range, tries) = match ports {
            Some(range) => (range.clone(), u32::MAX),
            None => (ephemeral_ports(), RANDOM_TRIES),
        };
        let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
        let count = hi - lo + 1;
        let start = (RandomState::new().build_hasher().finish() % u64::from(count)) as u32;
        let socket = passive_socket(ip)?;
        for i in 0..count.min(tries) {
            let port = (lo + (start + i) % count) as u16;
            match socket.bind(&SockAddr::from(SocketAddr::new(ip, port))) {
                Ok(()) => return Self::listen(socket, share),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        if ports.is_some() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("no free passive port in {lo}-{hi}")));
        }
        // Unlucky every time (a nearly exhausted range): let the kernel search.
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
        Self::listen(socket, share)
    }

    fn listen(socket: Socket, share: Option<ShareClaim>) -> io::Result<PassiveListener> {
        socket.listen(PASSIVE_BACKLOG)?;
        let port = socket.local_addr()?.as_socket().map_or(0, |a| a.port());
        Ok(PassiveListener { socket, port, opened: Instant::now(), _share: share })
    }

    /// When a listener nobody has used is closed: `timeout` (the data timeout) after it opened.
    pub fn expires(&self, timeout: Duration) -> Instant {
        self.opened.checked_add(timeout).unwrap_or_else(|| crate::config::deadline_after(timeout))
    }

    /// The port clients must connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits up to `timeout` for a connection from `peer` (the control connection's client).
    /// Connections from any other address are closed at once without data, and waiting goes
    /// on (RFC 2577 section 5, "port stealing"). Gives up early when `stop` is set.
    pub fn accept_from(&self, peer: IpAddr, timeout: Duration, stop: &AtomicBool) -> io::Result<TcpStream> {
        let peer = canonical_ip(peer);
        let deadline = crate::config::deadline_after(timeout);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "server shutting down"));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no data connection from the client"));
            }
            // On Linux, accept() honours SO_RCVTIMEO, which gives a blocking accept a timeout.
            self.socket.set_read_timeout(Some(remaining.min(STOP_POLL)))?;
            match self.socket.accept() {
                Ok((socket, addr)) => {
                    let from = addr.as_socket();
                    if from.map(|a| canonical_ip(a.ip())) == Some(peer) {
                        return Ok(socket.into());
                    }
                    log::warn!(
                        "dropped a passive data connection from {}: only the control peer {peer} may connect",
                        from.map_or_else(|| "an unknown address".to_owned(), |a| a.to_string())
                    );
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Connects to a client's data port (`PORT`/`EPRT`) within `timeout`, from `local`: the
/// control connection's local address (canonical). The client, its firewall and connection
/// tracking (nf_conntrack_ftp) expect the data connection from the address they logged in to,
/// which on a host with several addresses is not always the one the kernel's route picks.
pub fn connect(local: IpAddr, target: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    // `EPRT |2|::ffff:a.b.c.d|...` from an IPv4 client names an IPv4 peer.
    let target = SocketAddr::new(canonical_ip(target.ip()), target.port());
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))?;
    if local.is_ipv4() == target.is_ipv4() {
        // The port is still chosen at connect time, per destination, as for an unbound socket
        // (binding port 0 would reserve a port for every destination at once).
        if let Err(e) = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true) {
            log::debug!("IP_BIND_ADDRESS_NO_PORT refused: {e}");
        }
        socket.bind(&SocketAddr::new(local, 0).into())?;
    }
    socket.connect_timeout(&target.into(), timeout)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};

    #[test]
    fn an_address_holds_at_most_its_share_of_a_small_range() {
        let shares = PassiveShares::new(Some(&(40000..=40009)));
        let (a, b) = (IpAddr::from([127, 0, 0, 2]), IpAddr::from([127, 0, 0, 3]));
        let held: Vec<_> = (0..3).map_while(|_| shares.claim(a)).collect();
        assert_eq!(held.len(), 3, "a quarter of 10 ports, rounded up");
        assert!(shares.claim(a).is_none());
        assert!(shares.claim(b).is_some(), "another address still gets a port");
        drop(held);
        assert!(shares.claim(a).is_some());
        let unlimited = PassiveShares::new(None);
        assert_eq!((0..100).filter_map(|_| unlimited.claim(a)).count(), 100);
    }

    #[test]
    fn passive_ports_come_from_the_range() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Find a free port, then ask for exactly that one.
        let probe = TcpListener::bind((ip, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let l = PassiveListener::bind(ip, Some(&(port..=port)), None).unwrap();
        assert_eq!(l.port(), port);
        // The only port is taken now.
        let err = PassiveListener::bind(ip, Some(&(port..=port)), None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn accepts_the_peer_and_times_out_without_it() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let l = PassiveListener::bind(ip, None, None).unwrap();
        assert!(ephemeral_ports().contains(&l.port()), "{} outside {:?}", l.port(), ephemeral_ports());
        let stop = AtomicBool::new(false);
        let _client = TcpStream::connect((ip, l.port())).unwrap();
        assert!(l.accept_from(ip, Duration::from_secs(5), &stop).is_ok());
        let err = l.accept_from(ip, Duration::from_millis(50), &stop).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
