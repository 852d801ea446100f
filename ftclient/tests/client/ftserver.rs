//! ftclient against our own ftserver, run in-process on a port the kernel picks.

use crate::scenarios::{self, Endpoint};
use crate::support::Tree;
use std::net::TcpListener;

/// Serves `tree` on `ip` port 0; the handle stops the server when dropped.
fn start(tree: &Tree, ip: &str) -> ftserver::ServerHandle {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let config = ftserver::Config::new(tree.root.path()).unwrap();
    ftserver::Server::spawn(listener, config).unwrap()
}

#[test]
fn lists_and_gets_in_both_modes() {
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    scenarios::all(&Endpoint { host: "127.0.0.1", port: server.local_addr().port(), tree: &tree });
}

#[test]
fn works_over_ipv6() {
    let tree = Tree::new();
    let server = start(&tree, "::1");
    scenarios::all(&Endpoint { host: "::1", port: server.local_addr().port(), tree: &tree });
}

#[test]
fn the_same_data_port_works_run_after_run_and_host_names_resolve() {
    // The coursework flow reuses one DATA_PORT; the previous connection may still be in
    // TIME_WAIT, which SO_REUSEADDR allows.
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let port = server.local_addr().port().to_string();
    let data_port = crate::support::free_port().to_string();
    for _ in 0..3 {
        let run = crate::support::ftclient(dir.path(), &["localhost", &port, "-l", &data_port]).ok();
        assert_eq!(run.out(), Tree::root_listing());
    }
}
