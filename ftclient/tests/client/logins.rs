//! Named logins (--user with FTP_PASSWORD or --password-file, netrc, ftps:// URLs with a user)
//! against pyftpdlib's `TLS_FTPHandler` with TLS required on control and data connections, and
//! passwords that never reach the terminal, even at -vv.

use crate::certs::{Certs, Leaf};
use crate::ftps::{run_env, FailsSaying};
use crate::support::{require_python_module, spawn_with_port, ChildGuard, Run};
use crate::trees::{assert_same, build_tree, digest};
use std::path::Path;
use std::process::Command;

/// A password with a space, a quote and a percent sign, as netrc and URLs must carry it.
const PASSWORD: &str = "s3cret \"pw\" 100%";

/// Binds port 0, prints the port; alice may do everything in `root`.
const LAUNCHER: &str = r#"
import sys, logging
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
logging.basicConfig(level=logging.WARNING)
authorizer = DummyAuthorizer()
authorizer.add_user("alice", sys.argv[2], sys.argv[1], perm="elradfmwMT")
handler = TLS_FTPHandler
handler.certfile = sys.argv[3]
handler.keyfile = sys.argv[4]
handler.tls_control_required = True
handler.tls_data_required = True
handler.authorizer = authorizer
server = FTPServer(("127.0.0.1", 0), handler)
print(server.socket.getsockname()[1], flush=True)
server.serve_forever()
"#;

/// pyftpdlib with TLS serving `root` to alice.
fn start(root: &Path, leaf: &Leaf) -> (ChildGuard, u16) {
    require_python_module("pyftpdlib");
    require_python_module("OpenSSL");
    let scratch = tempfile::tempdir().unwrap();
    let script = scratch.path().join("launcher.py");
    std::fs::write(&script, LAUNCHER).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(root).arg(PASSWORD).arg(&leaf.cert).arg(&leaf.key);
    spawn_with_port(cmd)
}

/// Asserts that the password shows nowhere in what the run printed.
fn no_password(run: &Run) {
    for secret in [PASSWORD, "s3cret"] {
        assert!(!run.stderr.contains(secret) && !run.out().contains(secret), "password printed: {run:?}");
    }
}

