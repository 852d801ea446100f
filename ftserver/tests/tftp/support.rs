//! Test fixtures: an in-process TFTP server over a temporary root, deterministic bytes, and
//! peers run under timeout(1).

use crate::peers;
use ftserver::tftp::{TftpConfig, TftpHandle};
use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A server on 127.0.0.1:0 serving a fresh temporary directory.
pub struct Server {
    /// The running server; shutting it down ends its transfers.
    pub handle: TftpHandle,
    /// The root it serves, deleted on drop.
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with the defaults, changed by `configure`.
    pub fn start(configure: impl FnOnce(&mut TftpConfig)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = TftpConfig { root: dir.path().to_owned(), ..Default::default() };
        configure(&mut config);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        Server { handle: ftserver::tftp::spawn(socket, config).unwrap(), dir }
    }

    /// A server that accepts uploads.
    pub fn writable() -> Server {
        Server::start(|c| c.writable = true)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.handle.local_addr().port()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The directory it serves.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `bytes` to `name` under the root and returns its path.
    pub fn put_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.root().join(name);
        fs::write(&path, bytes).unwrap();
        path
    }
}

/// A server whose timer never fires during a raw test, so every packet is the one expected.
pub fn patient(writable: bool) -> Server {
    Server::start(|c| {
        c.writable = writable;
        c.timeout = Duration::from_secs(60);
    })
}

/// Deterministic pseudo-random bytes (xorshift), so a failure is reproducible.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
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
pub fn run(program: &str, args: &[&str]) -> Output {
    run_in(None, program, args)
}

/// Like `run`, inside network namespace `netns` when there is one.
#[track_caller]
pub fn run_in(netns: Option<&str>, program: &str, args: &[&str]) -> Output {
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

/// Checks that the file at `got` holds exactly `expected`.
pub fn assert_same_file(got: &Path, expected: &[u8]) {
    let got = fs::read(got).unwrap_or_else(|e| panic!("{}: {e}", got.display()));
    assert_eq!(got.len(), expected.len(), "length differs");
    assert!(got == expected, "content differs");
}

/// Polls (bounded) until the server's clean-up of an aborted upload is visible.
pub fn wait_for_no_temp_files(dir: &Path) {
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
