//! `ftclient --tftp` against ftserver's TFTP server (in-process) and tftpd-hpa (`in.tftpd`):
//! gets and puts byte-identical, block-number rollover, exact multiples of the block size, empty
//! files, the duplicate-name and remote-overwrite rules, option fallback, clear failures,
//! streams (stdout, FIFOs, stdin), Ctrl-C, and the ERROR a client sends when it gives up.

use crate::support::{
    bytes, client_bin, dir_names, ftclient, spawn_ftclient, wait_for_len, wait_output, ChildGuard, Run, LIMIT,
};
use std::io::Write;
use std::net::UdpSocket;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// ftserver's TFTP server on 127.0.0.1 (a port the kernel picks) serving `root`, writable.
fn ftserver_tftp(root: &Path) -> ftserver::tftp::TftpHandle {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = ftserver::tftp::TftpConfig { root: root.to_owned(), writable: true, ..Default::default() };
    ftserver::tftp::spawn(socket, config).unwrap()
}

/// Runs `ftclient --tftp 127.0.0.1 PORT args...` in `dir`.
fn tftp(dir: &Path, port: u16, args: &[&str]) -> Run {
    let port = port.to_string();
    let mut all = vec!["--tftp", "127.0.0.1", port.as_str()];
    all.extend_from_slice(args);
    ftclient(dir, &all)
}

