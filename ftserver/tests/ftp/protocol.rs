//! The command set over a raw control connection: exact reply codes and formats that clients
//! depend on (FTP-NOTES.md), REST semantics, listings over control, and read-only refusals.

use crate::support::{fixtures, TestServer};
use common::hostport::parse_227;
use std::io::Read;

#[test]
fn greets_and_answers_before_login() {
    let server = TestServer::start();
    let mut raw = server.raw();
    assert_eq!(raw.greeting.code, 220);
    // lftp sends FEAT before login, then AUTH TLS, which must fail with 5xx (not 2xx/3xx).
    let feat = raw.expect("FEAT", 211);
    assert_eq!(
        feat.lines,
        [
            "Features:",
            " EPRT",
            " EPSV",
            " HASH SHA-256*;SHA-1;MD5;CRC32",
            " MDTM",
            " MLST type*;size*;modify*;perm*;",
            " PASV",
            " REST STREAM",
            " SIZE",
            " TVFS",
            " UTF8",
            " XCRC",
            " XMD5",
            " XSHA1",
            " XSHA256",
            "End"
        ]
    );
    raw.expect("AUTH TLS", 502);
    raw.expect("PBSZ 0", 502);
    raw.expect("PROT P", 502);
    raw.expect("OPTS UTF8 ON", 200);
    raw.expect("SYST", 215);
    raw.expect("HELP", 214);
    raw.expect("NOOP", 200);
    for needs_login in ["PWD", "CWD sub", "PASV", "EPSV", "LIST", "RETR hello.txt", "SIZE hello.txt", "STAT /"] {
        raw.expect(needs_login, 530);
    }
    raw.expect("PASS before-user", 503);
    raw.expect("USER anyone", 331);
    raw.expect("PASS whatever", 230);
    raw.expect("QUIT", 221);
}

#[test]
fn navigates_and_quotes_paths() {
    let server = TestServer::start();
    std::fs::create_dir(server.root.path().join("a \"q\" b")).unwrap();
    let mut raw = server.login();
    assert_eq!(raw.expect("PWD", 257).text(), "\"/\" is the current directory");
    raw.expect("CWD a \"q\" b", 250);
    // RFC 959 appendix II: embedded quotes are doubled.
    assert_eq!(raw.expect("XPWD", 257).text(), "\"/a \"\"q\"\" b\" is the current directory");
    raw.expect("CDUP", 250);
    raw.expect("CWD sub", 250);
    assert!(raw.expect("PWD", 257).text().starts_with("\"/sub\""));
    raw.expect("CWD ../..", 250);
    assert!(raw.expect("PWD", 257).text().starts_with("\"/\""));
    raw.expect("CWD missing", 550);
    raw.expect("CWD hello.txt", 550);
    raw.expect("XCWD /sub/", 250);
    assert!(raw.expect("PWD", 257).text().starts_with("\"/sub\""));
}

#[test]
fn sizes_times_and_mlst() {
    let server = TestServer::start();
    let mut raw = server.login();
    assert_eq!(raw.expect("SIZE awkward.bin", 213).text(), "300000");
    assert_eq!(raw.expect("SIZE /sub/nested.txt", 213).text(), "7");
    raw.expect("SIZE sub", 550);
    raw.expect("SIZE missing", 550);
    let mdtm = raw.expect("MDTM hello.txt", 213).text();
    assert!(common::listing::parse_mdtm(&mdtm).is_some(), "{mdtm}");
    let mlst = raw.expect("MLST with space.txt", 250);
    assert_eq!(mlst.lines.len(), 3, "{mlst:?}");
    assert_eq!(mlst.lines[0], "Listing /with space.txt");
    let facts = common::listing::parse_mlsx(&mlst.lines[1]).unwrap();
    assert_eq!((facts.name.as_str(), facts.size), ("/with space.txt", 19));
    assert_eq!(raw.expect("OPTS MLST size;", 200).text(), "MLST OPTS size;");
    let mlst = raw.expect("MLST hello.txt", 250);
    assert!(mlst.lines[1].starts_with(" size=13; "), "{mlst:?}");
    let stat = raw.expect("STAT sub", 213);
    assert!(stat.lines.iter().any(|l| l.ends_with(" nested.txt")), "{stat:?}");
    raw.expect("STAT", 211);
}

