//! A small scripted FTP server for tests: it speaks just enough FTP for ftclient (login, FEAT,
//! TYPE, SIZE, EPSV/PASV, EPRT/PORT, REST, HASH, RETR, STOR, LIST, PWD/CWD, QUIT) and lets each
//! test decide what RETR and STOR do, so the test can misbehave on purpose (short transfers,
//! aborts, dropped connections, strangers on the data port). With [`Script::block`] it also
//! takes `MODE B`: the handlers then frame their data and may keep the data connection.

use common::command::EpsvArg;
use common::{Command, Control, Reply};
use socket2::{Domain, Socket, Type};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

/// How long the fake server waits for anything before giving up (so no test hangs on it).
const WAIT: Duration = Duration::from_secs(20);

/// Extra sessions every fake server accepts (see [`crate::support::ftclient_active`]).
const SPARE_SESSIONS: usize = 4;

/// One control connection, as the RETR handler sees it.
pub struct Conn {
    /// The control connection.
    pub ctrl: Control<TcpStream>,
    passive: Option<TcpListener>,
    active: Option<SocketAddr>,
    /// In block mode, the data connection the last transfer left open.
    kept: Option<TcpStream>,
    /// `MODE B` was accepted.
    pub block: bool,
    /// Which session this is (0 for the first client connection).
    pub session: usize,
}

impl Conn {
    /// Sends a reply.
    pub fn reply(&mut self, code: u16, text: &str) {
        self.ctrl.reply(code, text).expect("fake server: cannot send a reply");
    }

    /// Opens the data connection the client asked for: accepts a passive one or connects to
    /// the active address.
    pub fn open_data(&mut self) -> TcpStream {
        if let Some(kept) = self.kept.take() {
            return kept;
        }
        let stream = if let Some(listener) = self.passive.take() {
            listener.accept().expect("fake server: no passive data connection").0
        } else {
            let addr = self.active.take().expect("fake server: RETR without PORT/EPSV");
            TcpStream::connect_timeout(&addr, WAIT).expect("fake server: cannot connect to the client")
        };
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream
    }

    /// Block mode: keeps the data connection for the next transfer.
    pub fn keep(&mut self, data: TcpStream) {
        self.kept = Some(data);
    }

    /// The address the client announced with EPRT/PORT.
    pub fn active_addr(&self) -> Option<SocketAddr> {
        self.active
    }
}

/// What the fake server does besides RETR.
pub struct Script {
    /// The greeting lines (a multi-line 220 when more than one).
    pub greeting: Vec<&'static str>,
    /// FEAT lines (each with its leading space); `None` answers FEAT with 502.
    pub feat: Option<Vec<&'static str>>,
    /// Answer EPSV (else 500, forcing PASV).
    pub epsv: bool,
    /// Answer EPRT (else 500, forcing PORT).
    pub eprt: bool,
    /// The address a 227 reply claims (clients must ignore it).
    pub pasv_claims: Ipv4Addr,
    /// The SIZE answer; `None` answers 550.
    pub size: Option<u64>,
    /// The HASH answer text (`SHA-256 0-N hex name`); `None` answers 502.
    pub hash: Option<String>,
    /// The XSHA256 answer text (the hex digest); `None` answers 500.
    pub xsha256: Option<String>,
    /// The XCRC answer text (the hex digest); `None` answers 500.
    pub xcrc: Option<String>,
    /// Refuse `OPTS HASH` (501), so the server's default algorithm stays.
    pub refuse_opts_hash: bool,
    /// The LIST data.
    pub list: Vec<u8>,
    /// A directory tree for PWD, CWD and LIST: (absolute path, its LIST data, or `None` to
    /// answer LIST there with 550). When empty, CWD is refused and LIST sends `list`.
    pub dirs: Vec<(&'static str, Option<&'static str>)>,
    /// Accept `MODE B` (else 504): listings are then sent as blocks on a kept connection.
    pub block: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            greeting: vec!["fake ready"],
            feat: Some(vec![" EPRT", " EPSV", " SIZE", " REST STREAM"]),
            epsv: true,
            eprt: true,
            pasv_claims: Ipv4Addr::LOCALHOST,
            size: None,
            hash: None,
            xsha256: None,
            xcrc: None,
            refuse_opts_hash: false,
            list: Vec::new(),
            dirs: Vec::new(),
            block: false,
        }
    }
}

/// The RETR (and STOR) handler: gets the connection and the REST offset, and does whatever the
/// test wants.
pub type Retr = Box<dyn FnMut(&mut Conn, u64) + Send>;

/// A running fake server.
pub struct Fake {
    /// The control port on 127.0.0.1.
    pub port: u16,
    /// Every command line the server received, in order, across sessions (`PASS` hidden).
    pub log: mpsc::Receiver<String>,
}

impl Fake {
    /// Starts a server on 127.0.0.1 that serves `sessions` control connections one after another
    /// (and a few spare ones, for runs that are repeated after losing a data-port race).
    pub fn start(script: Script, sessions: usize, mut retr: Retr) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for session in 0..sessions + SPARE_SESSIONS {
                let Ok((stream, _)) = listener.accept() else { return };
                stream.set_read_timeout(Some(WAIT)).unwrap();
                let mut conn = Conn {
                    ctrl: Control::new(stream, 8192),
                    passive: None,
                    active: None,
                    kept: None,
                    block: false,
                    session,
                };
                serve(&script, &mut conn, &mut retr, &tx);
            }
        });
        Fake { port, log }
    }

    /// The commands received so far.
    pub fn commands(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

fn passive_listener() -> TcpListener {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into()).unwrap();
    socket.listen(4).unwrap();
    // On Linux accept() honours SO_RCVTIMEO, so a client that never connects cannot hang us.
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.into()
}

