//! The `ftserver` command line: the clap struct whose doc comments are the `--help` text. In
//! the library, so `xtask` generates the man page and shell completions from it.

use crate::config::ListenSpec;
use crate::tftp::TftpConfig;
use clap::Parser;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// The longest timeout any option accepts, in seconds: one year.
const MAX_SECS: u64 = crate::config::MAX_TIMEOUT.as_secs();

/// A standard FTP (and TFTP) server, safe by default: anonymous, read-only, confined to its root.
///
/// Any USER/PASS logs in, unless --users names the accounts. Paths never leave --root (symlinks pointing outside are refused),
/// data connections only go to or come from the client's own address, and every connection is
/// limited in number and time. Uploads need --writable; replacing or deleting needs --overwrite.
///
/// When ready it prints one line per protocol to stdout, FTP first:
/// `ftserver: serving <root> on <addr>:<port> (<what is exposed>)` and, with --tftp,
/// `ftserver: serving <root> over tftp on <addr>:<port> (...)`, so a script can learn the
/// ports it got with port 0. Logs go to stderr. Names starting with a dot are hidden unless
/// --dotfiles.
///
/// Examples:
///
///   ftserver --root /srv/pub 2121
///
///   ftserver --root . --bind :: --pasv-ports 40000-40100 0
///
///   ftserver --root /srv/incoming --writable 2121
///
///   ftserver --root /srv/tftpboot --tftp 69 2121     (FTP on 2121 and TFTP on 69)
///
///   ftserver --root /srv/tftpboot --tftp 69          (TFTP only)
///
///   ftserver --root /srv --users users.toml --tls-self-signed --require-tls 2121
///
///   RUST_LOG=debug ftserver --root /tmp 2121
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
pub struct Args {
    /// The FTP (TCP) port to listen on; 0 picks a free one (printed on stdout). Leave it out to
    /// serve only TFTP.
    #[arg(value_name = "PORT", required_unless_present_any = ["tftp", "hash_password"])]
    pub port: Option<u16>,

    /// The directory to serve.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,

    /// Serve a tree kept in a PostgreSQL database instead of a directory:
    /// `postgres://USER[:PASS]@HOST[:PORT]/DB`, `postgresql://...`, or libpq's
    /// `host=/run/postgresql dbname=ft`. Several ftserver instances can share one database.
    /// The schema `ft` is created on first start.
    #[arg(long, value_name = "URL", conflicts_with = "root")]
    pub storage: Option<String>,

    /// With --storage: the most database connections this instance opens (every upload in
    /// progress holds one).
    #[arg(long, value_name = "N", requires = "storage", default_value_t = 16,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub storage_pool: usize,

    /// The address to listen on; `::` listens on IPv6 (and IPv4 where the system allows).
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind: IpAddr,

    /// The most simultaneous clients; more get `421` and are disconnected.
    #[arg(long, value_name = "N", default_value_t = crate::config::DEFAULT_MAX_CLIENTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_clients: usize,

    /// The most simultaneous clients from one IP address; more get `421`.
    #[arg(long, value_name = "N", default_value_t = crate::config::DEFAULT_MAX_PER_IP,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_per_ip: usize,

    /// Disconnect a client that does not complete its next command within this many seconds
    /// (1 to 31536000, a year).
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub idle_timeout: u64,

    /// Disconnect a client that has not logged in this many seconds after connecting, whatever
    /// it sends meanwhile (NOOP does not extend it), so silent connections cannot hold the
    /// connection limits (1 to 31536000).
    #[arg(long, value_name = "SECS", default_value_t = crate::config::DEFAULT_LOGIN_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub login_timeout: u64,

    /// How long to wait for a data connection to open, or to accept more bytes, in seconds (1 to
    /// 31536000).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    pub data_timeout: u64,

    /// Passive data ports, e.g. 40000-40100 (open these in the firewall).
    #[arg(long, value_name = "LO-HI", value_parser = crate::config::parse_port_range)]
    pub pasv_ports: Option<RangeInclusive<u16>>,

    /// The IPv4 address to advertise in PASV replies, when clients reach the server through NAT.
    #[arg(long, value_name = "ADDR")]
    pub pasv_address: Option<Ipv4Addr>,

    /// The most files hashed at once for HASH/XSHA256/...; more clients get `450`.
    #[arg(long, value_name = "N", default_value_t = crate::config::DEFAULT_MAX_HASH_JOBS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_hash_jobs: usize,

