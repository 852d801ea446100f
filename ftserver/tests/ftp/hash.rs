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

/// An upload after `OPTS HASH` is hashed as it arrives and the digest remembered; what HASH
/// answers afterwards must still be the digest of the bytes on disk: after TYPE A conversion,
/// after a resumed upload (not hashed on arrival), and after the file changed behind the
/// server's back.
#[test]
fn digests_after_uploads_are_those_of_the_stored_bytes() {
    let server = TestServer::writable(true);
    let mut raw = server.login();
    let check = |raw: &mut Raw, name: &str, algorithm: &str, column: usize| {
        let path = server.root.path().join(name);
        let size = std::fs::metadata(&path).unwrap().len();
        let expected = &python_digests(&path)[column];
        assert_eq!(raw.expect(&format!("HASH {name}"), 213).text(), format!("{algorithm} 0-{size} {expected} {name}"));
    };
    let bytes: Vec<u8> = (0..700_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (column, algorithm) in ["SHA-256", "SHA-1", "MD5", "CRC32"].iter().enumerate() {
        raw.expect(&format!("OPTS HASH {algorithm}"), 200);
        raw.expect("TYPE I", 200);
        let name = format!("up-{column}.bin");
        assert_eq!(raw.passive_upload(&format!("STOR {name}"), &bytes).code, 226);
        check(&mut raw, &name, algorithm, column);
        // TYPE A: the digest is of the file as stored, LF line ends.
        raw.expect("TYPE A", 200);
        assert_eq!(raw.passive_upload("STOR text.txt", b"one\r\ntwo\r\nthree\r").code, 226);
        assert_eq!(std::fs::read(server.root.path().join("text.txt")).unwrap(), b"one\ntwo\nthree\r");
        check(&mut raw, "text.txt", algorithm, column);
    }
    // A resumed upload: the first part arrived in another transfer.
    raw.expect("OPTS HASH CRC32", 200);
    raw.expect("TYPE I", 200);
    assert_eq!(raw.passive_upload("STOR resumed.bin", &bytes[..1000]).code, 226);
    raw.expect("REST 1000", 350);
    assert_eq!(raw.passive_upload("STOR resumed.bin", &bytes[1000..]).code, 226);
    assert_eq!(std::fs::read(server.root.path().join("resumed.bin")).unwrap(), bytes);
    check(&mut raw, "resumed.bin", "CRC32", 3);
    // Changed in place, same size: the remembered digest no longer applies.
    assert_eq!(raw.passive_upload("STOR changed.bin", &bytes).code, 226);
    let mut changed = bytes.clone();
    changed[12345] ^= 0xff;
    std::fs::write(server.root.path().join("changed.bin"), &changed).unwrap();
    check(&mut raw, "changed.bin", "CRC32", 3);
}
