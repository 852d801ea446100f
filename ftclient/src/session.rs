//! The control connection: connect, greeting, login, FEAT, and typed commands whose replies are
//! checked here. It never moves file bytes; data connections are opened in `transfer`.

use crate::conn::Conn;
use crate::credentials::Secret;
use crate::digest::Algo;
use crate::interrupt;
use crate::tls::{self, ClientTls};
use anyhow::{anyhow, bail, Context, Result};
use common::command::TransferType;
use common::listing::parse_mlsx;
use common::path::unquote_257;
use common::reply::ReplyBuilder;
use common::text::sanitize;
use common::{Command, Control, ControlError, Reply};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use std::fmt;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often blocking waits wake up to notice Ctrl-C.
pub const TICK: Duration = Duration::from_millis(200);

/// The longest wait for the greeting (or `--timeout`, when shorter). A server greets at once;
/// a port that accepts and says nothing is most likely not FTP (an HTTP server waits for its
/// request), and waiting the whole reply timeout for it only delays the explanation.
pub const GREETING_WAIT: Duration = Duration::from_secs(10);

/// No line came from the server within the wait.
#[derive(Debug, thiserror::Error)]
#[error("no reply from the server within {} s", .0.as_secs())]
pub struct NoReply(pub Duration);

/// A reply the client did not want, shown as `550 No such file` (sanitised).
#[derive(Debug)]
pub struct ServerError(pub Reply);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every line of a multi-line reply: the reason is often in the first ("550-Permission
        // denied", then "550 End").
        let lines: Vec<String> = self.0.lines.iter().map(|l| sanitize(l.trim())).filter(|l| !l.is_empty()).collect();
        write!(f, "{} {}", self.0.code, lines.join("; "))
    }
}

impl std::error::Error for ServerError {}

/// What the server's FEAT reply advertised (RFC 2389). Only the features the client uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Features {
    /// `MLST ...`: MLSD listings are available (RFC 3659 section 7).
    pub mlst: bool,
    /// `HASH ...`: the algorithm names, the server's current choice first if marked with `*`.
    pub hash: Vec<String>,
    /// `HASH ...`: the algorithm marked with `*` (the server's default), if any.
    pub hash_default: Option<String>,
    /// The legacy digest commands listed: `XCRC`, `XSHA256`, `XSHA1`, `XMD5`.
    pub x_hash: Vec<Algo>,
    /// `REST STREAM` (RFC 3659 section 5): transfers may start at an offset.
    pub rest_stream: bool,
}

impl Features {
    /// Reads the lines of a 211 FEAT reply. Feature lines start with one space; the first and
    /// last lines are free text.
    pub fn parse(reply: &Reply) -> Features {
        let mut features = Features::default();
        for line in reply.lines.iter().filter_map(|l| l.strip_prefix(' ')) {
            let (name, arg) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
            match name.to_ascii_uppercase().as_str() {
                "MLST" => features.mlst = true,
                "REST" => features.rest_stream = arg.trim().eq_ignore_ascii_case("STREAM"),
                "XCRC" => features.x_hash.push(Algo::Crc32),
                "XSHA256" => features.x_hash.push(Algo::Sha256),
                "XSHA1" => features.x_hash.push(Algo::Sha1),
                "XMD5" => features.x_hash.push(Algo::Md5),
                "HASH" => {
                    let mut algos: Vec<(bool, String)> = arg
                        .split(';')
                        .filter(|a| !a.trim().is_empty())
                        .map(|a| (a.ends_with('*'), a.trim().trim_end_matches('*').to_ascii_uppercase()))
                        .collect();
                    // The selected algorithm (marked `*`) first.
                    algos.sort_by_key(|(selected, _)| !selected);
                    features.hash_default = algos.iter().find(|(selected, _)| *selected).map(|(_, a)| a.clone());
                    features.hash = algos.into_iter().map(|(_, a)| a).collect();
                }
                _ => {}
            }
        }
        features
    }
}

/// Everything needed to open (another) logged-in control connection.
#[derive(Debug, Clone)]
pub struct Login {
    /// Host name or address.
    pub host: String,
    /// Control port.
    pub port: u16,
    /// Login name.
    pub user: String,
    /// Password (`Debug` shows `****`).
    pub password: Secret,
    /// Connect/reply timeout.
    pub timeout: Duration,
    /// FTPS, or `None` for clear text.
    pub tls: Option<Tls>,
}