#[test]
fn pyftpdlib_tls_handler_with_a_user_from_ftp_password() {
    let certs = Certs::new();
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = start(root.path(), &certs.good);
    let (port, ca) = (port.to_string(), certs.ca.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let env = [("FTP_PASSWORD", PASSWORD)];
    let run = |more: &[&str]| {
        run_env(
            dir.path(),
            &[&["127.0.0.1", &port, "--tls", "--cacert", ca, "--user", "alice"][..], more].concat(),
            &env,
        )
    };

    // Upload, with every command and reply logged: the password is not among them.
    let data = crate::support::bytes((2 << 20) + 11, 3);
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let put = run(&["-p", "data.bin", "-vv"]).ok();
    assert!(put.stderr.contains("> PASS ****"), "{}", put.stderr);
    assert!(put.stderr.contains("logging in as alice (password from FTP_PASSWORD)"), "{}", put.stderr);
    assert!(put.stderr.contains("> PROT P") && put.stderr.contains("resumed handshake"), "{}", put.stderr);
    no_password(&put);
    assert_eq!(std::fs::read(root.path().join("data.bin")).unwrap(), data);

    // An interrupted upload and download continue over TLS.
    std::fs::write(dir.path().join("part.bin"), &data[..700_000]).unwrap();
    run(&["-p", "part.bin"]).ok();
    std::fs::write(dir.path().join("part.bin"), &data).unwrap();
    run(&["-p", "part.bin", "--resume"]).ok();
    assert_eq!(std::fs::read(root.path().join("part.bin")).unwrap(), data);
    std::fs::write(dir.path().join(".data.bin.ftpart"), &data[..123_456]).unwrap();
    let back = run(&["-g", "data.bin", "-o", "data.bin", "--resume"]).ok();
    assert!(back.stderr.contains("of them now"), "{}", back.stderr);
    assert_eq!(std::fs::read(dir.path().join("data.bin")).unwrap(), data);

    // A tree each way with parallel connections, each with its own TLS session.
    build_tree(&dir.path().join("tree"), 40);
    let expected = digest(&dir.path().join("tree"));
    let up = run(&["-r", "-p", "tree", "--parallel", "3"]).ok();
    assert!(up.stderr.contains("uploaded 48 of 48 files"), "{}", up.stderr);
    assert_same(&digest(&root.path().join("tree")), &expected, "pyftpdlib's copy");
    let down = run(&["-r", "-g", "tree", "-o", "copy", "--parallel", "3"]).ok();
    assert!(down.stderr.contains("downloaded 48 of 48 files"), "{}", down.stderr);
    assert_same(&digest(&dir.path().join("copy")), &expected, "the downloaded copy");
    let listed = run(&["-l"]).ok();
    assert_eq!(listed.out(), "data.bin\npart.bin\ntree/\n");

    // A wrong password: the server's reply, not the password.
    let wrong = run_env(
        dir.path(),
        &["127.0.0.1", &port, "--tls", "--cacert", ca, "--user", "alice", "-l", "-vv"],
        &[("FTP_PASSWORD", "s3cret guess")],
    );
    let wrong = wrong.fails_saying("login as alice failed: 530");
    no_password(&wrong);
}

#[test]
fn netrc_password_files_and_urls_supply_the_login() {
    let certs = Certs::new();
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("a.txt"), b"for alice\n").unwrap();
    let (_server, port) = start(root.path(), &certs.good);
    let (port, ca) = (port.to_string(), certs.ca.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let tls = ["--tls", "--cacert", ca];

    // $NETRC, with the password quoted as curl writes it; no --user needed.
    let netrc = dir.path().join("netrc");
    std::fs::write(&netrc, "machine elsewhere login bob password nope\nmachine 127.0.0.1 login alice password \"s3cret \\\"pw\\\" 100%\"\n").unwrap();
    let netrc_env = [("NETRC", netrc.to_str().unwrap())];
    let listed = run_env(dir.path(), &[&["127.0.0.1", &port, "-l", "-v"][..], &tls].concat(), &netrc_env).ok();
    assert_eq!(listed.out(), "a.txt\n");
    assert!(listed.stderr.contains("logging in as alice (password from netrc)"), "{}", listed.stderr);
    no_password(&listed);
    // ~/.netrc when NETRC is not set (HOME is the run's directory).
    std::fs::copy(&netrc, dir.path().join(".netrc")).unwrap();
    run_env(dir.path(), &[&["127.0.0.1", &port, "-l"][..], &tls].concat(), &[]).ok();
    std::fs::remove_file(dir.path().join(".netrc")).unwrap();

    // Without a netrc entry the login is anonymous, which this server does not have.
    let anonymous = run_env(dir.path(), &[&["127.0.0.1", &port, "-l", "-v"][..], &tls].concat(), &[]);
    assert!(anonymous.stderr.contains("logging in as anonymous"), "{}", anonymous.stderr);
    anonymous.fails_saying("login as anonymous failed: 530");

    // --password-file, and a user named in an ftp:// URL with the password from FTP_PASSWORD.
    let file = dir.path().join("pw");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let args = [
        &["127.0.0.1", &port, "-g", "a.txt", "--user", "alice", "--password-file"][..],
        &[file.to_str().unwrap()],
        &tls,
    ]
    .concat();
    run_env(dir.path(), &args, &[]).ok();
    assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"for alice\n");
    let url = format!("ftp://alice@127.0.0.1:{port}/a.txt");
    run_env(dir.path(), &[&[url.as_str(), "-o", "url.txt"][..], &tls].concat(), &[("FTP_PASSWORD", PASSWORD)]).ok();
    assert_eq!(std::fs::read(dir.path().join("url.txt")).unwrap(), b"for alice\n");
}

#[test]
fn a_tls_only_server_refuses_a_clear_text_login() {
    // pyftpdlib requires TLS before USER: without --tls the login fails (before PASS), and
    // nothing printed names the password.
    let certs = Certs::new();
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = start(root.path(), &certs.good);
    let dir = tempfile::tempdir().unwrap();
    let run = run_env(
        dir.path(),
        &["127.0.0.1", &port.to_string(), "-l", "--user", "alice", "-vv"],
        &[("FTP_PASSWORD", PASSWORD)],
    );
    no_password(&run);
    run.fails_saying("login as alice failed");
}
