//! Server configuration: the served root and every limit and timeout a session obeys.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The default for `--max-clients`: simultaneous control connections (vsftpd's). Idle
/// sessions are cheap (a thread that sleeps in a read: about 50 KiB each), and unauthenticated
/// ones last at most `--login-timeout`, so a flood of silent connections is outlasted.
pub const DEFAULT_MAX_CLIENTS: usize = 2000;
/// The default for `--max-per-ip`: simultaneous control connections from one address.
pub const DEFAULT_MAX_PER_IP: usize = 50;
/// The default for `--idle-timeout` (vsftpd and RFC-era servers use 300 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The default for `--login-timeout`: how long a connection may stay without logging in,
/// whatever it sends meanwhile (vsftpd and pyftpdlib close idle ones; NOOP keeps an idle one
/// open, but not this).
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The default for `--data-timeout`: how long to wait for a data connection to be made, and
/// for a stalled data connection to accept more bytes.
pub const DEFAULT_DATA_TIMEOUT: Duration = Duration::from_secs(30);
/// The default for `--max-hash-jobs`: files being hashed (HASH, XSHA256...) at once.
pub const DEFAULT_MAX_HASH_JOBS: usize = 4;

/// The default for [`Config::upload_settle`]: none. An upload that brought exactly the bytes
/// the client announced is complete whatever becomes of the client, so it is published at once
/// (after a look at what the control connection holds right now: an ABOR). This is what lets
/// trees of small files from ftclient go at full speed.
pub const DEFAULT_UPLOAD_SETTLE: Duration = Duration::ZERO;

/// The default for [`Config::unannounced_settle`]: long enough for a lost FIN to be sent
/// again (Linux's smallest retransmission timeout is 200 ms) several times over.
pub const DEFAULT_UNANNOUNCED_SETTLE: Duration = Duration::from_secs(1);

/// Everything a running server needs to know. Build it with [`Config::new`] and adjust the
/// public fields.
#[derive(Debug, Clone)]
pub struct Config {
    /// The served directory, canonical (absolute, no symlinks). Clients never see above it.
    pub root: PathBuf,
    /// The most simultaneous control connections; more get `421` and are closed.
    pub max_clients: usize,
    /// The most simultaneous control connections from one IP address; more get `421`.
    pub max_per_ip: usize,
    /// A client that has not completed its next command line this long after the server began
    /// waiting for it gets `421` and is closed (however many bytes of the line it sent).
    pub idle_timeout: Duration,
    /// A connection that has not logged in this long after it was accepted gets `421` and is
    /// closed, however many commands it sent.
    pub login_timeout: Duration,
    /// Accept/connect timeout for data connections, and the write timeout while sending.
    pub data_timeout: Duration,
    /// Ports for passive data connections; `None` lets the kernel choose.
    pub pasv_ports: Option<RangeInclusive<u16>>,
    /// The address to advertise in `227` replies (a server behind NAT); `None` advertises the
    /// local address of the control connection.
    pub pasv_address: Option<Ipv4Addr>,
    /// The most files hashed at once for HASH and its legacy forms; more get `450`.
    pub max_hash_jobs: usize,
    /// Accept uploads (STOR, APPE, STOU, REST+STOR) and MKD. Without it every command that
    /// would change the tree is refused with `550` and nothing touches the disk.
    pub writable: bool,
    /// With [`Config::writable`]: also let uploads replace existing files, and allow DELE, RMD
    /// and RNFR/RNTO. Without it existing data is never replaced or deleted.
    pub overwrite: bool,
    /// Serve names that start with a dot; by default they are invisible and out of reach.
    pub dotfiles: bool,
    /// The largest file an upload may produce, in bytes; beyond it the upload ends with `552`
    /// and its partial file is removed. `None`: no limit but the disk.
    pub max_upload_size: Option<u64>,
    /// After an upload whose size the client announced (`ALLO`) ends cleanly with that many
    /// bytes, how long to watch the control connection before the upload counts as complete
    /// (none by default: the bytes are all there).
    pub upload_settle: Duration,
    /// The same for an upload whose size nobody announced: the data connection's end is then
    /// all there is to go on, and a killed client's control FIN may be lost and sent again a
    /// retransmission timeout later. At least this long, and at least twice the control
    /// connection's retransmission timeout (see ARCHITECTURE.md, "what stream mode cannot
    /// know").
    pub unannounced_settle: Duration,
    /// FTPS: the certificate and the sessions' TLS state (`AUTH TLS`, `PROT P`, implicit
    /// TLS). `None`: TLS is refused (`502`).
    pub tls: Option<std::sync::Arc<crate::tls::ServerTls>>,
    /// Refuse `USER` before `AUTH TLS` (`530`) and data connections without `PROT P` (`521`).
    pub require_tls: bool,
}

