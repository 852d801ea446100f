//! ftclient against scripted servers that misbehave: short transfers, aborts, dropped
//! connections, a stranger on the active data port, odd replies. Whatever happens, nothing may
//! appear under the final name unless the whole file arrived and was confirmed.

use crate::fake::{Conn, Fake, Script};
use crate::support::{bytes, dir_names, ftclient, ftclient_active, wait_output, ChildGuard, LIMIT};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const LEN: usize = 1_000_003;

fn content() -> Vec<u8> {
    bytes(LEN, 99)
}

fn run(dir: &Path, fake: &Fake, extra: &[&str]) -> crate::support::Run {
    let port = fake.port.to_string();
    let mut args = vec!["127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    ftclient(dir, &args)
}

/// Like [`run`], in active mode with a fresh data port.
fn run_active(dir: &Path, fake: &Fake, extra: &[&str]) -> crate::support::Run {
    let port = fake.port.to_string();
    let mut args = vec!["127.0.0.1", port.as_str()];
    args.extend_from_slice(extra);
    ftclient_active(dir, &args, std::net::Ipv4Addr::LOCALHOST.into()).0
}

/// A RETR handler that sends `content()[rest..cut]`, then ends as `end` says.
fn send_part(cut: usize, end: fn(&mut Conn, TcpStream)) -> crate::fake::Retr {
    Box::new(move |conn: &mut Conn, rest: u64| {
        conn.reply(150, &format!("Opening BINARY mode data connection for f ({LEN} bytes)."));
        let mut data = conn.open_data();
        let _ = data.write_all(&content()[rest as usize..cut]);
        end(conn, data);
    })
}

fn sized() -> Script {
    Script { size: Some(LEN as u64), ..Script::default() }
}

fn assert_only_part(dir: &Path) {
    assert_eq!(dir_names(dir), vec![".f.ftpart"], "expected only the partial file");
}

#[test]
fn a_short_transfer_keeps_only_the_partial_file_and_resume_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    // Session 0 stops half way and still says 226; session 1 serves the rest after REST.
    let retr: crate::fake::Retr = Box::new(|conn: &mut Conn, rest: u64| {
        let cut = if conn.session == 0 { LEN / 2 } else { LEN };
        conn.reply(150, "Opening BINARY mode data connection for f.");
        let mut data = conn.open_data();
        data.write_all(&content()[rest as usize..cut]).unwrap();
        drop(data);
        conn.reply(226, "Transfer complete.");
    });
    let fake = Fake::start(sized(), 2, retr);
    let first = run(dir.path(), &fake, &["-g", "f"]).fails_with(&format!("stopped after {} of {LEN} bytes", LEN / 2));
    assert!(first.stderr.contains("--resume"), "the message must say how to resume: {}", first.stderr);
    assert_only_part(dir.path());
    assert_eq!(std::fs::read(dir.path().join(".f.ftpart")).unwrap(), content()[..LEN / 2]);

    run(dir.path(), &fake, &["-g", "f", "--resume"]).ok();
    assert_eq!(dir_names(dir.path()), vec!["f"]);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), content());
    let commands = fake.commands();
    assert!(commands.contains(&format!("REST {}", LEN / 2)), "{commands:?}");
    // TYPE I comes before SIZE (RFC 3659 section 4).
    let type_at = commands.iter().position(|c| c == "TYPE I").unwrap();
    let size_at = commands.iter().position(|c| c == "SIZE f").unwrap();
    assert!(type_at < size_at, "{commands:?}");
}

#[test]
fn an_abort_426_fails_and_keeps_nothing_under_the_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(
        sized(),
        1,
        send_part(LEN / 3, |conn, data| {
            drop(data);
            conn.reply(426, "Connection closed; transfer aborted.");
        }),
    );
    run(dir.path(), &fake, &["-g", "f"]).fails_with("426 Connection closed; transfer aborted.");
    assert_only_part(dir.path());
}

#[test]
fn a_dropped_control_connection_fails() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(
        sized(),
        1,
        send_part(LEN / 3, |conn, data| {
            drop(data);
            let _ = conn.ctrl.get_ref().shutdown(std::net::Shutdown::Both);
        }),
    );
    run(dir.path(), &fake, &["-g", "f"]).fails_with("closed the control connection");
    assert_only_part(dir.path());
}

