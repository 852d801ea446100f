//! TFTP server tests: real clients (curl, atftp, tftp-hpa) and a raw UDP client against the
//! in-process server on 127.0.0.1:0, and transfers under netem loss inside a network namespace.

use common::tftp::{self, Packet};
use ftserver::tftp::{TftpConfig, TftpHandle};
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

// The peers the tests run and the one-line failure when one is missing (shared with the FTP
// tests).
#[path = "ftp/peers.rs"]
mod peers;

/// A server on 127.0.0.1:0 serving a fresh temporary directory.
struct Server {
    handle: TftpHandle,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(configure: impl FnOnce(&mut TftpConfig)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = TftpConfig { root: dir.path().to_owned(), ..Default::default() };
        configure(&mut config);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        Server { handle: ftserver::tftp::spawn(socket, config).unwrap(), dir }
    }

    fn writable() -> Server {
        Server::start(|c| c.writable = true)
    }

    fn port(&self) -> u16 {
        self.handle.local_addr().port()
    }

    fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn put_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }
}

/// Deterministic pseudo-random bytes (xorshift), so a failure is reproducible.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs a client under timeout(1), which kills it if it hangs, and checks it succeeded.
#[track_caller]
fn run(program: &str, args: &[&str]) -> Output {
    run_in(None, program, args)
}