impl Config {
    /// A configuration serving `root` with default limits. The root is canonicalised here and
    /// must be an existing directory.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Config> {
        let root = canonical_dir(root.as_ref())?;
        Ok(Config {
            root,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_per_ip: DEFAULT_MAX_PER_IP,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            data_timeout: DEFAULT_DATA_TIMEOUT,
            pasv_ports: None,
            pasv_address: None,
            max_hash_jobs: DEFAULT_MAX_HASH_JOBS,
            writable: false,
            overwrite: false,
            dotfiles: false,
            max_upload_size: None,
            upload_settle: DEFAULT_UPLOAD_SETTLE,
            unannounced_settle: DEFAULT_UNANNOUNCED_SETTLE,
            tls: None,
            require_tls: false,
        })
    }
}

/// The longest any timeout may be: one year. Longer values are refused on the command line,
/// and deadlines computed from a longer [`Config`] value (a library user's) are clamped to it,
/// so that no `Instant + Duration` can overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The instant `after` from now, with `after` clamped to [`MAX_TIMEOUT`].
pub fn deadline_after(after: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after.min(MAX_TIMEOUT)).unwrap_or(now)
}

/// Canonicalises `dir` and checks that it is a directory.
pub(crate) fn canonical_dir(dir: &Path) -> io::Result<PathBuf> {
    let root = dir.canonicalize()?;
    if !root.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a directory"));
    }
    Ok(root)
}

/// Where to listen, as given on the command line: a port and maybe an address (`--tftp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenSpec {
    /// The address; `None` means "the same as `--bind`".
    pub ip: Option<IpAddr>,
    /// The port; 0 lets the system choose.
    pub port: u16,
}

/// Parses `PORT`, `ADDR:PORT` or `[IPv6]:PORT` (a `--tftp` value).
pub fn parse_listen_spec(text: &str) -> Result<ListenSpec, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(ListenSpec { ip: None, port });
    }
    match text.parse::<std::net::SocketAddr>() {
        Ok(addr) => Ok(ListenSpec { ip: Some(addr.ip()), port: addr.port() }),
        Err(_) => {
            Err(format!("invalid listen address {text:?}: expected PORT or ADDR:PORT, e.g. 69, 0.0.0.0:69, [::]:69"))
        }
    }
}

/// Parses a `--pasv-ports` value `LO-HI` (both inclusive, 1024 to 65535, LO <= HI).
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let bad = || format!("invalid port range {text:?}: expected LO-HI with 1024 <= LO <= HI <= 65535");
    let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo < 1024 || lo > hi {
        return Err(bad());
    }
    Ok(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_ranges() {
        assert_eq!(parse_port_range("40000-40100"), Ok(40000..=40100));
        assert_eq!(parse_port_range("5000-5000"), Ok(5000..=5000));
        for bad in ["", "1-2", "5000", "6000-5000", "5000-70000", "a-b", "1023-2000"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_listen_specs() {
        assert_eq!(parse_listen_spec("69"), Ok(ListenSpec { ip: None, port: 69 }));
        assert_eq!(parse_listen_spec("127.0.0.1:0"), Ok(ListenSpec { ip: Some([127, 0, 0, 1].into()), port: 0 }));
        assert_eq!(
            parse_listen_spec("[::1]:6969"),
            Ok(ListenSpec { ip: Some(std::net::Ipv6Addr::LOCALHOST.into()), port: 6969 })
        );
        for bad in ["", "x", "70000", "::1", "1.2.3.4", "1.2.3.4:", ":69", "[::1]"] {
            assert!(parse_listen_spec(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        let far = deadline_after(Duration::MAX);
        assert!(far >= now + MAX_TIMEOUT && far <= Instant::now() + MAX_TIMEOUT);
        assert!(deadline_after(Duration::ZERO) <= Instant::now());
    }

    #[test]
    fn refuses_a_missing_or_non_directory_root() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Config::new(dir.path().join("missing")).is_err());
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(Config::new(&file).unwrap_err().to_string(), "not a directory");
        assert_eq!(Config::new(dir.path()).unwrap().root, dir.path().canonicalize().unwrap());
    }
}
