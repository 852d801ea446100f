//! Test fixtures: an in-process server on a loopback port over a temporary tree of awkward
//! files, a raw control-connection client, and external tools run with a timeout.

use common::hostport::{parse_227, parse_229};
use common::{Control, Reply, MAX_REPLY_LINE};
use ftserver::{Config, Server, ServerHandle};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long any external tool may run before the test kills it and fails.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes with every value, CR/LF/NUL runs and a deterministic pseudo-random tail.
pub fn awkward_bytes(len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = (0..=255u8).collect();
    out.extend_from_slice(b"\r\n\n\r\0\0\r\r\n");
    let mut x: u32 = 0x9e37_79b9;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.push((x >> 24) as u8);
    }
    out.truncate(len);
    out
}

/// The files every test server serves: (path relative to the root, contents).
pub fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("hello.txt", b"hello, world\n".to_vec()),
        ("lines.txt", b"one\ntwo\n\nthree\r\nfour".to_vec()),
        ("awkward.bin", awkward_bytes(300_000)),
        ("empty", Vec::new()),
        ("with space.txt", b"spaces in the name\n".to_vec()),
        ("ünïcødé 🚀.bin", awkward_bytes(4097)),
        ("sub/nested.txt", b"nested\n".to_vec()),
    ]
}

/// The files at the top of the root, as a sorted listing would name them.
pub const TOP_NAMES: [&str; 7] =
    ["awkward.bin", "empty", "hello.txt", "lines.txt", "sub", "with space.txt", "ünïcødé 🚀.bin"];

/// A server running in this process over a fresh temporary root. Dropping it stops the
/// server and deletes the files.
pub struct TestServer {
    /// `None` after an explicit shutdown.
    pub handle: Option<ServerHandle>,
    /// The served directory.
    pub root: tempfile::TempDir,
    /// A directory outside the root with a secret file; `escape` in the root links here.
    pub outside: tempfile::TempDir,
}

impl TestServer {
    /// A server on 127.0.0.1 with default limits.
    pub fn start() -> TestServer {
        Self::start_with("127.0.0.1", |_| {})
    }

    /// A server on `bind` (port 0), after `adjust` changed its configuration.
    pub fn start_with(bind: &str, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"top secret\n").unwrap();
        for (name, bytes) in fixtures() {
            let path = root.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("sub/secret-link")).unwrap();
        let ip: IpAddr = bind.parse().unwrap();
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let mut config = Config::new(root.path()).unwrap();
        config.data_timeout = Duration::from_secs(10);
        // An upload whose size was not announced waits at least a second by default for a
        // killed client's control FIN (see ARCHITECTURE.md); tests that upload hundreds of
        // files with curl and lftp wait less. `cutoff.rs` tests the default.
        config.unannounced_settle = Duration::from_millis(100);
        adjust(&mut config);
        let handle = Server::spawn(listener, config).unwrap();
        TestServer { handle: Some(handle), root, outside }
    }

    /// A server that accepts uploads (`--writable`), optionally replacing files too.
    pub fn writable(overwrite: bool) -> TestServer {
        Self::start_with("127.0.0.1", |c| {
            c.writable = true;
            c.overwrite = overwrite;
        })
    }

    /// Waits (bounded) until no session is open: the server has finished with every client.
    pub fn wait_idle(&self) {
        let deadline = std::time::Instant::now() + TOOL_TIMEOUT;
        while self.handle.as_ref().unwrap().active_sessions() > 0 {
            assert!(std::time::Instant::now() < deadline, "sessions still open after {TOOL_TIMEOUT:?}");
            std::thread::yield_now();
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().local_addr()
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// A raw client, connected and greeted.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr())
    }

    /// A raw client, logged in.
    pub fn login(&self) -> Raw {
        let mut raw = self.raw();
        raw.login();
        raw
    }

    /// A logged-in client that started a passive TYPE I download of `big.bin`, a sparse file of
    /// `len` bytes made here, and read its first `first` bytes; and the data connection.
    pub fn big_download_started(&self, len: u64, first: usize) -> (Raw, TcpStream) {
        std::fs::File::create(self.root.path().join("big.bin")).unwrap().set_len(len).unwrap();
        let mut raw = self.login();
        raw.expect("TYPE I", 200);
        let mut data = raw.epsv_connect();
        raw.expect("RETR big.bin", 150);
        data.read_exact(&mut vec![0u8; first]).unwrap();
        (raw, data)
    }
}

/// A hand-driven control connection for protocol edge cases.
pub struct Raw {
    /// The control stream and its buffer.
    pub ctrl: Control<TcpStream>,
    /// The greeting.
    pub greeting: Reply,
}