#[test]
fn types_modes_and_structures() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    raw.expect("TYPE L 8", 200);
    raw.expect("TYPE A", 200);
    raw.expect("TYPE A N", 200);
    raw.expect("TYPE E", 504);
    raw.expect("MODE S", 200);
    raw.expect("MODE B", 200);
    raw.expect("MODE C", 504);
    raw.expect("STRU F", 200);
    raw.expect("STRU R", 504);
}

#[test]
fn ascii_mode_converts_line_endings() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.expect("TYPE A", 200);
    assert_eq!(raw.passive_transfer("RETR lines.txt"), b"one\r\ntwo\r\n\r\nthree\r\nfour");
    raw.expect("TYPE I", 200);
    assert_eq!(raw.passive_transfer("RETR lines.txt"), fixtures()[1].1);
}

/// In TYPE A the bytes on the wire are not the file's (LF travels as CRLF), so the 150 reply
/// announces no count, and a restart offset, counted by the client in converted bytes, is
/// refused for downloads and uploads alike (vsftpd's rule) instead of resuming at the wrong
/// byte; REST 0 (lftp sends it after a resume) is harmless.
#[test]
fn ascii_transfers_announce_no_count_and_cannot_resume() {
    let server = TestServer::writable(false);
    let mut raw = server.login();
    raw.expect("TYPE A", 200);
    let mut data = raw.epsv_connect();
    assert_eq!(raw.expect("RETR lines.txt", 150).text(), "Opening ASCII mode data connection for lines.txt.");
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    raw.expect_reply(226);
    raw.expect("REST 5", 350);
    let refused = raw.expect("RETR lines.txt", 550);
    assert_eq!(refused.text(), "No support for resuming an ASCII transfer: use TYPE I.");
    raw.expect("REST 5", 350);
    raw.expect("STOR new.txt", 550);
    assert!(!server.root.path().join("new.txt").exists());
    raw.expect("REST 0", 350);
    assert_eq!(raw.passive_transfer("RETR lines.txt"), got);
    raw.expect("TYPE I", 200);
    raw.expect("REST 5", 350);
    let _data = raw.epsv_connect();
    assert_eq!(
        raw.expect("RETR lines.txt", 150).text(),
        "Opening BINARY mode data connection for lines.txt (15 bytes)."
    );
}

/// REST survives commands in between (curl sends SIZE, lftp TYPE and MDTM), is cleared by the
/// transfer, and the 150 reply announces the bytes that follow.
#[test]
fn rest_survives_other_commands_and_is_cleared() {
    let server = TestServer::start();
    let awkward = &fixtures()[2].1;
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    assert_eq!(raw.expect("REST 299990", 350).text(), "Restarting at 299990.");
    raw.expect("SIZE awkward.bin", 213);
    raw.expect("MDTM awkward.bin", 213);
    let mut data = raw.epsv_connect();
    let opening = raw.expect("RETR awkward.bin", 150);
    assert_eq!(common::reply::parse_transfer_size(&opening.text()), Some(10), "{opening:?}");
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    raw.expect_reply(226);
    assert_eq!(bytes, awkward[299_990..]);
    // Cleared: the next RETR starts at 0.
    assert_eq!(raw.passive_transfer("RETR awkward.bin"), *awkward);
    // REST 0 is accepted (lftp sends it after a resume); REST beyond the end is refused.
    raw.expect("REST 0", 350);
    raw.expect("REST 300001", 350);
    let _data = raw.epsv_connect();
    raw.expect("RETR awkward.bin", 554);
    raw.expect("REST x", 501);
}

#[test]
fn pasv_transfer() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    let mut data = raw.pasv_connect();
    let opening = raw.expect("RETR empty", 150);
    assert_eq!(opening.text(), "Opening BINARY mode data connection for empty (0 bytes).");
    let mut bytes = Vec::new();
    data.read_to_end(&mut bytes).unwrap();
    raw.expect_reply(226);
    assert!(bytes.is_empty());
}

#[test]
fn transfers_need_a_data_connection() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.expect("RETR hello.txt", 425);
    // A failed transfer consumes the passive port and REST.
    raw.expect("PASV", 227);
    raw.expect("RETR missing", 550);
    raw.expect("RETR hello.txt", 425);
    raw.expect("PASV", 227);
    raw.expect("ABOR", 225);
    raw.expect("LIST", 425);
}

