//! ftclient against pyftpdlib, the FTP server from pip, started on a port the kernel picks.

use crate::scenarios::{self, Endpoint};
use crate::support::{spawn_with_port, ChildGuard, Tree};
use std::process::Command;

/// Binds port 0 and prints the port, which `python3 -m pyftpdlib` does not do reliably.
const LAUNCHER: &str = r#"
import sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
import logging
logging.basicConfig(level=logging.WARNING)
authorizer = DummyAuthorizer()
authorizer.add_anonymous(sys.argv[1])
authorizer.add_user("alice", "secret", sys.argv[1], perm="elr")
handler = FTPHandler
handler.authorizer = authorizer
server = FTPServer((sys.argv[2], 0), handler)
print(server.socket.getsockname()[1], flush=True)
server.serve_forever()
"#;

/// A running pyftpdlib serving `tree`.
pub fn start(tree: &Tree, host: &str) -> (ChildGuard, u16) {
    let script = tree.root.path().parent().unwrap().join(format!("pyftpd-launcher-{}.py", std::process::id()));
    std::fs::write(&script, LAUNCHER).unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(tree.root.path()).arg(host);
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
