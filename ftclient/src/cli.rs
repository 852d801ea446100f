//! The command line: clap derive structs whose doc comments are the `--help` text.

use crate::digest::{decode_hex, Algo};
use crate::tls::{Fingerprint, Trust};
use crate::url;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};
use std::ffi::OsString;
use std::path::PathBuf;

const USAGE: &str = "ftclient [OPTIONS] <HOST> <PORT> -l [DATA_PORT]
       ftclient [OPTIONS] <HOST> <PORT> -g <REMOTE_FILE> [DATA_PORT]
       ftclient [OPTIONS] <HOST> <PORT> -p <LOCAL_FILE> [DATA_PORT]
       ftclient [OPTIONS] <HOST> <PORT> -r -g <REMOTE_DIR> | -r -p <LOCAL_DIR> [DATA_PORT]
       ftclient [OPTIONS] ftp[s]://[USER[:PASSWORD]@]HOST[:PORT]/PATH [DATA_PORT]
       ftclient --tftp [OPTIONS] <HOST> <PORT> -g <REMOTE_FILE> | -p <LOCAL_FILE>";

const EXAMPLES: &str = "\
Examples:
  ftclient ftp.example.org 21 -l                 list the login directory (passive mode)
  ftclient ftp.example.org 21 -l 5000            the same in active mode, data port 5000
  ftclient ::1 2121 -l --long --dir docs         list docs/ with type, size and time
  ftclient 127.0.0.1 2121 -g docs/a.txt          save docs/a.txt as ./a.txt (passive mode)
  ftclient 127.0.0.1 2121 -g big.iso 5001        the same in active mode, data port 5001
  ftclient 127.0.0.1 2121 -g a.txt -o - | less   write the file to stdout
  ftclient 127.0.0.1 2121 -g big.iso --resume    continue an interrupted download
  ftclient 127.0.0.1 2121 -p report.pdf          upload report.pdf into the login directory
  ftclient 127.0.0.1 2121 -p a.txt --to in/b.txt upload a.txt as in/b.txt
  ftclient 127.0.0.1 2121 -p big.iso --resume    continue an interrupted upload
  tar c dir | ftclient 127.0.0.1 2121 -p - --to dir.tar   upload standard input as dir.tar
  ftclient 127.0.0.1 2121 -r -g photos           copy the remote tree photos/ to ./photos
  ftclient 127.0.0.1 2121 -r -p site --parallel 8  upload the tree ./site as site/, 8 at once
  ftclient --tftp 10.0.0.5 69 -g pxelinux.0      get a file over TFTP (blksize 1468, window 16)
  ftclient ftp://ftp.example.org/pub/            list pub/ (port 21, passive mode)
  ftclient ftp://bob@[::1]:2121/docs/a%20b.txt   get docs/a b.txt as user bob
  ftclient -r ftp://127.0.0.1:2121/photos/       copy the remote tree photos/ to ./photos
  ftclient ftp.example.org 21 -l --tls --user ann   list over explicit FTPS, logged in as ann
  ftclient ftps://h/a.txt --pin sha256:3cb9...   implicit FTPS (port 990), one known certificate

URLs: ftp://[USER[:PASSWORD]@]HOST[:PORT]/PATH lists PATH when it ends in '/' (or is empty)
and gets it otherwise; with -r it copies the tree PATH, with -p it names where the upload
goes (a directory when it ends in '/'). The port is 21 unless given; %XX escapes are decoded;
an IPv6 address goes in brackets; PATH is relative to the login directory (%2F at its start
makes it absolute). A number after the URL is the DATA_PORT for active mode. ftps:// is
implicit FTPS, port 990 unless given.

Logins: --user NAME takes its password from --password, --password-file FILE, FTP_PASSWORD,
the netrc entry for NAME, or a prompt on the terminal. Without --user, the netrc entry for
the host ($NETRC, else ~/.netrc) is used when there is one (as curl -n, lftp and ftp do), else
an anonymous login. Passwords never appear in logs (PASS **** at -vv) or error messages.