#[test]
fn a_reset_data_connection_fails() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(
        sized(),
        1,
        send_part(LEN / 3, |conn, data| {
            // SO_LINGER 0: close sends RST instead of FIN.
            socket2::SockRef::from(&data).set_linger(Some(Duration::ZERO)).unwrap();
            drop(data);
            conn.reply(426, "reset");
        }),
    );
    let failed = run(dir.path(), &fake, &["-g", "f"]);
    assert_eq!(failed.code(), 1, "{failed:?}");
    assert!(!dir.path().join("f").exists());
}

#[test]
fn a_reply_before_the_data_is_drained_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(
        sized(),
        1,
        Box::new(|conn: &mut Conn, _| {
            conn.reply(150, "go");
            let mut data = conn.open_data();
            // 226 first, data after: the client must read the data to its end anyway.
            conn.reply(226, "Transfer complete.");
            data.write_all(&content()).unwrap();
        }),
    );
    run(dir.path(), &fake, &["-g", "f"]).ok();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), content());
}

#[test]
fn more_data_than_announced_fails() {
    let dir = tempfile::tempdir().unwrap();
    let script = Script { size: Some(10), ..Script::default() };
    let fake = Fake::start(
        script,
        1,
        send_part(LEN, |conn, data| {
            drop(data);
            conn.reply(226, "done");
        }),
    );
    let failed = run(dir.path(), &fake, &["-g", "f"]).fails_with("the server sent more than 10 bytes");
    // Resuming cannot mend a server that sends more than it announced: no such advice.
    assert!(!failed.stderr.contains("--resume"), "{}", failed.stderr);
    assert!(!dir.path().join("f").exists());
}

#[test]
fn the_150_size_is_used_without_size() {
    let dir = tempfile::tempdir().unwrap();
    // No SIZE: the "(N bytes)" of the 150 reply is the expected size.
    let fake = Fake::start(
        Script::default(),
        1,
        send_part(LEN - 1, |conn, data| {
            drop(data);
            conn.reply(226, "done");
        }),
    );
    run(dir.path(), &fake, &["-g", "f"]).fails_with(&format!("stopped after {} of {LEN} bytes", LEN - 1));
    assert_only_part(dir.path());
}

#[test]
fn a_stranger_on_the_active_data_port_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(
        Script { size: Some(LEN as u64), ..Script::default() },
        1,
        Box::new(|conn: &mut Conn, _| {
            let client = conn.active_addr().expect("EPRT");
            // Another local address (all of 127/8 is loopback) plays the stranger: it connects
            // first and offers poison.
            let stranger = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            stranger.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into()).unwrap();
            stranger.connect(&client.into()).unwrap();
            let mut stranger: TcpStream = stranger.into();
            let _ = stranger.write_all(b"POISON POISON POISON");
            conn.reply(150, "Opening BINARY mode data connection for f.");
            let mut data = conn.open_data();
            data.write_all(&content()).unwrap();
            drop(data);
            conn.reply(226, "done");
        }),
    );
    let got = run_active(dir.path(), &fake, &["-g", "f"]).ok();
    assert!(got.stderr.contains("refused a data connection from 127.0.0.2"), "{}", got.stderr);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), content());
}

#[test]
fn servers_without_epsv_and_eprt_and_with_a_lying_227_work() {
    let script = || Script {
        greeting: vec!["Welcome,", "220 this line is text", "ready"],
        feat: None,
        epsv: false,
        eprt: false,
        // A 227 that points elsewhere must be ignored (CVE-2021-4189, CVE-2020-8284).
        pasv_claims: std::net::Ipv4Addr::new(192, 0, 2, 1),
        size: Some(LEN as u64),
        list: b"-rw-r--r-- 1 ftp ftp 1000003 Mar 14 09:26 f\r\ndrwxr-xr-x 2 ftp ftp 4096 Mar 14 09:26 d\r\n".to_vec(),
        ..Script::default()
    };
    let ok_retr = || {
        send_part(LEN, |conn, data| {
            drop(data);
            conn.reply(226, "done");
        })
    };
    for active in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::start(script(), 2, ok_retr());
        let run =
            |args: &[&str]| if active { run_active(dir.path(), &fake, args) } else { run(dir.path(), &fake, args) };
        run(&["-g", "f"]).ok();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), content());
        assert_eq!(run(&["-l"]).ok().out(), "d/\nf\n");
        let commands = fake.commands();
        let expected = if active { "PORT 127,0,0,1," } else { "PASV" };
        assert!(commands.iter().any(|c| c.starts_with(expected)), "{commands:?}");
    }
}