/// How a login uses TLS (RFC 4217).
#[derive(Debug, Clone)]
pub struct Tls {
    /// The certificate policy, shared by all control connections of a run.
    pub client: ClientTls,
    /// TLS from the first byte (`--implicit-tls`, `ftps://`), else `AUTH TLS` after the
    /// greeting (`--tls`).
    pub implicit: bool,
}

impl Login {
    /// Connects, reads the greeting and logs in; with TLS, encrypts the control connection
    /// first (never logging in in clear when that fails) and protects data connections
    /// (`PBSZ 0`, `PROT P`) after.
    pub fn connect(&self) -> Result<Session> {
        let mut session = Session::open(&self.host, self.port, self.timeout, self.tls.as_ref())?;
        session.login(&self.user, &self.password)?;
        if self.tls.is_some() {
            session.protect_data()?;
        }
        Ok(session)
    }
}

/// The TLS state of one control connection: its configuration (whose session store data
/// connections resume from) and the server's name.
#[derive(Debug, Clone)]
struct SessionTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    /// `PROT P` was accepted: data connections are TLS too.
    data: bool,
}

/// One logged-in control connection.
#[derive(Debug)]
pub struct Session {
    ctrl: Control<Conn>,
    tls: Option<SessionTls>,
    peer: SocketAddr,
    local: SocketAddr,
    timeout: Duration,
    /// TYPE I was accepted: the session stays in binary mode (nothing here switches back).
    binary: bool,
    /// What FEAT advertised (empty until [`Session::feat`] is called).
    pub features: Features,
    /// The HASH algorithm this connection selected with `OPTS HASH` (`None`: the default).
    pub hash_selected: Option<Algo>,
    /// `MODE B`: asked (`Some`) and accepted (`Some(true)`).
    block: Option<bool>,
    /// In block mode, the data connection the last transfer ended on, kept for the next one.
    kept: Option<Conn>,
}

