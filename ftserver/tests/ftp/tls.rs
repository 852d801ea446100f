//! FTPS (RFC 4217) against real clients and a hand-driven rustls client: curl explicit
//! (`--ssl-reqd`) and implicit (`ftps://`), lftp with `ftp:ssl-force`, Python's `FTP_TLS`
//! (stock: refused for not resuming the session; a subclass that resumes: served), and the
//! refusals: garbage instead of a ClientHello, a stalled handshake, a data connection that does
//! not resume, plaintext injected after `AUTH TLS`, `--require-tls`, `CCC`. Also the server
//! builder with accounts and TLS that `accounts.rs` shares.

use crate::support::{peers, run_ok, run_tool, TOOL_TIMEOUT};
use common::hostport::parse_229;
use common::{Control, Reply, MAX_REPLY_LINE};
use ftserver::accounts::{Accounts, LoginPolicy, RootExists};
use ftserver::auth::{Access, Authenticator};
use ftserver::storage::{LocalStorage, Storage};
use ftserver::tls::{Identity, ServerTls, TlsSource};
use ftserver::{Config, Server, ServerHandle};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// What a [`Secure`] server is started with.
pub struct Setup {
    /// Accounts alice (write, root `alice`), bob (read, root `bob`) and carol (full, the
    /// whole tree), password NAME-pw; without them logins are anonymous.
    pub users: bool,
    /// With `users`: anonymous logins too (read-only).
    pub anonymous: bool,
    /// Anonymous logins may upload (`--writable`), without `users`.
    pub writable: bool,
    /// `--require-tls`.
    pub require_tls: bool,
    /// The login throttling.
    pub policy: LoginPolicy,
    /// `--data-timeout`, which is also the handshake deadline.
    pub data_timeout: Duration,
    /// `--idle-timeout`.
    pub idle_timeout: Duration,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            users: false,
            anonymous: false,
            writable: false,
            require_tls: false,
            policy: LoginPolicy::default(),
            data_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A server with a self-signed certificate, explicit and implicit TLS, over a temporary tree:
/// `alice/alice.txt`, `bob/bob.txt`, `big.bin`, `top.txt`.
pub struct Secure {
    /// `None` after [`Secure::stop`].
    pub handle: Option<ServerHandle>,
    /// The served tree.
    pub root: tempfile::TempDir,
    /// `cert.pem` (for `--cacert`) and `users.toml`.
    pub files: tempfile::TempDir,
    /// The server's certificate.
    pub cert: CertificateDer<'static>,
}

/// The users file of [`Setup::users`].
pub const USERS: [(&str, &str, &str); 3] =
    [("alice", "alice", "write"), ("bob", "bob", "read"), ("carol", ".", "full")];

/// A user's password in the test users file.
pub fn password(user: &str) -> String {
    format!("{user}-pw")
}

impl Secure {
    /// Starts a server as `setup` says.
    pub fn start(setup: Setup) -> Secure {
        let root = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("alice/alice.txt", &b"alice's file\n"[..]),
            ("bob/bob.txt", b"bob's secret\n"),
            ("top.txt", b"at the top\n"),
        ] {
            let path = root.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let identity = Identity::self_signed(&[]).unwrap();
        std::fs::write(files.path().join("cert.pem"), identity.certificate_pem()).unwrap();
        let cert = identity.certificate().clone();
        let tls = Arc::new(ServerTls::new(TlsSource::SelfSigned(identity)).unwrap());
        let mut config = Config::new(root.path()).unwrap();
        config.data_timeout = setup.data_timeout;
        config.idle_timeout = setup.idle_timeout;
        config.writable = setup.writable;
        config.tls = Some(tls);
        config.require_tls = setup.require_tls;
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(root.path()).unwrap());
        let auth = setup.users.then(|| {
            let path = files.path().join("users.toml");
            std::fs::write(&path, users_file(&USERS)).unwrap();
            let tree = Arc::clone(&storage);
            let exists: RootExists = Box::new(move |root| tree.require_dir(root).map_err(|e| e.to_string()));
            let anonymous = setup.anonymous.then_some(Access::Read);
            Arc::new(Accounts::load_checked(&path, anonymous, setup.policy.clone(), exists).unwrap())
                as Arc<dyn Authenticator>
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let implicit = TcpListener::bind("127.0.0.1:0").unwrap();
        let handle = Server::spawn_with_implicit(listener, Some(implicit), config, storage, auth).unwrap();
        Secure { handle: Some(handle), root, files, cert }
    }

    /// The explicit (AUTH TLS) address.
    pub fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().local_addr()
    }