#[test]
fn listings_over_the_data_connection() {
    let server = TestServer::start();
    let mut raw = server.login();
    let nlst = String::from_utf8(raw.passive_transfer("NLST")).unwrap();
    assert_eq!(nlst.split_terminator("\r\n").collect::<Vec<_>>(), crate::support::TOP_NAMES);
    // ls options are ignored.
    let list = String::from_utf8(raw.passive_transfer("LIST -la sub")).unwrap();
    assert!(list.starts_with("-rw") && list.ends_with(" nested.txt\r\n"), "{list:?}");
    let list = String::from_utf8(raw.passive_transfer("LIST hello.txt")).unwrap();
    assert!(list.ends_with(" 13 ") || list.contains(" 13 "), "{list:?}");
    let mlsd = String::from_utf8(raw.passive_transfer("MLSD sub")).unwrap();
    assert!(mlsd.starts_with("type=file;size=7;modify=") && mlsd.ends_with(";perm=r; nested.txt\r\n"), "{mlsd:?}");
    let _data = raw.epsv_connect();
    raw.expect("MLSD hello.txt", 501);
    raw.expect("LIST missing", 550);
    // PASV advertises the control connection's local address.
    let reply = raw.expect("PASV", 227);
    assert_eq!(parse_227(&reply.text()).unwrap().ip().to_string(), "127.0.0.1");
}

#[test]
fn pasv_advertises_the_configured_address() {
    let server = TestServer::start_with("127.0.0.1", |c| c.pasv_address = Some("192.0.2.7".parse().unwrap()));
    let mut raw = server.login();
    let reply = raw.expect("PASV", 227);
    assert!(reply.text().starts_with("Entering Passive Mode (192,0,2,7,"), "{reply:?}");
}

#[test]
fn pasv_ports_come_from_the_configured_range() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let server = TestServer::start_with("127.0.0.1", |c| c.pasv_ports = Some(port..=port));
    let mut raw = server.login();
    let reply = raw.expect("EPSV", 229);
    assert_eq!(common::hostport::parse_229(&reply.text()), Ok(port));
}

#[test]
fn write_commands_are_refused_as_read_only() {
    let server = TestServer::start();
    let mut raw = server.login();
    for cmd in ["STOR x", "APPE x", "STOU", "MKD d", "XMKD d", "RMD sub", "DELE hello.txt", "RNFR hello.txt", "RNTO y"]
    {
        let reply = raw.expect(cmd, 550);
        assert!(reply.text().contains("read-only"), "{cmd}: {reply:?}");
    }
    raw.expect("SITE CHMOD 777 hello.txt", 502);
    assert!(server.root.path().join("hello.txt").exists());
    assert!(!server.root.path().join("x").exists());
}

#[test]
fn unknown_and_malformed_commands() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.expect("FROB x", 500);
    raw.expect("RETR", 501);
    raw.expect("PORT 1,2,3", 501);
    raw.expect("EPRT |9|1.2.3.4|5000|", 522);
    raw.expect("EPSV 3", 522);
    raw.expect("OPTS FROB", 501);
    raw.expect("NOOP", 200);
}