/// Gets, puts and the local and remote naming rules against a server serving `root` on `port`.
fn gets_and_puts(root: &Path, port: u16) {
    let files = [
        ("big.bin", bytes(3_000_017, 1)),
        ("exact.bin", bytes(4 * 1468, 2)),
        ("empty", Vec::new()),
        ("with space.txt", b"spaced\n".to_vec()),
    ];
    for (name, data) in &files {
        std::fs::write(root.join(name), data).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in &files {
        let run = tftp(dir.path(), port, &["-g", name]).ok();
        assert!(run.stderr.contains(&format!("saved {name}: ")), "{}", run.stderr);
        assert_eq!(&std::fs::read(dir.path().join(name)).unwrap(), data, "{name}");
    }
    // An existing local name is never replaced: the second copy is NAME.1.
    let again = tftp(dir.path(), port, &["-g", "big.bin"]).ok();
    assert!(again.stderr.contains("saved big.bin.1 (big.bin already exists)"), "{}", again.stderr);
    // Without options (plain RFC 1350 lock-step, 512-byte blocks).
    tftp(dir.path(), port, &["-g", "big.bin", "--blksize", "512", "--windowsize", "1", "-o", "plain.bin", "-q"]).ok();
    assert_eq!(std::fs::read(dir.path().join("plain.bin")).unwrap(), files[0].1);
    // A missing file: exit 1 with the server's error, nothing left behind.
    let before = dir_names(dir.path());
    tftp(dir.path(), port, &["-g", "no such file"]).fails_with("server error 1");
    assert_eq!(dir_names(dir.path()), before);

    // Uploads: a new name works, an existing one is refused before anything is sent.
    let up = bytes(1_234_567, 3);
    std::fs::write(dir.path().join("up.bin"), &up).unwrap();
    let run = tftp(dir.path(), port, &["-p", "up.bin"]).ok();
    assert!(run.stderr.contains("uploaded up.bin as up.bin"), "{}", run.stderr);
    assert_eq!(std::fs::read(root.join("up.bin")).unwrap(), up);
    std::fs::write(dir.path().join("up.bin"), b"changed").unwrap();
    tftp(dir.path(), port, &["-p", "up.bin"]).fails_with("the remote file up.bin already exists; use --overwrite");
    tftp(dir.path(), port, &["-p", "up.bin", "--to", "big.bin"]).fails_with("the remote file big.bin already exists");
    assert_eq!(std::fs::read(root.join("up.bin")).unwrap(), up);
    std::fs::write(dir.path().join("nothing"), b"").unwrap();
    tftp(dir.path(), port, &["-p", "nothing", "--to", "empty upload"]).ok();
    assert_eq!(std::fs::read(root.join("empty upload")).unwrap(), b"");
}

#[test]
fn gets_and_puts_against_ftserver() {
    let root = tempfile::tempdir().unwrap();
    let server = ftserver_tftp(root.path());
    gets_and_puts(root.path(), server.local_addr().port());
    // ftserver without --overwrite refuses to replace even when the client would: error 6.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("up.bin"), b"other").unwrap();
    tftp(dir.path(), server.local_addr().port(), &["-p", "up.bin", "--overwrite"]).fails_with("server error 6");
}

#[test]
fn block_numbers_roll_over_past_65535() {
    // 33 MiB in 512-byte blocks is more than 65535 blocks (RFC 1350 numbers are 16 bits).
    let root = tempfile::tempdir().unwrap();
    let data = bytes((33 << 20) + 5, 9);
    std::fs::write(root.path().join("huge.bin"), &data).unwrap();
    let server = ftserver_tftp(root.path());
    let dir = tempfile::tempdir().unwrap();
    tftp(dir.path(), server.local_addr().port(), &["-g", "huge.bin", "--blksize", "512", "-q"]).ok();
    assert!(std::fs::read(dir.path().join("huge.bin")).unwrap() == data, "the copy differs");
    tftp(dir.path(), server.local_addr().port(), &["-p", "huge.bin", "--to", "back.bin", "--blksize", "512", "-q"])
        .ok();
    assert!(std::fs::read(root.path().join("back.bin")).unwrap() == data, "the upload differs");
}

/// tftpd-hpa in the foreground on a free 127.0.0.1 port, serving `root` (uploads may create
/// files: `-c`), once it answers requests.
fn start_tftpd_hpa(root: &Path) -> (ChildGuard, u16) {
    for _ in 0..5 {
        let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(crate::support::require("in.tftpd"))
            .args(["-L", "-c", "-u", "root", "-s"])
            .arg(root)
            .args(["-a", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start in.tftpd");
        let mut guard = ChildGuard(child);
        if answers(port, &mut guard) {
            return (guard, port);
        }
    }
    panic!("tftpd-hpa did not start");
}

/// Does a TFTP server answer on `port`? A read request for a missing file gets an ERROR.
fn answers(port: u16, server: &mut ChildGuard) -> bool {
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    probe.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        if server.wait_until(Instant::now()).is_some() {
            return false;
        }
        probe.send_to(b"\x00\x01ready-probe\x00octet\x00", ("127.0.0.1", port)).unwrap();
        if probe.recv_from(&mut [0u8; 600]).is_ok() {
            return true;
        }
    }
    false
}

#[test]
fn gets_and_puts_against_tftpd_hpa() {
    // tftpd-hpa knows blksize and tsize but not windowsize: the client falls back to lock-step.
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = start_tftpd_hpa(root.path());
    gets_and_puts(root.path(), port);
    let dir = tempfile::tempdir().unwrap();
    let run = tftp(dir.path(), port, &["-g", "big.bin"]).ok();
    assert!(run.stderr.contains("blksize 1468, windowsize 1"), "{}", run.stderr);
}

#[test]
fn a_silent_server_is_given_up_after_the_timeout() {
    // A socket that takes the requests and never answers (a closed port would answer with
    // ICMP instead). The client resends on its own timer; --timeout bounds the whole silence.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    tftp(dir.path(), port, &["--timeout", "1", "-g", "x"])
        .fails_with(&format!("no answer from 127.0.0.1:{port} within 1 s"));
    std::fs::write(dir.path().join("up.bin"), b"data").unwrap();
    tftp(dir.path(), port, &["--timeout", "2", "-p", "up.bin"])
        .fails_with(&format!("no answer from 127.0.0.1:{port} within 2 s"));
    let mut buf = [0u8; 600];
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(silent.recv(&mut buf).is_ok(), "the requests reached the silent socket");
    assert!(dir_names(dir.path()).iter().all(|n| n == "up.bin"), "{:?}", dir_names(dir.path()));
}

#[test]
fn a_fifo_is_uploaded_until_its_end_without_a_size() {
    let root = tempfile::tempdir().unwrap();
    let server = ftserver_tftp(root.path());
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let data = bytes(200_003, 4);
    let feed = {
        let (fifo, data) = (fifo.clone(), data.clone());
        std::thread::spawn(move || std::fs::write(fifo, data))
    };
    tftp(dir.path(), server.local_addr().port(), &["-p", "fifo", "--to", "piped.bin"]).ok();
    feed.join().unwrap().unwrap();
    assert_eq!(std::fs::read(root.path().join("piped.bin")).unwrap(), data);
}

/// `-o -` writes the file to stdout and `-o FIFO` into the FIFO (never beside or over it);
/// `-p -` uploads standard input.
#[test]
fn streams_to_stdout_and_fifos_and_from_stdin() {
    let root = tempfile::tempdir().unwrap();
    let data = bytes(300_001, 5);
    std::fs::write(root.path().join("s.bin"), &data).unwrap();
    let server = ftserver_tftp(root.path());
    let port = server.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let run = tftp(dir.path(), port, &["-g", "s.bin", "-o", "-"]).ok();
    assert!(run.stdout == data, "stdout got other bytes");
    assert!(dir_names(dir.path()).is_empty(), "{:?}", dir_names(dir.path()));

    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo))
    };
    let run = tftp(dir.path(), port, &["-g", "s.bin", "-o", "fifo"]);
    if !reader.is_finished() {
        // Should the client never have opened the FIFO, the reader still waits for a writer.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
    }
    run.ok();
    assert!(reader.join().unwrap().unwrap() == data, "the FIFO got other bytes");
    assert_eq!(dir_names(dir.path()), ["fifo"]);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    let mut child = Command::new(client_bin())
        .args(["--tftp", "127.0.0.1", &port.to_string(), "-p", "-", "--to", "in.bin"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = {
        let data = data.clone();
        std::thread::spawn(move || stdin.write_all(&data))
    };
    let run = wait_output(child).ok();
    assert!(run.stderr.contains("uploaded standard input as in.bin"), "{}", run.stderr);
    feed.join().unwrap().unwrap();
    assert!(std::fs::read(root.path().join("in.bin")).unwrap() == data, "the upload differs");
    let run = tftp(dir.path(), port, &["-p", "-"]);
    assert_eq!(run.code(), 2, "{run:?}");
    assert!(run.stderr.contains("needs --to"), "{}", run.stderr);
}

/// Ctrl-C (SIGINT) ends a TFTP download or upload at once: exit 1, "interrupted", and nothing
/// left behind locally (a download's temporary file is removed).
#[test]
fn ctrl_c_ends_a_transfer_promptly() {
    let root = tempfile::tempdir().unwrap();
    let data = bytes(40 << 20, 6);
    std::fs::write(root.path().join("big.bin"), &data).unwrap();
    let server = ftserver_tftp(root.path());
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("up.bin"), &data).unwrap();
    let lock_step = ["--blksize", "512", "--windowsize", "1"];
    // The server writes a TFTP upload to a temporary of its own, `.up.bin~tN.ftpart`.
    for (args, grows, prefix) in
        [(["-g", "big.bin"], dir.path(), ".big.bin"), (["-p", "up.bin"], root.path(), ".up.bin")]
    {
        let mut all = vec!["--tftp", "127.0.0.1", &port];
        all.extend(args);
        all.extend(lock_step);
        let child = spawn_ftclient(dir.path(), &all);
        wait_for_partial(grows, prefix, 100_000);
        let mut kill = ChildGuard(Command::new("kill").args(["-INT", &child.id().to_string()]).spawn().unwrap());
        kill.wait_until(Instant::now() + LIMIT).expect("kill ran");
        let out = wait_output(child);
        // 128 + SIGINT, as shells and curl report an interrupt.
        assert_eq!(out.code(), 130, "{out:?}");
        assert!(out.stderr.contains("interrupted"), "{}", out.stderr);
        assert_eq!(dir_names(dir.path()), ["up.bin"]);
    }
    assert!(!root.path().join("up.bin").exists());
}

