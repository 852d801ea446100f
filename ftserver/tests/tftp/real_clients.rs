//! Real clients against our server: curl, atftp and tftp-hpa getting and putting files, with
//! and without options, across the block number rollover, and over IPv6.

use crate::support::{assert_same_file, bytes, run, Server};
use ftserver::tftp::TftpConfig;
use std::fs;
use std::net::UdpSocket;

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