/// On an IPv6 control connection: EPSV and EPRT |2| work; PASV (IPv4 only) and the IPv4
/// variants are refused (RFC 2428).
#[test]
fn ipv6_data_connections() {
    if !crate::support::ipv6_available() {
        eprintln!("skipped: ::1 is not available here");
        return;
    }
    let server = TestServer::start_with("::1", |_| {});
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    raw.expect("PASV", 425);
    raw.expect("EPSV 1", 522);
    raw.expect("EPRT |1|127.0.0.1|5000|", 522);
    raw.expect("PORT 127,0,0,1,19,136", 500);
    raw.expect("EPSV 2", 229);
    assert_eq!(raw.passive_transfer("RETR hello.txt"), b"hello, world\n");
    let listener = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    raw.expect(&format!("EPRT |2|::1|{port}|"), 200);
    raw.expect("RETR hello.txt", 150);
    let (mut data, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    raw.expect_reply(226);
    assert_eq!(got, b"hello, world\n");
}

/// A dual-stack socket sees IPv4 clients as `::ffff:a.b.c.d`; PASV, PORT and the peer checks
/// must treat that as the plain IPv4 address.
#[test]
fn ipv4_mapped_clients_on_an_ipv6_socket() {
    if !crate::support::ipv6_available() {
        eprintln!("skipped: ::1 is not available here");
        return;
    }
    let server = TestServer::start_with("::ffff:127.0.0.1", |_| {});
    let mut raw = crate::support::Raw::connect(std::net::SocketAddr::from(([127, 0, 0, 1], server.port())));
    raw.login();
    raw.expect("TYPE I", 200);
    let reply = raw.expect("PASV", 227);
    assert!(reply.text().starts_with("Entering Passive Mode (127,0,0,1,"), "{reply:?}");
    let mut data = std::net::TcpStream::connect(parse_227(&reply.text()).unwrap()).unwrap();
    raw.expect("RETR hello.txt", 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    raw.expect_reply(226);
    assert_eq!(got, b"hello, world\n");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let [p1, p2] = listener.local_addr().unwrap().port().to_be_bytes();
    raw.expect(&format!("PORT 127,0,0,1,{p1},{p2}"), 200);
    raw.expect("RETR hello.txt", 150);
    let (mut data, _) = listener.accept().unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    raw.expect_reply(226);
    assert_eq!(got, b"hello, world\n");
}

/// Sizes and offsets are 64-bit: a sparse 5 GiB file lists, sizes and resumes past 4 GiB.
#[test]
fn files_beyond_4_gib() {
    const SIZE: u64 = 5 << 30;
    let server = TestServer::start();
    let file = std::fs::File::create(server.root.path().join("huge.bin")).unwrap();
    file.set_len(SIZE - 4).unwrap();
    drop(file);
    let mut file = std::fs::OpenOptions::new().append(true).open(server.root.path().join("huge.bin")).unwrap();
    std::io::Write::write_all(&mut file, b"tail").unwrap();
    drop(file);
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    assert_eq!(raw.expect("SIZE huge.bin", 213).text(), SIZE.to_string());
    let mlst = raw.expect("MLST huge.bin", 250);
    assert_eq!(common::listing::parse_mlsx(&mlst.lines[1]).unwrap().size, SIZE);
    let mlsd = String::from_utf8(raw.passive_transfer("MLSD")).unwrap();
    assert!(mlsd.lines().any(|l| l.contains(&format!(";size={SIZE};")) && l.ends_with(" huge.bin")), "{mlsd}");
    let list = String::from_utf8(raw.passive_transfer("LIST huge.bin")).unwrap();
    assert!(list.contains(&format!(" {SIZE} ")), "{list}");
    raw.expect(&format!("REST {}", SIZE - 10), 350);
    let mut data = raw.epsv_connect();
    let opening = raw.expect("RETR huge.bin", 150);
    assert_eq!(common::reply::parse_transfer_size(&opening.text()), Some(10));
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    raw.expect_reply(226);
    assert_eq!(got, b"\0\0\0\0\0\0tail");
}

/// Sends ABOR the way clients do: Telnet IP and the Data Mark (the mark as TCP urgent data,
/// RFC 959 section 4.1.3, like curl and lftp), or the whole line as urgent data (Python's
/// ftplib).
fn send_abor(raw: &mut crate::support::Raw, whole_line_urgent: bool) {
    use std::io::Write;
    let mut stream = raw.ctrl.get_ref();
    let sock = socket2::SockRef::from(stream);
    if whole_line_urgent {
        sock.send_out_of_band(b"ABOR\r\n").unwrap();
    } else {
        stream.write_all(b"\xff\xf4\xff").unwrap();
        sock.send_out_of_band(b"\xf2").unwrap();
        stream.write_all(b"ABOR\r\n").unwrap();
    }
}

/// ABOR during a download stops it: 426 for the transfer, then 226 for the ABOR (RFC 959).
/// An ABOR behind another command sent meanwhile (NOOP, then ABOR) stops it too; the NOOP is
/// answered in its turn, after the 426 (pyftpdlib does the same).
#[test]
fn abor_stops_a_download() {
    for (whole_line_urgent, noop_first) in [(false, false), (true, false), (false, true)] {
        let server = TestServer::start();
        let (mut raw, mut data) = server.big_download_started(1 << 30, 4096);
        if noop_first {
            std::io::Write::write_all(&mut raw.ctrl.get_ref(), b"NOOP\r\n").unwrap();
        }
        send_abor(&mut raw, whole_line_urgent);
        // Keep reading, as a client does until the server closes the data connection.
        let mut rest = Vec::new();
        data.read_to_end(&mut rest).unwrap();
        assert!(rest.len() < (1 << 30) - 4096, "the whole file was sent");
        raw.expect_reply(426);
        if noop_first {
            raw.expect_reply(200);
        }
        raw.expect_reply(226);
        raw.expect("NOOP", 200);
        // Without a transfer, ABOR is answered 225, however it is sent.
        send_abor(&mut raw, whole_line_urgent);
        raw.expect_reply(225);
    }
}

/// A client that stops reading a download is still answered at once: ABOR gets 426 and 226
/// while the server's send is blocked on a full socket buffer (not after --data-timeout), and a
/// download nobody reads fails at the data timeout.
#[test]
fn abor_is_answered_while_the_client_reads_nothing() {
    let timeout = std::time::Duration::from_secs(2);
    for (data_timeout, abor) in [(std::time::Duration::from_secs(120), true), (timeout, false)] {
        let server = TestServer::start_with("127.0.0.1", |c| c.data_timeout = data_timeout);
        let (mut raw, data) = server.big_download_started(1 << 30, 1000);
        // Reading stops here; the socket buffers fill and the server's send blocks.
        raw.ctrl.get_ref().set_read_timeout(Some(timeout * 3 / 2)).unwrap();
        if abor {
            send_abor(&mut raw, false);
            raw.expect_reply(426);
            raw.expect_reply(226);
        } else {
            raw.expect_reply(426);
        }
        drop(data);
        raw.expect("NOOP", 200);
    }
}

#[test]
fn ftplib_abort() {
    let server = TestServer::start();
    std::fs::File::create(server.root.path().join("big.bin")).unwrap().set_len(1 << 30).unwrap();
    let script = r#"
import ftplib, sys
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", int(sys.argv[1]), timeout=20)
ftp.login()
print(ftp.abort())
ftp.voidcmd("TYPE I")
conn = ftp.transfercmd("RETR big.bin")
conn.recv(4096)
conn.close()
print(ftp.abort())
print(ftp.getresp())
print(ftp.voidcmd("NOOP"))
ftp.quit()
"#;
    let out =
        crate::support::run_ok(std::process::Command::new("python3").args(["-c", script, &server.port().to_string()]));
    let codes: Vec<&str> = out.lines().map(|l| &l[..3]).collect();
    assert_eq!(codes, ["225", "426", "225", "200"], "{out}");
}

/// A library user's configuration may hold any duration: deadlines are clamped, never
/// overflowed (an `Instant + Duration::MAX` panicked in every transfer).
#[test]
fn endless_timeouts_in_the_config_do_not_panic() {
    let server = TestServer::start_with("127.0.0.1", |c| {
        c.data_timeout = std::time::Duration::MAX;
        c.idle_timeout = std::time::Duration::MAX;
        c.writable = true;
    });
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    assert_eq!(raw.passive_transfer("RETR hello.txt"), b"hello, world\n");
    assert_eq!(raw.passive_upload("STOR up.txt", b"up").code, 226);
    assert_eq!(std::fs::read(server.root.path().join("up.txt")).unwrap(), b"up");
}

/// A FIFO in the root is refused at once, by RETR and HASH alike: a plain open would wait for a
/// writer and hold the session (and its slot) for good. The session goes on.
#[test]
fn a_fifo_is_refused_at_once() {
    let server = TestServer::start();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    nix::unistd::mkfifo(&server.root.path().join("pipe"), mode).unwrap();
    let mut raw = server.login();
    raw.cmd("TYPE I");
    let _data = raw.pasv_connect();
    raw.expect("RETR pipe", 550);
    raw.expect("HASH pipe", 550);
    assert_eq!(raw.passive_transfer("RETR hello.txt"), b"hello, world\n");
    // LIST shows it as `ls` does, so recursive clients (wget -r) can tell it is no file.
    let list = String::from_utf8(raw.passive_transfer("LIST")).unwrap();
    assert!(list.lines().any(|l| l.starts_with("prw------- ") && l.ends_with(" pipe")), "{list}");
}