Encryption: --tls (AUTH TLS), --implicit-tls or ftps:// encrypt the control connection before
the login and every data connection (PROT P), each resuming the control connection's TLS
session as servers that require it (vsftpd's require_ssl_reuse) expect. The server's
certificate must chain to the system's roots and name the host, or to --cacert FILE, or have
the --pin fingerprint; --insecure accepts any (and says so). A server that refuses AUTH TLS
or PROT P is an error: nothing is sent in clear text instead.

Downloads are written to a hidden temporary file .NAME.ftpart next to the target and renamed
into place only when the size matches and the server confirmed the transfer. A file named with
-o PATH is then replaced (as curl -o and wget -O do); under its default name an existing file
is never replaced: the copy is saved as NAME.1, NAME.2, ... unless --overwrite is given. The
free disk space is checked against the file's size before the transfer starts.

Uploads never replace a remote file either: the client checks with MLST or SIZE first and
refuses unless --overwrite is given (and the server must allow it too). Both directions are
checked with the server's HASH (or XCRC, XSHA256, ...) when it offers one, using the cheapest
digest it has (CRC32 first) unless --hash names one.

If the local file changes while it is uploaded (it ends early, or its size or modification time
changes), the data connection is reset, so the server keeps nothing under the remote name.

Downloads are not synced to disk (like curl, wget and lftp): the rename after the checks means
no incomplete file is ever seen under the final name. --fsync also makes each file durable
before it is renamed. When -o names a device or a FIFO (e.g. /dev/null), the data is written
straight into it; when it names a directory, the file is saved inside it.

With -r, every file of the tree follows the same rules; --parallel N transfers N files at once
over N control connections (in active mode on data ports DATA_PORT ... DATA_PORT+N-1).
Symbolic links that point outside a local tree are skipped.

Exit status: 0 success, 1 failure, 2 usage error, 130 interrupted by Ctrl-C (SIGINT), 143
stopped by SIGTERM (an interrupted download keeps its .NAME.ftpart for --resume).";

/// List, get and put files and directory trees on an FTP server, in passive mode or (with
/// DATA_PORT) active mode; or get and put single files over TFTP.
///
/// Without DATA_PORT the client uses passive mode (EPSV, then PASV) and connects to the server.
/// With DATA_PORT it uses active mode: it listens on DATA_PORT on the local address of the
/// control connection, sends EPRT (or PORT) and accepts the data connection only from the
/// server's address.
#[derive(Debug, Parser)]
#[command(name = "ftclient", version, after_help = EXAMPLES, override_usage = USAGE)]
#[command(group(ArgGroup::new("action").required(true).args(["list", "get", "put"])))]
pub struct Cli {
    /// Server host name, IPv4 address or IPv6 address (e.g. ftp.example.org, 127.0.0.1, ::1),
    /// or an ftp:// URL (see URLs below).
    #[arg(value_parser = parse_host)]
    pub host: String,

    /// Server control port (1-65535; FTP's standard port is 21). After a URL, which has its
    /// own port, a number here is the DATA_PORT.
    #[arg(required = true, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,

    /// Local port for active mode (1024-65535); omit it for passive mode.
    ///
    /// Servers refuse data ports below 1024 (RFC 2577), so those are rejected here.
    #[arg(value_parser = clap::value_parser!(u16).range(1024..))]
    pub data_port: Option<u16>,

    /// List the remote directory: one name per line on stdout, sorted, directories end in '/'.
    #[arg(short = 'l', long = "list")]
    pub list: bool,

    /// Get REMOTE_FILE (a path such as docs/a.txt) and save it under its base name.
    #[arg(short = 'g', long = "get", value_name = "REMOTE_FILE", value_parser = parse_line_arg)]
    pub get: Option<String>,

    /// Upload LOCAL_FILE (with -r: the directory LOCAL_DIR and everything in it). '-' reads
    /// standard input (with --to NAME); standard input, FIFOs and devices are read once and
    /// cannot be resumed.
    #[arg(short = 'p', long = "put", value_name = "LOCAL_FILE")]
    pub put: Option<PathBuf>,

    /// With -g or -p: transfer a whole directory tree (MLSD when the server has it, else LIST),
    /// in block mode (MODE B: one data connection for all files) when the server has it.
    #[arg(short = 'r', long = "recursive", conflicts_with = "list")]
    pub recursive: bool,

    /// With -r: how many files to transfer at once, each over its own control connection.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,

    /// With -g: fetch the file over N connections at once, each a byte range (REST), written in
    /// place; --segments 1 turns it off. Without it, files of 64 MiB or more whose size the
    /// server tells get 4 when the server supports REST STREAM. An interrupted segmented
    /// download keeps its progress in .NAME.ftpart.segs for --resume.
    #[arg(long, value_name = "N", conflicts_with_all = ["list", "put", "recursive", "tftp"], value_parser = clap::value_parser!(u16).range(1..=64))]
    pub segments: Option<u16>,

    /// With -l: also show type, size and modification time (UTC).
    #[arg(long, conflicts_with_all = ["get", "put"])]
    pub long: bool,

    /// With -l: the remote directory to list; with -p: the remote directory to upload into
    /// (instead of the login directory).
    #[arg(long, value_name = "DIR", conflicts_with = "get", value_parser = parse_line_arg)]
    pub dir: Option<String>,

    /// With -p: the remote name (default: the local base name, in --dir if given).
    #[arg(long, value_name = "REMOTE", conflicts_with_all = ["get", "list"], value_parser = parse_line_arg)]
    pub to: Option<String>,

    /// With -g: save to PATH instead of ./BASENAME, replacing a file there once the download
    /// is complete and checked (a directory: BASENAME inside it); '-' writes to stdout. With
    /// -r -g: the local directory that receives the tree.
    #[arg(short = 'o', long = "output", value_name = "PATH", conflicts_with_all = ["list", "put"])]
    pub output: Option<PathBuf>,

    /// With -g: replace an existing local file under its default name too, instead of saving
    /// as NAME.1, NAME.2, ... (a file named with -o is always replaced).
    /// With -p: replace an existing remote file (the server must allow it too).
    #[arg(long, conflicts_with = "list")]
    pub overwrite: bool,

    /// With -g: continue an interrupted download from its .NAME.ftpart file (uses REST).
    /// With -p: continue an interrupted upload after the remote file's size (REST + STOR, or
    /// APPE).
    #[arg(long, conflicts_with = "list")]
    pub resume: bool,

    /// With -g or -p: do not check the file against the server's HASH after the transfer.
    #[arg(long, conflicts_with = "list")]
    pub no_verify: bool,

    /// With -g or -p: the digest used to check files against the server (auto, crc32, sha256,
    /// sha1, md5). auto takes the cheapest the server offers (CRC32 first): the check is there
    /// to catch accidental damage (truncation, text-mode mangling, bad disks or memory).
    #[arg(long, value_name = "ALGO", default_value = "auto", conflicts_with = "list", value_parser = parse_hash_choice)]
    pub hash: HashChoice,

    /// With -g: make each file durable on disk before it gets its final name; slower.
    #[arg(long, conflicts_with_all = ["list", "put"])]
    pub fsync: bool,

    /// With -g: check the downloaded file against a known digest, e.g. sha256:9f86d0...
    /// (also crc32:, sha1: and md5:).
    #[arg(long, value_name = "ALGO:HEX", conflicts_with_all = ["list", "put", "recursive"], value_parser = parse_checksum)]
    pub checksum: Option<Checksum>,

    /// Use TFTP (UDP) instead of FTP: PORT is the server's TFTP port; -g and -p move one file.
    #[arg(long, conflicts_with_all = ["list", "recursive", "resume", "data_port", "dir", "checksum"])]
    pub tftp: bool,

    /// With --tftp: the block size to ask for (8-65464; a server may grant less, and one that
    /// refuses options gets plain 512-byte blocks).
    #[arg(long, value_name = "BYTES", default_value_t = 1468, value_parser = clap::value_parser!(u16).range(8..=65464))]
    pub blksize: u16,

    /// With --tftp: how many blocks may travel before an acknowledgement (RFC 7440; 1 is
    /// classic lock-step TFTP). 64 blocks of 1468 bytes (94 KB in flight) ran 2.8-3.6x faster
    /// than 16 on emulated 50 and 200 ms links; more gained little on the lossy one.
    #[arg(long, value_name = "BLOCKS", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub windowsize: u16,

    /// Login name. Without it: the netrc entry for the host ($NETRC, else ~/.netrc), else
    /// anonymous. Its password comes from --password, --password-file, FTP_PASSWORD, the netrc
    /// entry for this user, or a prompt on the terminal, in that order.
    #[arg(long, value_parser = parse_line_arg)]
    pub user: Option<String>,

    /// Login password. Other local users can see it in `ps`: prefer --password-file or
    /// FTP_PASSWORD. Anonymous logins send ftclient@ unless this is given.
    #[arg(long, value_parser = parse_password)]
    pub password: Option<String>,

    /// Read the password from the first line of FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    pub password_file: Option<PathBuf>,

    /// Encrypt with explicit FTPS (AUTH TLS, RFC 4217): the login, the commands and every data
    /// connection. Fails if the server refuses; never falls back to clear text.
    #[arg(long, conflicts_with = "tftp")]
    pub tls: bool,

    /// Implicit FTPS: TLS from the first byte (usually on port 990), as an ftps:// URL.
    #[arg(long, conflicts_with_all = ["tftp", "tls"])]
    pub implicit_tls: bool,

    /// With TLS: trust only the certificate authorities in this PEM file, instead of the
    /// system's.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pin", "insecure"])]
    pub cacert: Option<PathBuf>,

    /// With TLS: accept exactly the certificate with this SHA-256 fingerprint, whoever signed
    /// it (e.g. the one `ftserver --tls-self-signed` prints).
    #[arg(long, value_name = "sha256:HEX", value_parser = parse_pin, conflicts_with = "insecure")]
    pub pin: Option<Fingerprint>,

    /// With TLS: accept any certificate. The connection is encrypted but anyone on the path can
    /// pretend to be the server.
    #[arg(long)]
    pub insecure: bool,

    /// Seconds to wait when connecting, for each reply and for the data connection (for the
    /// greeting at most 10: a port that says nothing for that long is likely not FTP). With
    /// --tftp: the longest the server may stay silent (the request and lost blocks are still
    /// resent after 1 s, 2 s, 4 s, ...) before the transfer is given up.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout: u64,

    /// Print nothing but errors (no progress bar, no summary line).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log the FTP conversation on stderr (-v: info, -vv: every command and reply); RUST_LOG
    /// overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// A digest given with `--checksum`: the algorithm and the expected bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// The digest algorithm.
    pub algo: Algo,
    /// The expected digest.
    pub digest: Vec<u8>,
}

/// `--hash`: which digest the server is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashChoice {
    /// The cheapest one the server offers.
    Auto,
    /// Exactly this one.
    Only(Algo),
}

