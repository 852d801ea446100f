//! ftclient: list, get and put files and directory trees over FTP in active or passive mode.
//!
//! `main` parses the command line, sets up logging and Ctrl-C, calls [`run`], and maps the
//! outcome to the exit status: 0 success, 1 failure, 2 usage (one line on stderr ending in
//! "see --help"), 128 + the signal's number when Ctrl-C (130) or SIGTERM (143) stopped it.

use anyhow::Result;
use clap::error::ErrorKind;
use cli::Cli;
use ftclient::credentials::{self, Secret, Source};
use ftclient::tls::{ClientTls, Trust};
use ftclient::{cli, get, interrupt, list, localfile, progress, put, report, session, tftp, tftpfile, transfer, tree};
use get::{GetOptions, Output};
use list::ListOptions;
use progress::Progress;
use put::PutOptions;
use session::Login;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use transfer::Mode;
use tree::TreeOptions;

fn main() -> ExitCode {
    let cli = match cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&report::usage_message(&e)),
    };
    if cli.resume && cli.output_target() == Some(None) {
        return usage_error("--resume cannot be used with -o - (stdout)");
    }
    if cli.recursive && cli.output_target() == Some(None) {
        return usage_error("-r cannot be used with -o - (stdout)");
    }
    if let Some(message) = stream_usage(&cli) {
        return usage_error(&message);
    }
    init_logger(&cli);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ftclient: {}", report::render(&err));
            // A run stopped by Ctrl-C or SIGTERM says so in its status, as shells and curl do,
            // so a script can tell an interrupt from a failure.
            interrupt::exit_status().map_or(ExitCode::FAILURE, ExitCode::from)
        }
    }
}

/// The usage rules for uploads from `-` (stdin), a FIFO, a pipe or a device: they are read
/// once, so they need a remote name (stdin has none) and cannot be resumed or walked.
fn stream_usage(cli: &Cli) -> Option<String> {
    let local = cli.put.as_ref()?;
    let stdin = local.as_os_str() == "-";
    let shown = if stdin { "-p - (stdin)".to_owned() } else { format!("-p {}", local.display()) };
    if cli.recursive && stdin {
        return Some("-r cannot be used with -p - (stdin)".into());
    }
    if cli.recursive || !put::is_stream(local) {
        return None;
    }
    if cli.resume {
        return Some(format!("--resume cannot be used with {shown}: a pipe or device can be read only once"));
    }
    if stdin && !matches!(cli.to.as_deref(), Some(to) if !to.ends_with('/')) {
        return Some("-p - (stdin) needs --to REMOTE_FILE, the name to store it under".into());
    }
    None
}

/// Prints a usage error as one line, `ftclient: <message>; see --help`, and returns exit
/// status 2.
fn usage_error(message: &str) -> ExitCode {
    eprintln!("ftclient: {}; see --help", report::one_line_error(message));
    ExitCode::from(2)
}

/// Warnings by default, more with each `-v`, only errors with `-q`; `RUST_LOG` overrides.
fn init_logger(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Error,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, 2) => log::LevelFilter::Debug,
        (false, _) => log::LevelFilter::Trace,
    };
    // rustls logs every handshake step at debug: only from -vvv.
    let rustls = if cli.verbose >= 3 { level } else { level.min(log::LevelFilter::Warn) };
    env_logger::Builder::new()
        .filter_level(level)
        .filter_module("rustls", rustls)
        .parse_default_env()
        .format(|buf, record| writeln!(buf, "ftclient: {}: {}", record.level().as_str().to_lowercase(), record.args()))
        .init();
}

