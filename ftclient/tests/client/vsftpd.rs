//! ftclient against vsftpd (apt), started with a generated configuration on a loopback port.

use crate::scenarios::{self, Endpoint};
use crate::support::{free_port, require, ChildGuard, Tree, LIMIT};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts vsftpd serving `tree` anonymously on `ip` and waits (bounded) until it accepts.
pub(crate) fn start(tree: &Tree, ip: &str) -> (ChildGuard, u16, tempfile::TempDir) {
    start_in(tree.root.path(), ip)
}

/// Starts vsftpd serving `root` anonymously on `ip` and waits (bounded) until it accepts.
fn start_in(root: &Path, ip: &str) -> (ChildGuard, u16, tempfile::TempDir) {
    launch(root, ip, "write_enable=NO\n")
}

/// Starts vsftpd serving `root` anonymously on `ip`, with `extra` configuration lines, and waits
/// (bounded) until it accepts. Returns the process, its port and its state directory.
pub fn launch(root: &Path, ip: &str, extra: &str) -> (ChildGuard, u16, tempfile::TempDir) {
    let state = tempfile::tempdir().unwrap();
    let empty = state.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let port = free_port();
    let listen = if ip.contains(':') {
        format!("listen=NO\nlisten_ipv6=YES\nlisten_address6={ip}\n")
    } else {
        format!("listen=YES\nlisten_ipv6=NO\nlisten_address={ip}\n")
    };
    let config = format!(
        "{listen}listen_port={port}\nanonymous_enable=YES\nanon_root={root}\nno_anon_password=YES\n\
         local_enable=NO\npasv_enable=YES\nport_enable=YES\nbackground=NO\n\
         run_as_launching_user=YES\nseccomp_sandbox=NO\nsecure_chroot_dir={empty}\nxferlog_enable=NO\n{extra}",
        root = root.display(),
        empty = empty.display(),
    );
    let conf = state.path().join("vsftpd.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new(require("vsftpd"))
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start vsftpd");
    let mut guard = ChildGuard(child);
    let addr = SocketAddr::new(ip.parse().unwrap(), port);
    let deadline = Instant::now() + LIMIT;
    while TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err() {
        if let Some(status) = guard.wait_until(Instant::now()) {
            panic!("vsftpd exited with {status} (config {})", conf.display());
        }
        assert!(Instant::now() < deadline, "vsftpd did not start listening");
        std::thread::park_timeout(Duration::from_millis(20));
    }
    (guard, port, state)
}

#[test]
fn lists_and_gets_in_both_modes() {
    let tree = Tree::new();
    let (_server, port, _state) = start(&tree, "127.0.0.1");
    scenarios::all(&Endpoint { host: "127.0.0.1", port, tree: &tree });
}

#[test]
fn works_over_ipv6() {
    let tree = Tree::new();
    let (_server, port, _state) = start(&tree, "::1");
    scenarios::all(&Endpoint { host: "::1", port, tree: &tree });
}

#[test]
fn trees_download_through_list_in_both_modes_with_parallel_connections() {
    // vsftpd has no MLSD: the walk parses its `ls -l` LIST lines (spaces, unicode, empty dir).
    let root = tempfile::tempdir().unwrap();
    crate::trees::build_tree(&root.path().join("tree"), 50);
    std::fs::remove_file(root.path().join("tree/leak")).unwrap();
    let expected = crate::trees::digest(&root.path().join("tree"));
    let (_server, port, _state) = start_in(root.path(), "127.0.0.1");
    for active in [false, true] {
        let args = ["-r", "-g", "tree", "--parallel", "3"];
        let (dir, run) = crate::trees::run_fresh("127.0.0.1", port, &args, active);
        let run = run.ok();
        assert!(run.stderr.contains("downloaded 58 of 58 files"), "{}", run.stderr);
        crate::trees::assert_same(&crate::trees::digest(&dir.path().join("tree")), &expected, "vsftpd tree");
    }
}