    /// The implicit-TLS address.
    pub fn implicit(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().implicit_addr().unwrap()
    }

    /// The certificate as a PEM file.
    pub fn cert_pem(&self) -> PathBuf {
        self.files.path().join("cert.pem")
    }

    /// A client configuration that trusts the server's certificate, with its own session
    /// cache (so data connections made with it resume the control connection's session).
    pub fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(ftserver::tls::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A control connection upgraded with AUTH TLS, made with `config`.
    pub fn explicit(&self, config: &Arc<ClientConfig>) -> Tls {
        let tcp = TcpStream::connect(self.addr()).unwrap();
        tcp.set_read_timeout(Some(TOOL_TIMEOUT)).unwrap();
        {
            let mut plain = Control::new(&tcp, MAX_REPLY_LINE);
            assert_eq!(plain.read_reply().unwrap().code, 220);
            (&tcp).write_all(b"AUTH TLS\r\n").unwrap();
            assert_eq!(plain.read_reply().unwrap().code, 234);
            assert!(plain.pending().is_empty(), "nothing in clear after 234");
        }
        Tls::over(tcp, config)
    }
}

impl Drop for Secure {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
    }
}

/// A users file for `users` (name, root, access), passwords from [`password`].
pub fn users_file(users: &[(&str, &str, &str)]) -> String {
    users
        .iter()
        .map(|(name, root, access)| {
            let hash = ftserver::accounts::hash_password(&password(name));
            format!("[[user]]\nname = \"{name}\"\npassword = \"{hash}\"\nroot = \"{root}\"\naccess = \"{access}\"\n\n")
        })
        .collect()
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// A TLS control connection driven by hand.
pub struct Tls {
    /// The encrypted control stream and its buffer.
    pub ctrl: Control<StreamOwned<ClientConnection, TcpStream>>,
    config: Arc<ClientConfig>,
}

impl Tls {
    /// Starts TLS on `tcp` (the handshake happens with the first command).
    pub fn over(tcp: TcpStream, config: &Arc<ClientConfig>) -> Tls {
        let conn = ClientConnection::new(Arc::clone(config), server_name()).unwrap();
        Tls { ctrl: Control::new(StreamOwned::new(conn, tcp), MAX_REPLY_LINE), config: Arc::clone(config) }
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        let stream = self.ctrl.get_mut();
        stream.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        stream.flush().unwrap();
        self.ctrl.read_reply().unwrap()
    }

    /// Sends a command and asserts the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let reply = self.cmd(line);
        assert_eq!(reply.code, code, "{line} -> {reply:?}");
        reply
    }

    /// Logs in as `user` with its test password.
    pub fn login(&mut self, user: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {}", password(user)), 230);
    }

    /// EPSV and a TCP connection to the port.
    fn epsv(&mut self) -> TcpStream {
        let reply = self.expect("EPSV", 229);
        let port = parse_229(&reply.text()).unwrap();
        let data = TcpStream::connect(("127.0.0.1", port)).unwrap();
        data.set_read_timeout(Some(TOOL_TIMEOUT)).unwrap();
        data
    }

    /// Runs `line` over a `PROT P` data connection made with `config` (the control
    /// connection's own to resume its session); returns the bytes and the final reply.
    pub fn transfer_with(&mut self, line: &str, config: &Arc<ClientConfig>) -> (Vec<u8>, Reply) {
        let tcp = self.epsv();
        self.expect(line, 150);
        let conn = ClientConnection::new(Arc::clone(config), server_name()).unwrap();
        let mut data = StreamOwned::new(conn, tcp);
        let mut bytes = Vec::new();
        let _ = data.read_to_end(&mut bytes);
        (bytes, self.ctrl.read_reply().unwrap())
    }

    /// Runs `line` over a `PROT P` data connection that resumes the session.
    pub fn transfer(&mut self, line: &str) -> Vec<u8> {
        let config = Arc::clone(&self.config);
        let (bytes, reply) = self.transfer_with(line, &config);
        assert_eq!(reply.code, 226, "{line} -> {reply:?}");
        bytes
    }
}

fn curl() -> Command {
    peers::require("curl");
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "30", "--disable"]);
    cmd
}

