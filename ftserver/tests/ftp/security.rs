//! Every refusal the server promises (issue 2 "Security"), each with a test: root confinement,
//! FTP bounce (PORT/EPRT), passive port theft, hostile lines, idle clients, connection limits.

use crate::support::{TestServer, TOP_NAMES};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Connects to `target` from the loopback address `from` (all of 127/8 is local on Linux).
fn connect_from(from: Ipv4Addr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&target.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

#[test]
fn paths_never_leave_the_root() {
    let server = TestServer::start();
    let outside = server.outside.path().to_str().unwrap().to_owned();
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    // `..` is clamped at the virtual root, so these name files inside the root or nothing.
    for path in ["../../../../etc/passwd", "/../../etc/passwd", &format!("{outside}/secret"), "/etc/passwd"] {
        let _data = raw.epsv_connect();
        raw.expect(&format!("RETR {path}"), 550);
        raw.expect(&format!("SIZE {path}"), 550);
    }
    // A symlink in the root pointing outside is refused, whatever the command.
    for cmd in
        ["CWD escape", "SIZE escape/secret", "MDTM escape/secret", "MLST escape", "STAT escape", "SIZE sub/secret-link"]
    {
        raw.expect(cmd, 550);
    }
    for cmd in ["RETR escape/secret", "RETR sub/secret-link", "LIST escape", "NLST escape/", "MLSD escape"] {
        let _data = raw.epsv_connect();
        raw.expect(cmd, 550);
    }
    // `CWD ..` at the root stays at the root, and the listing is the root's.
    raw.expect("CWD ..", 250);
    assert!(raw.expect("PWD", 257).text().starts_with("\"/\""));
    let nlst = String::from_utf8(raw.passive_transfer("NLST ..")).unwrap();
    assert_eq!(nlst.split_terminator("\r\n").collect::<Vec<_>>(), TOP_NAMES);
}

/// RFC 2577 section 3: PORT/EPRT must name the control peer and an unprivileged port; a
/// refused one leads to no connection attempt at all.
#[test]
fn port_and_eprt_cannot_bounce() {
    let server = TestServer::start();
    // A listener on another loopback address stands for a third party: nothing may connect.
    let third = TcpListener::bind("127.0.0.2:0").unwrap();
    third.set_nonblocking(true).unwrap();
    let third_port = third.local_addr().unwrap().port();
    let mut raw = server.login();
    let [p1, p2] = third_port.to_be_bytes();
    for cmd in [
        format!("PORT 127,0,0,2,{p1},{p2}"),
        format!("EPRT |1|127.0.0.2|{third_port}|"),
        "PORT 127,0,0,1,0,21".to_owned(),
        "EPRT |1|127.0.0.1|1023|".to_owned(),
    ] {
        assert_eq!(raw.expect(&cmd, 500).text(), "Illegal PORT command.");
        // The refused address is not used for the next transfer either.
        raw.expect("LIST", 425);
    }
    // EPRT with the other address family: 522 (RFC 2428 section 2).
    raw.expect(&format!("EPRT |2|::1|{third_port}|"), 522);
    raw.expect("NOOP", 200);
    assert_eq!(third.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
}

/// RFC 2577 section 5: a passive connection from another address is dropped without data and
/// the server keeps waiting for the real client, then gives up with 425.
#[test]
fn passive_connections_only_from_the_control_peer() {
    let server = TestServer::start_with("127.0.0.1", |c| c.data_timeout = Duration::from_secs(2));
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    let reply = raw.expect("EPSV", 229);
    let port = common::hostport::parse_229(&reply.text()).unwrap();
    let data_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut thief = connect_from(Ipv4Addr::new(127, 0, 0, 3), data_addr).unwrap();
    let mut client = TcpStream::connect(data_addr).unwrap();
    raw.expect("RETR hello.txt", 150);
    let mut stolen = Vec::new();
    thief.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The thief sees a close (or a reset), never file data.
    let _ = thief.read_to_end(&mut stolen);
    assert!(stolen.is_empty());
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"hello, world\n");
    raw.expect_reply(226);

    // Only a stranger connects: the server waits out the data timeout and answers 425.
    let reply = raw.expect("PASV", 227);
    let port = common::hostport::parse_227(&reply.text()).unwrap().port();
    let _thief = connect_from(Ipv4Addr::new(127, 0, 0, 3), SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    raw.expect("RETR hello.txt", 425);
    raw.expect("NOOP", 200);
}

#[test]
fn hostile_lines_get_errors_and_the_server_stays_up() {
    let server = TestServer::start();
    let mut raw = server.login();
    let mut long = b"RETR ".to_vec();
    long.extend(std::iter::repeat(b'x').take(100_000));
    raw.send(&long);
    raw.expect_reply(500);
    // Not UTF-8 (0xFF would be a Telnet command, stripped as RFC 854 says).
    raw.send(b"RETR \xc3\x28.txt");
    raw.expect_reply(500);
    raw.send(b"RETR hello\0.txt");
    raw.expect_reply(500);
    raw.send(b"\x1b[2J\x07");
    raw.expect_reply(500);
    raw.expect("NOOP", 200);
    // Another session is unaffected.
    let mut other = server.login();
    other.expect("PWD", 257);
    // A client that vanishes mid-line does not take the server down.
    let mut rude = TcpStream::connect(server.addr()).unwrap();
    rude.write_all(b"USER half-a-li").unwrap();
    drop(rude);
    server.login().expect("NOOP", 200);
}

#[test]
fn idle_clients_are_disconnected() {
    let server = TestServer::start_with("127.0.0.1", |c| c.idle_timeout = Duration::from_secs(1));
    let mut raw = server.login();
    // Say nothing: the next thing heard is the 421, then EOF.
    let reply = raw.reply();
    assert_eq!(reply.code, 421, "{reply:?}");
    let mut rest = Vec::new();
    raw.ctrl.get_mut().read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

/// The idle timeout bounds each command line, not the gap between bytes: a client dribbling
/// one byte at a time and never finishing a line is disconnected like a silent one (before
/// login here), instead of holding its slot for ever. The reply is awaited for five times the
/// timeout while the bytes keep coming.
#[test]
fn a_client_dribbling_bytes_is_disconnected_at_the_idle_timeout() {
    let idle = Duration::from_secs(2);
    let server = TestServer::start_with("127.0.0.1", |c| c.idle_timeout = idle);
    let mut raw = server.raw();
    raw.ctrl.get_ref().set_read_timeout(Some(idle * 5)).unwrap();
    let mut dribble = raw.ctrl.get_ref().try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let dribbler = std::thread::spawn(move || {
        for byte in b"NOOP".iter().cycle().take(300) {
            if stopped.load(std::sync::atomic::Ordering::SeqCst) || dribble.write_all(&[*byte]).is_err() {
                break;
            }
            // The pace of the dribble (a byte every 100 ms), not a synchronisation.
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let reply = raw.reply();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    dribbler.join().unwrap();
    assert_eq!(reply.code, 421, "{reply:?}");
}

fn assert_refused_with_421(server: &TestServer) {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("421 ") && text.ends_with("\r\n"), "{text:?}");
}

#[test]
fn limits_total_clients() {
    let server = TestServer::start_with("127.0.0.1", |c| c.max_clients = 2);
    let first = server.login();
    let second = server.raw();
    assert_refused_with_421(&server);
    drop(first);
    drop(second);
    // The slots free up once those sessions end.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.handle.as_ref().unwrap().active_sessions() > 0 {
        assert!(std::time::Instant::now() < deadline, "sessions did not end");
        std::thread::yield_now();
    }
    server.login().expect("NOOP", 200);
}

#[test]
fn limits_clients_per_address() {
    let server = TestServer::start_with("127.0.0.1", |c| c.max_per_ip = 1);
    let mut first = server.login();
    assert_refused_with_421(&server);
    // Another address still gets in.
    let stream = connect_from(Ipv4Addr::new(127, 0, 0, 4), server.addr()).unwrap();
    let mut ctrl = common::Control::new(stream, common::MAX_REPLY_LINE);
    assert_eq!(ctrl.read_reply().unwrap().code, 220);
    first.expect("NOOP", 200);
}

#[test]
fn active_mode_connects_to_the_peer() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let [p1, p2] = port.to_be_bytes();
    raw.expect(&format!("PORT 127,0,0,1,{p1},{p2}"), 200);
    raw.expect("RETR hello.txt", 150);
    let (mut data, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    raw.expect_reply(226);
    assert_eq!(got, b"hello, world\n");
    // EPSV ALL: from now on only EPSV may set up data connections (RFC 2428 section 4).
    raw.expect("EPSV ALL", 200);
    raw.expect(&format!("PORT 127,0,0,1,{p1},{p2}"), 503);
    raw.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 503);
    raw.expect("PASV", 503);
    assert_eq!(raw.passive_transfer("RETR hello.txt"), b"hello, world\n");
}

/// An active data connection comes from the address the client logged in to, not whichever
/// one the route to the client prefers: a server listening on 0.0.0.0, reached at 127.0.0.2
/// from 127.0.0.1, connects back from 127.0.0.2 (the kernel's own choice is 127.0.0.1).
#[test]
fn active_connections_come_from_the_address_the_client_used() {
    let server = TestServer::start_with("0.0.0.0", |_| {});
    let mut raw = crate::support::Raw::connect(SocketAddr::from(([127, 0, 0, 2], server.port())));
    raw.login();
    raw.expect("TYPE I", 200);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for command in [format!("EPRT |1|127.0.0.1|{port}|"), format!("PORT 127,0,0,1,{},{}", port >> 8, port & 255)] {
        raw.expect(&command, 200);
        raw.expect("RETR hello.txt", 150);
        let (mut data, from) = listener.accept().unwrap();
        assert_eq!(from.ip(), Ipv4Addr::new(127, 0, 0, 2));
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        raw.expect_reply(226);
        assert_eq!(got, b"hello, world\n");
    }
}

/// thread forever: the send times out after the data timeout and the client gets 426.
#[test]
fn a_stalled_download_times_out_without_blocking_others() {
    let server = TestServer::start_with("127.0.0.1", |c| c.data_timeout = Duration::from_secs(1));
    std::fs::File::create(server.root.path().join("big.bin")).unwrap().set_len(256 << 20).unwrap();
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    let data = raw.epsv_connect();
    raw.expect("RETR big.bin", 150);
    // Meanwhile another client is served.
    let mut other = server.login();
    assert_eq!(other.passive_transfer("RETR hello.txt"), b"hello, world\r\n");
    raw.expect_reply(426);
    drop(data);
    raw.expect("NOOP", 200);
}

/// A client that closes the data connection mid-download gets 426 and can go on.
#[test]
fn a_download_closed_by_the_client_is_reported() {
    let server = TestServer::start();
    let (mut raw, data) = server.big_download_started(256 << 20, 4096);
    drop(data);
    raw.expect_reply(426);
    assert_eq!(raw.passive_transfer("RETR hello.txt"), b"hello, world\n");
}

/// A file that shrinks while it is sent is reported as an error, never as a complete transfer.
#[test]
fn a_file_shrinking_during_a_download_is_not_reported_complete() {
    let server = TestServer::start();
    let path = server.root.path().join("shrinking.bin");
    std::fs::File::create(&path).unwrap().set_len(256 << 20).unwrap();
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    let mut data = raw.epsv_connect();
    raw.expect("RETR shrinking.bin", 150);
    // The server is now blocked writing (socket buffers hold a few MiB at most).
    let mut first = [0u8; 4096];
    data.read_exact(&mut first).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(32 << 20).unwrap();
    let mut rest = Vec::new();
    data.read_to_end(&mut rest).unwrap();
    assert!((first.len() + rest.len()) as u64 <= 32 << 20);
    let reply = raw.reply();
    assert_eq!(reply.code, 451, "{reply:?}");
}

/// Random and malformed command streams from several clients at once never take the server
/// down, and a well-behaved client is served correctly all the while.
#[test]
fn hostile_streams_do_not_disturb_a_good_client() {
    // A short data timeout: hostile RETR/LIST after EPSV wait for a connection that never comes.
    let server = TestServer::start_with("127.0.0.1", |c| c.data_timeout = Duration::from_secs(1));
    let addr = server.addr();
    let hostile: Vec<_> = (0..4u32)
        .map(|seed| {
            std::thread::spawn(move || {
                let mut x = 0x2545_f491u32 ^ seed.wrapping_mul(0x9e37_79b9);
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x
                };
                let verbs: [&[u8]; 12] = [
                    b"RETR ",
                    b"PORT ",
                    b"EPRT ",
                    b"CWD ",
                    b"LIST ",
                    b"REST ",
                    b"TYPE ",
                    b"OPTS ",
                    b"MLST ",
                    b"USER ",
                    b"PASS ",
                    b"\xff\xf4\xff\xf2ABOR",
                ];
                for _ in 0..20 {
                    let mut stream = TcpStream::connect(addr).unwrap();
                    // Drain replies so the server never blocks writing to us.
                    let mut reader = stream.try_clone().unwrap();
                    let drain = std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
                    // Half the streams log in first, so commands past the login check run too.
                    let mut junk = if next() % 2 == 0 { b"USER x\r\nPASS y\r\nEPSV\r\n".to_vec() } else { Vec::new() };
                    for _ in 0..50 {
                        junk.extend_from_slice(verbs[next() as usize % verbs.len()]);
                        let len = next() as usize % if next() % 50 == 0 { 10_000 } else { 40 };
                        junk.extend((0..len).map(|_| next() as u8));
                        junk.extend_from_slice(if next() % 2 == 0 { b"\r\n" } else { b"\n" });
                    }
                    let _ = stream.write_all(&junk);
                    let _ = stream.shutdown(std::net::Shutdown::Write);
                    let _ = drain.join();
                }
            })
        })
        .collect();
    let expected = crate::support::fixtures()[2].1.clone();
    let mut good = server.login();
    good.expect("TYPE I", 200);
    for _ in 0..20 {
        assert_eq!(good.passive_transfer("RETR awkward.bin"), expected);
    }
    for h in hostile {
        h.join().unwrap();
    }
    assert_eq!(good.passive_transfer("RETR awkward.bin"), expected);
    server.login().expect("NOOP", 200);
}

/// Names that start with a dot are out of reach by default (vsftpd hides them too): a home
/// directory served as it is does not share `.ssh/id_rsa`. `--dotfiles` serves them.
#[test]
fn dot_files_are_hidden_unless_served() {
    for dotfiles in [false, true] {
        let server = TestServer::start_with("127.0.0.1", |c| {
            c.writable = true;
            c.dotfiles = dotfiles;
        });
        let root = server.root.path();
        std::fs::create_dir(root.join(".ssh")).unwrap();
        std::fs::write(root.join(".ssh/id_rsa"), b"private key").unwrap();
        let mut raw = server.login();
        raw.cmd("TYPE I");
        let listed = String::from_utf8_lossy(&raw.passive_transfer("NLST")).contains(".ssh");
        assert_eq!(listed, dotfiles);
        if dotfiles {
            assert_eq!(raw.passive_transfer("RETR .ssh/id_rsa"), b"private key");
            raw.expect("CWD .ssh", 250);
        } else {
            for line in ["RETR .ssh/id_rsa", "CWD .ssh", "SIZE .ssh/id_rsa", "MLST .ssh", "MKD .git", "STOR .bashrc"] {
                raw.expect(line, 550);
            }
            assert!(!root.join(".git").exists());
        }
    }
}