/// Waits until a partial file in `dir` whose name starts with `prefix` holds `len` bytes.
fn wait_for_partial(dir: &std::path::Path, prefix: &str, len: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let partial = || {
        std::fs::read_dir(dir).unwrap().filter_map(Result::ok).find(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(prefix) && name.ends_with(".ftpart")
        })
    };
    loop {
        if let Some(entry) = partial() {
            wait_for_len(&entry.path(), len);
            return;
        }
        assert!(Instant::now() < deadline, "no partial file {prefix}* in {}", dir.display());
        std::thread::park_timeout(Duration::from_millis(1));
    }
}

/// Receives from `fake` (bounded by its read timeout) until a datagram with `opcode` arrives.
fn recv_opcode(fake: &UdpSocket, opcode: u8) -> (Vec<u8>, std::net::SocketAddr) {
    let mut buf = [0u8; 2048];
    for _ in 0..20 {
        let (len, from) = fake.recv_from(&mut buf).expect("the client sent nothing");
        if buf[..2] == [0, opcode] {
            return (buf[..len].to_vec(), from);
        }
    }
    panic!("no packet with opcode {opcode}");
}

/// A client that gives a transfer up tells the server with an ERROR, so the server does not
/// retransmit into the void until its retries run out: error 8 for an OACK granting what was
/// not asked (RFC 2347), error 0 after a put's existence probe saw data.
#[test]
fn a_transfer_given_up_is_answered_with_an_error() {
    let fake = UdpSocket::bind("127.0.0.1:0").unwrap();
    fake.set_read_timeout(Some(LIMIT)).unwrap();
    let port = fake.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();

    let child = spawn_ftclient(dir.path(), &["--tftp", "127.0.0.1", &port, "-g", "x", "--blksize", "1468"]);
    let (_, client) = recv_opcode(&fake, 1);
    fake.send_to(b"\0\x06blksize\x009999\0", client).unwrap();
    let (error, from) = recv_opcode(&fake, 5);
    assert_eq!((from, &error[..4]), (client, &[0u8, 5, 0, 8][..]));
    wait_output(child).fails_with("server granted blksize=9999");
    assert!(dir_names(dir.path()).is_empty(), "{:?}", dir_names(dir.path()));

    std::fs::write(dir.path().join("up.bin"), b"local").unwrap();
    let child = spawn_ftclient(dir.path(), &["--tftp", "127.0.0.1", &port, "-p", "up.bin"]);
    let (_, client) = recv_opcode(&fake, 1);
    let mut block = b"\0\x03\0\x01".to_vec();
    block.resize(4 + 512, b'r');
    fake.send_to(&block, client).unwrap();
    let (error, from) = recv_opcode(&fake, 5);
    assert_eq!((from, &error[..4]), (client, &[0u8, 5, 0, 0][..]));
    wait_output(child).fails_with("the remote file up.bin already exists");
}