#[test]
fn an_active_server_that_never_connects_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(sized(), 1, Box::new(|conn: &mut Conn, _| conn.reply(150, "going nowhere")));
    run_active(dir.path(), &fake, &["-g", "f", "--timeout", "1"]).fails_with("did not connect to data port");
    assert!(dir_names(dir.path()).is_empty());
}

#[test]
fn an_active_server_that_reports_425_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(
        sized(),
        1,
        Box::new(|conn: &mut Conn, _| {
            conn.reply(150, "trying");
            conn.reply(425, "Can't open data connection.");
        }),
    );
    run_active(dir.path(), &fake, &["-g", "f"]).fails_with("425 Can't open data connection.");
}

/// An active-mode server that is slow to connect, then sends a small file and its 226 at once,
/// is waited for: the connection is already queued when the 226 is seen (the client took
/// the 226 for a failure to connect).
#[test]
fn an_active_server_that_connects_late_still_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(
        Script { size: Some(5), ..Script::default() },
        5,
        Box::new(|conn: &mut Conn, _| {
            conn.reply(150, "Opening BINARY mode data connection for f.");
            // A slow server (not synchronisation): it connects after the client's first wait.
            std::thread::sleep(Duration::from_millis(300));
            let mut data = conn.open_data();
            data.write_all(b"small").unwrap();
            drop(data);
            conn.reply(226, "done");
        }),
    );
    for name in ["f", "f.1", "f.2"] {
        run_active(dir.path(), &fake, &["-g", "f", "--no-verify"]).ok();
        assert_eq!(std::fs::read(dir.path().join(name)).unwrap(), b"small");
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_script(hex: &str) -> Script {
    Script {
        feat: Some(vec![" EPSV", " SIZE", " HASH SHA-1;SHA-256*;MD5"]),
        size: Some(LEN as u64),
        hash: Some(format!("SHA-256 0-{} {hex} f", LEN - 1)),
        ..Script::default()
    }
}

fn whole() -> crate::fake::Retr {
    send_part(LEN, |conn, data| {
        drop(data);
        conn.reply(226, "done");
    })
}

#[test]
fn downloads_are_checked_against_the_servers_hash() {
    let good = sha256_hex(&content());
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(hash_script(&good), 1, whole());
    run(dir.path(), &fake, &["-g", "f", "-v"]).ok();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), content());
    // A small file's digest is asked for in the same write as the RETR (pipelined).
    let commands = fake.commands();
    let hash = commands.iter().position(|c| c == "HASH f").expect("HASH was sent");
    assert_eq!(commands.get(hash + 1).map(String::as_str), Some("RETR f"), "{commands:?}");

    // A mismatch: exit 1, nothing under the final name, the temporary file kept.
    let bad = sha256_hex(b"something else");
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(hash_script(&bad), 2, whole());
    run(dir.path(), &fake, &["-g", "f"]).fails_with("checksum mismatch");
    assert_only_part(dir.path());
    // --no-verify skips it.
    std::fs::remove_file(dir.path().join(".f.ftpart")).unwrap();
    run(dir.path(), &fake, &["-g", "f", "--no-verify"]).ok();
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), content());
}

#[test]
fn checksum_option_is_checked() {
    let good = sha256_hex(&content());
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(sized(), 2, whole());
    run(dir.path(), &fake, &["-g", "f", "--checksum", &format!("sha256:{}", good.to_uppercase())]).ok();
    let wrong = format!("sha256:{}", sha256_hex(b"x"));
    run(dir.path(), &fake, &["-g", "f", "--checksum", &wrong]).fails_with("checksum mismatch: --checksum is");
    assert_eq!(dir_names(dir.path()), vec![".f.ftpart", "f"]);
}

