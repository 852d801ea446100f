//! Test helpers: run the real ftclient binary in a fresh directory with a time limit, start
//! external servers with `Drop` guards, and build file trees with awkward names.

use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any spawned program may run before the test kills it and fails.
pub const LIMIT: Duration = Duration::from_secs(60);

/// What a finished ftclient run produced.
#[derive(Debug)]
pub struct Run {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: Vec<u8>,
    /// Everything on stderr, as text.
    pub stderr: String,
}

impl Run {
    /// The exit code (panics if the process was killed by a signal).
    pub fn code(&self) -> i32 {
        self.status.code().expect("ftclient ended by a signal")
    }

    /// stdout as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts success and returns self.
    pub fn ok(self) -> Run {
        assert_eq!(self.code(), 0, "ftclient failed: {self:?}");
        self
    }

    /// Asserts a failure (exit 1) with exactly one `ftclient:` error line containing `needle`.
    pub fn fails_with(self, needle: &str) -> Run {
        assert_eq!(self.code(), 1, "expected exit 1: {self:?}");
        let errors: Vec<&str> =
            self.stderr.lines().filter(|l| l.starts_with("ftclient: ") && !l.contains(": warning: ")).collect();
        assert_eq!(errors.len(), 1, "expected one error line: {}", self.stderr);
        assert!(errors[0].contains(needle), "expected {needle:?} in {:?}", errors[0]);
        self
    }
}

/// The ftclient binary under test.
pub fn client_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ftclient"))
}

/// Starts ftclient with `args` in `dir`, stdout and stderr piped, without waiting for it (for
/// tests that act while it runs; finish with [`wait_output`]).
pub fn spawn_ftclient(dir: &Path, args: &[&str]) -> Child {
    Command::new(client_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start ftclient")
}

/// Runs ftclient with `args` in `dir` and waits for it (at most [`LIMIT`]).
pub fn ftclient(dir: &Path, args: &[&str]) -> Run {
    wait_output(spawn_ftclient(dir, args))
}

/// Waits for a child with piped stdout/stderr, killing it after [`LIMIT`].
pub fn wait_output(mut child: Child) -> Run {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let mut guard = ChildGuard(child);
    let status = guard.wait_until(Instant::now() + LIMIT).expect("ftclient did not finish in time");
    let stdout = out_thread.join().expect("stdout reader");
    let stderr = String::from_utf8_lossy(&err_thread.join().expect("stderr reader")).into_owned();
    Run { status, stdout, stderr }
}

/// Kills and reaps a child process when dropped.
#[derive(Debug)]
pub struct ChildGuard(pub Child);

impl ChildGuard {
    /// Polls for the child's exit until `deadline`; `None` if it is still running then.
    pub fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::park_timeout(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port that was free on `ip` a moment ago (for active-mode data ports, which the client
/// must bind itself).
pub fn free_port_on(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    free_port_on(IpAddr::from([127, 0, 0, 1]))
}

/// Runs ftclient in active mode: `args` plus a data port that was free on `ip` a moment ago.
/// Another test may take that port in between (a race of the test, not of the client): then
/// the run is repeated with another port. Returns the run and the data port it used.
pub fn ftclient_active(dir: &Path, args: &[&str], ip: IpAddr) -> (Run, u16) {
    let mut attempt = 0;
    loop {
        let port = free_port_on(ip);
        let port_text = port.to_string();
        let mut all = args.to_vec();
        all.push(&port_text);
        let run = ftclient(dir, &all);
        attempt += 1;
        let lost_race =
            run.code() == 1 && run.stderr.contains("cannot listen on data port") && run.stderr.contains("in use");
        if !lost_race || attempt == 5 {
            return (run, port);
        }
    }
}

/// Starts a program that prints its listening port on the first line of stdout, and returns
/// the guard and the port.
pub fn spawn_with_port(mut cmd: Command) -> (ChildGuard, u16) {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn server");
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).expect("server did not report its port");
    if line.is_empty() {
        // It closed stdout without a word: it exited; its stderr says why.
        let mut guard = guard;
        let _ = guard.0.kill();
        let mut err = String::new();
        let _ = guard.0.stderr.take().map(|mut e| e.read_to_string(&mut err));
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(nothing on stderr)");
        panic!("{:?} exited before printing its port: {}", cmd.get_program(), last.trim());
    }
    let port = line.trim().parse().unwrap_or_else(|_| panic!("server printed {line:?} instead of a port"));
    (guard, port)
}

/// Deterministic pseudo-random bytes (xorshift), so failures are reproducible.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The file tree every real-server test serves: awkward names, a sub-directory, an empty file
/// and a few megabytes of binary data.
pub struct Tree {
    /// The served directory.
    pub root: tempfile::TempDir,
}

/// The big file's size: not a multiple of any buffer size.
pub const BIG: usize = 3 * 1024 * 1024 + 12_345;

impl Tree {
    /// Creates the tree.
    pub fn new() -> Tree {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        std::fs::create_dir(p.join("docs")).unwrap();
        std::fs::create_dir(p.join("sub dir")).unwrap();
        std::fs::write(p.join("docs/a.txt"), b"hello from docs\r\nsecond line\n").unwrap();
        std::fs::write(p.join("big.bin"), bytes(BIG, 7)).unwrap();
        std::fs::write(p.join("empty"), b"").unwrap();
        std::fs::write(p.join("with space.txt"), b"spaced\n").unwrap();
        std::fs::write(p.join("ünï 🚀.txt"), b"emoji\n").unwrap();
        Tree { root }
    }

    /// The expected short listing of the root, sorted.
    pub fn root_listing() -> &'static str {
        "big.bin\ndocs/\nempty\nsub dir/\nwith space.txt\nünï 🚀.txt\n"
    }

    /// The content of a served file.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.root.path().join(rel)).unwrap()
    }
}

/// The names in a directory, sorted (to check what a failed run left behind).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Waits until the file at `path` holds at least `len` bytes (a download in progress), polling
/// with a bounded deadline; panics if it never does.
pub fn wait_for_len(path: &Path, len: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(path).map_or(0, |m| m.len()) < len {
        assert!(Instant::now() < deadline, "{} never reached {len} bytes: the download never started", path.display());
        std::thread::park_timeout(Duration::from_millis(1));
    }
}

// The peers the tests run and the one-line failure when one is missing: one list for both
// crates' tests.
#[path = "../../../ftserver/tests/ftp/peers.rs"]
mod peers;
pub use peers::{require, require_python_module};

/// Runs one test of this test binary as a server process: `cmd` is the program to start it
/// with (the test binary itself, or `ip netns exec NS` and the binary), its environment already
/// set; `test` is the test's exact name. Waits (bounded) for the line starting with `ready`
/// that the server prints once it listens, and returns the guard and the rest of that line.
pub fn start_test_server(mut cmd: Command, test: &str, ready: &'static str) -> (ChildGuard, String) {
    let mut child = cmd
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(ready) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    let rest = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("{test} did not start serving"));
    (guard, rest)
}
