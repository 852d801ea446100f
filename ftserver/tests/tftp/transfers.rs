//! The lifetime of a transfer, packet by packet: duplicate and repeated requests, transfer
//! slots, retries and timeouts, retried uploads and shutdown.

use crate::raw::Raw;
use crate::support::{assert_same_file, bytes, patient, wait_for_no_temp_files, Server};
use common::tftp::{self, Packet};
use std::fs;
use std::time::{Duration, Instant};

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

/// A request whose sender never answers is given up after 2 retransmissions, whatever the
/// configured retries (a transfer that made progress keeps them all): silent requests no longer
/// hold a slot for 47 s.
#[test]
fn a_request_nobody_answers_is_given_up_sooner() {
    let server = Server::start(|c| {
        c.timeout = Duration::from_millis(20);
        c.retries = 5;
    });
    server.put_file("f", b"data");
    let raw = Raw::new(&server);
    raw.rrq("f", &[]);
    let (_, first_tid) = raw.expect_data(1);
    // With 5 retries the next copies would come 40, 80, 160, 320 and 640 ms apart: two
    // seconds without one means the transfer has ended.
    raw.sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1024];
    let mut retransmissions = 0;
    while let Ok((len, from)) = raw.sock.recv_from(&mut buf) {
        assert_eq!((Packet::parse(&buf[..len]), from), (Ok(Packet::Data { block: 1, data: &b"data"[..] }), first_tid));
        retransmissions += 1;
    }
    assert_eq!(retransmissions, 2, "retransmissions to a peer that never answered");
}

/// Silent requests from one address fill at most half the transfer slots plus nothing more
/// (past half, an address holding its share, an eighth or at least 4, waits); a client from
/// another address is served at once.
#[test]
fn one_address_cannot_fill_the_transfer_slots() {
    let server = Server::start(|c| {
        c.max_transfers = 16;
        c.timeout = Duration::from_secs(60);
    });
    server.put_file("f", b"data");
    let request = read_request("f");
    let flood: Vec<std::net::UdpSocket> = (0..16)
        .map(|_| {
            let sock = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            sock.send_to(&request, server.addr()).unwrap();
            sock
        })
        .collect();
    let mut served = 0;
    for sock in &flood {
        let mut buf = [0u8; 1024];
        let (len, _) = sock.recv_from(&mut buf).unwrap();
        match Packet::parse(&buf[..len]) {
            Ok(Packet::Data { .. }) => served += 1,
            Ok(Packet::Error { code: 0, message }) => assert!(message.contains("your address"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(served, 8);
    let raw = Raw::new(&server);
    raw.rrq("f", &[]);
    raw.expect_data(1);
}

/// Silent requests from many addresses fill every slot, and a new client still gets one: a
/// transfer nobody ever answered gives its slot to the newcomer (a flood from 64 addresses
/// refused everyone while the silent transfers waited out their retransmissions).
#[test]
fn a_new_client_takes_the_slot_of_a_transfer_nobody_answered() {
    let server = Server::start(|c| {
        c.max_transfers = 16;
        c.timeout = Duration::from_secs(60);
    });
    server.put_file("f", b"data");
    let request = read_request("f");
    let flood: Vec<std::net::UdpSocket> = (1..=16)
        .map(|i| {
            let sock = std::net::UdpSocket::bind(("127.0.1.".to_owned() + &i.to_string(), 0)).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            sock.send_to(&request, server.addr()).unwrap();
            // Each is answered (DATA 1) and then says nothing: all 16 slots are taken.
            let mut buf = [0u8; 1024];
            let (len, _) = sock.recv_from(&mut buf).unwrap();
            assert!(matches!(Packet::parse(&buf[..len]), Ok(Packet::Data { block: 1, .. })));
            sock
        })
        .collect();
    let raw = Raw::new(&server);
    raw.rrq("f", &[]);
    let (data, tid) = raw.expect_data(1);
    assert_eq!(data, b"data");
    raw.ack(1, tid);
    drop(flood);
}

/// The datagram of a plain read request for `name`.
fn read_request(name: &str) -> Vec<u8> {
    Packet::Request(tftp::Request {
        direction: tftp::Direction::Read,
        filename: name.into(),
        mode: "octet".into(),
        options: Vec::new(),
    })
    .to_bytes()
}