/// Parses `--hash`: `auto` or an algorithm name.
fn parse_hash_choice(arg: &str) -> Result<HashChoice, String> {
    if arg.eq_ignore_ascii_case("auto") {
        return Ok(HashChoice::Auto);
    }
    Algo::from_name(arg)
        .map(HashChoice::Only)
        .ok_or_else(|| format!("unknown digest {arg:?}, expected auto, crc32, sha256, sha1 or md5"))
}

impl Cli {
    /// Where a download goes: `None` for the remote base name, `Some(None)` for stdout.
    pub fn output_target(&self) -> Option<Option<&PathBuf>> {
        self.output.as_ref().map(|p| if p.as_os_str() == "-" { None } else { Some(p) })
    }

    /// The certificate policy when TLS is asked for (`--tls`, `--implicit-tls`, `ftps://`),
    /// else `None`.
    pub fn trust(&self) -> Option<Trust> {
        if !self.tls && !self.implicit_tls {
            return None;
        }
        Some(match (&self.cacert, self.pin, self.insecure) {
            (Some(file), _, _) => Trust::CaFile(file.clone()),
            (None, Some(pin), _) => Trust::Pin(pin),
            (None, None, true) => Trust::Insecure,
            (None, None, false) => Trust::System,
        })
    }

    /// The server's control port ([`parse_args`] made sure there is one).
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(url::DEFAULT_PORT)
    }

    /// Completes a command line whose HOST is an `ftp://` URL: it fills in the host, port,
    /// login and what to do.
    fn resolve(&mut self, matches: &clap::ArgMatches) -> Result<(), (ErrorKind, String)> {
        let found = url::parse(&self.host).map_err(|e| (ErrorKind::ValueValidation, e))?;
        let conflict =
            |what: &str| Err((ErrorKind::ArgumentConflict, format!("an ftp:// URL cannot be used with {what}")));
        let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        if self.tftp {
            return conflict("--tftp (which takes HOST PORT)");
        }
        if self.list || self.get.is_some() {
            return conflict("-l or -g: the URL says what to list or get");
        }
        if self.dir.is_some() {
            return conflict("--dir: the URL names the directory");
        }
        if found.user.is_some() && given("user") {
            return conflict("--user when it names a user too");
        }
        if found.password.is_some() && given("password") {
            return conflict("--password when it holds a password too");
        }
        // After a URL, which names its own port, one number may follow: the data port.
        match [self.port, self.data_port] {
            [Some(_), Some(_)] => {
                return Err((ErrorKind::TooManyValues, "after an ftp:// URL only a DATA_PORT may follow".into()))
            }
            [Some(n), None] | [None, Some(n)] if n < 1024 => {
                return Err((
                    ErrorKind::ValueValidation,
                    format!("invalid value '{n}' for '[DATA_PORT]': {n} is not in 1024..=65535"),
                ))
            }
            [Some(n), None] | [None, Some(n)] => self.data_port = Some(n),
            [None, None] => {}
        }
        if found.implicit_tls && self.tls {
            return conflict("--tls when it is ftps:// (implicit TLS); use ftp:// for explicit TLS");
        }
        self.host = found.host.clone();
        self.port = Some(found.port);
        self.implicit_tls |= found.implicit_tls;
        if let Some(user) = &found.user {
            self.user = Some(user.clone());
        }
        if let Some(password) = &found.password {
            if given("password_file") {
                return conflict("--password-file when it holds a password too");
            }
            self.password = Some(password.clone());
        }
        let path = found.path.clone();
        let dir = || {
            let trimmed = path.trim_end_matches('/');
            match (trimmed.is_empty(), path.is_empty()) {
                (_, true) => None,
                (true, false) => Some("/".to_owned()),
                (false, false) => Some(trimmed.to_owned()),
            }
        };
        if self.put.is_some() {
            if self.to.is_some() {
                return conflict("--to: the URL names where the upload goes");
            }
            if found.is_dir() {
                self.dir = dir();
            } else {
                self.to = Some(path.clone());
            }
        } else if self.recursive {
            match dir() {
                Some(remote) => self.get = Some(remote),
                None => {
                    return Err((
                        ErrorKind::ValueValidation,
                        "-r with a URL needs the remote directory in it: ftp://HOST/DIR/".into(),
                    ))
                }
            }
        } else if found.is_dir() {
            if self.output.is_some() {
                return conflict("-o when it names a directory to list");
            }
            self.list = true;
            self.dir = dir();
        } else {
            if self.long {
                return conflict("--long when it names a file to get");
            }
            self.get = Some(path.clone());
        }
        Ok(())
    }
}