#[track_caller]
fn run_in(netns: Option<&str>, program: &str, args: &[&str]) -> Output {
    // timeout(1) would report a missing program only as exit status 127.
    peers::require(program);
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", "300"]);
    if let Some(ns) = netns {
        cmd.args(["ip", "netns", "exec", ns]);
    }
    let output = cmd.arg(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn assert_same_file(got: &Path, expected: &[u8]) {
    let got = fs::read(got).unwrap_or_else(|e| panic!("{}: {e}", got.display()));
    assert_eq!(got.len(), expected.len(), "length differs");
    assert!(got == expected, "content differs");
}

// ---------------------------------------------------------------------------------------------
// Real clients.

#[test]
fn curl_gets_and_puts() {
    let server = Server::writable();
    let data = bytes(3_000_017, 1);
    server.put_file("f.bin", &data);
    let out = tempfile::tempdir().unwrap();
    for (i, blksize) in [None, Some("1468"), Some("65464")].into_iter().enumerate() {
        let local = out.path().join(format!("get{i}"));
        let url = format!("tftp://127.0.0.1:{}/f.bin", server.port());
        let mut args = vec!["-sS", "-o", local.to_str().unwrap(), &url];
        if let Some(b) = blksize {
            args.extend(["--tftp-blksize", b]);
        }
        run("curl", &args);
        assert_same_file(&local, &data);

        let url = format!("tftp://127.0.0.1:{}/up{i}.bin", server.port());
        let source = server.root().join("f.bin");
        let mut args = vec!["-sS", "-T", source.to_str().unwrap(), &url];
        if let Some(b) = blksize {
            args.extend(["--tftp-blksize", b]);
        }
        run("curl", &args);
        assert_same_file(&server.root().join(format!("up{i}.bin")), &data);
    }
}

#[test]
fn atftp_gets_and_puts_with_blksize_and_windowsize() {
    let server = Server::writable();
    let data = bytes(2_000_003, 2);
    server.put_file("f", &data);
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("out");
    let port = server.port().to_string();
    let opts = ["--option", "blksize 1468", "--option", "windowsize 16"];
    let mut args = opts.to_vec();
    args.extend(["-g", "-r", "f", "-l", local.to_str().unwrap(), "127.0.0.1", &port]);
    run("atftp", &args);
    assert_same_file(&local, &data);

    let mut args = opts.to_vec();
    args.extend(["-p", "-r", "up", "-l", local.to_str().unwrap(), "127.0.0.1", &port]);
    run("atftp", &args);
    assert_same_file(&server.root().join("up"), &data);

    // And with no options at all (RFC 1350 lock-step).
    let plain = out.path().join("plain");
    run("atftp", &["-g", "-r", "f", "-l", plain.to_str().unwrap(), "127.0.0.1", &port]);
    assert_same_file(&plain, &data);
}

#[test]
fn tftp_hpa_gets_and_puts_binary() {
    let server = Server::writable();
    let data = bytes(1_000_000, 3);
    server.put_file("f", &data);
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("out");
    let port = server.port().to_string();
    run("tftp", &["-m", "binary", "127.0.0.1", &port, "-c", "get", "f", local.to_str().unwrap()]);
    assert_same_file(&local, &data);
    run("tftp", &["-m", "binary", "127.0.0.1", &port, "-c", "put", local.to_str().unwrap(), "up"]);
    assert_same_file(&server.root().join("up"), &data);
}

#[test]
fn netascii_round_trips_with_tftp_hpa() {
    let server = Server::writable();
    let text = b"line one\nline two\n\nbare\rcr and a \0 nul\nlast line without newline".repeat(300);
    server.put_file("t.txt", &text);
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("t.txt");
    let port = server.port().to_string();
    run("tftp", &["-m", "netascii", "127.0.0.1", &port, "-c", "get", "t.txt", local.to_str().unwrap()]);
    assert_same_file(&local, &text);
    run("tftp", &["-m", "netascii", "127.0.0.1", &port, "-c", "put", local.to_str().unwrap(), "back.txt"]);
    assert_same_file(&server.root().join("back.txt"), &text);
}

/// More than 65535 blocks of 512 bytes: the block number wraps to 0 in both directions.
#[test]
fn file_over_32_mib_crosses_the_block_rollover() {
    let server = Server::writable();
    let data = bytes(33 * 1024 * 1024 + 1000, 4);
    server.put_file("big", &data);
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("big");
    run("curl", &["-sS", "-o", local.to_str().unwrap(), &format!("tftp://127.0.0.1:{}/big", server.port())]);
    assert_same_file(&local, &data);
    // tftp-hpa sends no options, so the upload uses 512-byte blocks too.
    let port = server.port().to_string();
    run("tftp", &["-m", "binary", "127.0.0.1", &port, "-c", "put", local.to_str().unwrap(), "big-up"]);
    assert_same_file(&server.root().join("big-up"), &data);
}

#[test]
fn exact_multiple_of_blksize_and_empty_files() {
    let server = Server::writable();
    let out = tempfile::tempdir().unwrap();
    let port = server.port().to_string();
    for (name, len) in [("n512", 512 * 8), ("n1468", 1468 * 3), ("empty", 0)] {
        let data = bytes(len, 5);
        server.put_file(name, &data);
        // curl 7.88 fails on any empty TFTP download (getpeername() errno 107, against tftpd-hpa
        // too), so curl only gets the non-empty files; tftp-hpa and atftp get all of them.
        for blksize in ["512", "1468"].into_iter().filter(|_| len > 0) {
            let local = out.path().join(format!("{name}-{blksize}"));
            let url = format!("tftp://127.0.0.1:{port}/{name}");
            run("curl", &["-sS", "--tftp-blksize", blksize, "-o", local.to_str().unwrap(), &url]);
            assert_same_file(&local, &data);
            let url = format!("tftp://127.0.0.1:{port}/{name}-up-{blksize}");
            run("curl", &["-sS", "--tftp-blksize", blksize, "-T", local.to_str().unwrap(), &url]);
            assert_same_file(&server.root().join(format!("{name}-up-{blksize}")), &data);
        }
        let local = out.path().join(format!("{name}-hpa"));
        run("tftp", &["-m", "binary", "127.0.0.1", &port, "-c", "get", name, local.to_str().unwrap()]);
        assert_same_file(&local, &data);
        let up = format!("{name}-up-hpa");
        run("tftp", &["-m", "binary", "127.0.0.1", &port, "-c", "put", local.to_str().unwrap(), &up]);
        assert_same_file(&server.root().join(&up), &data);
        let local = out.path().join(format!("{name}-atftp"));
        let opts = ["--option", "blksize 1468", "--option", "windowsize 4"];
        run("atftp", &[&opts[..], &["-g", "-r", name, "-l", local.to_str().unwrap(), "127.0.0.1", &port]].concat());
        assert_same_file(&local, &data);
        let up = format!("{name}-up-atftp");
        run("atftp", &[&opts[..], &["-p", "-r", &up, "-l", local.to_str().unwrap(), "127.0.0.1", &port]].concat());
        assert_same_file(&server.root().join(&up), &data);
    }
}

// ---------------------------------------------------------------------------------------------
// A raw UDP client, to pin the wire behaviour packet by packet.

struct Raw {
    sock: UdpSocket,
    server: SocketAddr,
}

impl Raw {
    fn new(server: &Server) -> Raw {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw { sock, server: server.addr() }
    }

    fn request(&self, direction: tftp::Direction, name: &str, mode: &str, options: &[(&str, &str)]) {
        let request = tftp::Request {
            direction,
            filename: name.into(),
            mode: mode.into(),
            options: options.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        };
        self.send_to(&Packet::Request(request).to_bytes(), self.server);
    }

    fn rrq(&self, name: &str, options: &[(&str, &str)]) {
        self.request(tftp::Direction::Read, name, "octet", options);
    }

    fn wrq(&self, name: &str, options: &[(&str, &str)]) {
        self.request(tftp::Direction::Write, name, "octet", options);
    }

    fn send_to(&self, bytes: &[u8], to: SocketAddr) {
        self.sock.send_to(bytes, to).unwrap();
    }

    /// The next datagram and its sender.
    fn recv(&self) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 70_000];
        let (len, from) = self.sock.recv_from(&mut buf).expect("no answer from the server");
        buf.truncate(len);
        (buf, from)
    }

    /// The next datagram, which must be DATA `block`; returns the payload and the sender.
    fn expect_data(&self, block: u16) -> (Vec<u8>, SocketAddr) {
        let (buf, from) = self.recv();
        match Packet::parse(&buf) {
            Ok(Packet::Data { block: got, data }) if got == block => (data.to_vec(), from),
            other => panic!("expected DATA {block}, got {other:?}"),
        }
    }

    fn expect_ack(&self, block: u16) -> SocketAddr {
        let (buf, from) = self.recv();
        assert_eq!(Packet::parse(&buf), Ok(Packet::Ack(block)));
        from
    }

    fn expect_oack(&self, options: &[(&str, &str)]) -> SocketAddr {
        let (buf, from) = self.recv();
        let expected = options.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(Packet::parse(&buf), Ok(Packet::Oack(expected)));
        from
    }

    /// Nothing has arrived (yet): for datagrams that would have been sent before one already
    /// received elsewhere.
    fn nothing_queued(&self) -> bool {
        self.sock.set_nonblocking(true).unwrap();
        let queued = self.sock.recv_from(&mut [0u8; 16]);
        self.sock.set_nonblocking(false).unwrap();
        matches!(queued, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// The next datagram must be ERROR `code`; returns its sender.
    fn expect_error(&self, code: u16) -> SocketAddr {
        let (buf, from) = self.recv();
        match Packet::parse(&buf) {
            Ok(Packet::Error { code: got, .. }) if got == code => from,
            other => panic!("expected ERROR {code}, got {other:?}"),
        }
    }

    fn ack(&self, block: u16, tid: SocketAddr) {
        self.send_to(&tftp::ack_bytes(block), tid);
    }

    fn data(&self, block: u16, payload: &[u8], tid: SocketAddr) {
        self.send_to(&Packet::Data { block, data: payload }.to_bytes(), tid);
    }
}

/// A device that gave up an upload (it went silent after a block) and retries at once from a
/// new port is served at once, not refused while the abandoned transfer waits out its
/// retransmissions; the retry's bytes are what is stored, never a mix of the two.
#[test]
fn a_retried_upload_is_served_while_the_abandoned_one_times_out() {
    let server = patient(true);
    let first = Raw::new(&server);
    first.wrq("cfg", &[]);
    let tid = first.expect_ack(0);
    first.data(1, &[b'a'; 512], tid);
    first.expect_ack(1);
    let retry = Raw::new(&server);
    retry.wrq("cfg", &[]);
    let tid = retry.expect_ack(0);
    retry.data(1, b"complete", tid);
    retry.expect_ack(1);
    assert_same_file(&server.root().join("cfg"), b"complete");
}

/// A server whose timer never fires during a raw test, so every packet is the one expected.
fn patient(writable: bool) -> Server {
    Server::start(|c| {
        c.writable = writable;
        c.timeout = Duration::from_secs(60);
    })
}

/// RFC 7440 section 4: an ACK inside the window restarts the window after it; an ACK for a
/// block not yet sent and a duplicate ACK are ignored (never a retransmission trigger).
#[test]
fn windowed_read_follows_the_acks() {
    let server = patient(false);
    let data = bytes(100, 6);
    server.put_file("f", &data);
    let raw = Raw::new(&server);
    raw.rrq("f", &[("blksize", "8"), ("windowsize", "4")]);
    let tid = raw.expect_oack(&[("blksize", "8"), ("windowsize", "4")]);
    raw.ack(0, tid);
    let mut got = vec![Vec::new(); 14];
    for b in 1..=4 {
        got[b as usize] = raw.expect_data(b).0;
    }
    raw.ack(2, tid);
    for b in 3..=6 {
        got[b as usize] = raw.expect_data(b).0;
    }
    raw.ack(60, tid);
    raw.ack(6, tid);
    for b in 7..=10 {
        got[b as usize] = raw.expect_data(b).0;
    }
    raw.ack(6, tid);
    raw.ack(10, tid);
    for b in 11..=13 {
        got[b as usize] = raw.expect_data(b).0;
    }
    assert_eq!(got[13].len(), 4, "100 = 12 * 8 + 4");
    raw.ack(13, tid);
    assert_eq!(got.concat(), data);
}

/// RFC 2347: when no option survives, a read starts with DATA 1 and a write with ACK 0.
#[test]
fn no_oack_when_no_option_survives() {
    let server = patient(true);
    server.put_file("f", b"hello");
    let raw = Raw::new(&server);
    let junk = [("blksize", "huge"), ("windowsize", "0"), ("timeout", "0"), ("colour", "blue"), ("blksize", "4")];
    raw.rrq("f", &junk);
    let (payload, tid) = raw.expect_data(1);
    assert_eq!(payload, b"hello");
    raw.ack(1, tid);

    let raw = Raw::new(&server);
    raw.wrq("new", &junk);
    let tid = raw.expect_ack(0);
    raw.data(1, b"abc", tid);
    raw.expect_ack(1);
    assert_eq!(fs::read(server.root().join("new")).unwrap(), b"abc");
}

/// RFC 2348/2349: blksize is clamped to 65464, timeout echoed, tsize is the file size on a read
/// and a write that cannot fit gets error 3.
#[test]
fn options_are_negotiated() {
    let server = patient(true);
    server.put_file("f", &bytes(70_000, 7));
    let raw = Raw::new(&server);
    raw.rrq("f", &[("BlkSize", "70000"), ("timeout", "9"), ("tsize", "0"), ("windowsize", "2")]);
    let tid = raw.expect_oack(&[("blksize", "65464"), ("timeout", "9"), ("tsize", "70000"), ("windowsize", "2")]);
    raw.ack(0, tid);
    assert_eq!(raw.expect_data(1).0.len(), 65464);
    assert_eq!(raw.expect_data(2).0.len(), 70_000 - 65464);
    raw.ack(2, tid);

    let raw = Raw::new(&server);
    raw.wrq("too-big", &[("tsize", &(1u64 << 62).to_string())]);
    raw.expect_error(3);
    assert!(!server.root().join("too-big").exists());

    let raw = Raw::new(&server);
    raw.wrq("sized", &[("tsize", "3"), ("blksize", "512")]);
    let tid = raw.expect_oack(&[("tsize", "3"), ("blksize", "512")]);
    raw.data(1, b"xyz", tid);
    raw.expect_ack(1);
    assert_eq!(fs::read(server.root().join("sized")).unwrap(), b"xyz");
}

/// A zero-length final block when the size is a multiple of blksize; an empty file is one
/// empty DATA 1 (RFC 1350 section 6).
#[test]
fn final_block_rules() {
    let server = patient(false);
    let data = bytes(1024, 8);
    server.put_file("two-blocks", &data);
    server.put_file("empty", b"");
    let raw = Raw::new(&server);
    raw.rrq("two-blocks", &[]);
    let (first, tid) = raw.expect_data(1);
    raw.ack(1, tid);
    let (second, _) = raw.expect_data(2);
    raw.ack(2, tid);
    let (third, _) = raw.expect_data(3);
    raw.ack(3, tid);
    assert_eq!((first.len(), second.len(), third.len()), (512, 512, 0));
    assert_eq!([first, second].concat(), data);

    let raw = Raw::new(&server);
    raw.rrq("empty", &[]);
    let (payload, tid) = raw.expect_data(1);
    assert!(payload.is_empty());
    raw.ack(1, tid);
}

#[test]
fn netascii_on_the_wire() {
    let server = patient(true);
    server.put_file("t", b"a\nb\rc");
    let raw = Raw::new(&server);
    raw.request(tftp::Direction::Read, "t", "NETASCII", &[]);
    let (payload, tid) = raw.expect_data(1);
    assert_eq!(payload, b"a\r\nb\r\0c");
    raw.ack(1, tid);

    let raw = Raw::new(&server);
    raw.request(tftp::Direction::Write, "u", "NetAscii", &[("blksize", "8")]);
    let tid = raw.expect_oack(&[("blksize", "8")]);
    // A CR LF and a CR NUL pair split across blocks.
    raw.data(1, b"x\r\ny\r\0z\r", tid);
    raw.expect_ack(1);
    raw.data(2, b"\n", tid);
    raw.expect_ack(2);
    assert_eq!(fs::read(server.root().join("u")).unwrap(), b"x\ny\rz\n");

    // Modes other than octet and netascii are refused (error 4, as tftpd-hpa does), reads and
    // writes alike, and nothing is created.
    for (direction, mode) in [
        (tftp::Direction::Read, "mail"),
        (tftp::Direction::Read, "image"),
        (tftp::Direction::Read, ""),
        (tftp::Direction::Write, "mail"),
        (tftp::Direction::Write, "image"),
    ] {
        let raw = Raw::new(&server);
        raw.request(direction, if direction == tftp::Direction::Read { "t" } else { "new" }, mode, &[]);
        raw.expect_error(4);
    }
    assert!(!server.root().join("new").exists());
}

/// Reordered and duplicated DATA on a windowed write: a block after a gap is not written, the
/// last block received in order is acknowledged once, and the sender's restart fills the gap.
#[test]
fn windowed_write_survives_reordering() {
    let server = patient(true);
    let raw = Raw::new(&server);
    raw.wrq("w", &[("blksize", "8"), ("windowsize", "4")]);
    let tid = raw.expect_oack(&[("blksize", "8"), ("windowsize", "4")]);
    let data = bytes(8 * 6 + 3, 11);
    let block = |n: u16| &data[(n as usize - 1) * 8..(n as usize * 8).min(data.len())];
    raw.data(1, block(1), tid);
    raw.data(3, block(3), tid);
    // Block 2 is missing: the server acknowledges block 1 (once, however many strays follow).
    raw.expect_ack(1);
    raw.data(4, block(4), tid);
    raw.data(1, block(1), tid);
    // The sender restarts after block 1; a full window of 4 is acknowledged at its end.
    for n in 2..=5 {
        raw.data(n, block(n), tid);
    }
    raw.expect_ack(5);
    raw.data(6, block(6), tid);
    // A duplicate is out of order too: block 6 is acknowledged once more.
    raw.data(6, block(6), tid);
    raw.expect_ack(6);
    raw.data(7, block(7), tid);
    raw.expect_ack(7);
    assert_eq!(fs::read(server.root().join("w")).unwrap(), data);
}

/// RFC 1350 section 4: a packet from another address or port gets error 5, and the transfer
/// goes on undisturbed. A stranger's ERROR gets no answer (errors are never answered).
#[test]
fn strangers_get_error_5() {
    let server = patient(false);
    let data = bytes(1500, 9);
    server.put_file("f", &data);
    let raw = Raw::new(&server);
    raw.rrq("f", &[]);
    let (first, tid) = raw.expect_data(1);
    let stranger = Raw::new(&server);
    stranger.send_to(&tftp::error_bytes(tftp::ErrorCode::NotDefined, "stray"), tid);
    stranger.ack(1, tid);
    raw.ack(1, tid);
    let (second, _) = raw.expect_data(2);
    // The transfer took the stranger's two packets before the ACK that brought block 2, and
    // answered one of them.
    assert_eq!(stranger.expect_error(5), tid);
    assert!(stranger.nothing_queued(), "the stranger's ERROR was answered");
    raw.ack(2, tid);
    let (third, _) = raw.expect_data(3);
    raw.ack(3, tid);
    assert_eq!([first, second, third].concat(), data);
}

/// PXE firmware asks for `tsize`, ends that transfer with error 8 and sends the same request again
/// at once from the same port. However the listener and the ending transfer interleave, the
/// second request gets its own transfer (it was once taken for a duplicate of the first, now
/// and then, and went unanswered).
#[test]
fn the_same_request_after_the_clients_error_is_a_new_transfer() {
    let server = patient(false);
    server.put_file("boot", &bytes(3000, 3));
    let options = [("tsize", "0"), ("blksize", "1456")];
    let answer = [("tsize", "3000"), ("blksize", "1456")];
    for _ in 0..20 {
        let raw = Raw::new(&server);
        raw.rrq("boot", &options);
        let first = raw.expect_oack(&answer);
        raw.send_to(&tftp::error_bytes(tftp::ErrorCode::OptionRefused, "tsize only"), first);
        raw.rrq("boot", &options);
        let second = raw.expect_oack(&answer);
        assert_ne!(first, second, "a new transfer has a new transfer id");
        raw.send_to(&tftp::error_bytes(tftp::ErrorCode::NotDefined, "done"), second);
    }
}

/// A server with a single transfer slot and a long timeout, serving `f` ("payload").
fn one_slot_serving_f() -> Server {
    let server = Server::start(|c| {
        c.max_transfers = 1;
        c.timeout = Duration::from_secs(60);
    });
    server.put_file("f", b"payload");
    server
}

/// A request retransmitted before the client saw our OACK, then an ERROR for that OACK (a
/// client that refuses the options and will ask again without them): the copy was a duplicate,
/// not a new request, so no second transfer starts and the slot is free at once (a probe from
/// another port is served; a second transfer would hold the only slot for the whole timeout).
#[test]
fn a_duplicate_before_the_clients_error_starts_nothing() {
    let server = one_slot_serving_f();
    let raw = Raw::new(&server);
    raw.rrq("f", &[("tsize", "0")]);
    raw.rrq("f", &[("tsize", "0")]);
    let tid = raw.expect_oack(&[("tsize", "7")]);
    raw.send_to(&tftp::error_bytes(tftp::ErrorCode::OptionRefused, "no options"), tid);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = Raw::new(&server);
        probe.rrq("f", &[]);
        let (reply, from) = probe.recv();
        match Packet::parse(&reply) {
            Ok(Packet::Data { block: 1, .. }) => {
                probe.ack(1, from);
                break;
            }
            Ok(Packet::Error { code: 0, .. }) => assert!(Instant::now() < deadline, "the slot stayed taken"),
            other => panic!("unexpected {other:?}"),
        }
        std::thread::yield_now();
    }
    assert!(raw.nothing_queued(), "the client got a second answer");
}

/// A retransmitted request from the same address and port does not start a second transfer.
/// With a limit of one transfer, a second transfer would be refused as "busy"; a probe from
/// another port (which is refused) shows the listener has handled both copies by then.
#[test]
fn duplicate_request_does_not_start_a_second_transfer() {
    let server = one_slot_serving_f();
    let raw = Raw::new(&server);
    raw.rrq("f", &[]);
    raw.rrq("f", &[]);
    let (payload, tid) = raw.expect_data(1);
    assert_eq!(payload, b"payload");
    let probe = Raw::new(&server);
    probe.rrq("f", &[]);
    assert_eq!(probe.expect_error(0), server.addr(), "the probe is refused: one transfer runs");
    raw.sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    if let Ok((len, from)) = raw.sock.recv_from(&mut buf) {
        panic!("unexpected second answer from {from}: {:?}", Packet::parse(&buf[..len]));
    }
    raw.sock.set_nonblocking(false).unwrap();
    raw.ack(1, tid);
}

/// A write's first reply stands until DATA 1: a copy of the WRQ from the same port is answered
/// with the OACK again, from the transfer's TID, and starts no second transfer (with a limit of
/// one, a probe from another port is refused as busy). The same holds for ACK 0 without options.
#[test]
fn repeated_write_request_gets_the_first_reply_again() {
    let server = Server::start(|c| {
        c.writable = true;
        c.max_transfers = 1;
        c.timeout = Duration::from_secs(60);
    });
    let raw = Raw::new(&server);
    let options = [("blksize", "8")];
    raw.wrq("w", &options);
    let tid = raw.expect_oack(&options);
    raw.wrq("w", &options);
    assert_eq!(raw.expect_oack(&options), tid);
    let probe = Raw::new(&server);
    probe.wrq("other", &[]);
    assert_eq!(probe.expect_error(0), server.addr(), "the probe is refused: one transfer runs");
    raw.wrq("w", &options);
    assert_eq!(raw.expect_oack(&options), tid);
    raw.data(1, b"12345678", tid);
    assert_eq!(raw.expect_ack(1), tid);
    // After DATA 1 the request is old news: no answer to it, the transfer goes on.
    raw.wrq("w", &options);
    raw.data(2, b"9", tid);
    assert_eq!(raw.expect_ack(2), tid);
    assert_eq!(fs::read(server.root().join("w")).unwrap(), b"123456789");

    // A new server: the first transfer may hold its slot a moment after its last ACK.
    let server = patient(true);
    let raw = Raw::new(&server);
    raw.wrq("plain", &[]);
    let tid = raw.expect_ack(0);
    raw.wrq("plain", &[]);
    assert_eq!(raw.expect_ack(0), tid);
    raw.data(1, b"x", tid);
    assert_eq!(raw.expect_ack(1), tid);
    assert_eq!(fs::read(server.root().join("plain")).unwrap(), b"x");
}

/// While a write waits for DATA 1 the server sends nothing on its own timer: a client that
/// stays silent sees no packet at all until the transfer gives up after its retries (its socket
/// closes: the client's connected socket then gets "connection refused").
#[test]
fn write_waits_for_data_1_without_repeating_its_reply() {
    let server = Server::start(|c| {
        c.writable = true;
        c.timeout = Duration::from_millis(20);
        c.retries = 2;
    });
    let raw = Raw::new(&server);
    let options = [("blksize", "8")];
    raw.wrq("silent", &options);
    let tid = raw.expect_oack(&options);
    raw.sock.connect(tid).unwrap();
    raw.sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    loop {
        assert!(Instant::now() < deadline, "the silent transfer never ended");
        // An ACK means nothing to a receiver; it only makes a closed port visible.
        match raw.sock.send(&tftp::ack_bytes(0)).and_then(|_| raw.sock.recv(&mut buf)) {
            Ok(len) => panic!("the server repeated itself: {:?}", Packet::parse(&buf[..len])),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            Err(e) => assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}"),
        }
    }
    wait_for_no_temp_files(server.root());
    assert!(!server.root().join("silent").exists());
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
fn malformed_packets_are_answered_and_survived() {
    let server = patient(true);
    server.put_file("f", b"ok");
    let raw = Raw::new(&server);
    let to = server.addr();
    for packet in [&b"\0\x09abc"[..], b"\0", b"\0\x01", b"\0\x01\0octet\0", b"\0\x04\0\x01", b"\0\x03\0\x01data"] {
        raw.send_to(packet, to);
        assert_eq!(raw.expect_error(4), to, "{packet:?}");
    }
    // The largest UDP datagram, garbage: refused, not a crash.
    let mut huge = vec![0xAB; 65_507];
    huge[..2].copy_from_slice(&[0, 3]);
    raw.send_to(&huge, to);
    raw.expect_error(4);
    // An oversized request (a 65 KB file name) is refused with a clear error too.
    let mut long = vec![0, 1];
    long.extend(std::iter::repeat(b'x').take(65_000));
    long.extend(b"\0octet\0");
    raw.send_to(&long, to);
    raw.expect_error(2);
    // The server still serves.
    raw.rrq("f", &[]);
    let (payload, tid) = raw.expect_data(1);
    assert_eq!(payload, b"ok");
    raw.ack(1, tid);
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

/// Polls (bounded) until the server's clean-up of an aborted upload is visible.
fn wait_for_no_temp_files(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        if !names.iter().any(|n| n.ends_with(".ftpart")) {
            return;
        }
        assert!(Instant::now() < deadline, "temporary files left behind: {names:?}");
        std::thread::yield_now();
    }
}

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

/// A transfer whose peer falls silent ends after the configured retries, and the peer's address
/// is free again: the same request then starts a new transfer with a new TID.
#[test]
fn exhausted_retries_end_the_transfer() {
    let server = Server::start(|c| {
        c.timeout = Duration::from_millis(20);
        c.retries = 2;
    });
    server.put_file("f", b"data");
    let raw = Raw::new(&server);
    raw.rrq("f", &[]);
    let (_, first_tid) = raw.expect_data(1);
    raw.sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 1024];
    let mut retransmissions = 0;
    loop {
        assert!(Instant::now() < deadline, "the abandoned transfer never ended");
        // Ask again: a duplicate while the old transfer lives, a new transfer once it ended.
        raw.rrq("f", &[]);
        let Ok((len, from)) = raw.sock.recv_from(&mut buf) else { continue };
        assert_eq!(Packet::parse(&buf[..len]), Ok(Packet::Data { block: 1, data: b"data" }), "from {from}");
        if from == first_tid {
            retransmissions += 1;
            assert!(retransmissions <= 2, "more retransmissions than the configured retries");
            continue;
        }
        assert_ne!(from, server.addr());
        raw.ack(1, from);
        break;
    }
}

