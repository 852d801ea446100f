//! One control connection: read a command with `common::Control`, answer it in one dispatch
//! `match`, repeat. File bytes are moved by `data`, paths are resolved by `fs`.

use crate::data::{self, DataPlan, PassiveListener};
use crate::fs::FsError;
use crate::hash::{self, Algorithm, HashError};
use crate::listing::{self, ListKind};
use crate::server::Shared;
use common::command::{EpsvArg, TransferType};
use common::hostport::{canonical_ip, format_227, format_229};
use common::listing::{format_mdtm, format_mlsx, Facts};
use common::path::VirtualPath;
use common::text::sanitize;
use common::{Command, Control, ControlError, ParseError, Reply, MAX_COMMAND_LINE};
use log::{debug, info, warn};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod write;

/// The control socket as the session reads it: every read ends at the deadline of the command
/// line being read. A read timeout alone restarts with every byte, so a client dribbling one
/// byte at a time (never a whole line) would hold its connection, and a slot under
/// `--max-clients`/`--max-per-ip`, for ever; vsftpd bounds each command the same way.
struct ControlSocket {
    stream: TcpStream,
    /// When the line being read must be complete (`--idle-timeout` after the wait began).
    deadline: Instant,
}

impl Read for ControlSocket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no complete command within the idle timeout"));
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(buf)
    }
}

impl Write for ControlSocket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// What to do after a command.
enum Flow {
    Continue,
    Close,
}