/// Parses the command line (`args` includes the program name) and resolves an ftp:// URL in
/// place of HOST. Errors are clap's, so they print and map to exit codes as clap's own do.
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    // The card's form first, with its own errors; PORT and the action are optional only for a
    // URL, which names them.
    let matches = match Cli::command().try_get_matches_from(&args) {
        Ok(matches) => matches,
        Err(strict) => {
            let relaxed = Cli::command()
                .mut_arg("port", |a| a.required(false))
                // Checked in `resolve`, whichever slot the number lands in.
                .mut_arg("data_port", |a| a.value_parser(clap::value_parser!(u16).range(1..)))
                .mut_group("action", |g| g.required(false))
                .try_get_matches_from(&args);
            match relaxed {
                Ok(matches) if matches.get_one::<String>("host").is_some_and(|h| url::looks_like_url(h)) => matches,
                _ => return Err(strict),
            }
        }
    };
    let mut cli = Cli::from_arg_matches(&matches)?;
    if url::looks_like_url(&cli.host) {
        cli.resolve(&matches).map_err(|(kind, message)| Cli::command().error(kind, message))?;
    }
    if (cli.cacert.is_some() || cli.pin.is_some() || cli.insecure) && cli.trust().is_none() {
        return Err(Cli::command().error(
            ErrorKind::MissingRequiredArgument,
            "--cacert, --pin and --insecure need --tls, --implicit-tls or an ftps:// URL",
        ));
    }
    Ok(cli)
}

