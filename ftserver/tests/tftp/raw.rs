//! A raw UDP client, to pin the wire behaviour packet by packet, and the tests of the wire
//! format: options, windows, final blocks, modes, strangers and malformed packets.

use crate::support::{bytes, patient, Server};
use common::tftp::{self, Packet};
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// A client socket on 127.0.0.1:0 that sends and expects single packets.
pub struct Raw {
    /// The client's socket (its port is the client's transfer id).
    pub sock: UdpSocket,
    server: SocketAddr,
}

impl Raw {
    /// A fresh client port for `server`, with a read timeout so a missing answer fails.
    pub fn new(server: &Server) -> Raw {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw { sock, server: server.addr() }
    }

    /// Sends a request for `name` in `mode` with `options` to the listening port.
    pub fn request(&self, direction: tftp::Direction, name: &str, mode: &str, options: &[(&str, &str)]) {
        let request = tftp::Request {
            direction,
            filename: name.into(),
            mode: mode.into(),
            options: options.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        };
        self.send_to(&Packet::Request(request).to_bytes(), self.server);
    }

    /// Sends an octet read request.
    pub fn rrq(&self, name: &str, options: &[(&str, &str)]) {
        self.request(tftp::Direction::Read, name, "octet", options);
    }

    /// Sends an octet write request.
    pub fn wrq(&self, name: &str, options: &[(&str, &str)]) {
        self.request(tftp::Direction::Write, name, "octet", options);
    }

    /// Sends raw bytes to `to`.
    pub fn send_to(&self, bytes: &[u8], to: SocketAddr) {
        self.sock.send_to(bytes, to).unwrap();
    }

    /// The next datagram and its sender.
    pub fn recv(&self) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 70_000];
        let (len, from) = self.sock.recv_from(&mut buf).expect("no answer from the server");
        buf.truncate(len);
        (buf, from)
    }

    /// The next datagram, which must be DATA `block`; returns the payload and the sender.
    pub fn expect_data(&self, block: u16) -> (Vec<u8>, SocketAddr) {
        let (buf, from) = self.recv();
        match Packet::parse(&buf) {
            Ok(Packet::Data { block: got, data }) if got == block => (data.to_vec(), from),
            other => panic!("expected DATA {block}, got {other:?}"),
        }
    }

    /// The next datagram must be ACK `block`; returns its sender.
    pub fn expect_ack(&self, block: u16) -> SocketAddr {
        let (buf, from) = self.recv();
        assert_eq!(Packet::parse(&buf), Ok(Packet::Ack(block)));
        from
    }

    /// The next datagram must be an OACK with exactly `options`; returns its sender.
    pub fn expect_oack(&self, options: &[(&str, &str)]) -> SocketAddr {
        let (buf, from) = self.recv();
        let expected = options.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(Packet::parse(&buf), Ok(Packet::Oack(expected)));
        from
    }

    /// Nothing has arrived (yet): for datagrams that would have been sent before one already
    /// received elsewhere.
    pub fn nothing_queued(&self) -> bool {
        self.sock.set_nonblocking(true).unwrap();
        let queued = self.sock.recv_from(&mut [0u8; 16]);
        self.sock.set_nonblocking(false).unwrap();
        matches!(queued, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// The next datagram must be ERROR `code`; returns its sender.
    pub fn expect_error(&self, code: u16) -> SocketAddr {
        let (buf, from) = self.recv();
        match Packet::parse(&buf) {
            Ok(Packet::Error { code: got, .. }) if got == code => from,
            other => panic!("expected ERROR {code}, got {other:?}"),
        }
    }

    /// Sends ACK `block` to the transfer id `tid`.
    pub fn ack(&self, block: u16, tid: SocketAddr) {
        self.send_to(&tftp::ack_bytes(block), tid);
    }

    /// Sends DATA `block` with `payload` to the transfer id `tid`.
    pub fn data(&self, block: u16, payload: &[u8], tid: SocketAddr) {
        self.send_to(&Packet::Data { block, data: payload }.to_bytes(), tid);
    }
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