/// Connects, logs in, and lists or gets.
fn run(cli: &Cli) -> Result<()> {
    interrupt::install()?;
    if cli.tftp {
        return run_tftp(cli);
    }
    let mode = cli.data_port.map_or(Mode::Passive, Mode::Active);
    let login = login(cli)?;
    let mut session = login.connect()?;
    session.feat()?;
    if cli.recursive {
        let mut parallel = usize::from(cli.parallel);
        if let Mode::Active(port) = mode {
            // Connection i listens on DATA_PORT + i.
            parallel = parallel.min(usize::from(u16::MAX - port) + 1);
        }
        let opts = TreeOptions {
            overwrite: cli.overwrite,
            resume: cli.resume,
            verify: !cli.no_verify,
            hash: cli.hash,
            fsync: cli.fsync,
            quiet: cli.quiet,
            parallel,
        };
        if let Some(remote) = &cli.get {
            let local = match &cli.output {
                Some(path) => path.clone(),
                None => PathBuf::from(localfile::remote_base_name(remote.trim_end_matches('/')).ok_or_else(|| {
                    anyhow::anyhow!(
                        "cannot derive a local directory name from {}; name one with -o DIR",
                        common::text::sanitize(remote)
                    )
                })?),
            };
            return tree::get(session, &login, mode, remote, &local, &opts);
        }
        if let Some(local) = &cli.put {
            let named = local.canonicalize().unwrap_or_else(|_| local.clone());
            let remote = put::remote_name(&named, cli.to.as_deref(), cli.dir.as_deref())?;
            return tree::put(session, &login, mode, local, &remote, &opts);
        }
    }
    if let Some(local) = &cli.put {
        if local.as_os_str() != "-" && local.is_dir() {
            anyhow::bail!("{} is a directory; use -r to upload a directory tree", local.display());
        }
        let opts = PutOptions {
            remote: put::remote_name(local, cli.to.as_deref(), cli.dir.as_deref())?,
            local: local.clone(),
            overwrite: cli.overwrite,
            resume: cli.resume,
            verify: !cli.no_verify,
            hash: cli.hash,
            progress: Progress::single(cli.quiet),
            in_new_dir: false,
        };
        let sent = put::run(&mut session, mode, &opts)?;
        if !cli.quiet {
            eprintln!("{}", sent.describe(&opts));
        }
    } else if let Some(remote) = &cli.get {
        let output = match cli.output_target() {
            None => Output::BaseName,
            Some(None) => Output::Stdout,
            Some(Some(path)) => Output::Path(path.clone()),
        };
        let opts = GetOptions {
            remote: remote.clone(),
            output,
            overwrite: cli.overwrite,
            resume: cli.resume,
            verify: !cli.no_verify,
            hash: cli.hash,
            fsync: cli.fsync,
            checksum: cli.checksum.clone(),
            progress: Progress::single(cli.quiet),
            listed_size: None,
            login: Some(login),
            segments: cli.segments,
        };
        let done = get::run(&mut session, mode, &opts)?;
        if !cli.quiet {
            eprintln!("{}", done.describe(remote));
        }
    } else {
        let opts = ListOptions { long: cli.long, dir: cli.dir.clone() };
        list::run(&mut session, mode, &opts, &mut std::io::stdout().lock())?;
    }
    session.quit();
    Ok(())
}

/// The login (user, password from wherever it comes, TLS) for the FTP run.
fn login(cli: &Cli) -> Result<Login> {
    let tls = match cli.trust() {
        Some(trust) => {
            if trust == Trust::Insecure {
                log::warn!("--insecure: the server's certificate is not checked; anyone on the path can pretend to be the server");
            }
            Some(session::Tls { client: ClientTls::new(&trust)?, implicit: cli.implicit_tls })
        }
        None => None,
    };
    let found = credentials::from_environment(
        &cli.host,
        cli.user.as_deref(),
        cli.password.clone().map(Secret::new),
        cli.password_file.as_deref(),
    )?;
    let from = match found.source {
        Source::Anonymous => "anonymous",
        Source::CommandLine => "--password",
        Source::PasswordFile => "--password-file",
        Source::Environment => "FTP_PASSWORD",
        Source::Netrc => "netrc",
        Source::Prompt => "the terminal",
    };
    log::info!("logging in as {} (password from {from})", common::text::sanitize(&found.user));
    if tls.is_none() && found.source != Source::Anonymous {
        log::info!("the password travels in clear text (--tls encrypts it)");
    }
    Ok(Login {
        host: cli.host.clone(),
        port: cli.port(),
        user: found.user.clone(),
        password: found.password.clone(),
        timeout: Duration::from_secs(cli.timeout),
        tls,
    })
}

/// `--tftp`: one get or put over TFTP.
fn run_tftp(cli: &Cli) -> Result<()> {
    let job = tftpfile::TftpJob {
        server: tftpfile::resolve(&cli.host, cli.port())?,
        options: tftp::TftpOptions {
            blksize: cli.blksize,
            windowsize: cli.windowsize,
            give_up: Duration::from_secs(cli.timeout),
            cancelled: || interrupt::check().is_err(),
            ..Default::default()
        },
        overwrite: cli.overwrite,
        fsync: cli.fsync,
        progress: Progress::single(cli.quiet),
    };
    let line = match (&cli.get, &cli.put) {
        (Some(remote), _) => tftpfile::get(&job, remote, cli.output.as_deref())?,
        (None, Some(local)) => tftpfile::put(&job, local, &put::remote_name(local, cli.to.as_deref(), None)?)?,
        (None, None) => anyhow::bail!("--tftp needs -g REMOTE_FILE or -p LOCAL_FILE"),
    };
    if !cli.quiet {
        eprintln!("{line}");
    }
    Ok(())
}
