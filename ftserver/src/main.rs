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
        // rustls says at debug level what each connection does (alerts, tickets): only -vv.
        (false, 0) => "info,rustls=warn",
        (false, 1) => "debug,rustls=info",
        (false, _) => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    if args.hash_password {
        return hash_password();
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ftserver: {err:#}");
            if err.downcast_ref::<Misconfigured>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// A mistake in a file the command line names (the users file, the certificate): exit 2,
/// like a usage error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Misconfigured(String);

/// `--hash-password`: reads a password, prints its argon2id PHC string.
fn hash_password() -> ExitCode {
    match ftserver::accounts::read_password() {
        Ok(password) => {
            println!("{}", ftserver::accounts::hash_password(&password));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ftserver: cannot read the password: {}", lower(&e));
            ExitCode::FAILURE
        }
    }
}

/// What the main thread waits for.
enum Event {
    /// Ctrl-C or SIGTERM.
    Stop,
    /// SIGHUP: re-read the users file and the certificate.
    Reload,
}

/// Blocks SIGHUP in this thread and every thread started after (call it before any) and
/// starts a thread that takes it with `sigwait` and asks the main thread to reload. The
/// `ctrlc` crate keeps INT and TERM.
fn watch_sighup(events: std::sync::mpsc::Sender<Event>) -> anyhow::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let set = SigSet::from_iter([Signal::SIGHUP]);
    set.thread_block().map_err(|e| anyhow!("cannot block SIGHUP: {}", e.desc().to_lowercase()))?;
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || loop {
            if set.wait().is_ok() && events.send(Event::Reload).is_err() {
                return;
            }
        })
        .map_err(|e| anyhow!("cannot start the signal thread: {}", lower(&e)))?;
    Ok(())
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

/// Removes interrupted uploads older than `age` now and every hour after, on a thread of its
/// own for the life of the process.
fn expire_partials(storage: Arc<dyn Storage>, age: Duration) {
    let janitor = std::thread::Builder::new().name("expire-partials".into()).spawn(move || loop {
        match storage.expire_partials(age) {
            Ok(0) => {}
            Ok(n) => log::info!("removed {n} interrupted upload(s) older than {} h", age.as_secs() / 3600),
            Err(e) => log::warn!("cannot remove old interrupted uploads: {e}"),
        }
        std::thread::sleep(Duration::from_secs(3600));
    });
    if let Err(e) = janitor {
        log::warn!("cannot start the thread that removes old interrupted uploads: {}", lower(&e));
    }
}

/// What the ready line says is exposed: who may log in, what they may do, whether it is
/// encrypted, and from where. `accounts`: the users file and how many accounts it has.
fn exposure(
    config: &ftserver::Config,
    bind: IpAddr,
    accounts: Option<(&std::path::Path, usize)>,
    anonymous: bool,
) -> String {
    let access = match (config.writable, config.overwrite) {
        (false, _) => "read-only",
        (true, false) => "uploads allowed",
        (true, true) => "uploads, replacing and deleting allowed",
    };
    let who = match accounts {
        Some((file, n)) => {
            let anon = if anonymous { ", anonymous read-only" } else { ", no anonymous logins" };
            format!("{n} account(s) from {}{anon}", file.display())
        }
        None => format!("anonymous, {access}"),
    };
    let tls = match (&config.tls, config.require_tls) {
        (None, _) => "",
        (Some(_), false) => "; tls offered",
        (Some(_), true) => "; tls required",
    };
    let reach = if canonical_ip(bind).is_loopback() { "this machine only" } else { "reachable from the network" };
    let dots = if config.dotfiles { "; dot-files served" } else { "" };
    format!("{who}{dots}{tls}; {reach}")
}

/// The FTPS setup the options ask for, if any.
fn server_tls(args: &Args) -> anyhow::Result<Option<Arc<ftserver::tls::ServerTls>>> {
    use ftserver::tls::{Identity, ServerTls, TlsSource};
    let source = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
        (Some(cert), Some(key), _) => TlsSource::Files { cert: cert.clone(), key: key.clone() },
        (_, _, true) => TlsSource::SelfSigned(
            Identity::self_signed(&[args.bind]).map_err(|e| anyhow!("cannot make a certificate: {e}"))?,
        ),
        _ => return Ok(None),
    };
    let tls = ServerTls::new(source).map_err(|e| Misconfigured(e.to_string()))?;
    Ok(Some(Arc::new(tls)))
}

