//! The `ftserver` binary: parse arguments, set up logging, bind, serve FTP and/or TFTP until
//! Ctrl-C/SIGTERM.

use anyhow::{anyhow, Context as _};
use clap::Parser;
use ftserver::config::ListenSpec;
use ftserver::storage::{LocalStorage, Storage};
use ftserver::tftp::TftpConfig;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// A standard FTP (and TFTP) server, safe by default: anonymous, read-only, confined to its root.
///
/// Any USER/PASS logs in. Paths never leave --root (symlinks pointing outside are refused),
/// data connections only go to or come from the client's own address, and every connection is
/// limited in number and time. Uploads need --writable; replacing or deleting needs --overwrite.
///
/// When ready it prints one line per protocol to stdout, FTP first:
/// `ftserver: serving <root> on <addr>:<port>` and, with --tftp,
/// `ftserver: serving <root> over tftp on <addr>:<port>`, so a script can learn the ports it
/// got with port 0. Logs go to stderr.
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
///   RUST_LOG=debug ftserver --root /tmp 2121
/// The longest timeout any option accepts, in seconds: one year.
const MAX_SECS: u64 = ftserver::config::MAX_TIMEOUT.as_secs();

#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// The FTP (TCP) port to listen on; 0 picks a free one (printed on stdout). Leave it out to
    /// serve only TFTP.
    #[arg(value_name = "PORT", required_unless_present = "tftp")]
    port: Option<u16>,

    /// The directory to serve.
    #[arg(long, value_name = "DIR", default_value = ".")]
    root: PathBuf,

    /// The address to listen on; `::` listens on IPv6 (and IPv4 where the system allows).
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,

    /// The most simultaneous clients; more get `421` and are disconnected.
    #[arg(long, value_name = "N", default_value_t = ftserver::config::DEFAULT_MAX_CLIENTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_clients: usize,

    /// The most simultaneous clients from one IP address; more get `421`.
    #[arg(long, value_name = "N", default_value_t = ftserver::config::DEFAULT_MAX_PER_IP,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_per_ip: usize,

    /// Disconnect a client that does not complete its next command within this many seconds
    /// (1 to 31536000, a year).
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    idle_timeout: u64,

    /// How long to wait for a data connection to open, or to accept more bytes, in seconds (1 to
    /// 31536000).
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=MAX_SECS))]
    data_timeout: u64,

    /// Passive data ports, e.g. 40000-40100 (open these in the firewall).
    #[arg(long, value_name = "LO-HI", value_parser = ftserver::config::parse_port_range)]
    pasv_ports: Option<RangeInclusive<u16>>,

    /// The IPv4 address to advertise in PASV replies, when clients reach the server through NAT.
    #[arg(long, value_name = "ADDR")]
    pasv_address: Option<Ipv4Addr>,

    /// The most files hashed at once for HASH/XSHA256/...; more clients get `450`.
    #[arg(long, value_name = "N", default_value_t = ftserver::config::DEFAULT_MAX_HASH_JOBS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_hash_jobs: usize,

    /// Accept uploads (STOR, APPE, STOU, resuming with REST+STOR) and MKD. An upload is written
    /// to a hidden partial file `.NAME.ftpart` and becomes NAME only when it arrived completely;
    /// it never replaces an existing file (553) unless --overwrite is given too.
    #[arg(long)]
    writable: bool,

    /// With --writable: also let uploads replace files, and allow DELE, RMD and RNFR/RNTO.
    #[arg(long, requires = "writable")]
    overwrite: bool,

    /// With --writable: the largest file an upload may produce, in bytes (beyond it: FTP 552,
    /// TFTP error 3).
    #[arg(long, value_name = "BYTES", requires = "writable")]
    max_upload_size: Option<u64>,

    /// Also serve --root over TFTP on this UDP port ([ADDR:]PORT; without ADDR, the --bind
    /// address; 0 picks a free port). --writable and --overwrite apply to TFTP too.
    #[arg(long, value_name = "[ADDR:]PORT", value_parser = ftserver::config::parse_listen_spec)]
    tftp: Option<ListenSpec>,

    /// TFTP retransmission timeout in seconds, when the client does not negotiate one.
    #[arg(long, value_name = "SECS", requires = "tftp", default_value_t = TftpConfig::default().timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=255))]
    tftp_timeout: u64,

    /// TFTP retransmissions of one packet before a transfer is given up.
    #[arg(long, value_name = "N", requires = "tftp", default_value_t = TftpConfig::default().retries)]
    tftp_retries: u32,

    /// The most TFTP transfers at once; more requests get error 0 "server busy".
    #[arg(long, value_name = "N", requires = "tftp", default_value_t = TftpConfig::default().max_transfers,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    tftp_max_transfers: usize,

    /// Log more: -v adds each command, -vv everything. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Log only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        // --help and --version go to stdout and succeed.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("ftserver: {}", common::text::usage_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    let level = match (args.quiet, args.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ftserver: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// An OS error as a lower-case phrase: "address already in use (os error 98)".