#[test]
fn curl_explicit_and_implicit() {
    let server = Secure::start(Setup { users: true, ..Setup::default() });
    let explicit = format!("ftp://{}", server.addr());
    let cacert = server.cert_pem();
    let got = run_ok(
        curl()
            .args(["--ssl-reqd", "-u", "alice:alice-pw", "--cacert"])
            .arg(&cacert)
            .arg(format!("{explicit}/alice.txt")),
    );
    assert_eq!(got, "alice's file\n");
    // An upload over an encrypted data connection, then its listing from the implicit port.
    let upload = server.files.path().join("up.txt");
    std::fs::write(&upload, "uploaded over tls\n").unwrap();
    run_ok(
        curl()
            .args(["--ssl-reqd", "-u", "alice:alice-pw", "--cacert"])
            .arg(&cacert)
            .arg("-T")
            .arg(&upload)
            .arg(format!("{explicit}/up.txt")),
    );
    assert_eq!(std::fs::read_to_string(server.root.path().join("alice/up.txt")).unwrap(), "uploaded over tls\n");
    let names = run_ok(curl().args(["-k", "-l", "-u", "alice:alice-pw"]).arg(format!("ftps://{}/", server.implicit())));
    assert_eq!(names.lines().collect::<Vec<_>>(), ["alice.txt", "up.txt"]);
    // The certificate is checked: without --cacert or -k curl refuses the self-signed one.
    let untrusted = run_tool(
        curl().args(["--ssl-reqd", "-u", "alice:alice-pw"]).arg(format!("{explicit}/alice.txt")),
        TOOL_TIMEOUT,
    );
    assert!(!untrusted.status.success());
}

#[test]
fn lftp_with_ssl_forced() {
    peers::require("lftp");
    let server = Secure::start(Setup { users: true, require_tls: true, ..Setup::default() });
    let out = tempfile::tempdir().unwrap();
    let script = format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:verify-certificate no; set net:max-retries 1; \
         open -u bob,bob-pw -p {} 127.0.0.1; ls; get bob.txt -o {}/copy.txt",
        server.addr().port(),
        out.path().display()
    );
    let listing = run_ok(Command::new("lftp").args(["-c", &script]));
    assert!(listing.contains(" bob.txt"), "{listing}");
    assert_eq!(std::fs::read_to_string(out.path().join("copy.txt")).unwrap(), "bob's secret\n");
}

