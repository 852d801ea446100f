//! HASH (draft-bryan-ftpext-hash) and XSHA256/XSHA1/XMD5/XCRC, checked against Python's
//! hashlib and zlib; the job limit and the abort path.

use crate::support::{fixtures, run_ok, Raw, TestServer};
use std::process::Command;
use std::time::{Duration, Instant};

/// SHA-256, SHA-1, MD5 and CRC-32 of a file, as Python computes them.
fn python_digests(path: &std::path::Path) -> Vec<String> {
    let script = "import hashlib, sys, zlib\n\
                  d = open(sys.argv[1], 'rb').read()\n\
                  print(hashlib.sha256(d).hexdigest(), hashlib.sha1(d).hexdigest(), hashlib.md5(d).hexdigest(), \
                  '%08x' % zlib.crc32(d))";
    run_ok(Command::new("python3").args(["-c", script]).arg(path)).split_whitespace().map(str::to_owned).collect()
}

#[test]
fn digests_match_python() {
    let server = TestServer::start();
    let mut raw = server.login();
    for (name, bytes) in fixtures() {
        let expected = python_digests(&server.root.path().join(name));
        let reply = raw.expect(&format!("HASH {name}"), 213);
        assert_eq!(reply.text(), format!("SHA-256 0-{} {} {name}", bytes.len(), expected[0]));
        for (i, algorithm) in ["SHA-256", "SHA-1", "MD5", "CRC32"].iter().enumerate() {
            assert_eq!(raw.expect(&format!("OPTS HASH {algorithm}"), 200).text(), *algorithm);
            let reply = raw.expect(&format!("HASH {name}"), 213);
            assert_eq!(reply.text(), format!("{algorithm} 0-{} {} {name}", bytes.len(), expected[i]));
        }
        raw.expect("OPTS HASH SHA-256", 200);
        for (i, legacy) in ["XSHA256", "XSHA1", "XMD5", "XCRC"].iter().enumerate() {
            assert_eq!(raw.expect(&format!("{legacy} {name}"), 250).text(), expected[i], "{legacy} {name}");
        }
    }
}

#[test]
fn selection_shows_in_feat_and_refusals() {
    let server = TestServer::start();
    let mut raw = server.login();
    assert_eq!(raw.expect("OPTS HASH", 200).text(), "SHA-256");
    raw.expect("OPTS HASH md5", 200);
    assert!(raw.expect("FEAT", 211).lines.contains(&" HASH SHA-256;SHA-1;MD5*;CRC32".to_owned()));
    raw.expect("OPTS HASH SHA-512", 501);
    assert_eq!(raw.expect("OPTS HASH", 200).text(), "MD5");
    for refused in
        ["HASH sub", "HASH missing", "HASH escape/secret", "HASH sub/secret-link", "XSHA256 ../../etc/passwd"]
    {
        raw.expect(refused, 550);
    }
    raw.expect("HASH", 501);
    // HASH needs a login like every file command.
    let mut anonymous = server.raw();
    anonymous.expect("HASH hello.txt", 530);
}

/// Hashing stops when the client sends anything meanwhile; the job limit answers 450 while
/// the slots are taken. A sparse file keeps the first job busy for long enough.
#[test]
fn jobs_are_limited_and_abortable() {
    let server = TestServer::start_with("127.0.0.1", |c| c.max_hash_jobs = 1);
    std::fs::File::create(server.root.path().join("huge.bin")).unwrap().set_len(64 << 30).unwrap();
    let mut busy = server.login();
    busy.send(b"HASH huge.bin");
    let mut other = server.login();
    // Wait (bounded) until STAT reports the running job.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !other.expect("STAT", 211).lines.iter().any(|l| l == " Hash jobs running: 1 of 1") {
        assert!(Instant::now() < deadline, "the HASH job never started");
    }
    other.expect("HASH hello.txt", 450);
    other.expect("XMD5 hello.txt", 450);
    // Any command aborts the job; it is answered after the HASH's 451.
    busy.send(b"NOOP");
    busy.expect_reply(451);
    busy.expect_reply(200);
    other.expect("HASH hello.txt", 213);
    // A client that hangs up mid-hash frees its slot too.
    let mut quitter = Raw::connect(server.addr());
    quitter.login();
    quitter.send(b"HASH huge.bin");
    while !other.expect("STAT", 211).lines.iter().any(|l| l == " Hash jobs running: 1 of 1") {
        assert!(Instant::now() < deadline, "the second HASH job never started");
    }
    drop(quitter);
    while other.cmd("HASH hello.txt").code != 213 {
        assert!(Instant::now() < deadline, "the abandoned HASH job kept its slot");
    }
}
