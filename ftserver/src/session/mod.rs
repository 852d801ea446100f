//! One control connection: read a command with `common::Control`, answer it in one dispatch
//! `match` (here), repeat. The handlers live beside it by concern: `login` (USER, PASS, REIN),
//! `dataconn` (PASV, EPSV, PORT, EPRT and opening the data connection), `read` (RETR and
//! listings), `info` (SIZE, MDTM, MLST, HASH, STAT), `write` (uploads and tree changes), and
//! `control` (watching the control connection during a transfer). File bytes are moved by
//! `crate::data`; files are reached only through `crate::storage`.

use crate::context::Context;
use crate::data::DataPlan;
use crate::hash::Algorithm;
use crate::listing::ListKind;
use crate::storage::StorageError;
use common::command::TransferType;
use common::listing::Facts;
use common::path::VirtualPath;
use common::text::sanitize;
use common::{Command, Control, ControlError, ParseError, Reply, MAX_COMMAND_LINE};
use control::{ControlConn, ControlSocket};
use log::{debug, info, warn};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

mod control;
mod dataconn;
mod info;
mod login;
mod read;
mod secure;
mod write;

/// Why waiting for a command ended without one.
enum Expired {
    /// Nothing for `--idle-timeout`.
    Idle,
    /// No login within `--login-timeout` of connecting (NOOPs do not extend it).
    Login,
}

/// What to do after a command.
enum Flow {
    Continue,
    Close,
}

/// The state of one control connection.
pub(crate) struct Session<'a> {
    ctrl: ControlConn,
    peer: SocketAddr,
    /// The control socket's local address: passive listeners bind here.
    local: SocketAddr,
    ctx: &'a Context,
    /// The name given with USER, waiting for PASS.
    user: Option<String>,
    /// Who logged in; `None` before PASS.
    principal: Option<crate::auth::Principal>,
    /// When a client that has not logged in is disconnected.
    login_deadline: Instant,
    cwd: VirtualPath,
    ascii: bool,
    /// The `REST` offset for the next transfer.
    rest: u64,
    /// The size the client announced with `ALLO` for the next upload.
    announced: Option<u64>,
    data: Option<DataPlan>,
    /// `MODE B`: transfers are framed as blocks (RFC 959 3.4.2) and their data connection
    /// outlives them.
    block: bool,
    /// In block mode, the data connection of the last complete transfer (secured already when
    /// `PROT P`), which the next transfer uses unless PASV, EPSV, PORT or EPRT came since.
    /// Dropping it closes it (without a TLS `close_notify`: in block mode a connection's end
    /// says nothing about any file).
    kept: Option<crate::conn::Conn>,
    /// After `EPSV ALL` only EPSV may set up data connections (RFC 2428 section 4).
    epsv_all: bool,
    facts: Facts,
    /// The algorithm for `HASH`, chosen with `OPTS HASH`.
    hash_algorithm: Algorithm,
    /// The client chose `hash_algorithm` itself: it means to check its transfers, so uploads
    /// are hashed as they arrive and its `HASH` afterwards needs no second read of the file.
    hash_chosen: bool,
    /// The last transfer was stopped by an ABOR, which is still to be answered with 226.
    aborted: bool,
    /// The path named by the RNFR just before, for RNTO.
    rename_from: Option<VirtualPath>,
    transfers: u64,
    bytes: u64,
    /// Refused logins in this session (the delay grows with them).
    failures: u32,
    /// The control connection's TLS session, after `AUTH TLS` (or implicit TLS).
    tls: Option<crate::tls::SessionTls>,
    /// `PROT P`: data connections are encrypted.
    protect: bool,
}

/// The commands a client may send before logging in (lftp sends FEAT first, FileZilla AUTH).
fn allowed_before_login(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::User(_)
            | Command::Pass(_)
            | Command::Acct(_)
            | Command::Quit
            | Command::Noop
            | Command::Syst
            | Command::Feat
            | Command::Opts(_)
            | Command::Help(_)
            | Command::Auth(_)
            | Command::Pbsz(_)
            | Command::Prot(_)
            | Command::Rein
    )
}