/// Python's stock `FTP_TLS` does not resume the control session on data connections, so with
/// reuse required its transfer is refused with 522; a subclass that passes the session works.
#[test]
fn python_ftplib_needs_session_reuse() {
    peers::require("python3");
    let server = Secure::start(Setup { users: true, ..Setup::default() });
    let script = r#"
import ftplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
class Reusing(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
for cls in (ftplib.FTP_TLS, Reusing):
    f = cls(context=ctx, timeout=30)
    f.connect("localhost", int(sys.argv[2]))
    f.login(sys.argv[1], sys.argv[1] + "-pw")
    f.prot_p()
    try:
        print(cls.__name__, "names", f.nlst())
    except (ssl.SSLError, OSError, ftplib.Error) as e:
        try:
            f.voidresp()
        except ftplib.error_perm as reply:
            print(cls.__name__, "refused", str(reply)[:3])
    f.quit()
"#;
    let out = run_ok(
        Command::new("python3").args(["-c", script, "carol", &server.addr().port().to_string()]).arg(server.cert_pem()),
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["FTP_TLS refused 522", "Reusing names ['alice', 'bob', 'top.txt']"],
        "{out}"
    );
}

#[test]
fn data_connections_must_resume_the_control_session() {
    let server = Secure::start(Setup { users: true, ..Setup::default() });
    let config = server.client();
    let mut tls = server.explicit(&config);
    tls.login("carol");
    tls.expect("PBSZ 0", 200);
    tls.expect("PROT P", 200);
    tls.expect("TYPE I", 200);
    assert_eq!(tls.transfer("RETR top.txt"), b"at the top\n");
    // A stranger's configuration (no session to resume) gets a full handshake: refused, no bytes.
    let (bytes, reply) = tls.transfer_with("RETR top.txt", &server.client());
    assert_eq!((bytes.len(), reply.code), (0, 522), "{reply:?}");
    // Garbage instead of a ClientHello on the data connection: 425, no bytes.
    let mut tcp = tls.epsv();
    tls.expect("RETR top.txt", 150);
    tcp.write_all(b"not tls at all\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer);
    assert!(!answer.windows(3).any(|w| w == b"top"), "{answer:?}");
    assert_eq!(tls.ctrl.read_reply().unwrap().code, 425);
    // The refusals do not end the session; the client's own connections still work.
    assert_eq!(tls.transfer("NLST"), b"alice\r\nbob\r\ntop.txt\r\n");
    let stat = tls.expect("STAT", 211).text();
    assert!(stat.contains("Control connection is encrypted (TLS 1.3)"), "{stat}");
    assert!(stat.contains("Data connections will be encrypted"), "{stat}");
}

#[test]
fn auth_tls_commands_and_require_tls() {
    let server = Secure::start(Setup { users: true, require_tls: true, ..Setup::default() });
    let mut plain = crate::support::Raw::connect(server.addr());
    let feat = plain.expect("FEAT", 211);
    for feature in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(feat.lines.iter().any(|l| l.trim() == feature), "{feature}: {feat:?}");
    }
    plain.expect("USER alice", 530);
    plain.expect("PBSZ 0", 503);
    plain.expect("PROT P", 503);
    plain.expect("AUTH KERBEROS", 504);
    let mut tls = server.explicit(&server.client());
    tls.expect("AUTH TLS", 503);
    tls.login("alice");
    tls.expect("PROT S", 536);
    tls.expect("PROT C", 200);
    // A clear data connection is refused before anything is opened.
    tls.expect("EPSV", 229);
    tls.expect("NLST", 521);
    tls.expect("CCC", 534);
    tls.expect("PROT P", 200);
    assert_eq!(tls.transfer("NLST"), b"alice.txt\r\n");
}

/// A client that sends something else than a ClientHello is dropped; the server goes on.
#[test]
fn garbage_instead_of_a_client_hello() {
    let server = Secure::start(Setup::default());
    for explicit in [true, false] {
        let mut tcp = if explicit {
            let mut raw = crate::support::Raw::connect(server.addr());
            raw.expect("AUTH TLS", 234);
            raw.ctrl.get_ref().try_clone().unwrap()
        } else {
            TcpStream::connect(server.implicit()).unwrap()
        };
        tcp.set_read_timeout(Some(TOOL_TIMEOUT)).unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // At most an alert comes back, then the end of the connection.
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer);
        assert!(answer.len() < 64 && !answer.starts_with(b"HTTP") && !answer.starts_with(b"2"), "{answer:?}");
    }
    let mut tls = server.explicit(&server.client());
    tls.login("anonymous");
}