// ---------------------------------------------------------------------------------------------
// Loss: a network namespace whose loopback drops, duplicates, reorders and delays packets.

/// A network namespace with a lossy loopback, deleted on drop.
struct LossyNetns {
    name: String,
}

impl LossyNetns {
    /// `None` (after saying so loudly) when not root: namespaces need CAP_SYS_ADMIN. Without
    /// `duplicate` the loopback only drops (and, with netem, reorders and delays).
    fn create(duplicate: bool) -> Option<LossyNetns> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: TFTP loss tests need root to create a network namespace");
            return None;
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("ftt{}x{nanos:x}", std::process::id());
        peers::require("ip");
        let status = Command::new("ip").args(["netns", "add", &name]).status().unwrap();
        assert!(status.success(), "ip netns add {name} failed");
        let ns = LossyNetns { name };
        run_in(Some(&ns.name), "ip", &["link", "set", "lo", "up"]);
        let dup_percent = if duplicate { 2 } else { 0 };
        let netem = format!("qdisc add dev lo root netem loss 5% duplicate {dup_percent}% reorder 10% delay 1ms");
        let tc = Command::new("ip").args(["netns", "exec", &ns.name, "tc"]).args(netem.split(' ')).output().unwrap();
        if !tc.status.success() {
            // Some kernels (this project's VMs) are built without sch_netem. nftables on the
            // loopback's ingress can still drop and duplicate; it cannot reorder or delay.
            eprintln!(
                "NOTE: tc netem unavailable ({}); emulating 5% loss and {dup_percent}% duplication with \
                 nftables, without reordering or delay",
                String::from_utf8_lossy(&tc.stderr).trim()
            );
            let rules = format!(
                r#"table netdev lossy {{
                    chain in {{
                        type filter hook ingress device "lo" priority 0; policy accept;
                        meta l4proto udp numgen random mod 100 < {dup_percent} dup to "lo"
                        meta l4proto udp numgen random mod 100 < 5 drop
                    }}
                }}"#
            );
            peers::require("nft");
            let mut nft = Command::new("ip")
                .args(["netns", "exec", &ns.name, "nft", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            nft.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
            assert!(nft.wait().unwrap().success(), "nft could not install the loss rules");
        }
        Some(ns)
    }

    /// Starts a server whose sockets live in the namespace: a thread enters it and spawns the
    /// server from there, and every thread the server starts inherits the namespace.
    fn server(&self, root: &Path) -> TftpHandle {
        let ns_path = format!("/var/run/netns/{}", self.name);
        let root = root.to_owned();
        std::thread::spawn(move || {
            let ns = fs::File::open(&ns_path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            // The default timeout (1 s) and retries: what a deployment runs.
            let config = TftpConfig { root, writable: true, ..Default::default() };
            ftserver::tftp::spawn(socket, config).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for LossyNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A lossy namespace with a server in it, the server's root, a file to fetch, and a scratch
/// directory for the client.
struct LossyRig {
    server: TftpHandle,
    root: tempfile::TempDir,
    out: tempfile::TempDir,
    data: Vec<u8>,
    // Declared last: the namespace goes after the server has stopped.
    ns: LossyNetns,
}

impl LossyRig {
    /// 5% loss and 2% duplication.
    fn new(size: usize) -> Option<LossyRig> {
        LossyRig::create(size, true)
    }

    fn create(size: usize, duplicate: bool) -> Option<LossyRig> {
        let ns = LossyNetns::create(duplicate)?;
        let root = tempfile::tempdir().unwrap();
        let server = ns.server(root.path());
        let data = bytes(size, 10);
        fs::write(root.path().join("f"), &data).unwrap();
        Some(LossyRig { server, root, out: tempfile::tempdir().unwrap(), data, ns })
    }

    fn port(&self) -> String {
        self.server.local_addr().port().to_string()
    }

    fn local(&self, name: &str) -> String {
        self.out.path().join(name).to_str().unwrap().to_owned()
    }

    fn run(&self, program: &str, args: &[&str]) {
        run_in(Some(&self.ns.name), program, args);
    }

    /// Runs atftp in the namespace, up to four times. atftp 0.8 gives up after a few timeouts in
    /// a row, which 5% random loss produces now and then (about one windowed run in four on
    /// this machine): that is the client's limit, not the server's, so it may try again. A
    /// run counts as done when it succeeded or `done()` holds (the transfer completed but
    /// atftp gave up on the last exchange); the bytes themselves are checked afterwards.
    fn atftp_retrying(&self, args: &[&str], done: impl Fn() -> bool) {
        peers::require("atftp");
        for attempt in 1..=4 {
            let output = Command::new("timeout")
                .args(["-k", "5", "300", "ip", "netns", "exec", &self.ns.name, "atftp"])
                .args(args)
                .output()
                .unwrap();
            if output.status.success() || done() {
                return;
            }
            eprintln!(
                "NOTE: atftp attempt {attempt} gave up under loss ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        panic!("atftp {args:?} gave up four times under 5% loss");
    }

    /// Checks the client's download and the server's copy of the upload.
    fn check(&self, local: &str, uploaded: &str) {
        assert_same_file(Path::new(local), &self.data);
        assert_same_file(&self.root.path().join(uploaded), &self.data);
    }
}

/// curl, lock-step with blksize 1468 (no windowsize), downloading. curl derives its timers from
/// its time limits: `--connect-timeout 5` makes it retransmit the request after 1 s and send
/// `timeout 1` (by default 6 s), and `-m 120` makes it retransmit a block after 5 s.
#[test]
fn loss_curl_lock_step() {
    let Some(rig) = LossyRig::new(100_000) else { return };
    let (port, local) = (rig.port(), rig.local("curl"));
    rig.run("curl", &[&CURL_UNDER_LOSS[..], &["-o", &local, &format!("tftp://127.0.0.1:{port}/f")]].concat());
    assert_same_file(Path::new(&local), &rig.data);
}

/// curl's options for the loss tests (see `loss_curl_lock_step`).
const CURL_UNDER_LOSS: [&str; 7] = ["-sS", "--connect-timeout", "5", "-m", "120", "--tftp-blksize", "1468"];

/// 30 curl uploads of a small file under 5% loss, at once, each complete. curl 7.88 answers
/// every OACK it receives while sending by sending its *next* block as block 1. When the server
/// repeated its OACK on a timer after a lost DATA 1, that cost uploads their second block (1 to
/// 7 in 30 in our runs, both sides reporting success); the server now repeats it only for a
/// repeated WRQ (`repeated_write_request_gets_the_first_reply_again`), which curl sends only
/// before it has seen an OACK. `--connect-timeout 30` gives curl six tries at the request (with
/// 5 s, three in a row lost in 5% loss ended about one run in a thousand).
///
/// No duplication here: an OACK (or WRQ) the network duplicates still makes curl skip a block,
/// which no server can prevent. The server refuses the upload when block 1 then arrives twice
/// with different bytes (`block_1_with_different_data_ends_the_upload`); if that second block 1
/// is lost as well, it cannot tell.
#[test]
fn loss_curl_uploads() {
    let Some(rig) = LossyRig::create(1468 * 6 + 100, false) else { return };
    let port = rig.port();
    // Seven blocks: the first two are the ones at stake, more only make the test longer.
    let source = rig.local("small");
    fs::write(&source, &rig.data).unwrap();
    let curl = ["-sS", "--connect-timeout", "30", "-m", "120", "--tftp-blksize", "1468", "-T", &source];
    peers::require("curl");
    let uploads: Vec<_> = (0..30)
        .map(|i| {
            let url = format!("tftp://127.0.0.1:{port}/up{i}");
            Command::new("timeout")
                .args(["-k", "5", "300", "ip", "netns", "exec", &rig.ns.name, "curl"])
                .args(curl)
                .arg(url)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Every child is waited for before anything is asserted (timeout(1) bounds each).
    let outputs: Vec<_> = uploads.into_iter().map(|child| child.wait_with_output().unwrap()).collect();
    for (i, output) in outputs.iter().enumerate() {
        assert!(output.status.success(), "upload {i}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
        let got = fs::read(rig.root.path().join(format!("up{i}"))).unwrap_or_else(|e| panic!("upload {i}: {e}"));
        assert!(got == rig.data, "upload {i}: {} bytes stored, {} sent", got.len(), rig.data.len());
    }
}

/// atftp with windowsize 16 in both directions. atftp 0.8's windowed sender recovers from a loss
/// only on its own timer (it waits out a mid-window ACK) and gives up after a few timeouts in a
/// row, so the file is kept small (21 blocks, two windows) that its retry limit is not a lottery.
/// Our own client covers larger windowed transfers under loss (`loss_our_client_windowed`).
#[test]
fn loss_atftp_windowed() {
    let Some(rig) = LossyRig::new(30_000) else { return };
    let (port, local) = (rig.port(), rig.local("atftp"));
    let opts = ["--tftp-timeout", "1", "--option", "blksize 1468", "--option", "windowsize 16"];
    let downloaded = || fs::read(&local).is_ok_and(|got| got == rig.data);
    rig.atftp_retrying(&[&opts[..], &["-g", "-r", "f", "-l", &local, "127.0.0.1", &port]].concat(), downloaded);
    // The server moves an upload into place only when it is complete (and deletes an
    // interrupted one), so a file under the name means the upload finished.
    let uploaded = || rig.root.path().join("up").exists();
    rig.atftp_retrying(&[&opts[..], &["-p", "-r", "up", "-l", &local, "127.0.0.1", &port]].concat(), uploaded);
    rig.check(&local, "up");
}

/// tftp-hpa: RFC 1350 with no options at all, 512-byte blocks. Its commands come on stdin to
/// set its timers: `rexmt 1` (default 5 s) and `timeout 60`, its total patience for one block
/// (default 25 s, which a few losses in a row on a loaded machine exhaust).
#[test]
fn loss_tftp_hpa_no_options() {
    let Some(rig) = LossyRig::new(30_000) else { return };
    let (port, local) = (rig.port(), rig.local("hpa"));
    let script = format!("rexmt 1\ntimeout 60\nbinary\nget f {local}\nput {local} up\nquit\n");
    peers::require("tftp");
    let mut child = Command::new("timeout")
        .args(["-k", "5", "300", "ip", "netns", "exec", &rig.ns.name, "tftp", "127.0.0.1", &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "tftp-hpa: {}", String::from_utf8_lossy(&output.stdout));
    rig.check(&local, "up");
}

/// Shutting the server down ends running transfers: the client is told, and an unfinished
/// upload is deleted.
#[test]
fn shutdown_ends_transfers_and_deletes_unfinished_uploads() {
    let server = patient(true);
    let raw = Raw::new(&server);
    raw.wrq("unfinished", &[]);
    let tid = raw.expect_ack(0);
    raw.data(1, &[9u8; 512], tid);
    raw.expect_ack(1);
    let Server { handle, dir } = server;
    // A shutdown returns once the transfers have ended (the process exits right after it).
    handle.shutdown();
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(names.is_empty(), "left behind: {names:?}");
    assert_eq!(raw.expect_error(0), tid);
}

// ---------------------------------------------------------------------------------------------
// Our TFTP client (the ftclient library's `tftp` module, driven packet by packet) against our
// server, tftpd-hpa, a server that refuses options, and loss.

use ftclient::tftp as client;

fn client_get(addr: SocketAddr, name: &str, opts: &client::TftpOptions) -> (Vec<u8>, client::Outcome) {
    let mut out = Vec::new();
    let mut last_progress = 0;
    let outcome = client::get(addr, name, &mut out, opts, &mut |bytes, _| last_progress = bytes).unwrap();
    assert_eq!(last_progress, outcome.bytes);
    (out, outcome)
}

fn client_put(addr: SocketAddr, name: &str, data: &[u8], opts: &client::TftpOptions) -> client::Outcome {
    client::put(addr, name, &mut &data[..], Some(data.len() as u64), opts, &mut |_, _| {}).unwrap()
}

#[test]
fn our_client_against_our_server() {
    let server = Server::writable();
    let data = bytes(1_000_003, 12);
    server.put_file("f", &data);
    let fast = client::TftpOptions::default();
    let (got, outcome) = client_get(server.addr(), "f", &fast);
    assert!(got == data);
    assert_eq!((outcome.blksize, outcome.windowsize, outcome.tsize), (1468, 16, Some(data.len() as u64)));
    let outcome = client_put(server.addr(), "up", &data, &fast);
    assert_eq!((outcome.bytes, outcome.blksize, outcome.windowsize), (data.len() as u64, 1468, 16));
    assert_same_file(&server.root().join("up"), &data);

    // RFC 1350 only: no options asked, none used.
    let plain = client::TftpOptions { blksize: 512, windowsize: 1, ..Default::default() };
    let (got, outcome) = client_get(server.addr(), "f", &plain);
    assert!(got == data);
    assert_eq!((outcome.blksize, outcome.windowsize, outcome.tsize), (512, 1, None));

    // Netascii both ways, and the server's refusal reaches the caller as an error.
    let text = b"one\ntwo\r\nthree\rfour\n".repeat(500);
    let ascii = client::TftpOptions { mode: tftp::Mode::Netascii, ..Default::default() };
    client_put(server.addr(), "text", &text, &ascii);
    assert_same_file(&server.root().join("text"), &text);
    assert!(client_get(server.addr(), "text", &ascii).0 == text);
    let mut sink = Vec::new();
    let err = client::get(server.addr(), "missing", &mut sink, &fast, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, client::TftpError::Server { code: 1, .. }), "{err}");
    let err = client::put(server.addr(), "up", &mut &b"x"[..], Some(1), &fast, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, client::TftpError::Server { code: 6, .. }), "{err}");
}

/// tftpd-hpa in inetd mode on a socket bound to port 0, killed on drop.
struct TftpdHpa {
    child: std::process::Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl TftpdHpa {
    fn start() -> TftpdHpa {
        let dir = tempfile::tempdir().unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let child = Command::new(peers::require("in.tftpd"))
            .args(["-c", "-p", "-u", "root", "-s"])
            .arg(dir.path())
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(socket)))
            .spawn()
            .expect("cannot run in.tftpd (tftpd-hpa)");
        TftpdHpa { child, addr, dir }
    }
}

impl Drop for TftpdHpa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// tftpd-hpa grants blksize but knows nothing of windowsize: the client runs lock-step.
#[test]
fn our_client_against_tftpd_hpa() {
    let hpa = TftpdHpa::start();
    let data = bytes(700_001, 13);
    fs::write(hpa.dir.path().join("f"), &data).unwrap();
    let opts = client::TftpOptions::default();
    let (got, outcome) = client_get(hpa.addr, "f", &opts);
    assert!(got == data);
    assert_eq!((outcome.blksize, outcome.windowsize), (1468, 1));
    let outcome = client_put(hpa.addr, "up", &data, &opts);
    assert_eq!((outcome.blksize, outcome.windowsize), (1468, 1));
    assert_same_file(&hpa.dir.path().join("up"), &data);
}

/// A server that answers options with error 8 gets the request again without any.
#[test]
fn our_client_falls_back_when_options_are_refused() {
    let fake = UdpSocket::bind("127.0.0.1:0").unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let addr = fake.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let (len, client) = fake.recv_from(&mut buf).unwrap();
        let Ok(Packet::Request(first)) = Packet::parse(&buf[..len]) else { panic!("not a request") };
        assert!(!first.options.is_empty());
        let tid = UdpSocket::bind("127.0.0.1:0").unwrap();
        tid.send_to(&tftp::error_bytes(tftp::ErrorCode::OptionRefused, "no options here"), client).unwrap();
        let (len, client) = fake.recv_from(&mut buf).unwrap();
        let Ok(Packet::Request(second)) = Packet::parse(&buf[..len]) else { panic!("not a request") };
        assert!(second.options.is_empty(), "{second:?}");
        tid.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        tid.send_to(&Packet::Data { block: 1, data: b"plain" }.to_bytes(), client).unwrap();
        let (len, _) = tid.recv_from(&mut buf).unwrap();
        assert_eq!(Packet::parse(&buf[..len]), Ok(Packet::Ack(1)));
    });
    let (got, outcome) = client_get(addr, "f", &client::TftpOptions::default());
    assert_eq!(got, b"plain");
    assert_eq!((outcome.blksize, outcome.windowsize), (512, 1));
    server.join().unwrap();
}

/// Our client, windowed, in the lossy namespace (a thread that entered it runs the client).
#[test]
fn loss_our_client_windowed() {
    let Some(rig) = LossyRig::new(400_000) else { return };
    let addr = rig.server.local_addr();
    let ns_path = format!("/var/run/netns/{}", rig.ns.name);
    let data = rig.data.clone();
    let got = std::thread::spawn(move || {
        nix::sched::setns(fs::File::open(&ns_path).unwrap(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let opts = client::TftpOptions::default();
        let (got, _) = client_get(addr, "f", &opts);
        client_put(addr, "up", &data, &opts);
        got
    })
    .join()
    .unwrap();
    let local = rig.local("ours");
    fs::write(&local, got).unwrap();
    rig.check(&local, "up");
}

/// IPv6: the transfer socket is bound to the listener's address, here ::1.
#[test]
fn serves_over_ipv6() {
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(100_000, 14);
    fs::write(dir.path().join("f"), &data).unwrap();
    let socket = UdpSocket::bind("[::1]:0").unwrap();
    let config = TftpConfig { root: dir.path().to_owned(), writable: true, ..Default::default() };
    let server = ftserver::tftp::spawn(socket, config).unwrap();
    let out = tempfile::tempdir().unwrap();
    let local = out.path().join("f");
    let url = format!("tftp://[::1]:{}/f", server.local_addr().port());
    run("curl", &["-sS", "-g", "--tftp-blksize", "1468", "-o", local.to_str().unwrap(), &url]);
    assert_same_file(&local, &data);
    let url = format!("tftp://[::1]:{}/up", server.local_addr().port());
    run("curl", &["-sS", "-g", "-T", local.to_str().unwrap(), &url]);
    assert_same_file(&dir.path().join("up"), &data);
}

/// Issue 19: mode `binary`, which several clients send for octet, is served as octet: a raw
/// lock-step read gets the file byte for byte (CR and LF untouched), three blocks of 512.
#[test]
fn binary_mode_is_octet() {
    let server = patient(false);
    let mut data = bytes(1300, 19);
    data[..4].copy_from_slice(b"\r\n\n\r");
    server.put_file("f", &data);
    let raw = Raw::new(&server);
    raw.request(tftp::Direction::Read, "f", "binary", &[]);
    let mut got = Vec::new();
    for block in 1u16.. {
        let (payload, tid) = raw.expect_data(block);
        got.extend_from_slice(&payload);
        raw.ack(block, tid);
        if payload.len() < 512 {
            assert_eq!(block, 3);
            break;
        }
    }
    assert_eq!(got, data);
}