    /// Accept uploads (STOR, APPE, STOU, resuming with REST+STOR) and MKD. An upload is written
    /// to a hidden partial file `.NAME.ftpart` and becomes NAME only when it arrived completely;
    /// it never replaces an existing file (553) unless --overwrite is given too.
    #[arg(long)]
    pub writable: bool,

    /// With --writable: also let uploads replace files, and allow DELE, RMD and RNFR/RNTO.
    #[arg(long, requires = "writable")]
    pub overwrite: bool,

    /// Also serve names that start with a dot (`.ssh`, `.env`, `.git`): without it they are not
    /// listed, read, written or entered, as vsftpd does, so sharing a home directory does not
    /// share its keys.
    #[arg(long)]
    pub dotfiles: bool,

    /// With --writable: how long, at least, to watch a client's control connection after an
    /// upload whose size it did not announce (ALLO) before publishing it, in milliseconds: a
    /// killed client's data connection ends like a finished one, and only its control
    /// connection closing tells them apart. Longer over slow links (twice the retransmission
    /// timeout). ftclient, and lftp with `set ftp:use-allo yes`, announce sizes and never wait.
    #[arg(long, value_name = "MS", requires = "writable",
          default_value_t = crate::config::DEFAULT_UNANNOUNCED_SETTLE.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub upload_settle: u64,

    /// With --writable: interrupted uploads untouched for this many hours are removed (checked
    /// at startup and every hour), so partial files no listing shows cannot fill the disk.
    #[arg(long, value_name = "HOURS", requires = "writable", default_value_t = 24,
          value_parser = clap::value_parser!(u64).range(1..=87600))]
    pub partial_max_age: u64,

    /// With --writable: the largest file an upload may produce, in bytes (beyond it: FTP 552,
    /// TFTP error 3).
    #[arg(long, value_name = "BYTES", requires = "writable")]
    pub max_upload_size: Option<u64>,

    /// Also serve --root over TFTP on this UDP port ([ADDR:]PORT; without ADDR, the --bind
    /// address; 0 picks a free port). --writable and --overwrite apply to TFTP too.
    #[arg(long, value_name = "[ADDR:]PORT", value_parser = crate::config::parse_listen_spec)]
    pub tftp: Option<ListenSpec>,

    /// The longest TFTP retransmission timeout in seconds, when the client does not negotiate
    /// one; below it the timer follows the measured round trip.
    #[arg(long, value_name = "SECS", requires = "tftp", default_value_t = TftpConfig::default().timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=255))]
    pub tftp_timeout: u64,

    /// TFTP full timeouts in a row before a transfer is given up.
    #[arg(long, value_name = "N", requires = "tftp", default_value_t = TftpConfig::default().retries)]
    pub tftp_retries: u32,

    /// The most TFTP transfers at once; more requests get error 0 "server busy".
    #[arg(long, value_name = "N", requires = "tftp", default_value_t = TftpConfig::default().max_transfers,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub tftp_max_transfers: usize,

    /// Named accounts from this TOML file (`[[user]]` tables: name, password as an argon2id or
    /// bcrypt hash, root inside --root, access read | write | full); anonymous logins are then
    /// refused unless --anonymous. SIGHUP re-reads it (a bad file keeps the old accounts).
    #[arg(long, value_name = "FILE")]
    pub users: Option<PathBuf>,

    /// With --users: also let `anonymous` and `ftp` in, read-only, to the whole of --root.
    #[arg(long, requires = "users")]
    pub anonymous: bool,

    /// Print an argon2id hash (a PHC string for the users file) of a password read from
    /// standard input, or asked for twice on a terminal, and exit.
    #[arg(long, exclusive = true)]
    pub hash_password: bool,

    /// FTPS: the certificate chain (PEM, leaf first) for AUTH TLS and --implicit-tls. SIGHUP
    /// re-reads it.
    #[arg(long, value_name = "PEM", requires = "tls_key", group = "tls")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// FTPS with a throwaway self-signed certificate made at startup; its SHA-256 fingerprint
    /// is printed (for `ftclient --pin`). Encryption without a certificate authority.
    #[arg(long, group = "tls")]
    pub tls_self_signed: bool,

    /// Refuse USER before AUTH TLS (530) and data connections without PROT P (521).
    #[arg(long, requires = "tls")]
    pub require_tls: bool,

    /// Also listen on this TCP port for implicit FTPS (TLS from the first byte, `ftps://`,
    /// port 990 style); 0 picks a free one.
    #[arg(long, value_name = "PORT", requires = "tls")]
    pub implicit_tls: Option<u16>,

    /// Log more: -v adds each command, -vv everything. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Log only warnings and errors.
    #[arg(short, long)]
    pub quiet: bool,
}
