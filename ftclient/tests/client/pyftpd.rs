//! ftclient against pyftpdlib, the FTP server from pip, started on a port the kernel picks.

use crate::scenarios::{self, Endpoint};
use crate::support::{dir_names, require_python_module, spawn_with_port, wait_output, ChildGuard, Tree, BIG};
use std::path::Path;
use std::process::Command;

/// Binds port 0 and prints the port, which `python3 -m pyftpdlib` does not do reliably.
const LAUNCHER: &str = r#"
import os, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
import logging
logging.basicConfig(level=logging.WARNING)
authorizer = DummyAuthorizer()
authorizer.add_anonymous(sys.argv[1], perm=os.environ.get("FT_ANON_PERM", "elr"))
authorizer.add_user("alice", "secret", sys.argv[1], perm="elr")
handler = FTPHandler
handler.authorizer = authorizer
if len(sys.argv) > 3:
    from pyftpdlib.handlers import ThrottledDTPHandler
    ThrottledDTPHandler.write_limit = int(sys.argv[3])
    handler.dtp_handler = ThrottledDTPHandler
server = FTPServer((sys.argv[2], 0), handler)
print(server.socket.getsockname()[1], flush=True)
server.serve_forever()
"#;

/// A running pyftpdlib serving `tree`.
pub fn start(tree: &Tree, host: &str) -> (ChildGuard, u16) {
    start_throttled(tree, host, None)
}

/// A running pyftpdlib serving `tree`, sending at most `limit` bytes per second per download.
fn start_throttled(tree: &Tree, host: &str, limit: Option<u64>) -> (ChildGuard, u16) {
    launch(tree.root.path(), host, limit, "elr")
}

/// A running pyftpdlib whose anonymous user may upload, create directories, append, rename
/// and delete in `root` (`python3 -m pyftpdlib -w`).
pub fn start_writable(root: &Path) -> (ChildGuard, u16) {
    launch(root, "127.0.0.1", None, "elradfmwMT")
}

fn launch(root: &Path, host: &str, limit: Option<u64>, perm: &str) -> (ChildGuard, u16) {
    require_python_module("pyftpdlib");
    // Python has read the script once it prints the port, so the directory can go then.
    let scratch = tempfile::tempdir().unwrap();
    let script = scratch.path().join("launcher.py");
    std::fs::write(&script, LAUNCHER).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(root).arg(host).env("FT_ANON_PERM", perm);
    cmd.args(limit.map(|l| l.to_string()));
    spawn_with_port(cmd)
}

#[test]
fn lists_and_gets_in_both_modes() {
    let tree = Tree::new();
    let (_server, port) = start(&tree, "127.0.0.1");
    scenarios::all(&Endpoint { host: "127.0.0.1", port, tree: &tree });
}

#[test]
fn works_over_ipv6() {
    let tree = Tree::new();
    let (_server, port) = start(&tree, "::1");
    scenarios::all(&Endpoint { host: "::1", port, tree: &tree });
}

#[test]
fn logs_in_as_a_user_and_reports_bad_passwords() {
    let tree = Tree::new();
    let (_server, port) = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let port = port.to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["127.0.0.1", &port];
        all.extend_from_slice(args);
        crate::support::ftclient(dir.path(), &all)
    };
    assert_eq!(run(&["-l", "--user", "alice", "--password", "secret"]).ok().out(), Tree::root_listing());
    run(&["-l", "--user", "alice", "--password", "wrong"]).fails_with("login as alice failed: 530");
}

#[test]
fn a_server_killed_mid_download_is_resumed_after_a_restart() {
    let tree = Tree::new();
    // 1 MB/s: the download of big.bin takes about three seconds, time enough to kill the server.
    let (mut server, port) = start_throttled(&tree, "127.0.0.1", Some(1_000_000));
    let dir = tempfile::tempdir().unwrap();
    let child = crate::support::spawn_ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-g", "big.bin"]);
    let part = dir.path().join(".big.bin.ftpart");
    crate::support::wait_for_len(&part, 100_000);
    server.0.kill().unwrap(); // SIGKILL
    let _ = server.0.wait();
    let failed = wait_output(child);
    assert_eq!(failed.code(), 1, "{failed:?}");
    assert!(failed.stderr.contains("--resume"), "{}", failed.stderr);
    assert_eq!(dir_names(dir.path()), vec![".big.bin.ftpart"]);
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < BIG as u64, "{kept}");

    let (_server, port) = start(&tree, "127.0.0.1");
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-g", "big.bin", "--resume"]).ok();
    assert_eq!(dir_names(dir.path()), vec!["big.bin"]);
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), tree.read("big.bin"));
}

/// pyftpdlib offers no hash: with --resume a local file of the remote size is taken as
/// complete on its size alone, and the client says it was not checked (it said "saved").
#[test]
fn resume_onto_a_file_of_the_same_size_says_it_is_unchecked() {
    let tree = Tree::new();
    let (_server, port) = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let remote = tree.read("docs/a.txt");
    std::fs::write(dir.path().join("a.txt"), vec![b'X'; remote.len()]).unwrap();
    let run =
        crate::support::ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-g", "docs/a.txt", "--resume"]).ok();
    assert!(run.stderr.contains("taken as complete unchecked (the server offers no hash)"), "{}", run.stderr);
}

/// pyftpdlib stores an upload in place, so when the local file shrinks mid-upload (the client
/// resets the data connection) it keeps the part it got under the final name; the client,
/// which created that name, deletes it and says so.
#[test]
fn a_cut_off_upload_leaves_no_partial_copy_behind() {
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = start_writable(root.path());
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("shrink.bin");
    // Sparse: 4 GiB that cost no disk, far more than is sent before the truncation below.
    std::fs::File::create(&local).unwrap().set_len(4 << 30).unwrap();
    let port = port.to_string();
    let child = crate::support::spawn_ftclient(dir.path(), &["127.0.0.1", &port, "-p", "shrink.bin", "--to", "s.bin"]);
    crate::support::wait_for_len(&root.path().join("s.bin"), 1 << 20);
    std::fs::File::options().write(true).open(&local).unwrap().set_len(1000).unwrap();
    let run = wait_output(child).fails_with("shrink.bin changed during the upload");
    assert!(run.stderr.contains("the partial copy the server kept under s.bin was deleted"), "{}", run.stderr);
    assert!(dir_names(root.path()).is_empty(), "{:?}", dir_names(root.path()));
}
