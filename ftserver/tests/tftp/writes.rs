//! What the server lets a request touch: write permission, no overwriting, the upload size
//! limit, uploads that end badly, and names that must not resolve (non-UTF-8, trailing slash,
//! outside the root).

use crate::raw::Raw;
use crate::support::{patient, wait_for_no_temp_files, Server};
use common::tftp;
use std::fs;
use std::time::Duration;

#[test]
fn write_rules() {
    // Read-only by default.
    let server = patient(false);
    let raw = Raw::new(&server);
    raw.wrq("x", &[]);
    raw.expect_error(2);
    assert!(!server.root().join("x").exists());

    // Never overwrite without --overwrite.
    let server = patient(true);
    server.put_file("exists", b"old");
    let raw = Raw::new(&server);
    raw.wrq("exists", &[]);
    raw.expect_error(6);
    assert_eq!(fs::read(server.root().join("exists")).unwrap(), b"old");

    // A file that appears during the upload is not clobbered either (decided when committing).
    let raw = Raw::new(&server);
    raw.wrq("late", &[]);
    let tid = raw.expect_ack(0);
    raw.data(1, &[1u8; 512], tid);
    raw.expect_ack(1);
    server.put_file("late", b"someone else");
    raw.data(2, b"end", tid);
    raw.expect_error(6);
    assert_eq!(fs::read(server.root().join("late")).unwrap(), b"someone else");
    wait_for_no_temp_files(server.root());

    // An interrupted upload is deleted: nothing under the name, no temporary file left.
    let raw = Raw::new(&server);
    raw.wrq("partial", &[]);
    let tid = raw.expect_ack(0);
    raw.data(1, &[1u8; 512], tid);
    raw.expect_ack(1);
    raw.send_to(&tftp::error_bytes(tftp::ErrorCode::NotDefined, "user cancelled"), tid);
    wait_for_no_temp_files(server.root());
    assert!(!server.root().join("partial").exists());

    // Writing into a missing directory or onto a directory fails cleanly.
    fs::create_dir(server.root().join("dir")).unwrap();
    let raw = Raw::new(&server);
    raw.wrq("missing/x", &[]);
    raw.expect_error(1);
    let raw = Raw::new(&server);
    raw.wrq("dir", &[]);
    raw.expect_error(2);

    // With --overwrite an upload replaces the file.
    let server = Server::start(|c| {
        c.writable = true;
        c.overwrite = true;
    });
    server.put_file("exists", b"old");
    let raw = Raw::new(&server);
    raw.wrq("exists", &[]);
    let tid = raw.expect_ack(0);
    raw.data(1, b"new", tid);
    raw.expect_ack(1);
    assert_eq!(fs::read(server.root().join("exists")).unwrap(), b"new");
}

/// `--max-upload-size` holds for TFTP too: a WRQ announcing more (tsize) gets error 3 at once,
/// and an upload that grows past it gets error 3 when it does, leaving nothing behind.
#[test]
fn uploads_are_held_to_the_upload_size_limit() {
    let server = Server::start(|c| {
        c.writable = true;
        c.max_upload_size = Some(1000);
        c.timeout = Duration::from_secs(60);
    });
    let raw = Raw::new(&server);
    raw.wrq("announced", &[("tsize", "1001")]);
    raw.expect_error(3);
    let raw = Raw::new(&server);
    raw.wrq("grown", &[]);
    let tid = raw.expect_ack(0);
    raw.data(1, &[1u8; 512], tid);
    raw.expect_ack(1);
    raw.data(2, &[2u8; 512], tid);
    raw.expect_error(3);
    let raw = Raw::new(&server);
    raw.wrq("fits", &[("tsize", "1000")]);
    let tid = raw.expect_oack(&[("tsize", "1000")]);
    raw.data(1, &[1u8; 512], tid);
    raw.expect_ack(1);
    raw.data(2, &[2u8; 488], tid);
    raw.expect_ack(2);
    wait_for_no_temp_files(server.root());
    assert_eq!(fs::read(server.root().join("fits")).unwrap().len(), 1000);
    assert!(!server.root().join("announced").exists() && !server.root().join("grown").exists());
}

