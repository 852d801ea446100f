//! Where the client's login comes from: `--user` with a password from `--password`,
//! `--password-file FILE`, `FTP_PASSWORD`, `~/.netrc` or a prompt on the terminal; without
//! `--user`, the netrc entry for the host (as curl `-n`, lftp and ftp do); else anonymous.
//! Passwords are [`Secret`]s, which never show in `Debug`, `Display` or an error message.

use crate::netrc::{self, Netrc};
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The anonymous login's password when none is given (anonymous servers ask for an address).
pub const ANONYMOUS_PASSWORD: &str = "ftclient@";

/// A password. `Debug` and `Display` print `****`; the text is reached only by
/// [`Secret::expose`], at the one place it is sent. Dropping it overwrites its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a password.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The password itself, to send in `PASS`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// Where a login's password came from (for a `-v` log line; never the password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Anonymous: no user was given and the netrc has no entry for the host.
    Anonymous,
    /// `--password`.
    CommandLine,
    /// `--password-file FILE`.
    PasswordFile,
    /// `FTP_PASSWORD`.
    Environment,
    /// The netrc entry for the host.
    Netrc,
    /// Typed at the terminal.
    Prompt,
}

/// A user name and password to log in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The login name.
    pub user: String,
    /// The password.
    pub password: Secret,
    /// Where the password came from.
    pub source: Source,
}

/// Everything a login may come from, gathered by the caller ([`from_environment`] for real).
#[derive(Debug, Default)]
pub struct Inputs<'a> {
    /// The server's host name, as netrc `machine` names it.
    pub host: &'a str,
    /// `--user`.
    pub user: Option<&'a str>,
    /// `--password` (visible to other local users in `ps`; the other sources are not).
    pub password: Option<Secret>,
    /// `--password-file`.
    pub password_file: Option<&'a Path>,
    /// The `FTP_PASSWORD` environment variable.
    pub env_password: Option<Secret>,
    /// The parsed netrc file, if there is one.
    pub netrc: Option<&'a Netrc>,
}

