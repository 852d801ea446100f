//! The `ftserver` binary: parse arguments, set up logging, bind, serve FTP and/or TFTP until
//! Ctrl-C/SIGTERM.

use anyhow::{anyhow, Context as _};
use clap::Parser;
use common::hostport::canonical_ip;
use ftserver::cli::Args;
use ftserver::storage::{LocalStorage, Storage};
use ftserver::tftp::TftpConfig;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

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
    // A bad database URL is a usage error, found before anything starts.
    if let Some(url) = &args.storage {
        if let Err(e) = ftserver::storage::postgres::parse_url(url) {
            eprintln!("ftserver: --storage: {e}");
            return ExitCode::from(2);
        }
    }
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

/// An OS error as a lower-case phrase: "address already in use".
fn lower(err: &io::Error) -> String {
    let text = ftserver::storage::error::io_text(err);
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

/// Why a port could not be listened on, with what to do about a privileged port.
fn bind_error(what: &str, addr: SocketAddr, err: &io::Error) -> anyhow::Error {
    if err.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 {
        anyhow!(
            "cannot listen {what}on {addr}: permission denied (ports below 1024 need root or \
             CAP_NET_BIND_SERVICE; pick a port of 1024 or more)"
        )
    } else {
        anyhow!("cannot listen {what}on {addr}: {}", lower(err))
    }
}

/// What the ready line says is exposed: who may log in, what they may do, and from where.
fn exposure(config: &ftserver::Config, bind: IpAddr) -> String {
    let access = match (config.writable, config.overwrite) {
        (false, _) => "read-only",
        (true, false) => "uploads allowed",
        (true, true) => "uploads, replacing and deleting allowed",
    };
    let reach = if canonical_ip(bind).is_loopback() { "this machine only" } else { "reachable from the network" };
    let dots = if config.dotfiles { "; dot-files served" } else { "" };
    format!("anonymous, {access}{dots}; {reach}")
}

fn run(args: Args) -> anyhow::Result<()> {
    let mut config =
        ftserver::Config::new(&args.root).map_err(|e| anyhow!("root {}: {}", args.root.display(), lower(&e)))?;
    config.max_clients = args.max_clients;
    config.max_per_ip = args.max_per_ip;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.login_timeout = Duration::from_secs(args.login_timeout);
    config.data_timeout = Duration::from_secs(args.data_timeout);
    config.pasv_ports = args.pasv_ports;
    config.pasv_address = args.pasv_address;
    config.max_hash_jobs = args.max_hash_jobs;
    config.writable = args.writable;
    config.overwrite = args.overwrite;
    config.dotfiles = args.dotfiles;
    config.unannounced_settle = Duration::from_millis(args.upload_settle);
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

    if let Err(e) = ftserver::server::raise_file_limit() {
        log::warn!("cannot raise the open-file limit: {}", lower(&e));
    }
    // Bind everything before serving anything: a taken port fails the whole start.
    let listener = match args.port {
        Some(port) => {
            let addr = SocketAddr::new(args.bind, port);
            Some(ftserver::server::listen(addr).map_err(|e| bind_error("", addr, &e))?)
        }
        None => None,
    };
    let tftp_socket = match args.tftp {
        Some(spec) => {
            let addr = SocketAddr::new(spec.ip.unwrap_or(args.bind), spec.port);
            Some(UdpSocket::bind(addr).map_err(|e| bind_error("for tftp ", addr, &e))?)
        }
        None => None,
    };
    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = stop_tx.send(());
    })
    .context("cannot install the Ctrl-C/SIGTERM handler")?;
    // One storage for both protocols: one registry of the uploads running, one view of the tree.
    let storage: Arc<dyn Storage> = match &args.storage {
        Some(url) => Arc::new(ftserver::storage::postgres::PgStorage::connect(url, args.storage_pool)?),
        None => Arc::new(
            LocalStorage::new(&config.root)
                .map_err(|e| anyhow!("root {}: {}", config.root.display(), lower(&e)))?
                .with_dotfiles(config.dotfiles),
        ),
    };
    let root = storage.describe();
    let exposed = exposure(&config, args.bind);
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
        ready.push_str(&format!("ftserver: serving {root} on {} ({exposed})\n", server.local_addr()));
    }
    if let Some(tftp) = &tftp {
        ready.push_str(&format!("ftserver: serving {root} over tftp on {} ({exposed})\n", tftp.local_addr()));
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
