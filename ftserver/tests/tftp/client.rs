//! Our TFTP client (the ftclient library's `tftp` module, driven packet by packet) against our
//! server, tftpd-hpa, a server that refuses options, and loss.

use crate::loss::LossyRig;
use crate::peers;
use crate::support::{assert_same_file, bytes, Server};
use common::tftp::{self, Packet};
use ftclient::tftp as client;
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

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
    // ftclient's defaults: blksize 1468 and windowsize 64 (94 KB a window, under the server's
    // 128 KiB cap, so granted whole).
    assert_eq!((outcome.blksize, outcome.windowsize, outcome.tsize), (1468, 64, Some(data.len() as u64)));
    let outcome = client_put(server.addr(), "up", &data, &fast);
    assert_eq!((outcome.bytes, outcome.blksize, outcome.windowsize), (data.len() as u64, 1468, 64));
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