/// Why no login could be put together. Never holds a password.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A user but no password from anywhere, and no terminal to ask on.
    #[error("no password for `{0}`: set FTP_PASSWORD, use --password-file FILE, or run on a terminal")]
    NoPassword(String),
    /// The password file could not be read, or is empty.
    #[error("--password-file {path}: {problem}")]
    PasswordFile {
        /// The file as given.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// A password FTP cannot send.
    #[error("the password from {0} contains a CR, LF or NUL character, which FTP cannot carry")]
    BadCharacter(&'static str),
    /// The netrc file is unreadable or malformed.
    #[error(transparent)]
    Netrc(#[from] netrc::NetrcError),
    /// Reading from the terminal failed.
    #[error("reading the password from the terminal: {0}")]
    Prompt(String),
}

/// Puts the login together from `inputs`. `prompt` asks for a password on the terminal
/// (given the prompt text) and returns `None` when there is no terminal.
pub fn resolve(
    inputs: Inputs<'_>,
    prompt: &mut dyn FnMut(&str) -> io::Result<Option<Secret>>,
) -> Result<Credentials, CredentialsError> {
    let netrc_entry = |login: Option<&str>| inputs.netrc.and_then(|n| n.find(inputs.host, login));
    let (user, netrc_password) = match inputs.user {
        Some(user) => (user.to_owned(), netrc_entry(Some(user)).and_then(|e| e.password.clone())),
        None => match netrc_entry(None).and_then(|e| Some((e.login.clone()?, e.password.clone()))) {
            Some(found) => found,
            None => {
                let password = inputs
                    .password
                    .map_or((Secret::new(ANONYMOUS_PASSWORD), Source::Anonymous), |p| (p, Source::CommandLine));
                return checked(Credentials { user: "anonymous".into(), password: password.0, source: password.1 });
            }
        },
    };
    let given = match (inputs.password, inputs.password_file) {
        (Some(password), _) => Some((password, Source::CommandLine)),
        (None, Some(path)) => Some((read_password_file(path)?, Source::PasswordFile)),
        (None, None) => inputs.env_password.map(|p| (p, Source::Environment)),
    };
    let (password, source) = match given.or(netrc_password.map(|p| (p, Source::Netrc))) {
        Some(found) => found,
        // `--user anonymous` or `ftp://ftp@host/`: the conventional address, not a prompt.
        None if is_anonymous(&user) => (Secret::new(ANONYMOUS_PASSWORD), Source::Anonymous),
        None => match prompt(&format!("password for {user}@{}: ", inputs.host))
            .map_err(|e| CredentialsError::Prompt(io_problem(&e)))?
        {
            Some(typed) => (typed, Source::Prompt),
            None => return Err(CredentialsError::NoPassword(user)),
        },
    };
    checked(Credentials { user, password, source })
}

/// The names anonymous FTP accepts (RFC 1635).
fn is_anonymous(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
}

fn checked(credentials: Credentials) -> Result<Credentials, CredentialsError> {
    if credentials.password.expose().contains(['\r', '\n', '\0']) {
        let from = match credentials.source {
            Source::Anonymous | Source::CommandLine => "--password",
            Source::PasswordFile => "--password-file",
            Source::Environment => "FTP_PASSWORD",
            Source::Netrc => "netrc",
            Source::Prompt => "the terminal",
        };
        return Err(CredentialsError::BadCharacter(from));
    }
    Ok(credentials)
}

/// The login for a real run: `FTP_PASSWORD` from the environment, the netrc file from
/// [`netrc::default_path`] when it exists, and a prompt on `/dev/tty`.
pub fn from_environment(
    host: &str,
    user: Option<&str>,
    password: Option<Secret>,
    password_file: Option<&Path>,
) -> Result<Credentials, CredentialsError> {
    let env_password = std::env::var("FTP_PASSWORD").ok().map(Secret::new);
    let netrc = match netrc::default_path() {
        Some(path) if path.exists() => Some(Netrc::load(&path)?),
        _ => None,
    };
    let inputs = Inputs { host, user, password, password_file, env_password, netrc: netrc.as_ref() };
    resolve(inputs, &mut prompt_password)
}

/// The first line of `path`, without its line end; an empty one is an error.
pub fn read_password_file(path: &Path) -> Result<Secret, CredentialsError> {
    let fail = |problem: String| CredentialsError::PasswordFile { path: path.to_owned(), problem };
    let file = File::open(path).map_err(|e| fail(io_problem(&e)))?;
    let line = read_line(&mut BufReader::new(file)).map_err(|e| fail(io_problem(&e)))?;
    if line.expose().is_empty() {
        return Err(fail("empty first line".into()));
    }
    Ok(line)
}

/// Asks for a password on the controlling terminal (`/dev/tty`, so standard input can carry
/// data), with echo off; `None` when there is no terminal.
pub fn prompt_password(prompt: &str) -> io::Result<Option<Secret>> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let Ok(tty) = File::options().read(true).write(true).open("/dev/tty") else { return Ok(None) };
    let saved = tcgetattr(&tty).map_err(io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    (&tty).write_all(prompt.as_bytes())?;
    tcsetattr(&tty, SetArg::TCSAFLUSH, &quiet).map_err(io::Error::from)?;
    let line = read_line(&mut BufReader::new(&tty));
    let restored = tcsetattr(&tty, SetArg::TCSAFLUSH, &saved).map_err(io::Error::from);
    let line = line?;
    restored?;
    Ok(Some(line))
}

fn read_line(input: &mut impl BufRead) -> io::Result<Secret> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let end = line.strip_suffix('\n').map_or(line.len(), str::len);
    let end = line[..end].strip_suffix('\r').map_or(end, str::len);
    line.truncate(end);
    Ok(Secret(line))
}

/// An I/O error in lower case without Rust's "(os error N)": "no such file or directory".
pub(crate) fn io_problem(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => &text[..at],
        _ => &text,
    };
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