/// The state of one control connection.
pub(crate) struct Session<'a> {
    ctrl: Control<ControlSocket>,
    peer: SocketAddr,
    /// The control socket's local address: passive listeners bind here.
    local: SocketAddr,
    shared: &'a Shared,
    /// Sanitised, for logs.
    user: Option<String>,
    logged_in: bool,
    cwd: VirtualPath,
    ascii: bool,
    /// The `REST` offset for the next transfer.
    rest: u64,
    data: Option<DataPlan>,
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
    /// a closed connection.
    pub(crate) fn run(stream: TcpStream, peer: SocketAddr, id: u64, shared: &'a Shared) {
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
            .and_then(|()| stream.set_write_timeout(Some(shared.config.idle_timeout)));
        if let Err(e) = timeouts {
            warn!("{peer}: session {id}: cannot set timeouts: {e}");
            return;
        }
        let mut session = Session {
            ctrl: Control::new(ControlSocket { stream, deadline: Instant::now() }, MAX_COMMAND_LINE),
            peer,
            local,
            shared,
            user: None,
            logged_in: false,
            cwd: VirtualPath::root(),
            ascii: true,
            rest: 0,
            data: None,
            epsv_all: false,
            facts: Facts::default(),
            hash_algorithm: Algorithm::Sha256,
            hash_chosen: false,
            aborted: false,
            rename_from: None,
            transfers: 0,
            bytes: 0,
        };
        let outcome = session.serve();
        info!(
            "{peer}: session {id} ended after {:.1} s, {} transfer(s), {} bytes: {outcome}",
            started.elapsed().as_secs_f64(),
            session.transfers,
            session.bytes,
        );
    }

    /// The command loop. Returns why the session ended, for the log.
    fn serve(&mut self) -> String {
        if let Err(e) = self.reply(220, "ft FTP server ready.") {
            return format!("cannot greet: {e}");
        }
        loop {
            self.ctrl.get_mut().deadline = crate::config::deadline_after(self.shared.config.idle_timeout);
            let read = self.ctrl.read_command();
            if self.stopping() {
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
                Err(e) if e.is_timeout() => {
                    let _ = self.reply(421, "Timeout: closing the control connection.");
                    return "idle timeout".into();
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

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
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
        if !self.logged_in && !allowed_before_login(&cmd) {
            self.reply(530, "Please login with USER and PASS.")?;
            return Ok(Flow::Continue);
        }
        // RNTO must come right after RNFR (RFC 959 4.1.3); any other command forgets it.
        let rename_from = self.rename_from.take();
        match cmd {
            Command::User(name) => {
                self.user = Some(sanitize(&name));
                self.logged_in = false;
                self.reply(331, "Please specify the password.")?;
            }
            Command::Pass(_) => {
                if self.logged_in {
                    self.reply(230, "Already logged in.")?;
                } else if let Some(user) = &self.user {
                    info!("{}: logged in as {user} (anonymous, {})", self.peer, self.access());
                    self.logged_in = true;
                    self.reply(230, "Login successful.")?;
                } else {
                    self.reply(503, "Login with USER first.")?;
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
            Command::Mode(m) if m.trim().eq_ignore_ascii_case("S") => self.reply(200, "Mode set to S.")?,
            Command::Mode(_) => self.reply(504, "Only MODE S (stream) is supported.")?,
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
                self.rest = 0;
                if std::mem::take(&mut self.aborted) {
                    self.reply(226, "ABOR successful.")?;
                } else {
                    self.reply(225, "No transfer to abort.")?;
                }
            }
            Command::Stat(None) => self.stat()?,
            Command::Stat(Some(arg)) => self.stat_path(&arg)?,
            Command::Auth(_) | Command::Pbsz(_) | Command::Prot(_) => {
                self.reply(502, "TLS is not supported by this server.")?
            }
            Command::Stor(arg) => self.store(write::StoreKind::Stor, Some(&arg))?,
            Command::Appe(arg) => self.store(write::StoreKind::Appe, Some(&arg))?,
            Command::Stou(arg) => self.store(write::StoreKind::Stou, arg.as_deref())?,
            Command::Mkd(arg) => self.mkd(&arg)?,
            Command::Rmd(arg) => self.rmd(&arg)?,
            Command::Dele(arg) => self.dele(&arg)?,
            Command::Rnfr(arg) => self.rnfr(&arg)?,
            Command::Rnto(arg) => self.rnto(rename_from, &arg)?,
            Command::Site(_) => self.reply(502, "SITE commands are not supported.")?,
            Command::Allo(_) => self.reply(202, "ALLO not needed.")?,
            Command::Rein => {
                self.user = None;
                self.logged_in = false;
                self.cwd = VirtualPath::root();
                self.ascii = true;
                self.rest = 0;
                self.data = None;
                self.epsv_all = false;
                self.facts = Facts::default();
                self.hash_algorithm = Algorithm::Sha256;
                self.hash_chosen = false;
                self.rename_from = None;
                self.reply(220, "Service ready for new user.")?;
            }
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
        self.shared.root.check_file_arg(arg, &vp).map_err(|e| self.path_error_text(arg, &e))?;
        Ok(vp)
    }

    /// The text of a path error, naming the path as the client gave it (the current directory
    /// when it gave none, as with a bare MLSD).
    fn path_error_text(&self, shown: &str, err: &FsError) -> String {
        let shown = if shown.is_empty() { self.cwd.to_string() } else { sanitize(shown) };
        format!("{shown}: {}.", capitalise(&err.to_string()))
    }

    /// Replies 550 for a path error.
    fn fs_error(&mut self, shown: &str, err: &FsError) -> io::Result<()> {
        let text = self.path_error_text(shown, err);
        debug!("{}: {text}", self.peer);
        self.reply(err.reply_code(), text)
    }

    /// The EPRT network protocol the control peer's address family allows (RFC 2428: 1 for
    /// IPv4, an IPv4-mapped IPv6 peer included, 2 for IPv6).
    fn peer_family(&self) -> u16 {
        if canonical_ip(self.peer.ip()).is_ipv4() {
            1
        } else {
            2
        }
    }

    fn cwd(&mut self, arg: &str) -> io::Result<()> {
        let vp = match self.vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        match self.shared.root.require_dir(&vp) {
            Ok(()) => {
                self.cwd = vp;
                self.reply(250, "Directory successfully changed.")
            }
            Err(e) => self.fs_error(arg, &e),
        }
    }

    /// The IP passive listeners bind to, and active connections come from: the control
    /// connection's local address (an IPv4-mapped address on a dual-stack socket becomes plain
    /// IPv4).
    fn passive_ip(&self) -> IpAddr {
        canonical_ip(self.local.ip())
    }

    fn open_passive(&mut self) -> Result<PassiveListener, io::Error> {
        self.data = None;
        PassiveListener::bind(self.passive_ip(), self.shared.config.pasv_ports.as_ref())
    }

    fn pasv(&mut self) -> io::Result<()> {
        if self.epsv_all {
            return self.reply(503, "EPSV ALL in effect: only EPSV is allowed.");
        }
        let IpAddr::V4(local) = self.passive_ip() else {
            return self.reply(425, "PASV needs an IPv4 connection, use EPSV.");
        };
        match self.open_passive() {
            Ok(listener) => {
                let shown = self.shared.config.pasv_address.unwrap_or(local);
                let text = format_227(std::net::SocketAddrV4::new(shown, listener.port()));
                self.data = Some(DataPlan::Passive(listener));
                self.reply(227, text)
            }
            Err(e) => {
                warn!("{}: cannot open a passive port: {e}", self.peer);
                self.reply(425, "Cannot open a passive data port.")
            }
        }
    }

    fn epsv(&mut self, arg: EpsvArg) -> io::Result<()> {
        let ours: u16 = if self.passive_ip().is_ipv4() { 1 } else { 2 };
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                self.data = None;
                return self.reply(200, "EPSV ALL ok.");
            }
            EpsvArg::Protocol(p) if p != ours => {
                return self.reply(522, format!("Network protocol not supported, use ({ours})"));
            }
            EpsvArg::Protocol(_) | EpsvArg::Any => {}
        }
        match self.open_passive() {
            Ok(listener) => {
                let text = format_229(listener.port());
                self.data = Some(DataPlan::Passive(listener));
                self.reply(229, text)
            }
            Err(e) => {
                warn!("{}: cannot open a passive port: {e}", self.peer);
                self.reply(425, "Cannot open a passive data port.")
            }
        }
    }

    /// PORT and EPRT. RFC 2577 section 3: the address must be the control peer's and the port
    /// must not be privileged, or the server could be used to attack third parties.
    fn port(&mut self, target: SocketAddr, verb: &str) -> io::Result<()> {
        self.data = None;
        if self.epsv_all {
            return self.reply(503, "EPSV ALL in effect: only EPSV is allowed.");
        }
        let peer_ip = canonical_ip(self.peer.ip());
        let target_ip = canonical_ip(target.ip());
        if verb == "EPRT" && target_ip.is_ipv4() != peer_ip.is_ipv4() {
            return self.reply(522, format!("Network protocol not supported, use ({})", self.peer_family()));
        }
        if target_ip != peer_ip || target.port() < 1024 {
            warn!("{}: refused {verb} to {target}: not the control peer or a privileged port", self.peer);
            return self.reply(500, "Illegal PORT command.");
        }
        self.data = Some(DataPlan::Active(target));
        self.reply(200, format!("{verb} command successful. Consider using EPSV."))
    }

    /// Opens the data connection planned by PASV/EPSV/PORT/EPRT, replying 425 when that fails.
    fn open_data(&mut self) -> io::Result<Option<TcpStream>> {
        let timeout = self.shared.config.data_timeout;
        let opened = match self.data.take() {
            None => return self.reply(425, "Use PORT, EPRT, PASV or EPSV first.").map(|()| None),
            Some(DataPlan::Passive(listener)) => listener.accept_from(self.peer.ip(), timeout, &self.shared.stop),
            Some(DataPlan::Active(target)) => data::connect(self.passive_ip(), target, timeout),
        };
        let stream = opened.and_then(|s| {
            s.set_write_timeout(Some(timeout))?;
            s.set_read_timeout(Some(timeout))?;
            Ok(s)
        });
        match stream {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                warn!("{}: no data connection: {e}", self.peer);
                self.reply(425, "Failed to establish the data connection.").map(|()| None)
            }
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

    fn retr(&mut self, arg: &str) -> io::Result<()> {
        let offset = std::mem::take(&mut self.rest);
        let vp = match self.file_vpath(arg) {
            Ok(vp) => vp,
            Err(text) => {
                self.data = None;
                return self.reply(550, text);
            }
        };
        let (mut file, meta) = match self.shared.root.open_file(&vp) {
            Ok(opened) => opened,
            Err(e) => {
                self.data = None;
                return self.fs_error(arg, &e);
            }
        };
        let size = meta.len();
        if offset > size {
            self.data = None;
            return self.reply(554, format!("Restart offset {offset} is beyond the end of the file ({size} bytes)."));
        }
        if offset > 0 && self.ascii {
            // A TYPE A client counts converted bytes (CRLF), the file has LF: its offset
            // would not be the file's (vsftpd refuses this too).
            self.data = None;
            return self.reply(550, ASCII_RESUME);
        }
        if let Err(e) = file.seek(SeekFrom::Start(offset)) {
            self.data = None;
            return self.fs_error(arg, &FsError::Io(e));
        }
        let Some(mut stream) = self.open_data()? else { return Ok(()) };
        let name = vp.file_name().unwrap_or("/").to_owned();
        if self.ascii {
            // The count on the wire differs from the file's (LF becomes CRLF): none is given.
            self.reply(150, format!("Opening ASCII mode data connection for {name}."))?;
        } else {
            self.reply(150, format!("Opening BINARY mode data connection for {name} ({} bytes).", size - offset))?;
        }
        let started = Instant::now();
        let announced = size - offset;
        let control = &self.ctrl.get_ref().stream;
        let mut abor = false;
        // Zero copy costs a loopback receiver more than it saves us (see `data::send_file`).
        let zero_copy = !stream.peer_addr().is_ok_and(|a| canonical_ip(a.ip()).is_loopback());
        let timeout = self.shared.config.data_timeout;
        let (n, sent) = data::send_file(&mut file, announced, &mut stream, self.ascii, zero_copy, timeout, || {
            abor = abor_pending(control);
            !abor && !self.shared.stop.load(Ordering::SeqCst)
        });
        self.aborted = abor;
        data::finish(stream);
        match sent {
            Ok(()) if n == announced => {
                self.log_transfer("RETR", &vp, n, started, "ok");
                self.reply(226, "Transfer complete.")
            }
            Ok(()) => {
                // The file shrank while it was being sent: the client must not take the short
                // copy for the whole file.
                self.log_transfer(
                    "RETR",
                    &vp,
                    n,
                    started,
                    &format!("short: the file shrank, {announced} bytes announced"),
                );
                self.reply(451, format!("File changed during the transfer: sent {n} of {announced} bytes."))
            }
            Err(e) => {
                self.log_transfer("RETR", &vp, n, started, &format!("failed: {e}"));
                if data::is_peer_error(&e) {
                    self.reply(426, "Connection closed; transfer aborted.")
                } else {
                    self.reply(451, "Local error reading the file; transfer aborted.")
                }
            }
        }
    }

    /// Entries for a listing of `vp`: a directory's contents, or the file itself.
    fn entries(&self, vp: &VirtualPath, kind: ListKind) -> Result<Vec<common::listing::Entry>, FsError> {
        let root = &self.shared.root;
        let meta = root.metadata(vp)?;
        if meta.is_dir() {
            Ok(root
                .read_dir(vp)?
                .into_iter()
                .map(|(name, meta)| listing::entry(name, &meta, self.listing_access()))
                .collect())
        } else if kind == ListKind::Mlsd {
            Err(FsError::NotADirectory)
        } else {
            Ok(vec![listing::entry(vp.file_name().unwrap_or("/").to_owned(), &meta, self.listing_access())])
        }
    }

    fn listing(&mut self, kind: ListKind, arg: Option<String>) -> io::Result<()> {
        self.rest = 0;
        let arg = match kind {
            ListKind::List | ListKind::Nlst => strip_ls_options(arg.as_deref().unwrap_or("")),
            ListKind::Mlsd => arg.as_deref().unwrap_or(""),
        }
        .to_owned();
        let vp = match self.vpath(&arg) {
            Ok(vp) => vp,
            Err(text) => {
                self.data = None;
                return self.reply(550, text);
            }
        };
        let body = match self.entries(&vp, kind) {
            Ok(entries) => listing::body(kind, &entries, self.facts, listing::now()),
            Err(e) => {
                self.data = None;
                if kind == ListKind::Mlsd && matches!(e, FsError::NotADirectory) {
                    // RFC 3659 section 7.2.1: MLSD of a non-directory is a 501.
                    return self.reply(501, format!("{}: not a directory.", sanitize(&arg)));
                }
                return self.fs_error(&arg, &e);
            }
        };
        let Some(mut stream) = self.open_data()? else { return Ok(()) };
        self.reply(150, "Here comes the directory listing.")?;
        let started = Instant::now();
        let sent = data::send_bytes(&body, &mut stream);
        data::finish(stream);
        let verb = match kind {
            ListKind::List => "LIST",
            ListKind::Nlst => "NLST",
            ListKind::Mlsd => "MLSD",
        };
        match sent {
            Ok(n) => {
                self.log_transfer(verb, &vp, n, started, "ok");
                self.reply(226, "Directory send OK.")
            }
            Err(e) => {
                self.log_transfer(verb, &vp, 0, started, &format!("failed: {e}"));
                self.reply(426, "Connection closed; transfer aborted.")
            }
        }
    }

    fn mlst(&mut self, arg: Option<String>) -> io::Result<()> {
        let arg = arg.unwrap_or_default();
        let vp = match self.vpath(&arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        match self.shared.root.metadata(&vp) {
            Ok(meta) => {
                let mut entry = listing::entry(vp.to_string(), &meta, self.listing_access());
                if vp == VirtualPath::root() {
                    // The root can be neither deleted nor renamed (RMD / and RNFR / are refused).
                    if let Some(perm) = &mut entry.perm {
                        perm.retain(|c| c != 'd' && c != 'f');
                    }
                }
                let lines =
                    vec![format!("Listing {vp}"), format!(" {}", format_mlsx(&entry, self.facts)), "End".into()];
                self.reply_multi(250, lines)
            }
            Err(e) => self.fs_error(&arg, &e),
        }
    }

    fn size(&mut self, arg: &str) -> io::Result<()> {
        let vp = match self.file_vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        match self.shared.root.metadata(&vp) {
            Ok(meta) if meta.is_file() => self.reply(213, meta.len().to_string()),
            Ok(_) => self.fs_error(arg, &FsError::NotAFile),
            Err(FsError::NotFound) if self.shared.config.writable => match self.partial_size(&vp) {
                // An interrupted upload: its size is where a resuming client continues.
                Some(size) => self.reply(213, size.to_string()),
                None => self.fs_error(arg, &FsError::NotFound),
            },
            Err(e) => self.fs_error(arg, &e),
        }
    }

    fn mdtm(&mut self, arg: &str) -> io::Result<()> {
        let vp = match self.file_vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        // Of files only, as SIZE (RFC 3659 section 3; vsftpd and pyftpdlib refuse directories).
        match self.shared.root.metadata(&vp) {
            Ok(meta) if !meta.is_file() => self.fs_error(arg, &FsError::NotAFile),
            Ok(meta) => match listing::modified(&meta) {
                Some(t) => self.reply(213, format_mdtm(t)),
                None => self.reply(550, format!("{}: modification time unknown.", sanitize(arg))),
            },
            Err(e) => self.fs_error(arg, &e),
        }
    }

    /// `HASH path` (`213 <algorithm> 0-<size> <hex> <path>`) and the legacy `XSHA256 path` and
    /// friends (`250 <hex>`). Only regular files inside the root; at most `max_hash_jobs` at once
    /// (450 otherwise); anything the client sends meanwhile, or a hang-up, aborts the job.
    fn hash(&mut self, arg: &str, algorithm: Algorithm, legacy: bool) -> io::Result<()> {
        let vp = match self.file_vpath(arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        let (mut file, meta) = match self.shared.root.open_file(&vp) {
            Ok(opened) => opened,
            Err(e) => return self.fs_error(arg, &e),
        };
        let shared = self.shared;
        let Some(slot) = shared.hash_jobs.try_acquire() else {
            return self.reply(450, "Too many files are being hashed; try again later.");
        };
        let started = Instant::now();
        let control = &self.ctrl.get_ref().stream;
        let result = hash::digest(&mut file, algorithm, || !self.stopping() && !client_spoke(control));
        // Free the slot before replying, so a client that hears the reply can start another job.
        drop(slot);
        let verb = if legacy { format!("X{}", algorithm.name().replace('-', "")) } else { "HASH".to_owned() };
        match result {
            Ok((digest, len)) => {
                let label = format!("{verb} {}", algorithm.name());
                self.log_transfer(&label, &vp, len, started, "ok");
                let hex = hash::hex(&digest);
                if legacy {
                    self.reply(250, hex)
                } else {
                    // The range is the whole file: from 0 to its size (no RANG support).
                    self.reply(213, format!("{} 0-{} {hex} {arg}", algorithm.name(), meta.len()))
                }
            }
            Err(HashError::Aborted) => {
                self.log_transfer(&verb, &vp, 0, started, "aborted");
                self.reply(451, "Hashing aborted.")
            }
            Err(e) => {
                self.log_transfer(&verb, &vp, 0, started, &format!("failed: {e}"));
                self.reply(451, "Local error reading the file.")
            }
        }
    }

    fn stat(&mut self) -> io::Result<()> {
        let lines = vec![
            "FTP server status:".to_owned(),
            format!(" Connected to {}", self.peer),
            format!(" Logged in as {}", self.user.as_deref().unwrap_or("nobody")),
            format!(" TYPE: {}", if self.ascii { "ASCII" } else { "BINARY" }),
            format!(" Session timeout in seconds is {}", self.shared.config.idle_timeout.as_secs()),
            " Control connection is plain text".to_owned(),
            " Data connections will be plain text".to_owned(),
            format!(" Access: {}", self.access()),
            format!(" Hash jobs running: {} of {}", self.shared.hash_jobs.running(), self.shared.hash_jobs.max()),
            "End of status".to_owned(),
        ];
        self.reply_multi(211, lines)
    }

    /// `STAT path`: a LIST-style listing over the control connection (RFC 959 4.1.3).
    fn stat_path(&mut self, arg: &str) -> io::Result<()> {
        let arg = strip_ls_options(arg).to_owned();
        let vp = match self.vpath(&arg) {
            Ok(vp) => vp,
            Err(text) => return self.reply(550, text),
        };
        match self.entries(&vp, ListKind::List) {
            Ok(entries) => {
                let now = listing::now();
                let mut lines = vec![format!("Status of {}:", sanitize(&vp.to_string()))];
                lines.extend(entries.iter().map(|e| listing::line(ListKind::List, e, self.facts, now)));
                lines.push("End of status".to_owned());
                self.reply_multi(213, lines)
            }
            Err(e) => self.fs_error(&arg, &e),
        }
    }
}

/// Has the client sent something (or hung up) on the control connection? Used to abort a long
/// job: a peek in non-blocking mode, so nothing is consumed.
fn client_spoke(control: &TcpStream) -> bool {
    if control.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let spoke = !matches!(control.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    control.set_nonblocking(false).is_err() || spoke
}

/// The refusal of REST with a transfer in TYPE A.
pub(crate) const ASCII_RESUME: &str = "No support for resuming an ASCII transfer: use TYPE I.";

/// Is an ABOR waiting on the control connection? Looks without consuming (a non-blocking peek),
/// so the command is read and answered normally afterwards. Other commands do not stop a
/// transfer (RFC 959 allows e.g. STAT meanwhile); they wait their turn, and an ABOR behind
/// them (a client that sent NOOP during the download, then ABOR) is still seen.
fn abor_pending(control: &TcpStream) -> bool {
    if control.set_nonblocking(true).is_err() {
        return false;
    }
    let mut buf = [0u8; 1024];
    let peeked = control.peek(&mut buf);
    let _ = control.set_nonblocking(false);
    let Ok(n) = peeked else { return false };
    let mut pending = &buf[..n];
    // A Telnet IAC (the IP that precedes an urgent ABOR) or "ABOR" starting a line is enough
    // to know: a read stops at the urgent-data mark, so the peek may end inside the line.
    let starts_abor =
        |line: &[u8]| line.first() == Some(&0xff) || line.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"ABOR"));
    loop {
        match common::line::find_line(pending, buf.len()) {
            common::line::Line::Complete { line, consumed } => {
                if common::command::parse(line) == Ok(Command::Abor) || line.first() == Some(&0xff) {
                    return true;
                }
                pending = &pending[consumed..];
            }
            _ => return starts_abor(pending),
        }
    }
}

/// Drops `ls`-style options (`-la`, `-a -l`) that clients put before a LIST/NLST path; we
/// always list in one format.
fn strip_ls_options(arg: &str) -> &str {
    let mut rest = arg.trim_start();
    while rest.starts_with('-') {
        rest = rest.find(' ').map_or("", |i| rest[i..].trim_start());
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ls_options() {
        for (arg, expected) in
            [("", ""), ("-la", ""), ("-a -l", ""), ("-la sub dir", "sub dir"), ("sub", "sub"), ("  -l x", "x")]
        {
            assert_eq!(strip_ls_options(arg), expected, "{arg:?}");
        }
    }

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
