//! The `ftserver` binary: parse arguments, set up logging, bind, serve until Ctrl-C/SIGTERM.

use anyhow::{anyhow, Context as _};
use clap::Parser;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A standard FTP server, safe by default: anonymous, read-only, confined to its root.
///
/// Any USER/PASS logs in. Uploads need --writable; replacing or deleting needs --overwrite too. Paths never leave --root (symlinks pointing outside are refused),
/// data connections only go to or come from the client's own address, and every connection is
/// limited in number and time.
///
/// When ready it prints one line to stdout, `ftserver: serving <root> on <addr>:<port>`, so a
/// script can learn the port it got with PORT 0. Logs go to stderr.
///
/// Examples:
///
///   ftserver --root /srv/pub 2121
///
///   ftserver --root . --bind :: --pasv-ports 40000-40100 0
///
///   ftserver --root /srv/incoming --writable 2121
///
///   RUST_LOG=debug ftserver --root /tmp 2121
#[derive(Debug, Parser)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// The TCP port to listen on; 0 picks a free one (printed on stdout).
    #[arg(value_name = "PORT")]
    port: u16,

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

    /// Disconnect a client that sends nothing for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,

    /// How long to wait for a data connection to open, or to accept more bytes, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
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

    /// With --writable: the largest file an upload may produce, in bytes (beyond it: 552).
    #[arg(long, value_name = "BYTES", requires = "writable")]
    max_upload_size: Option<u64>,

    /// Log more: -v adds each command, -vv everything. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Log only warnings and errors.
    #[arg(short, long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
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

    let addr = SocketAddr::new(args.bind, args.port);
    let listener = TcpListener::bind(addr).map_err(|e| anyhow!("cannot listen on {addr}: {}", lower(&e)))?;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("cannot install the Ctrl-C/SIGTERM handler")?;
    let server = ftserver::Server::spawn(listener, config).map_err(|e| anyhow!("cannot start: {}", lower(&e)))?;

    let mut stdout = io::stdout().lock();
    writeln!(stdout, "ftserver: serving {} on {}", server.root().display(), server.local_addr())
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")?;
    drop(stdout);

    // Wait for Ctrl-C or SIGTERM. If the sender is gone the handler can never fire, so stop.
    let _ = stop_rx.recv();
    log::info!("stopping");
    server.shutdown();
    Ok(())
}