/// The reply to a line that did not parse; `family` is the EPRT/EPSV network protocol this
/// connection can use (1 for IPv4, 2 for IPv6).
fn parse_error_reply(err: &ParseError, family: u16) -> Reply {
    match err {
        // RFC 4217 section 6: the control connection stays encrypted once it is.
        ParseError::Unknown(verb) if verb == "CCC" => {
            Reply::new(534, "CCC refused: the control connection stays encrypted.")
        }
        ParseError::Unknown(verb) => Reply::new(500, format!("Unknown command {verb}.")),
        // RFC 2428 section 2: an unsupported EPRT network protocol gets 522.
        ParseError::BadArgument { verb: "EPRT", reason }
            if *reason == common::hostport::HostPortError::EprtProtocol.to_string() =>
        {
            Reply::new(522, format!("Network protocol not supported, use ({family})"))
        }
        other => Reply::new(other.reply_code(), format!("{}.", capitalise(&other.to_string()))),
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

const HELP_LINES: [&str; 4] = [
    " ABOR ACCT ALLO APPE AUTH CDUP CWD  DELE EPRT EPSV FEAT HASH HELP LIST MDTM",
    " MKD  MLSD MLST MODE NLST NOOP OPTS PASS PASV PBSZ PORT PROT PWD  QUIT REIN",
    " REST RETR RMD  RNFR RNTO SITE SIZE STAT STOR STOU STRU SYST TYPE USER XCRC",
    " XCUP XCWD XMD5 XMKD XPWD XRMD XSHA1 XSHA256",
];

/// A transfer rate for logs: bytes per second in binary units.
fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let per_sec = bytes as f64 / secs;
    let units = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
    let mut value = per_sec;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", units[unit])
}

impl<'a> Session<'a> {
    /// Runs one session to its end. Never panics on client input; all errors end in a reply or
    /// a closed connection. `implicit`: the connection came to the implicit-TLS port, and
    /// the TLS handshake comes first.
    pub(crate) fn run(stream: TcpStream, peer: SocketAddr, id: u64, ctx: &'a Context, implicit: bool) {
        let started = Instant::now();
        info!("{peer}: session {id} started");
        let local = match stream.local_addr() {
            Ok(a) => a,
            Err(e) => {
                warn!("{peer}: session {id}: cannot read the local address: {e}");
                return;
            }
        };
        // Each reply goes out in one write; without TCP_NODELAY a 226 right after a 150 would
        // wait for the client's delayed ACK of the 150 (Nagle's algorithm), 40 ms per transfer.
        // Clients send ABOR as urgent data (Python's ftplib sends the whole line with MSG_OOB);
        // with OOBINLINE the urgent byte stays in the stream instead of vanishing from the line.
        let timeouts = socket2::SockRef::from(&stream)
            .set_out_of_band_inline(true)
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| stream.set_write_timeout(Some(ctx.config.idle_timeout)));
        if let Err(e) = timeouts {
            warn!("{peer}: session {id}: cannot set timeouts: {e}");
            return;
        }
        let mut session = Session {
            ctrl: Control::new(ControlSocket::new(crate::conn::Conn::Plain(stream)), MAX_COMMAND_LINE),
            peer,
            local,
            ctx,
            user: None,
            principal: None,
            login_deadline: crate::config::deadline_after(ctx.config.login_timeout),
            cwd: VirtualPath::root(),
            ascii: true,
            rest: 0,
            announced: None,
            data: None,
            block: false,
            kept: None,
            epsv_all: false,
            facts: Facts::default(),
            hash_algorithm: Algorithm::Sha256,
            hash_chosen: false,
            aborted: false,
            rename_from: None,
            transfers: 0,
            bytes: 0,
            failures: 0,
            tls: None,
            protect: false,
        };
        if implicit {
            if let Err(why) = session.implicit_tls() {
                info!("{peer}: session {id} ended: {why}");
                return;
            }
        }
        let outcome = session.serve();
        info!(
            "{peer}: session {id} ended after {:.1} s, {} transfer(s), {} bytes: {outcome}",
            started.elapsed().as_secs_f64(),
            session.transfers,
            session.bytes,
        );
    }

    /// Waits for the next command until the idle timeout, or the login deadline before a
    /// login. Meanwhile a passive listener nobody connected to is closed at its expiry (the
    /// data timeout), so idle sessions do not hold ports of a small `--pasv-ports` range.
    fn next_command(&mut self) -> Result<Result<Option<Result<Command, ParseError>>, ControlError>, Expired> {
        let idle = crate::config::deadline_after(self.ctx.config.idle_timeout);
        loop {
            let login = self.principal.is_none().then_some(self.login_deadline).filter(|&l| l < idle);
            let mut deadline = login.unwrap_or(idle);
            let passive = match &self.data {
                Some(DataPlan::Passive(listener)) => Some(listener.expires(self.ctx.config.data_timeout)),
                _ => None,
            };
            let passive = passive.filter(|&p| p < deadline);
            if let Some(p) = passive {
                deadline = p;
            }
            self.ctrl.get_mut().deadline = deadline;
            match self.ctrl.read_command() {
                Err(e) if e.is_timeout() && passive.is_some() => {
                    debug!("{}: closed a passive listener nobody connected to", self.peer);
                    self.data = None;
                }
                Err(e) if e.is_timeout() => return Err(if login.is_some() { Expired::Login } else { Expired::Idle }),
                read => return Ok(read),
            }
        }
    }

    /// The command loop. Returns why the session ended, for the log.
    fn serve(&mut self) -> String {
        if let Err(e) = self.reply(220, "ft FTP server ready.") {
            return format!("cannot greet: {e}");
        }
        loop {
            let read = match self.next_command() {
                Ok(read) => read,
                Err(Expired::Idle) => {
                    let _ = self.reply(421, "Timeout: closing the control connection.");
                    return "idle timeout".into();
                }
                Err(Expired::Login) => {
                    let _ = self.reply(421, "Login timeout: closing the control connection.");
                    return "no login within the login timeout".into();
                }
            };
            if self.ctx.stopping() {
                let _ = self.reply(421, "Server shutting down.");
                return "server shutting down".into();
            }
            let result = match read {
                Ok(None) => return "client closed the connection".into(),
                Ok(Some(Ok(cmd))) => self.handle(cmd),
                Ok(Some(Err(err))) => {
                    debug!("{}: unparsable command: {err}", self.peer);
                    self.ctrl.write_reply(&parse_error_reply(&err, self.peer_family())).map(|()| Flow::Continue)
                }
                Err(ControlError::LineTooLong(limit)) => {
                    debug!("{}: command line over {limit} bytes", self.peer);
                    self.reply(500, format!("Command line too long (limit {limit} bytes).")).map(|()| Flow::Continue)
                }
                Err(e) => return format!("control connection failed: {e}"),
            };
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) => return "client quit".into(),
                Err(e) => return format!("control connection failed: {e}"),
            }
        }
    }

    fn reply(&mut self, code: u16, text: impl Into<String>) -> io::Result<()> {
        self.ctrl.reply(code, text)
    }

    fn reply_multi(&mut self, code: u16, lines: Vec<String>) -> io::Result<()> {
        self.ctrl.write_reply(&Reply::multi(code, lines))
    }

    /// The one dispatch `match`: every command has its arm.
    fn handle(&mut self, cmd: Command) -> io::Result<Flow> {
        match &cmd {
            Command::Pass(_) => debug!("{}: PASS ****", self.peer),
            other => debug!("{}: {}", self.peer, sanitize(&other.to_string())),
        }
        if self.principal.is_none() && !allowed_before_login(&cmd) {
            self.reply(530, "Please login with USER and PASS.")?;
            return Ok(Flow::Continue);
        }
        // RNTO must come right after RNFR (RFC 959 4.1.3); any other command forgets it.
        let rename_from = self.rename_from.take();
        match cmd {
            Command::User(name) => self.user(name)?,
            Command::Pass(password) => {
                if let Flow::Close = self.pass(&password)? {
                    return Ok(Flow::Close);
                }
            }
            Command::Acct(_) => self.reply(202, "ACCT not needed.")?,
            Command::Quit => {
                self.reply(221, "Goodbye.")?;
                return Ok(Flow::Close);
            }
            Command::Noop => self.reply(200, "NOOP ok.")?,
            Command::Syst => self.reply(215, "UNIX Type: L8")?,
            Command::Feat => self.feat()?,
            Command::Opts(arg) => self.opts(&arg)?,
            Command::Help(_) => {
                let mut lines = vec!["The following commands are recognized.".to_owned()];
                lines.extend(HELP_LINES.iter().map(|l| (*l).to_owned()));
                lines.push("Help OK.".to_owned());
                self.reply_multi(214, lines)?;
            }
            Command::Pwd => {
                let text = format!("{} is the current directory", self.cwd.quoted());
                self.reply(257, text)?;
            }
            Command::Cwd(arg) => self.cwd(&arg)?,
            Command::Cdup => self.cwd("..")?,
            Command::Type(TransferType::Ascii) => {
                self.ascii = true;
                self.reply(200, "Switching to ASCII mode.")?;
            }
            Command::Type(TransferType::Image) => {
                self.ascii = false;
                self.reply(200, "Switching to Binary mode.")?;
            }
            Command::Type(TransferType::Unsupported(t)) => {
                self.reply(504, format!("TYPE {} not supported, use A or I.", sanitize(&t)))?
            }
            Command::Mode(m) => self.mode(&m)?,
            Command::Stru(s) if s.trim().eq_ignore_ascii_case("F") => self.reply(200, "Structure set to F.")?,
            Command::Stru(_) => self.reply(504, "Only STRU F (file) is supported.")?,
            Command::Pasv => self.pasv()?,
            Command::Epsv(arg) => self.epsv(arg)?,
            Command::Port(addr) => self.port(SocketAddr::V4(addr), "PORT")?,
            Command::Eprt(addr) => self.port(addr, "EPRT")?,
            Command::Retr(arg) => self.retr(&arg)?,
            Command::List(arg) => self.listing(ListKind::List, arg)?,
            Command::Nlst(arg) => self.listing(ListKind::Nlst, arg)?,
            Command::Mlsd(arg) => self.listing(ListKind::Mlsd, arg)?,
            Command::Mlst(arg) => self.mlst(arg)?,
            Command::Size(arg) => self.size(&arg)?,
            Command::Mdtm(arg) => self.mdtm(&arg)?,
            Command::Rest(offset) => {
                self.rest = offset;
                self.reply(350, format!("Restarting at {offset}."))?;
            }
            Command::Abor => {
                // A download watches for ABOR and stops (answering 426); this is the second
                // reply RFC 959 asks for. Otherwise drop any prepared data connection.
                self.data = None;
                self.kept = None;
                self.rest = 0;
                if std::mem::take(&mut self.aborted) {
                    self.reply(226, "ABOR successful.")?;
                } else {
                    self.reply(225, "No transfer to abort.")?;
                }
            }
            Command::Stat(None) => self.stat()?,
            Command::Stat(Some(arg)) => self.stat_path(&arg)?,
            Command::Auth(mechanism) => {
                if let Flow::Close = self.auth(&mechanism)? {
                    return Ok(Flow::Close);
                }
            }
            Command::Pbsz(size) => self.pbsz(&size)?,
            Command::Prot(level) => self.prot(&level)?,
            Command::Stor(arg) => self.store(write::StoreKind::Stor, Some(&arg))?,
            Command::Appe(arg) => self.store(write::StoreKind::Appe, Some(&arg))?,
            Command::Stou(arg) => self.store(write::StoreKind::Stou, arg.as_deref())?,
            Command::Mkd(arg) => self.mkd(&arg)?,
            Command::Rmd(arg) => self.rmd(&arg)?,
            Command::Dele(arg) => self.dele(&arg)?,
            Command::Rnfr(arg) => self.rnfr(&arg)?,
            Command::Rnto(arg) => self.rnto(rename_from, &arg)?,
            Command::Site(_) => self.reply(502, "SITE commands are not supported.")?,
            Command::Allo(arg) => self.allo(&arg)?,
            Command::Rein => self.rein()?,
            Command::Hash(arg) => self.hash(&arg, self.hash_algorithm, false)?,
            Command::Xsha256(arg) => self.hash(&arg, Algorithm::Sha256, true)?,
            Command::Xsha1(arg) => self.hash(&arg, Algorithm::Sha1, true)?,
            Command::Xmd5(arg) => self.hash(&arg, Algorithm::Md5, true)?,
            Command::Xcrc(arg) => self.hash(&arg, Algorithm::Crc32, true)?,
        }
        Ok(Flow::Continue)
    }

    fn feat(&mut self) -> io::Result<()> {
        let mut lines = vec!["Features:".to_owned()];
        let mlst = format!("MLST {}", self.facts.feat_list());
        let hash = format!("HASH {}", Algorithm::feat_list(self.hash_algorithm));
        for feature in [
            "EPRT",
            "EPSV",
            &hash,
            "MDTM",
            &mlst,
            "PASV",
            "REST STREAM",
            "SIZE",
            "TVFS",
            "UTF8",
            "XCRC",
            "XMD5",
            "XSHA1",
            "XSHA256",
        ] {
            lines.push(format!(" {feature}"));
        }
        if self.ctx.config.tls.is_some() {
            lines.extend([" AUTH TLS", " PBSZ", " PROT"].map(str::to_owned));
        }
        lines.push("End".to_owned());
        self.reply_multi(211, lines)
    }

    fn opts(&mut self, arg: &str) -> io::Result<()> {
        let (name, value) = arg.trim().split_once(' ').unwrap_or((arg.trim(), ""));
        let value = value.trim();
        if name.eq_ignore_ascii_case("UTF8") {
            if value.is_empty() || value.eq_ignore_ascii_case("ON") {
                self.reply(200, "Always in UTF8 mode.")
            } else {
                self.reply(504, "UTF8 cannot be turned off.")
            }
        } else if name.eq_ignore_ascii_case("HASH") {
            // draft-bryan-ftpext-hash section 4: no argument asks for the current choice.
            if !value.is_empty() {
                match Algorithm::from_name(value) {
                    Some(algorithm) => {
                        self.hash_algorithm = algorithm;
                        self.hash_chosen = true;
                    }
                    None => return self.reply(501, "Unknown algorithm, current selection not changed."),
                }
            }
            self.reply(200, self.hash_algorithm.name())
        } else if name.eq_ignore_ascii_case("MLST") {
            self.facts = Facts::from_opts(value);
            let text = format!("MLST OPTS {}", self.facts.selected_list());
            self.reply(200, text)
        } else {
            self.reply(501, format!("Option {} not understood.", sanitize(name)))
        }
    }

    /// Resolves a client path argument against the current directory.
    fn vpath(&self, arg: &str) -> Result<VirtualPath, String> {
        self.cwd.join(arg).map_err(|e| format!("{}: {e}.", sanitize(arg)))
    }

    /// [`Session::vpath`] for the commands that act on a file: an argument ending in `/` or `/.`
    /// must name a directory (which the command then refuses as not a regular file).
    fn file_vpath(&self, arg: &str) -> Result<VirtualPath, String> {
        let vp = self.vpath(arg)?;
        crate::storage::check_file_arg(self.storage(), arg, &self.stored(&vp))
            .map_err(|e| self.path_error_text(arg, &e))?;
        Ok(vp)
    }

    /// The storage.
    fn storage(&self) -> &'a dyn crate::storage::Storage {
        &*self.ctx.storage
    }

    /// Where a path the client sees is in the storage: under the principal's root.
    fn stored(&self, vp: &VirtualPath) -> VirtualPath {
        match &self.principal {
            Some(who) => who.root.within(vp),
            None => vp.clone(),
        }
    }

    /// What the principal may do (nothing before a login).
    fn rights(&self) -> crate::auth::Rights {
        self.principal.as_ref().map_or(crate::auth::Rights::READ, |who| who.rights)
    }

    /// The text of a path error, naming the path as the client gave it (the current directory
    /// when it gave none, as with a bare MLSD).
    fn path_error_text(&self, shown: &str, err: &StorageError) -> String {
        let shown = if shown.is_empty() { self.cwd.to_string() } else { sanitize(shown) };
        format!("{shown}: {}.", capitalise(&err.to_string()))
    }

    /// Replies to a storage error with its code (`StorageError::reply_code`).
    fn storage_error(&mut self, shown: &str, err: &StorageError) -> io::Result<()> {
        let text = self.path_error_text(shown, err);
        debug!("{}: {text}", self.peer);
        self.reply(err.reply_code(), text)
    }

    fn cwd(&mut self, arg: &str) -> io::Result<()> {
        if self.denied(crate::auth::Perm::List)? {
            return Ok(());
        }
        let vp = match self.vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        match self.storage().require_dir(&self.stored(&vp)) {
            Ok(()) => {
                self.cwd = vp;
                self.reply(250, "Directory successfully changed.")
            }
            Err(e) => self.storage_error(arg, &e),
        }
    }

    fn log_transfer(&mut self, verb: &str, path: &VirtualPath, bytes: u64, started: Instant, outcome: &str) {
        let elapsed = started.elapsed();
        self.transfers += 1;
        self.bytes += bytes;
        info!(
            "{}: {verb} {}: {bytes} bytes in {:.3} s ({}), {outcome}",
            self.peer,
            sanitize(&path.to_string()),
            elapsed.as_secs_f64(),
            rate(bytes, elapsed)
        );
    }
}

/// The refusal of REST with a transfer in TYPE A.
const ASCII_RESUME: &str = "No support for resuming an ASCII transfer: use TYPE I.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rates() {
        assert_eq!(rate(0, Duration::from_secs(1)), "0.0 B/s");
        assert_eq!(rate(2048, Duration::from_secs(1)), "2.0 KiB/s");
        assert_eq!(rate(3 << 30, Duration::from_secs(1)), "3.0 GiB/s");
    }

    #[test]
    fn maps_parse_errors_to_replies() {
        let reply = parse_error_reply(&common::command::parse(b"EPRT |3|1.2.3.4|5000|").unwrap_err(), 1);
        assert_eq!((reply.code, reply.text()), (522, "Network protocol not supported, use (1)".to_owned()));
        assert_eq!(parse_error_reply(&ParseError::Unknown("XYZ".into()), 1).code, 500);
        assert_eq!(parse_error_reply(&ParseError::InvalidUtf8, 1).code, 500);
        assert_eq!(parse_error_reply(&ParseError::MissingArgument("RETR"), 1).code, 501);
    }
}