#[test]
fn ctrl_c_stops_the_download_and_keeps_nothing_under_the_final_name() {
    let dir = tempfile::tempdir().unwrap();
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let fake = Fake::start(
        sized(),
        1,
        Box::new(move |conn: &mut Conn, _| {
            conn.reply(150, "go");
            let mut data = conn.open_data();
            data.write_all(&content()[..1000]).unwrap();
            // Stall until the test is done with the client.
            let _ = wait.lock().unwrap().recv_timeout(LIMIT);
        }),
    );
    let port = fake.port.to_string();
    let child = crate::support::spawn_ftclient(dir.path(), &["127.0.0.1", &port, "-g", "f"]);
    let pid = child.id().to_string();
    // Wait (bounded) until the first bytes reached the temporary file.
    let part = dir.path().join(".f.ftpart");
    let deadline = Instant::now() + LIMIT;
    while std::fs::metadata(&part).map_or(0, |m| m.len()) < 1000 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::park_timeout(Duration::from_millis(10));
    }
    let mut kill = ChildGuard(Command::new("kill").args(["-INT", &pid]).spawn().unwrap());
    kill.wait_until(Instant::now() + LIMIT).expect("kill ran");
    let out = wait_output(child);
    drop(release);
    // 128 + SIGINT, as shells and curl report an interrupt.
    assert_eq!(out.code(), 130, "{out:?}");
    assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
    assert!(out.stderr.contains("--resume"), "{}", out.stderr);
    assert_only_part(dir.path());
}

#[test]
fn the_legacy_xsha256_is_used_when_advertised() {
    let script = |hex: String| Script {
        feat: Some(vec![" EPSV", " SIZE", " XSHA256"]),
        size: Some(LEN as u64),
        xsha256: Some(hex),
        ..Script::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(script(sha256_hex(&content())), 1, whole());
    run(dir.path(), &fake, &["-g", "f"]).ok();
    assert!(fake.commands().iter().any(|c| c == "XSHA256 f"));
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), content());

    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(script(sha256_hex(b"other")), 1, whole());
    run(dir.path(), &fake, &["-g", "f"]).fails_with("the server's SHA-256 is");
    assert_only_part(dir.path());
}

fn crc32_hex(data: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(data))
}

#[test]
fn the_cheapest_digest_is_chosen_and_the_one_the_reply_names_is_checked() {
    // The server offers CRC32 but keeps answering SHA-256 (OPTS accepted or refused): the
    // client then computes SHA-256 from the temporary file and checks that.
    for refuse_opts_hash in [false, true] {
        let script = |hex: &str| Script {
            feat: Some(vec![" EPSV", " SIZE", " HASH SHA-256*;CRC32"]),
            size: Some(LEN as u64),
            hash: Some(format!("SHA-256 0-{} {hex} f", LEN - 1)),
            refuse_opts_hash,
            ..Script::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::start(script(&sha256_hex(&content())), 1, whole());
        run(dir.path(), &fake, &["-g", "f"]).ok();
        assert!(fake.commands().iter().any(|c| c == "OPTS HASH CRC32"), "{:?}", fake.commands());
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), content());

        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::start(script(&sha256_hex(b"other")), 1, whole());
        run(dir.path(), &fake, &["-g", "f"]).fails_with("the server's SHA-256 is");
        assert_only_part(dir.path());
    }
    // The server's default is already the cheapest: no OPTS at all; CRC32 is checked.
    let script = |hex: &str| Script {
        feat: Some(vec![" EPSV", " SIZE", " HASH SHA-256;CRC32*"]),
        size: Some(LEN as u64),
        hash: Some(format!("CRC32 0-{} {hex} f", LEN - 1)),
        ..Script::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(script(&crc32_hex(&content())), 1, whole());
    run(dir.path(), &fake, &["-g", "f"]).ok();
    assert!(!fake.commands().iter().any(|c| c.starts_with("OPTS")), "{:?}", fake.commands());
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(script(&crc32_hex(b"other")), 1, whole());
    run(dir.path(), &fake, &["-g", "f"]).fails_with("the server's CRC32 is");
    assert_only_part(dir.path());
}

#[test]
fn xcrc_is_preferred_among_the_legacy_commands() {
    let script = |hex: String| Script {
        feat: Some(vec![" EPSV", " SIZE", " XSHA256", " XCRC"]),
        size: Some(LEN as u64),
        xcrc: Some(hex),
        xsha256: Some(sha256_hex(&content())),
        ..Script::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(script(crc32_hex(&content()).to_uppercase()), 1, whole());
    run(dir.path(), &fake, &["-g", "f"]).ok();
    assert!(fake.commands().iter().any(|c| c == "XCRC f"), "{:?}", fake.commands());
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(script(crc32_hex(b"other")), 2, whole());
    run(dir.path(), &fake, &["-g", "f"]).fails_with("the server's CRC32 is");
    // --hash sha256 picks XSHA256 instead.
    std::fs::remove_file(dir.path().join(".f.ftpart")).unwrap();
    run(dir.path(), &fake, &["-g", "f", "--hash", "sha256"]).ok();
    assert!(fake.commands().iter().any(|c| c == "XSHA256 f"), "{:?}", fake.commands());
}

#[test]
fn stdout_downloads_are_verified_too() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::start(hash_script(&sha256_hex(b"other")), 2, whole());
    let bad = run(dir.path(), &fake, &["-g", "f", "-o", "-"]).fails_with("to stdout failed verification");
    assert_eq!(bad.stdout, content());
    let good = format!("sha256:{}", sha256_hex(&content()));
    run(dir.path(), &fake, &["-g", "f", "-o", "-", "--no-verify", "--checksum", &good]).ok();
    assert!(dir_names(dir.path()).is_empty());
}