/// curl 7.88 answers a second OACK by sending its next block as block 1. When that happens (the
/// network duplicated the OACK), block 1 arrives twice with different bytes: the upload ends
/// with error 4 and nothing is stored, instead of a file with a block missing.
#[test]
fn block_1_with_different_data_ends_the_upload() {
    let server = patient(true);
    let raw = Raw::new(&server);
    raw.wrq("changed", &[("blksize", "8")]);
    let tid = raw.expect_oack(&[("blksize", "8")]);
    raw.data(1, b"first...", tid);
    raw.expect_ack(1);
    // The same block again is a plain duplicate.
    raw.data(1, b"first...", tid);
    raw.expect_ack(1);
    raw.data(1, b"second..", tid);
    assert_eq!(raw.expect_error(4), tid);
    wait_for_no_temp_files(server.root());
    assert!(!server.root().join("changed").exists());
}

#[test]
fn oversized_data_block_ends_the_upload() {
    let server = patient(true);
    let raw = Raw::new(&server);
    raw.wrq("up", &[]);
    let tid = raw.expect_ack(0);
    raw.data(1, &[7u8; 600], tid);
    raw.expect_error(4);
    wait_for_no_temp_files(server.root());
    assert!(!server.root().join("up").exists());
}

/// Sends each request (octet, no options) from a fresh port and expects an ERROR with its code.
fn expect_refusals(server: &Server, refusals: &[(&str, tftp::Direction, u16)]) {
    for &(name, direction, code) in refusals {
        let raw = Raw::new(server);
        raw.request(direction, name, "octet", &[]);
        raw.expect_error(code);
    }
}

/// A file name that is not UTF-8 is refused (error 4), reads and writes alike: read lossily,
/// `r\xe9sum\xe9` and `r\xe8sum\xe8` were one name, and the second upload replaced the first.
#[test]
fn file_names_that_are_not_utf8_are_refused() {
    let server = Server::start(|c| {
        c.writable = true;
        c.overwrite = true;
    });
    for opcode in [1u8, 2] {
        let raw = Raw::new(&server);
        raw.send_to(&[&[0, opcode][..], b"r\xe9sum\xe9.txt\0octet\0"].concat(), server.addr());
        raw.expect_error(4);
    }
    wait_for_no_temp_files(server.root());
    assert_eq!(fs::read_dir(server.root()).unwrap().count(), 0, "nothing was created");
}

/// A name ending in `/` or `/.` is a directory's: `a.txt/` is not read as `a.txt`, and a write
/// of `new/` creates no file `new`.
#[test]
fn a_trailing_slash_never_names_a_file() {
    let server = patient(true);
    server.put_file("a.txt", b"a");
    fs::create_dir(server.root().join("d")).unwrap();
    let refusals = [
        ("a.txt/", tftp::Direction::Read, 1),
        ("a.txt/.", tftp::Direction::Read, 1),
        ("d/", tftp::Direction::Read, 1),
        ("new/", tftp::Direction::Write, 1),
        ("new/.", tftp::Direction::Write, 1),
        ("a.txt/", tftp::Direction::Write, 1),
        ("d/", tftp::Direction::Write, 2),
    ];
    expect_refusals(&server, &refusals);
    wait_for_no_temp_files(server.root());
    let mut names: Vec<_> = fs::read_dir(server.root()).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["a.txt", "d"]);
    assert_eq!(fs::read(server.root().join("a.txt")).unwrap(), b"a");
}

#[test]
fn paths_stay_under_the_root() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), b"s").unwrap();
    let server = patient(true);
    std::os::unix::fs::symlink(outside.path(), server.root().join("out")).unwrap();
    fs::create_dir(server.root().join("sub")).unwrap();
    fs::write(server.root().join("sub/f"), b"inside").unwrap();
    // `..` cannot climb above the root: this names <root>/etc/passwd, which does not exist.
    // A FIFO is refused at once: waiting for a writer would hold a transfer slot for good.
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    nix::unistd::mkfifo(&server.root().join("pipe"), mode).unwrap();
    let refusals = [
        ("../../../../etc/passwd", tftp::Direction::Read, 1),
        ("out/secret", tftp::Direction::Read, 2),
        ("out/planted", tftp::Direction::Write, 2),
        ("pipe", tftp::Direction::Read, 1),
    ];
    expect_refusals(&server, &refusals);
    assert!(!outside.path().join("planted").exists());
    let raw = Raw::new(&server);
    raw.rrq("/sub/../sub/./f", &[]);
    let (payload, tid) = raw.expect_data(1);
    assert_eq!(payload, b"inside");
    raw.ack(1, tid);
}