impl Session {
    /// Connects to `host:port` (a name, an IPv4 or an IPv6 address), trying every address the
    /// name resolves to, and reads the greeting. In clear text.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<Session> {
        Session::open(host, port, timeout, None)
    }

    /// [`Session::connect`], with TLS from the first byte (`implicit`) or after the greeting
    /// (`AUTH TLS`) when `tls` is given. A server that refuses `AUTH TLS` is an error: the
    /// client never goes on in clear text.
    pub fn open(host: &str, port: u16, timeout: Duration, tls: Option<&Tls>) -> Result<Session> {
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let session_tls = match tls {
            Some(tls) => Some(SessionTls { config: tls.client.session(), name: tls::server_name(host)?, data: false }),
            None => None,
        };
        let addrs: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve host {}", sanitize(host)))?
            .collect();
        let mut last_err = None;
        let mut stream = None;
        for addr in &addrs {
            interrupt::check()?;
            log::debug!("connecting to {addr}");
            match TcpStream::connect_timeout(addr, timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last_err = Some(anyhow!(e).context(format!("cannot connect to {addr}"))),
            }
        }
        let stream = match (stream, last_err) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e),
            (None, None) => bail!("cannot resolve host {}: no addresses", sanitize(host)),
        };
        let peer = stream.peer_addr().context("cannot read the control connection's peer address")?;
        let local = stream.local_addr().context("cannot read the control connection's local address")?;
        // Commands are small and each waits for a reply: send them at once.
        stream.set_nodelay(true).context("cannot set TCP_NODELAY on the control connection")?;
        stream.set_read_timeout(Some(TICK)).context("cannot set the control connection's read timeout")?;
        stream.set_write_timeout(Some(timeout)).context("cannot set the control connection's write timeout")?;
        log::info!("connected to {peer} from {local}");
        let conn = match (&session_tls, tls) {
            (Some(st), Some(Tls { implicit: true, .. })) => {
                let conn = Conn::tls(stream, Arc::clone(&st.config), st.name.clone(), timeout.min(GREETING_WAIT))
                    .map_err(|e| {
                        // A clear-text greeting where a ServerHello should be.
                        if e.0.contains("corrupt message") {
                            anyhow!("{e}; {peer} may expect AUTH TLS on this port (--tls), not implicit TLS")
                        } else {
                            anyhow!(e)
                        }
                    })
                    .with_context(|| format!("tls with {peer} failed"))?;
                log::info!("encrypted the connection (implicit tls)");
                conn
            }
            _ => Conn::Plain(stream),
        };
        let explicit = tls.is_some_and(|t| !t.implicit);
        let mut session = Session {
            ctrl: Control::new(conn, common::MAX_REPLY_LINE),
            tls: session_tls,
            peer,
            local,
            timeout,
            binary: false,
            features: Features::default(),
            hash_selected: None,
            block: None,
            kept: None,
        };
        session.greeting()?;
        if explicit {
            session.auth_tls()?;
        }
        Ok(session)
    }

    /// `AUTH TLS` (RFC 4217 section 4) and the handshake on the control connection.
    fn auth_tls(&mut self) -> Result<()> {
        let reply = self.command(&Command::Auth("TLS".into()))?;
        if reply.code != 234 {
            return Err(ServerError(reply))
                .context("the server refused AUTH TLS; not logging in without encryption (--tls)");
        }
        // Bytes after the 234 were sent before the handshake: nothing may be taken from them.
        if self.ctrl.has_buffered() {
            bail!("the server sent more after accepting AUTH TLS; not logging in");
        }
        let Some(st) = &self.tls else { bail!("no tls configuration") };
        let (config, name) = (Arc::clone(&st.config), st.name.clone());
        self.ctrl.get_mut().upgrade(config, name, self.timeout).context("tls on the control connection failed")?;
        log::info!("encrypted the control connection (AUTH TLS)");
        Ok(())
    }

    /// `PBSZ 0` and `PROT P` (RFC 4217 sections 8-9): data connections are encrypted too, and
    /// resume this control connection's TLS session. Refusal is an error, never clear data.
    fn protect_data(&mut self) -> Result<()> {
        self.expect_success(&Command::Pbsz("0".into()), || "the server refused PBSZ 0".into())?;
        self.expect_success(&Command::Prot("P".into()), || {
            "the server refused PROT P (encrypted data connections)".into()
        })?;
        if let Some(st) = &mut self.tls {
            st.data = true;
        }
        Ok(())
    }

    /// Wraps a freshly established data connection in TLS when `PROT P` is in force (resuming
    /// the control connection's session); else it stays plain.
    pub fn data_conn(&self, stream: TcpStream) -> Result<Conn> {
        match &self.tls {
            Some(st) if st.data => Conn::tls(stream, Arc::clone(&st.config), st.name.clone(), self.timeout)
                .context("tls on the data connection failed"),
            _ => Ok(Conn::Plain(stream)),
        }
    }

    /// The server's address on the control connection: the only address data connections may
    /// come from or go to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Our address on the control connection: where active-mode data connections listen.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The connect/reply/accept timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Reads the greeting: 220 (after any number of 120 "ready in n minutes" replies), waiting
    /// at most [`GREETING_WAIT`] for it.
    fn greeting(&mut self) -> Result<()> {
        let usual = self.timeout;
        self.timeout = usual.min(GREETING_WAIT);
        let greeted = self.read_greeting();
        self.timeout = usual;
        greeted
    }

    fn read_greeting(&mut self) -> Result<()> {
        loop {
            let reply = match self.read_reply() {
                Ok(reply) => reply,
                Err(e) if interrupt::check().is_err() => return Err(e),
                Err(e) => {
                    let peer = self.peer;
                    return Err(match e.downcast_ref::<NoReply>() {
                        Some(NoReply(wait)) => {
                            anyhow!("no greeting from {peer} within {} s; it may not be an FTP server", wait.as_secs())
                        }
                        None if e.chain().any(|c| c.is::<common::reply::ReplyError>() || c.is::<ControlError>()) => {
                            e.context(format!("{peer} did not greet as FTP servers do; it may not be an FTP server"))
                        }
                        None => e.context("no greeting from the server"),
                    });
                }
            };
            match reply.code {
                120 => continue,
                220 => return Ok(()),
                _ => return Err(ServerError(reply)).context("the server refused the connection"),
            }
        }
    }

    /// Logs in with USER, then PASS when asked (331).
    pub fn login(&mut self, user: &str, password: &Secret) -> Result<()> {
        let reply = self.command(&Command::User(user.to_owned()))?;
        let reply = match reply.code {
            230 | 202 => return Ok(()),
            331 => self.command(&Command::Pass(password.expose().to_owned()))?,
            _ => return Err(ServerError(reply)).context(format!("login as {} failed", sanitize(user))),
        };
        match reply.code {
            230 | 202 => Ok(()),
            _ => Err(ServerError(reply)).context(format!("login as {} failed", sanitize(user))),
        }
    }

    /// Asks FEAT (RFC 2389); a server without it simply has no features.
    pub fn feat(&mut self) -> Result<()> {
        let reply = self.command(&Command::Feat)?;
        if reply.code == 211 {
            self.features = Features::parse(&reply);
        }
        log::debug!("features: {:?}", self.features);
        Ok(())
    }

    /// Asks once for block mode (`MODE B`, RFC 959 3.4.2), in which one data connection serves
    /// transfer after transfer: a tree of small files then pays no passive port, connection
    /// handshake or slow start per file. Servers that refuse it (most: vsftpd, pyftpdlib,
    /// ProFTPD) keep stream mode. Returns whether block mode is on.
    pub fn try_block_mode(&mut self) -> Result<bool> {
        if self.block.is_none() {
            let reply = self.command(&Command::Mode("B".to_owned()))?;
            log::debug!("MODE B answered {}", reply.code);
            self.block = Some(reply.code == 200);
        }
        Ok(self.block == Some(true))
    }

    /// Is the session in block mode?
    pub fn block_mode(&self) -> bool {
        self.block == Some(true)
    }

    /// The data connection kept open by the last block-mode transfer, if any.
    pub fn take_kept(&mut self) -> Option<Conn> {
        self.kept.take()
    }

    /// Keeps a block-mode data connection whose transfer ended well, for the next transfer.
    pub fn keep(&mut self, conn: Conn) {
        if self.block_mode() {
            self.kept = Some(conn);
        }
    }

    /// Switches to binary mode (TYPE I) unless already done on this connection: transfers and
    /// SIZE (RFC 3659 section 4) need it, and a tree transfer saves a round trip per file.
    pub fn binary(&mut self) -> Result<()> {
        if !self.binary {
            self.expect_success(&Command::Type(TransferType::Image), || {
                "cannot switch to binary mode (TYPE I)".into()
            })?;
            self.binary = true;
        }
        Ok(())
    }

    /// Sends a command and reads its reply, whatever it is.
    pub fn command(&mut self, cmd: &Command) -> Result<Reply> {
        self.send(cmd)?;
        self.read_reply()
    }

    /// Like [`Session::command`], but waits up to `wait` (at least the usual timeout) for the
    /// reply: for commands the server needs long for, such as hashing a big file.
    pub fn command_within(&mut self, cmd: &Command, wait: Duration) -> Result<Reply> {
        let usual = self.timeout;
        self.timeout = wait.max(usual);
        let reply = self.command(cmd);
        self.timeout = usual;
        reply
    }

    /// Sends a command and requires a 2xx reply; `what` names the step for the error.
    pub fn expect_success(&mut self, cmd: &Command, what: impl FnOnce() -> String) -> Result<Reply> {
        let reply = self.command(cmd)?;
        if reply.is_success() {
            Ok(reply)
        } else {
            Err(ServerError(reply)).context(what())
        }
    }

    /// Sends a command without reading the reply.
    pub fn send(&mut self, cmd: &Command) -> Result<()> {
        match cmd {
            Command::Pass(_) => log::debug!("> PASS ****"),
            cmd => log::debug!("> {}", sanitize(&cmd.to_string())),
        }
        self.ctrl.write_command(cmd).with_context(|| format!("cannot send {} to the server", cmd.verb()))
    }

    /// Sends several commands in one write without reading their replies: pipelining, which
    /// RFC 959 allows (the server answers them in order). Saves a round trip per command.
    pub fn send_pipelined(&mut self, cmds: &[&Command]) -> Result<()> {
        let mut bytes = Vec::new();
        for cmd in cmds {
            match cmd {
                Command::Pass(_) => log::debug!("> PASS ****"),
                cmd => log::debug!("> {}", sanitize(&cmd.to_string())),
            }
            bytes.extend_from_slice(&cmd.to_line());
        }
        let stream = self.ctrl.get_mut();
        stream.write_all(&bytes).and_then(|()| stream.flush()).context("cannot send commands to the server")
    }

    /// Reads one reply, waking every [`TICK`] to notice Ctrl-C, and failing after the timeout
    /// passes without a line from the server.
    pub fn read_reply(&mut self) -> Result<Reply> {
        let mut builder = ReplyBuilder::default();
        let mut started = false;
        let mut deadline = Instant::now() + self.timeout;
        loop {
            interrupt::check()?;
            match self.ctrl.read_line() {
                Ok(Some(line)) => {
                    started = true;
                    deadline = Instant::now() + self.timeout;
                    if let Some(reply) = builder.push_line(&line).context("the server sent a malformed reply")? {
                        for line in &reply.lines {
                            log::debug!("< {} {}", reply.code, sanitize(line));
                        }
                        return Ok(reply);
                    }
                }
                Ok(None) if started => bail!("the server closed the control connection in the middle of a reply"),
                Ok(None) | Err(ControlError::UnexpectedEof) | Err(ControlError::Closed) => {
                    bail!("the server closed the control connection")
                }
                Err(e) if e.is_timeout() => {
                    if Instant::now() >= deadline {
                        return Err(NoReply(self.timeout).into());
                    }
                }
                Err(ControlError::Io(e)) => return Err(e).context("control connection failed"),
                Err(e) => return Err(e).context("the server sent a malformed reply"),
            }
        }
    }

    /// Has the server sent something on the control connection? Waits at most one [`TICK`].
    /// EOF counts as something: [`Session::read_reply`] then reports the closed connection.
    pub fn reply_waiting(&mut self) -> Result<bool> {
        if self.ctrl.has_buffered() {
            return Ok(true);
        }
        match self.ctrl.get_mut().readable() {
            Ok(found) => Ok(found),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(e).context("control connection failed"),
        }
    }

    /// Is `path` a directory on the server? Asked only to explain a failure (a RETR refused):
    /// MLST when FEAT listed it, else CWD into it and back to where the session was.
    pub fn is_dir(&mut self, path: &str) -> Result<bool> {
        if self.features.mlst {
            let reply = self.command(&Command::Mlst(Some(path.to_owned())))?;
            // RFC 3659 section 7.2: the facts line starts with one space.
            let entry = reply.lines.iter().filter_map(|l| l.strip_prefix(' ')).find_map(|l| parse_mlsx(l).ok());
            return Ok(reply.is_success() && entry.is_some_and(|e| e.is_dir()));
        }
        let pwd = self.command(&Command::Pwd)?;
        let Some(here) = pwd.is_success().then(|| unquote_257(&pwd.text())).flatten() else {
            return Ok(false);
        };
        if !self.command(&Command::Cwd(path.to_owned()))?.is_success() {
            return Ok(false);
        }
        self.expect_success(&Command::Cwd(here), || "cannot return to the working directory".into())?;
        Ok(true)
    }

    /// Says goodbye; errors are ignored because the work is already done.
    pub fn quit(mut self) {
        if self.send(&Command::Quit).is_ok() {
            let _ = self.read_reply();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_features() {
        let reply = Reply::multi(
            211,
            vec![
                "Features:".into(),
                " EPRT".into(),
                " MLST type*;size*;modify*;".into(),
                " HASH SHA-1;SHA-256*;MD5".into(),
                " XCRC".into(),
                " XSHA256".into(),
                "End".into(),
            ],
        );
        let f = Features::parse(&reply);
        assert!(f.mlst);
        assert_eq!(f.hash, vec!["SHA-256", "SHA-1", "MD5"]);
        assert_eq!(f.hash_default.as_deref(), Some("SHA-256"));
        assert_eq!(f.x_hash, vec![Algo::Crc32, Algo::Sha256]);
        // Free text on the first and last lines is not a feature (RFC 2389 section 3.2).
        let reply = Reply::multi(211, vec!["MLST is great".into(), " SIZE".into(), "MLST".into()]);
        assert_eq!(Features::parse(&reply), Features::default());
    }

    #[test]
    fn login_debug_hides_the_password() {
        let login = Login {
            host: "h".into(),
            port: 21,
            user: "u".into(),
            password: Secret::new("hunter2"),
            timeout: Duration::from_secs(1),
            tls: None,
        };
        let shown = format!("{login:?}");
        assert!(!shown.contains("hunter2") && shown.contains("****"), "{shown}");
    }

    #[test]
    fn shows_server_errors_on_one_sanitised_line() {
        let e = ServerError(Reply::multi(550, vec!["first".into(), "no\x1b[2J such file".into()]));
        assert_eq!(e.to_string(), "550 first; no\\x1b[2J such file");
    }
}