/// Accepts a host: anything but an empty string (which no resolver could look up).
fn parse_host(arg: &str) -> Result<String, String> {
    if arg.trim().is_empty() {
        Err("expected a host name or address".into())
    } else {
        Ok(arg.to_owned())
    }
}

/// Accepts an argument that goes into an FTP command line: not empty, and no CR, LF or NUL
/// (which would end the command and start another).
fn parse_line_arg(arg: &str) -> Result<String, String> {
    if arg.is_empty() {
        Err("expected a non-empty value".into())
    } else if arg.contains(['\r', '\n', '\0']) {
        Err(format!("{arg:?} contains a CR, LF or NUL character, which FTP cannot carry"))
    } else {
        Ok(arg.to_owned())
    }
}

/// Like [`parse_line_arg`], but an empty password is allowed.
fn parse_password(arg: &str) -> Result<String, String> {
    if arg.is_empty() {
        Ok(String::new())
    } else {
        parse_line_arg(arg)
            .map_err(|_| "the password contains a CR, LF or NUL character, which FTP cannot carry".into())
    }
}

/// Parses `--pin sha256:HEX`.
fn parse_pin(arg: &str) -> Result<Fingerprint, String> {
    arg.parse()
}

/// Parses `sha256:HEX`, `crc32:HEX`, `sha1:HEX` or `md5:HEX` (the algorithm name is
/// case-insensitive, `sha-256` is accepted).
fn parse_checksum(arg: &str) -> Result<Checksum, String> {
    let (name, hex) =
        arg.split_once(':').ok_or_else(|| format!("expected ALGO:HEX such as sha256:<64 hex digits>, got {arg:?}"))?;
    let algo = Algo::from_name(name)
        .ok_or_else(|| format!("unsupported digest algorithm {name:?}, expected sha256, crc32, sha1 or md5"))?;
    let digest = decode_hex(hex)
        .filter(|d| d.len() == algo.digest_len())
        .ok_or_else(|| format!("expected {} hex digits after {name}:, got {hex:?}", 2 * algo.digest_len()))?;
    Ok(Checksum { algo, digest })
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