fn serve(script: &Script, conn: &mut Conn, retr: &mut Retr, log: &mpsc::Sender<String>) {
    let greeting = Reply::multi(220, script.greeting.iter().map(|s| s.to_string()).collect());
    conn.ctrl.write_reply(&greeting).unwrap();
    let mut rest = 0;
    let mut cwd = "/".to_owned();
    loop {
        let cmd = match conn.ctrl.read_command() {
            Ok(Some(Ok(cmd))) => cmd,
            Ok(Some(Err(e))) => {
                conn.reply(500, &e.to_string());
                continue;
            }
            Ok(None) | Err(_) => return,
        };
        let _ = log.send(match &cmd {
            Command::Pass(_) => "PASS ****".to_owned(),
            cmd => cmd.to_string(),
        });
        match cmd {
            Command::User(_) => conn.reply(331, "password please"),
            Command::Pass(_) => conn.reply(230, "logged in"),
            Command::Feat => match &script.feat {
                Some(lines) => {
                    let mut all = vec!["Features:".to_owned()];
                    all.extend(lines.iter().map(|l| l.to_string()));
                    all.push("End".to_owned());
                    conn.ctrl.write_reply(&Reply::multi(211, all)).unwrap();
                }
                None => conn.reply(502, "no FEAT"),
            },
            Command::Type(_) => conn.reply(200, "type set"),
            Command::Noop => conn.reply(200, "ok"),
            Command::Size(_) => match script.size {
                Some(n) => conn.reply(213, &n.to_string()),
                None => conn.reply(550, "no size for you"),
            },
            Command::Mode(m) if script.block && m == "B" => {
                conn.block = true;
                conn.reply(200, "Mode set to B.");
            }
            Command::Mode(_) => conn.reply(504, "stream only"),
            Command::Epsv(EpsvArg::Any) if script.epsv => {
                conn.kept = None;
                let listener = passive_listener();
                let port = listener.local_addr().unwrap().port();
                conn.passive = Some(listener);
                conn.reply(229, &common::hostport::format_229(port));
            }
            Command::Pasv => {
                conn.kept = None;
                let listener = passive_listener();
                let port = listener.local_addr().unwrap().port();
                conn.passive = Some(listener);
                let claimed = std::net::SocketAddrV4::new(script.pasv_claims, port);
                conn.reply(227, &common::hostport::format_227(claimed));
            }
            Command::Eprt(addr) if script.eprt => {
                conn.active = Some(addr);
                conn.reply(200, "EPRT ok");
            }
            Command::Port(addr) => {
                conn.active = Some(SocketAddr::V4(addr));
                conn.reply(200, "PORT ok");
            }
            Command::Rest(n) => {
                rest = n;
                conn.reply(350, &format!("Restarting at {n}."));
            }
            Command::Opts(arg) if script.refuse_opts_hash && arg.to_ascii_uppercase().starts_with("HASH") => {
                conn.reply(501, "cannot change the algorithm")
            }
            Command::Opts(_) => conn.reply(200, "ok"),
            Command::Xcrc(_) => match &script.xcrc {
                Some(hex) => conn.reply(250, hex),
                None => conn.reply(500, "no XCRC"),
            },
            Command::Hash(_) => match &script.hash {
                Some(text) => conn.reply(213, text),
                None => conn.reply(502, "no HASH"),
            },
            Command::Xsha256(_) => match &script.xsha256 {
                Some(hex) => conn.reply(250, hex),
                None => conn.reply(500, "no XSHA256"),
            },
            Command::Pwd if !script.dirs.is_empty() => conn.reply(257, &format!("\"{cwd}\" is the directory")),
            Command::Cwd(path) if !script.dirs.is_empty() => {
                let target = match path.as_str() {
                    "." => cwd.clone(),
                    p if p.starts_with('/') => p.to_owned(),
                    p => format!("{}/{}", cwd.trim_end_matches('/'), p.trim_end_matches('/')),
                };
                if script.dirs.iter().any(|(dir, _)| *dir == target) {
                    cwd = target;
                    conn.reply(250, "ok");
                } else {
                    conn.reply(550, "no such directory");
                }
            }
            Command::List(_) | Command::Nlst(_) => {
                let body = match script.dirs.iter().find(|(dir, _)| *dir == cwd) {
                    None if script.dirs.is_empty() => Some(&script.list[..]),
                    Some((_, Some(list))) => Some(list.as_bytes()),
                    _ => None,
                };
                let Some(body) = body else {
                    conn.reply(550, "cannot list this directory");
                    continue;
                };
                conn.reply(150, "here it comes");
                let mut data = conn.open_data();
                if conn.block {
                    data.write_all(&blocks(body)).unwrap();
                    conn.keep(data);
                    conn.reply(250, "done, connection kept");
                } else {
                    data.write_all(body).unwrap();
                    drop(data);
                    conn.reply(226, "done");
                }
            }
            Command::Retr(_) | Command::Stor(_) => {
                retr(conn, rest);
                rest = 0;
            }
            Command::Quit => {
                conn.reply(221, "bye");
                return;
            }
            _ => conn.reply(500, "not in this script"),
        }
    }
}

/// `data` as block-mode blocks (RFC 959 3.4.2) of at most 1000 bytes, then the end-of-file
/// block.
pub fn blocks(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.chunks(1000) {
        out.extend_from_slice(&common::block::header(0, piece.len() as u16));
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&common::block::END);
    out
}