fn lower(err: &io::Error) -> String {
    let text = err.to_string();
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config =
        ftserver::Config::new(&args.root).map_err(|e| anyhow!("root {}: {}", args.root.display(), lower(&e)))?;
    config.max_clients = args.max_clients;
    config.max_per_ip = args.max_per_ip;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.data_timeout = Duration::from_secs(args.data_timeout);
    config.pasv_ports = args.pasv_ports;
    config.pasv_address = args.pasv_address;
    config.max_hash_jobs = args.max_hash_jobs;
    config.writable = args.writable;
    config.overwrite = args.overwrite;
    config.max_upload_size = args.max_upload_size;

    let tftp_config = TftpConfig {
        root: config.root.clone(),
        writable: args.writable,
        overwrite: args.overwrite,
        timeout: Duration::from_secs(args.tftp_timeout),
        retries: args.tftp_retries,
        max_transfers: args.tftp_max_transfers,
        max_upload_size: args.max_upload_size,
        ..TftpConfig::default()
    };

    // Bind everything before serving anything: a taken port fails the whole start.
    let listener = match args.port {
        Some(port) => {
            let addr = SocketAddr::new(args.bind, port);
            Some(TcpListener::bind(addr).map_err(|e| anyhow!("cannot listen on {addr}: {}", lower(&e)))?)
        }
        None => None,
    };
    let tftp_socket = match args.tftp {
        Some(spec) => {
            let addr = SocketAddr::new(spec.ip.unwrap_or(args.bind), spec.port);
            Some(UdpSocket::bind(addr).map_err(|e| anyhow!("cannot listen for tftp on {addr}: {}", lower(&e)))?)
        }
        None => None,
    };
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("cannot install the Ctrl-C/SIGTERM handler")?;
    // One storage for both protocols: one registry of the uploads running, one view of the tree.
    let storage: Arc<dyn Storage> = Arc::new(
        LocalStorage::new(&config.root).map_err(|e| anyhow!("root {}: {}", config.root.display(), lower(&e)))?,
    );
    let root = storage.describe();
    let server = listener
        .map(|listener| ftserver::Server::spawn_with(listener, config, storage.clone(), None))
        .transpose()
        .map_err(|e| anyhow!("cannot start: {}", lower(&e)))?;
    let tftp = tftp_socket
        .map(|socket| ftserver::tftp::spawn_with(socket, tftp_config, storage.clone()))
        .transpose()
        .map_err(|e| anyhow!("cannot start tftp: {}", lower(&e)))?;

    let mut stdout = io::stdout().lock();
    let mut ready = String::new();
    if let Some(server) = &server {
        ready.push_str(&format!("ftserver: serving {root} on {}\n", server.local_addr()));
    }
    if let Some(tftp) = &tftp {
        ready.push_str(&format!("ftserver: serving {root} over tftp on {}\n", tftp.local_addr()));
    }
    stdout.write_all(ready.as_bytes()).and_then(|()| stdout.flush()).context("cannot write to stdout")?;
    drop(stdout);

    // Wait for Ctrl-C or SIGTERM. If the sender is gone the handler can never fire, so stop.
    let _ = stop_rx.recv();
    log::info!("stopping");
    if let Some(tftp) = tftp {
        tftp.shutdown();
    }
    if let Some(server) = server {
        server.shutdown();
    }
    Ok(())
}