impl Raw {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw::over(TcpStream::connect(addr).unwrap())
    }

    /// Reads the greeting on a control connection made elsewhere (from another address).
    pub fn over(stream: TcpStream) -> Raw {
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut ctrl = Control::new(stream, MAX_REPLY_LINE);
        let greeting = ctrl.read_reply().unwrap();
        Raw { ctrl, greeting }
    }

    /// Sends a line (CRLF added) and reads the reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line.as_bytes());
        self.reply()
    }

    /// Sends raw bytes plus CRLF.
    pub fn send(&mut self, line: &[u8]) {
        // One write: two small ones would meet Nagle's algorithm and delayed ACKs (40 ms each).
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.ctrl.get_mut().write_all(&bytes).unwrap();
    }

    /// Reads one reply.
    pub fn reply(&mut self) -> Reply {
        self.ctrl.read_reply().unwrap()
    }

    /// Sends a command and asserts the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "{line} -> {reply:?}");
        reply
    }

    /// Reads one reply and asserts its code.
    pub fn expect_reply(&mut self, code: u16) -> Reply {
        let reply = self.reply();
        assert_eq!(reply.code, code, "{reply:?}");
        reply
    }

    /// USER + PASS.
    pub fn login(&mut self) {
        self.expect("USER anonymous", 331);
        self.expect("PASS guest@", 230);
    }

    /// The control connection's peer (the server).
    pub fn server_ip(&self) -> IpAddr {
        self.ctrl.get_ref().peer_addr().unwrap().ip()
    }

    /// Sends PASV and connects to the advertised port on the server's address.
    pub fn pasv_connect(&mut self) -> TcpStream {
        let reply = self.expect("PASV", 227);
        let port = parse_227(&reply.text()).unwrap().port();
        TcpStream::connect((self.server_ip(), port)).unwrap()
    }

    /// Sends EPSV and connects to the port.
    pub fn epsv_connect(&mut self) -> TcpStream {
        let reply = self.expect("EPSV", 229);
        let port = parse_229(&reply.text()).unwrap();
        TcpStream::connect((self.server_ip(), port)).unwrap()
    }

    /// Runs an upload command over a passive connection: 150, the bytes, then the final reply.
    pub fn passive_upload(&mut self, line: &str, bytes: &[u8]) -> Reply {
        let mut data = self.epsv_connect();
        self.expect(line, 150);
        data.write_all(bytes).unwrap();
        drop(data);
        self.reply()
    }

    /// Runs a transfer command over a passive connection: 150, the bytes, 226.
    pub fn passive_transfer(&mut self, line: &str) -> Vec<u8> {
        let mut data = self.epsv_connect();
        self.expect(line, 150);
        let mut bytes = Vec::new();
        data.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        data.read_to_end(&mut bytes).unwrap();
        let done = self.reply();
        assert_eq!(done.code, 226, "{line} -> {done:?}");
        bytes
    }
}

/// A child process killed (and reaped) when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` with piped output, killing it after `timeout`. Panics on timeout; a program
/// that is not installed fails the test with one line naming it and how to get it.
#[track_caller]
pub fn run_tool(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = match cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn() {
        Ok(child) => ChildGuard(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{}", missing(&cmd.get_program().to_string_lossy()))
        }
        Err(e) => panic!("cannot run {}: {e}", describe(cmd)),
    };
    let (tx, rx) = mpsc::channel();
    let readers: Vec<_> =
        [Box::new(child.0.stdout.take().unwrap()) as Box<dyn Read + Send>, Box::new(child.0.stderr.take().unwrap())]
            .into_iter()
            .enumerate()
            .map(|(i, mut pipe)| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let _ = pipe.read_to_end(&mut buf);
                    let _ = tx.send((i, buf));
                })
            })
            .collect();
    drop(tx);
    let mut outputs = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        match rx.recv_timeout(timeout) {
            Ok((i, buf)) => outputs[i] = buf,
            Err(_) => panic!("{} did not finish within {timeout:?}", describe(cmd)),
        }
    }
    for r in readers {
        r.join().unwrap();
    }
    let status = child.0.wait().unwrap();
    let [stdout, stderr] = outputs;
    Output { status, stdout, stderr }
}

/// The command line for messages, with long arguments (inline scripts) shortened.
fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        if arg.len() > 80 {
            out.push_str(" <script>");
        } else {
            out.push_str(&format!(" {arg:?}"));
        }
    }
    out
}

/// Runs a tool and asserts it succeeded; returns stdout as text.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> String {
    let out = run_tool(cmd, TOOL_TIMEOUT);
    assert!(
        out.status.success(),
        "{} failed with {}\nstdout:\n{}\nstderr:\n{}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts a downloaded file equals a fixture, byte for byte.
pub fn assert_same_file(downloaded: &Path, expected: &[u8]) {
    let got = std::fs::read(downloaded).unwrap_or_else(|e| panic!("{}: {e}", downloaded.display()));
    assert!(got == expected, "{}: {} bytes, expected {} bytes", downloaded.display(), got.len(), expected.len());
}

/// Percent-encodes a path for an ftp:// URL (keeps `/`).
pub fn url_path(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every file and directory under `dir`, relative, sorted, hidden names included; directories
/// end in `/`.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let rel = entry.path().strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &entry.path(), out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Is `::1` usable on this machine (some containers have no IPv6)?
pub fn ipv6_available() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// The peers the tests run (`peers::require("lftp")`) and the one-line failure when one is
/// missing.
#[path = "peers.rs"]
pub mod peers;
use peers::missing;