/// A client that opens the implicit port and says nothing is timed out, and meanwhile others
/// are served.
#[test]
fn a_stalled_handshake_times_out_and_others_are_served() {
    let server = Secure::start(Setup { data_timeout: Duration::from_secs(2), ..Setup::default() });
    let mut stalled = TcpStream::connect(server.implicit()).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap(); // the start of a record, then silence
    let mut half = crate::support::Raw::connect(server.addr());
    half.expect("AUTH TLS", 234);
    let names = run_ok(curl().args(["-k", "-l"]).arg(format!("ftps://{}/", server.implicit())));
    assert_eq!(names.lines().collect::<Vec<_>>(), ["alice", "bob", "top.txt"]);
    stalled.set_read_timeout(Some(TOOL_TIMEOUT)).unwrap();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    let mut rest = Vec::new();
    let _ = half.ctrl.get_mut().read_to_end(&mut rest);
    assert!(half.ctrl.pending().is_empty() && !rest.starts_with(b"2"));
}

/// Bytes sent in clear behind `AUTH TLS` (a man in the middle's injection) are dropped, not
/// run after the upgrade.
#[test]
fn plaintext_injected_after_auth_tls_is_discarded() {
    let server = Secure::start(Setup { writable: true, ..Setup::default() });
    let tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(TOOL_TIMEOUT)).unwrap();
    {
        let mut plain = Control::new(&tcp, MAX_REPLY_LINE);
        assert_eq!(plain.read_reply().unwrap().code, 220);
        (&tcp).write_all(b"AUTH TLS\r\nUSER anonymous\r\nPASS x\r\nMKD injected\r\n").unwrap();
        assert_eq!(plain.read_reply().unwrap().code, 234);
    }
    let mut tls = Tls::over(tcp, &server.client());
    // Not logged in: the injected USER and PASS never ran, nor the MKD.
    tls.expect("PWD", 530);
    tls.login("anonymous");
    tls.expect("PWD", 257);
    assert!(!server.root.path().join("injected").exists());
}

/// The ABOR read-ahead and the per-command deadline read through TLS.
#[test]
fn abor_and_the_idle_deadline_work_over_tls() {
    let server = Secure::start(Setup { idle_timeout: Duration::from_secs(2), ..Setup::default() });
    std::fs::File::create(server.root.path().join("big.bin")).unwrap().set_len(1 << 30).unwrap();
    let config = server.client();
    let mut tls = server.explicit(&config);
    tls.login("anonymous");
    tls.expect("PROT P", 200);
    tls.expect("TYPE I", 200);
    let tcp = tls.epsv();
    tls.expect("RETR big.bin", 150);
    let conn = ClientConnection::new(Arc::clone(&config), server_name()).unwrap();
    let mut data = StreamOwned::new(conn, tcp);
    data.read_exact(&mut vec![0u8; 1 << 20]).unwrap();
    let stream = tls.ctrl.get_mut();
    stream.write_all(b"ABOR\r\n").unwrap();
    stream.flush().unwrap();
    let mut sink = vec![0u8; 1 << 16];
    while data.read(&mut sink).is_ok_and(|n| n > 0) {}
    assert_eq!(tls.ctrl.read_reply().unwrap().code, 426);
    assert_eq!(tls.ctrl.read_reply().unwrap().code, 226);
    // Half a command, then nothing: the deadline closes the session with 421.
    let stream = tls.ctrl.get_mut();
    stream.write_all(b"NO").unwrap();
    stream.flush().unwrap();
    assert_eq!(tls.ctrl.read_reply().unwrap().code, 421);
}

