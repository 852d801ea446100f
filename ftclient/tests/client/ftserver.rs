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

#[test]
fn files_beyond_4_gib_list_and_resume_past_4_gib() {
    // A sparse 5 GiB file whose last bytes are data; the partial local copy is sparse too, so
    // only the tail travels (REST beyond 4 GiB) and the test stays fast.
    const SIZE: u64 = 5 << 30;
    let tail = crate::support::bytes(4096, 5);
    let tree = Tree::new();
    let remote = tree.root.path().join("huge.bin");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::File::create(&remote).unwrap();
        file.seek(SeekFrom::Start(SIZE - tail.len() as u64)).unwrap();
        file.write_all(&tail).unwrap();
    }
    let server = start(&tree, "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let long = crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-l", "--long"]).ok().out();
    assert!(long.lines().any(|l| l.contains(&format!(" {SIZE} ")) && l.ends_with(" huge.bin")), "{long}");

    let part = std::fs::File::create(dir.path().join(".huge.bin.ftpart")).unwrap();
    part.set_len(SIZE - 10_000).unwrap();
    drop(part);
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "huge.bin", "--resume"]).ok();
    let local = dir.path().join("huge.bin");
    assert_eq!(std::fs::metadata(&local).unwrap().len(), SIZE);
    let mut end = vec![0u8; tail.len()];
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&local).unwrap();
        file.seek(SeekFrom::Start(SIZE - tail.len() as u64)).unwrap();
        file.read_exact(&mut end).unwrap();
    }
    assert_eq!(end, tail);
}