#[test]
fn a_remote_directory_that_cannot_be_listed_fails_alone() {
    // lftp's mirror does the same: the rest of the tree is transferred, the directory is
    // listed among the failures, and the exit status is 1.
    let file = "-rw-r--r--    1 ftp      ftp             5 Jan 01  2024 ";
    let script = Script {
        dirs: vec![
            ("/", Some("")),
            ("/t", Some(Box::leak(format!("drwxr-xr-x    1 ftp      ftp             0 Jan 01  2024 bad\r\ndrwxr-xr-x    1 ftp      ftp             0 Jan 01  2024 good\r\n{file}top.txt\r\n").into_boxed_str()))),
            ("/t/good", Some(Box::leak(format!("{file}x.txt\r\n").into_boxed_str()))),
            ("/t/bad", None),
        ],
        ..Script::default()
    };
    let fake = Fake::start(
        script,
        1,
        Box::new(|conn: &mut Conn, _| {
            conn.reply(150, "Opening BINARY mode data connection (5 bytes).");
            conn.open_data().write_all(b"hello").unwrap();
            conn.reply(226, "done");
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), &fake, &["-r", "-g", "t", "--parallel", "1"]);
    let run = run.fails_with("1 of 3 files failed");
    assert!(
        run.stderr.contains("  failed bad: cannot list the remote directory: 550 cannot list this directory"),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read(dir.path().join("t/top.txt")).unwrap(), b"hello");
    assert_eq!(std::fs::read(dir.path().join("t/good/x.txt")).unwrap(), b"hello");
}

#[test]
fn a_local_file_that_shrinks_during_an_upload_resets_the_data_connection() {
    // The server takes a clean close of the data connection as the end of the file: a file
    // that shrinks while it is sent must end with a reset, or the server would store the part
    // it got under the final name.
    let (read_some, started) = std::sync::mpsc::channel();
    let (truncated, go_on) = std::sync::mpsc::channel::<()>();
    let (ended, how) = std::sync::mpsc::channel();
    let stor: crate::fake::Retr = Box::new(move |conn: &mut Conn, _| {
        conn.reply(150, "Ok to send data.");
        let mut data = conn.open_data();
        data.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut first = vec![0u8; 64 << 10];
        std::io::Read::read_exact(&mut data, &mut first).unwrap();
        read_some.send(()).unwrap();
        go_on.recv().unwrap();
        let end = std::io::copy(&mut data, &mut std::io::sink()).map(drop);
        let reset = end.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset);
        ended.send(end.map_err(|e| e.kind())).unwrap();
        if reset {
            conn.reply(426, "Connection closed; transfer aborted.");
        } else {
            conn.reply(226, "Transfer complete.");
        }
    });
    let fake = Fake::start(Script::default(), 1, stor);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("shrink.bin");
    // Sparse: 64 MiB that cost no disk, far more than the socket buffers hold.
    std::fs::File::create(&local).unwrap().set_len(64 << 20).unwrap();
    let port = fake.port.to_string();
    let child = crate::support::spawn_ftclient(dir.path(), &["127.0.0.1", &port, "-p", "shrink.bin", "--to", "s.bin"]);
    started.recv_timeout(LIMIT).expect("the upload never started");
    // The client has read at least its first megabyte: whatever it reads next is past the end.
    std::fs::File::options().write(true).open(&local).unwrap().set_len(1000).unwrap();
    truncated.send(()).unwrap();
    let run = wait_output(child);
    assert_eq!(how.recv_timeout(LIMIT).unwrap(), Err(std::io::ErrorKind::ConnectionReset));
    let run = run.fails_with("shrink.bin changed during the upload (it ended after ");
    assert!(run
        .stderr
        .contains("of the 67108864 bytes it had when the upload started); nothing was stored under s.bin"));
}