/// The binary: its TLS lines on stdout, its log lines on stderr.
struct Binary {
    child: crate::support::ChildGuard,
    stdout: Vec<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

/// Starts `ftserver ARGS 0` on 127.0.0.1 and reads `lines` ready lines.
fn binary(root: &std::path::Path, args: &[&str], lines: usize) -> Binary {
    use std::io::BufRead;
    let mut child = crate::support::ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_ftserver"))
            .args(["--bind", "127.0.0.1", "--root"])
            .arg(root)
            .args(args)
            .arg("0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let stdout = (0..lines)
        .map(|_| {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line.trim_end().to_owned()
        })
        .collect();
    let (tx, stderr) = std::sync::mpsc::channel();
    let pipe = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    Binary { child, stdout, stderr }
}

impl Binary {
    /// The address in ready line `i`.
    fn addr(&self, i: usize) -> SocketAddr {
        self.stdout[i].split(" on ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap()
    }

    /// Waits for a log line containing `text`.
    fn wait_for(&self, text: &str) -> String {
        loop {
            let line = self.stderr.recv_timeout(TOOL_TIMEOUT).unwrap_or_else(|_| panic!("no log line with {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }
}

#[test]
fn binary_self_signed_prints_its_fingerprint() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f.txt"), "over tls\n").unwrap();
    let server = binary(root.path(), &["--tls-self-signed", "--implicit-tls", "0", "--require-tls"], 3);
    assert!(
        server.stdout[0].ends_with("(anonymous, read-only; tls required; this machine only)"),
        "{:?}",
        server.stdout
    );
    assert!(server.stdout[1].contains(" over implicit tls on 127.0.0.1:"), "{:?}", server.stdout);
    let fingerprint = server.stdout[2].strip_prefix("ftserver: tls certificate sha256:").unwrap();
    assert!(fingerprint.len() == 64 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    let got = run_ok(curl().arg("-k").arg(format!("ftps://{}/f.txt", server.addr(1))));
    assert_eq!(got, "over tls\n");
    // Clear text is refused before the login.
    let clear = run_tool(curl().arg(format!("ftp://{}/f.txt", server.addr(0))), TOOL_TIMEOUT);
    assert!(!clear.status.success());
}

/// Writes a fresh certificate for localhost and 127.0.0.1 and its key as PEM files.
fn write_certificate(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ftserver::tls::pem("CERTIFICATE", made.cert.der())).unwrap();
    std::fs::write(&key, ftserver::tls::pem("PRIVATE KEY", &made.signing_key.serialize_der())).unwrap();
    (cert, key)
}

#[test]
fn binary_pem_files_and_sighup_reload() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f.txt"), "over tls\n").unwrap();
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (cert, key) = write_certificate(first.path());
    let old_cert = second.path().join("old.pem");
    std::fs::copy(&cert, &old_cert).unwrap();
    let args = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let server = binary(root.path(), &args, 2);
    let url = format!("ftp://{}/f.txt", server.addr(0));
    let fetch = |cacert: &std::path::Path| {
        run_tool(curl().arg("--ssl-reqd").arg("--cacert").arg(cacert).arg(&url), TOOL_TIMEOUT)
    };
    assert!(fetch(&cert).status.success());
    // A new certificate in the same files, then SIGHUP: new sessions get it.
    let (new_cert, new_key) = write_certificate(second.path());
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let pid = nix::unistd::Pid::from_raw(server.child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    server.wait_for("reloaded the certificate");
    assert!(fetch(&cert).status.success());
    assert!(!fetch(&old_cert).status.success(), "the old certificate is no longer served");
    // A broken key file on reload: the certificate in use stays.
    std::fs::write(&key, "not a key\n").unwrap();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    let kept = server.wait_for("kept the old certificate");
    assert!(kept.contains(key.to_str().unwrap()), "{kept}");
    assert!(fetch(&cert).status.success());
}

#[test]
fn binary_tls_usage_errors() {
    let root = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_certificate(dir.path());
    std::fs::write(&key, "-----BEGIN NOTHING-----\n").unwrap();
    let run = |args: &[&str]| {
        let out = run_tool(
            Command::new(env!("CARGO_BIN_EXE_ftserver")).arg("--root").arg(root.path()).args(args).arg("0"),
            TOOL_TIMEOUT,
        );
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with(&format!("ftserver: {}: ", key.display())) && err.lines().count() == 1, "{err}");
    for args in
        [&["--require-tls"][..], &["--implicit-tls", "0"], &["--tls-cert", cert.to_str().unwrap()], &["--anonymous"]]
    {
        let (code, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}
