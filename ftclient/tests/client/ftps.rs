//! ftclient over FTPS (RFC 4217) against vsftpd with `require_ssl_reuse=YES` (explicit and
//! implicit), with certificates it must refuse unless told otherwise, and against a server
//! without `AUTH TLS`, which must get no clear-text login.

use crate::certs::{Certs, Leaf};
use crate::support::{client_bin, ftclient, ftclient_active, wait_output, ChildGuard, Run, LIMIT};
use crate::trees::{assert_same, build_tree, digest, run_fresh};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

/// A running vsftpd with TLS required for anonymous logins and their data, and session reuse
/// required on data connections; anonymous users may upload new files and make directories.
struct Vsftpd {
    _guard: ChildGuard,
    _state: tempfile::TempDir,
    port: u16,
}

fn vsftpd(root: &Path, leaf: &Leaf, implicit: bool) -> Vsftpd {
    let extra = format!(
        "write_enable=YES\nanon_upload_enable=YES\nanon_mkdir_write_enable=YES\nanon_umask=022\n\
         ssl_enable=YES\nrsa_cert_file={cert}\nrsa_private_key_file={key}\nrequire_ssl_reuse=YES\n\
         allow_anon_ssl=YES\nforce_anon_logins_ssl=YES\nforce_anon_data_ssl=YES\n\
         ssl_ciphers=HIGH\nimplicit_ssl={implicit}\n",
        cert = leaf.cert.display(),
        key = leaf.key.display(),
        implicit = if implicit { "YES" } else { "NO" },
    );
    let (guard, port, state) = crate::vsftpd::launch(root, "127.0.0.1", &extra);
    Vsftpd { _guard: guard, _state: state, port }
}

/// [`Run::fails_with`] for runs that also log (`-v`, `--insecure`'s warning).
pub trait FailsSaying {
    /// Asserts a failure (exit 1) whose one error line (log lines aside) contains `needle`.
    fn fails_saying(self, needle: &str) -> Run;
}

impl FailsSaying for Run {
    fn fails_saying(self, needle: &str) -> Run {
        let run = self;
        assert_eq!(run.code(), 1, "expected exit 1: {run:?}");
        let logged = ["warn", "info", "debug", "trace"].map(|level| format!("ftclient: {level}: "));
        let errors: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("ftclient: ") && !logged.iter().any(|p| l.starts_with(p.as_str())))
            .collect();
        assert_eq!(errors.len(), 1, "expected one error line: {}", run.stderr);
        assert!(errors[0].contains(needle), "expected {needle:?} in {:?}", errors[0]);
        run
    }
}

/// Runs ftclient with `args` in `dir`, a private HOME (no netrc of the machine's user) and the
/// environment `env`.
pub fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(client_bin());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("FTP_PASSWORD")
        .env_remove("NETRC")
        .env("HOME", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        cmd.env(key, value);
    }
    wait_output(cmd.spawn().expect("cannot start ftclient"))
}

/// The server's `pub/` with a small and a 3 MiB file.
fn served_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("pub")).unwrap();
    std::fs::write(root.path().join("pub/a.txt"), b"hello over tls\n").unwrap();
    std::fs::write(root.path().join("pub/big.bin"), crate::support::bytes(3 << 20, 7)).unwrap();
    root
}

#[test]
fn vsftpd_requiring_session_reuse_serves_lists_gets_puts_and_trees_over_explicit_tls() {
    let certs = Certs::new();
    let root = served_root();
    let server = vsftpd(root.path(), &certs.good, false);
    let (port, ca) = (server.port.to_string(), certs.ca.to_str().unwrap());
    let tls = ["--tls", "--cacert", ca];
    let dir = tempfile::tempdir().unwrap();
    let args = |more: &[&str]| -> Vec<String> {
        ["127.0.0.1", port.as_str()].iter().chain(&tls).chain(more).map(|s| s.to_string()).collect()
    };
    let ftclient = |dir: &Path, args: &[String]| ftclient(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let ftclient_active = |dir: &Path, args: &[String], ip| {
        ftclient_active(dir, &args.iter().map(String::as_str).collect::<Vec<_>>(), ip)
    };

    let listed = ftclient(dir.path(), &args(&["-l", "--dir", "pub"])).ok();
    assert_eq!(listed.out(), "a.txt\nbig.bin\n");
    let (listed, _) = ftclient_active(dir.path(), &args(&["-l", "--dir", "pub"]), [127, 0, 0, 1].into());
    assert_eq!(listed.ok().out(), "a.txt\nbig.bin\n", "active mode");

    ftclient(dir.path(), &args(&["-g", "pub/big.bin"])).ok();
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), crate::support::bytes(3 << 20, 7));
    let (got, _) = ftclient_active(dir.path(), &args(&["-g", "pub/a.txt", "-o", "active.txt"]), [127, 0, 0, 1].into());
    got.ok();
    assert_eq!(std::fs::read(dir.path().join("active.txt")).unwrap(), b"hello over tls\n");

    // A tree: many uploads on each connection, every one resuming the control connection's
    // session (TLS 1.3 tickets are spent one per resumption), then back in both modes.
    let source = tempfile::tempdir().unwrap();
    build_tree(&source.path().join("tree"), 30);
    let expected = digest(&source.path().join("tree"));
    let tree = source.path().join("tree");
    let up = ftclient(dir.path(), &args(&["-r", "-p", tree.to_str().unwrap(), "--parallel", "2"])).ok();
    assert!(up.stderr.contains("uploaded 38 of 38 files"), "{}", up.stderr);
    assert_same(&digest(&root.path().join("tree")), &expected, "vsftpd's copy");
    for active in [false, true] {
        let more = [&tls[..], &["-r", "-g", "tree", "--parallel", "3"]].concat();
        let (back, down) = run_fresh("127.0.0.1", server.port, &more, active);
        let down = down.ok();
        assert!(down.stderr.contains("downloaded 38 of 38 files"), "{}", down.stderr);
        assert_same(&digest(&back.path().join("tree")), &expected, "the downloaded copy");
    }
}