fn run(args: Args) -> anyhow::Result<()> {
    let (events_tx, events) = std::sync::mpsc::channel();
    watch_sighup(events_tx.clone())?;
    let mut config =
        ftserver::Config::new(&args.root).map_err(|e| anyhow!("root {}: {}", args.root.display(), lower(&e)))?;
    config.max_clients = args.max_clients;
    config.max_per_ip = args.max_per_ip;
    config.idle_timeout = Duration::from_secs(args.idle_timeout);
    config.login_timeout = Duration::from_secs(args.login_timeout);
    config.data_timeout = Duration::from_secs(args.data_timeout);
    config.pasv_ports = args.pasv_ports.clone();
    config.pasv_address = args.pasv_address;
    config.max_hash_jobs = args.max_hash_jobs;
    config.writable = args.writable;
    config.overwrite = args.overwrite;
    config.dotfiles = args.dotfiles;
    config.unannounced_settle = Duration::from_millis(args.upload_settle);
    config.max_upload_size = args.max_upload_size;
    config.tls = server_tls(&args)?;
    config.require_tls = args.require_tls;

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
    let implicit = match args.implicit_tls {
        Some(port) => {
            let addr = SocketAddr::new(args.bind, port);
            Some(ftserver::server::listen(addr).map_err(|e| bind_error("for implicit tls ", addr, &e))?)
        }
        None => None,
    };
    ctrlc::set_handler(move || {
        let _ = events_tx.send(Event::Stop);
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
    let accounts = match &args.users {
        Some(path) => {
            let anonymous = args.anonymous.then_some(ftserver::auth::Access::Read);
            let tree = Arc::clone(&storage);
            let exists: ftserver::accounts::RootExists =
                Box::new(move |root| tree.require_dir(root).map_err(|e| e.to_string()));
            let accounts = ftserver::accounts::Accounts::load_checked(path, anonymous, Default::default(), exists)
                .map_err(|e| Misconfigured(e.to_string()))?;
            Some((path.as_path(), Arc::new(accounts)))
        }
        None => None,
    };
    let exposed = exposure(&config, args.bind, accounts.as_ref().map(|(p, a)| (*p, a.count())), args.anonymous);
    // TFTP has no logins and no encryption: it always serves the anonymous view.
    let tftp_exposed =
        exposure(&config, args.bind, None, false).replace("; tls offered", "").replace("; tls required", "");
    let fingerprint = config.tls.as_ref().map(|tls| tls.fingerprint());
    let auth = accounts.map(|(_, a)| a as Arc<dyn ftserver::auth::Authenticator>);
    let server = listener
        .map(|listener| ftserver::Server::spawn_with_implicit(listener, implicit, config, storage.clone(), auth))
        .transpose()
        .map_err(|e| anyhow!("cannot start: {}", lower(&e)))?;
    let tftp = tftp_socket
        .map(|socket| ftserver::tftp::spawn_with(socket, tftp_config, storage.clone()))
        .transpose()
        .map_err(|e| anyhow!("cannot start tftp: {}", lower(&e)))?;

    if args.writable {
        expire_partials(storage.clone(), Duration::from_secs(args.partial_max_age * 3600));
    }

    let mut stdout = io::stdout().lock();
    let mut ready = String::new();
    if let Some(server) = &server {
        ready.push_str(&format!("ftserver: serving {root} on {} ({exposed})\n", server.local_addr()));
        if let Some(addr) = server.implicit_addr() {
            ready.push_str(&format!("ftserver: serving {root} over implicit tls on {addr} ({exposed})\n"));
        }
    }
    if let Some(tftp) = &tftp {
        ready.push_str(&format!("ftserver: serving {root} over tftp on {} ({tftp_exposed})\n", tftp.local_addr()));
    }
    if let Some(fingerprint) = fingerprint {
        ready.push_str(&format!("ftserver: tls certificate {fingerprint}\n"));
    }
    stdout.write_all(ready.as_bytes()).and_then(|()| stdout.flush()).context("cannot write to stdout")?;
    drop(stdout);

    // Wait for Ctrl-C or SIGTERM, reloading on SIGHUP. If the senders are gone no signal can
    // come, so stop.
    while let Ok(Event::Reload) = events.recv() {
        log::info!("SIGHUP: reloading");
        for outcome in server.as_ref().map(|s| s.reload()).unwrap_or_default() {
            match outcome {
                Ok(done) => log::info!("{done}"),
                Err(kept) => log::warn!("{kept}"),
            }
        }
    }
    log::info!("stopping");
    if let Some(tftp) = tftp {
        tftp.shutdown();
    }
    if let Some(server) = server {
        server.shutdown();
    }
    Ok(())
}