#[test]
fn vsftpd_over_implicit_tls_with_ftps_urls() {
    let certs = Certs::new();
    let root = served_root();
    let server = vsftpd(root.path(), &certs.good, true);
    let (port, ca) = (server.port.to_string(), certs.ca.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ftps://127.0.0.1:{port}/pub/");
    let listed = ftclient(dir.path(), &[&url, "--cacert", ca]).ok();
    assert_eq!(listed.out(), "a.txt\nbig.bin\n");
    let url = format!("ftps://localhost:{port}/pub/a.txt");
    ftclient(dir.path(), &[&url, "--cacert", ca, "-o", "url.txt"]).ok();
    assert_eq!(std::fs::read(dir.path().join("url.txt")).unwrap(), b"hello over tls\n");
    let args = ["127.0.0.1", &port, "-g", "pub/big.bin", "--implicit-tls", "--pin", &certs.good.pin];
    ftclient(dir.path(), &args).ok();
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), crate::support::bytes(3 << 20, 7));
    // Plain FTP to an implicit port sends no login either: the server waits for a handshake.
    let plain = ftclient(dir.path(), &["127.0.0.1", &port, "-l", "--timeout", "2"]);
    plain.fails_saying("no greeting");
}

#[test]
fn certificates_are_refused_unless_the_user_accepts_them() {
    let certs = Certs::new();
    let root = served_root();
    let dir = tempfile::tempdir().unwrap();
    let ca = certs.ca.to_str().unwrap();

    let expired = vsftpd(root.path(), &certs.expired, false);
    let port = expired.port.to_string();
    let list = |more: &[&str]| ftclient(dir.path(), &[&["127.0.0.1", &port, "-l", "--tls"][..], more].concat());
    list(&["--cacert", ca])
        .fails_saying("the server's certificate has expired (use --cacert FILE, --pin sha256:HEX, or --insecure)");
    let insecure = list(&["--insecure"]).ok();
    assert!(insecure.stderr.contains("--insecure: the server's certificate is not checked"), "{}", insecure.stderr);
    assert_eq!(list(&["--pin", &certs.expired.pin]).ok().out(), "pub/\n");
    let wrong = list(&["--pin", &certs.good.pin]).fails_saying("not the pinned");
    assert!(wrong.stderr.contains(&certs.expired.pin) && wrong.stderr.contains(&certs.good.pin), "{}", wrong.stderr);

    let other = vsftpd(root.path(), &certs.other_name, false);
    let port = other.port.to_string();
    let list = |more: &[&str]| ftclient(dir.path(), &[&["127.0.0.1", &port, "-l", "--tls"][..], more].concat());
    list(&["--cacert", ca]).fails_saying("the server's certificate is for another host name");
    // The system's roots (here: a store of one unrelated certificate) did not sign it.
    let system = run_env(
        dir.path(),
        &["127.0.0.1", &port, "-l", "--tls"],
        &[("SSL_CERT_FILE", certs.good.cert.to_str().unwrap()), ("SSL_CERT_DIR", "/nonexistent")],
    );
    system.fails_saying("the server's certificate is not signed by a trusted authority");
    assert_eq!(list(&["--pin", &certs.other_name.pin]).ok().out(), "pub/\n");
}

/// What a server that does not do `AUTH TLS` heard: every line the client sent.
fn refusing_server(answer_auth: &'static str) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heard = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        sock.write_all(b"220 plain only\r\n").unwrap();
        let mut lines = Vec::new();
        let mut reader = BufReader::new(sock.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let text = line.trim_end().to_owned();
            line.clear();
            if text.starts_with("AUTH") {
                sock.write_all(answer_auth.as_bytes()).unwrap();
            }
            lines.push(text);
        }
        lines
    });
    (port, heard)
}

#[test]
fn a_server_without_auth_tls_gets_no_clear_text_login() {
    let dir = tempfile::tempdir().unwrap();
    let (port, heard) = refusing_server("500 AUTH not understood\r\n");
    let run = run_env(
        dir.path(),
        &["127.0.0.1", &port.to_string(), "-l", "--tls", "--insecure", "--user", "ann"],
        &[("FTP_PASSWORD", "hunter2")],
    );
    run.fails_saying("the server refused AUTH TLS; not logging in without encryption (--tls): 500 AUTH not understood");
    assert_eq!(heard.join().unwrap(), ["AUTH TLS"]);

    // One that says yes and then speaks clear text fails the handshake, and hears nothing more.
    let (port, heard) = refusing_server("234 go ahead\r\n230 logged in, honest\r\n");
    let run = run_env(
        dir.path(),
        &["127.0.0.1", &port.to_string(), "-l", "--tls", "--insecure", "--user", "ann"],
        &[("FTP_PASSWORD", "hunter2")],
    );
    run.fails_saying("not logging in");
    assert_eq!(heard.join().unwrap(), ["AUTH TLS"]);
    // One that says yes and then never answers the handshake: timed out, nothing sent.
    let (port, heard) = refusing_server("234 go ahead\r\n");
    let run = run_env(
        dir.path(),
        &["127.0.0.1", &port.to_string(), "-l", "--tls", "--insecure", "--timeout", "3"],
        &[("FTP_PASSWORD", "hunter2")],
    );
    drop(run.fails_saying("tls on the control connection failed"));
    assert_eq!(heard.join().unwrap()[0], "AUTH TLS");
}
