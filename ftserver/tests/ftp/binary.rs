//! The real `ftserver` binary: the ready lines (FTP and TFTP), exit codes, SIGTERM, a full disk,
//! and no descriptor or thread leaks across hundreds of sessions (counted in /proc for the
//! server process alone).

use crate::support::{run_ok, run_tool, ChildGuard, Raw, TOOL_TIMEOUT};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `ftserver` process and the address from its ready line.
struct Running {
    child: ChildGuard,
    addr: SocketAddr,
    /// Receives once stdout reaches EOF (the process exited).
    stdout_closed: mpsc::Receiver<()>,
}

fn start(root: &Path, extra: &[&str]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftserver"));
    cmd.args(["-q", "--bind", "127.0.0.1", "--root"]).arg(root).args(extra).arg("0");
    start_command(cmd, root)
}

/// Starts `cmd`, which runs ftserver serving FTP from `root`, and reads its ready line.
fn start_command(cmd: Command, root: &Path) -> Running {
    let (child, lines, stdout_closed) = spawn(cmd);
    let addr = ready_addr(&lines, root, "");
    Running { child, addr, stdout_closed }
}

/// Starts `cmd`; returns the child, its stdout lines as they come, and a receiver that gets a
/// message when stdout closes.
fn spawn(mut cmd: Command) -> (ChildGuard, mpsc::Receiver<String>, mpsc::Receiver<()>) {
    let mut child =
        ChildGuard(cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap());
    let stdout = child.0.stdout.take().unwrap();
    let (line_tx, lines) = mpsc::channel();
    let (closed_tx, stdout_closed) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = line_tx.send(line);
        }
        let _ = closed_tx.send(());
    });
    (child, lines, stdout_closed)
}

/// Reads the next ready line, `ftserver: serving <root> <how>on 127.0.0.1:<port>`, and returns
/// the address.
fn ready_addr(lines: &mpsc::Receiver<String>, root: &Path, how: &str) -> SocketAddr {
    let line = lines.recv_timeout(TOOL_TIMEOUT).expect("no ready line from ftserver");
    let expected = format!("ftserver: serving {} {how}on 127.0.0.1:", root.canonicalize().unwrap().display());
    let rest = line.strip_prefix(&expected).unwrap_or_else(|| panic!("ready line {line:?}, expected {expected:?}"));
    // After the port, in parentheses, what is exposed to whom.
    let (port, exposed) = rest.split_once(' ').unwrap_or_else(|| panic!("ready line {line:?} says nothing exposed"));
    assert!(exposed.starts_with("(anonymous, ") && exposed.ends_with("; this machine only)"), "{line:?}");
    SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>().unwrap()))
}

fn count(dir: String) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Waits (bounded) until the process has exactly `fds` descriptors and `threads` threads.
fn settle(pid: u32, fds: usize, threads: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (now_fds, now_threads) = (count(format!("/proc/{pid}/fd")), count(format!("/proc/{pid}/task")));
        if now_fds == fds && now_threads == threads {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leak: {now_fds} fds (started with {fds}), {now_threads} threads (started with {threads})"
        );
        std::thread::yield_now();
    }
}

fn session(addr: SocketAddr, quit: bool) {
    let mut raw = Raw::connect(addr);
    raw.login();
    let listing = raw.passive_transfer("NLST");
    assert!(!listing.is_empty());
    // A passive port opened and never used must be closed too.
    raw.expect("PASV", 227);
    if quit {
        raw.expect("QUIT", 221);
    }
}

#[test]
fn no_descriptor_or_thread_leaks() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f"), b"x").unwrap();
    std::fs::File::create(root.path().join("big")).unwrap().set_len(64 << 20).unwrap();
    let server = start(root.path(), &["--max-clients", "100", "--max-per-ip", "100"]);
    let pid = server.child.0.id();
    // The idle server: main, accept and signal threads; stdio and the listener.
    let (fds, threads) = (count(format!("/proc/{pid}/fd")), count(format!("/proc/{pid}/task")));
    session(server.addr, true);
    settle(pid, fds, threads);
    for i in 0..200 {
        session(server.addr, i % 2 == 0);
    }
    // Many at once, dropped without QUIT.
    let open: Vec<Raw> = (0..50)
        .map(|_| {
            let mut raw = Raw::connect(server.addr);
            raw.login();
            raw.expect("EPSV", 229);
            raw
        })
        .collect();
    assert!(count(format!("/proc/{pid}/fd")) >= fds + 50);
    drop(open);
    // Clients that vanish in the middle of a download.
    for _ in 0..20 {
        let mut raw = Raw::connect(server.addr);
        raw.login();
        raw.expect("TYPE I", 200);
        let mut data = raw.epsv_connect();
        raw.expect("RETR big", 150);
        let mut first = [0u8; 4096];
        data.read_exact(&mut first).unwrap();
    }
    settle(pid, fds, threads);
}

#[test]
fn stops_cleanly_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let mut server = start(root.path(), &[]);
    let mut raw = Raw::connect(server.addr);
    raw.login();
    let out = run_tool(Command::new("kill").args(["-TERM", &server.child.0.id().to_string()]), TOOL_TIMEOUT);
    assert!(out.status.success());
    server.stdout_closed.recv_timeout(TOOL_TIMEOUT).expect("ftserver did not exit on SIGTERM");
    let status = server.child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    // The open session was told.
    assert_eq!(raw.reply().code, 421);
}

#[test]
fn exit_codes_and_error_lines() {
    // Usage errors: exit 2 and exactly one line on stderr that names the bad value.
    for (args, expected) in [
        (&["--bogus", "0"][..], "ftserver: unexpected argument '--bogus' found\n"),
        (&["--pasv-ports", "9-1", "0"][..], "ftserver: invalid value '9-1' for '--pasv-ports <LO-HI>': "),
        (&["70000"][..], "ftserver: invalid value '70000' for '[PORT]': "),
        // Every duration has a ceiling (a year), so no deadline can overflow.
        (
            &["--data-timeout", "18446744073709551615", "0"][..],
            "ftserver: invalid value '18446744073709551615' for '--data-timeout <SECS>': ",
        ),
        (&["--idle-timeout", "31536001", "0"][..], "ftserver: invalid value '31536001' for '--idle-timeout <SECS>': "),
        (&["--idle-timeout", "0", "0"][..], "ftserver: invalid value '0' for '--idle-timeout <SECS>': "),
        (&["--tftp", "0", "--tftp-timeout", "256"][..], "ftserver: invalid value '256' for '--tftp-timeout <SECS>': "),
    ] {
        let out = run_tool(Command::new(env!("CARGO_BIN_EXE_ftserver")).args(args), TOOL_TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr.starts_with(expected) && stderr.lines().count() == 1, "{args:?}: {stderr:?}");
    }
    let out =
        run_tool(Command::new(env!("CARGO_BIN_EXE_ftserver")).args(["--root", "/nonexistent/x", "0"]), TOOL_TIMEOUT);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "ftserver: root /nonexistent/x: no such file or directory\n");
    // A bad database URL is a usage error; an unreachable database a one-line failure that never
    // shows the password; --storage and --root together are a usage error.
    for (args, code) in [
        (&["--storage", "nonsense", "0"][..], 2),
        (&["--storage", "postgres://ft:s3cret@127.0.0.1:1/ft", "0"][..], 1),
        (&["--root", "/tmp", "--storage", "postgres://ft@127.0.0.1:1/ft", "0"][..], 2),
    ] {
        let out = run_tool(Command::new(env!("CARGO_BIN_EXE_ftserver")).args(args), TOOL_TIMEOUT);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.starts_with("ftserver: ") && stderr.lines().count() == 1, "{args:?}: {stderr:?}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
    // The port is taken by another listener.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = run_tool(Command::new(env!("CARGO_BIN_EXE_ftserver")).args(["--bind", "127.0.0.1", &port]), TOOL_TIMEOUT);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("ftserver: cannot listen on 127.0.0.1:{port}: address")), "{stderr}");
    let out = run_tool(Command::new(env!("CARGO_BIN_EXE_ftserver")).arg("--help"), TOOL_TIMEOUT);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: ftserver [OPTIONS] [PORT]") && help.contains("--pasv-ports"), "{help}");
    assert!(help.contains("--tftp <[ADDR:]PORT>") && help.contains("--writable"), "{help}");
}

/// The longest timeouts the options accept still serve transfers (a deadline that far ahead
/// once overflowed and panicked in every transfer).
#[test]
fn the_longest_timeouts_work() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f"), b"x").unwrap();
    let year = "31536000";
    let server = start(root.path(), &["--data-timeout", year, "--idle-timeout", year]);
    session(server.addr, true);
}

/// A full disk: a 1 MiB tmpfs as the root, in a private mount namespace (`unshare -rm`). An
/// upload that does not fit gets `452` and its partial file is removed (the space is free again
/// for the next upload); nothing else is touched.
#[test]
fn disk_full_removes_the_partial_upload() {
    let root = tempfile::tempdir().unwrap();
    let script = r#"mount -t tmpfs -o size=1m tmpfs "$1" || exit 99
echo kept > "$1/kept.txt"
exec "$2" -q --bind 127.0.0.1 --root "$1" --writable 0"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", script, "sh"]).arg(root.path()).arg(env!("CARGO_BIN_EXE_ftserver"));
    let server = start_command(cmd, root.path());
    let mut raw = Raw::connect(server.addr);
    raw.login();
    raw.expect("TYPE I", 200);
    let too_big = vec![1u8; 2 << 20];
    let mut data = raw.epsv_connect();
    raw.expect("STOR big.bin", 150);
    // The server stops reading when the disk fills up; our write may then fail.
    let _ = std::io::Write::write_all(&mut data, &too_big);
    drop(data);
    let reply = raw.expect_reply(452);
    assert!(reply.text().contains("Insufficient storage space"), "{reply:?}");
    raw.expect("SIZE big.bin", 550);
    assert_eq!(raw.passive_transfer("NLST"), b"kept.txt\r\n");
    // The space is free again: 900 KiB fit.
    let mut data = raw.epsv_connect();
    raw.expect("STOR fits.bin", 150);
    std::io::Write::write_all(&mut data, &too_big[..900 << 10]).unwrap();
    drop(data);
    raw.expect_reply(226);
    raw.expect("SIZE fits.bin", 213);
    assert_eq!(raw.passive_transfer("RETR kept.txt"), b"kept\n");
}

fn tftp_url(addr: SocketAddr, name: &str) -> String {
    format!("tftp://{addr}/{name}")
}

fn curl_tftp() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "30", "--disable"]);
    cmd
}

/// `--tftp ADDR:PORT` beside FTP: two ready lines, FTP first; curl gets the same file over both.
#[test]
fn serves_tftp_beside_ftp() {
    let root = tempfile::tempdir().unwrap();
    let bytes = crate::support::awkward_bytes(100_000);
    std::fs::write(root.path().join("boot.img"), &bytes).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftserver"));
    cmd.args(["-q", "--bind", "127.0.0.1", "--root"]).arg(root.path()).args(["--tftp", "127.0.0.1:0", "0"]);
    let (_child, lines, _closed) = spawn(cmd);
    let ftp = ready_addr(&lines, root.path(), "");
    let tftp = ready_addr(&lines, root.path(), "over tftp ");
    let out = tempfile::tempdir().unwrap();
    for (i, url) in [tftp_url(tftp, "boot.img"), format!("ftp://{ftp}/boot.img")].iter().enumerate() {
        let dest = out.path().join(i.to_string());
        run_ok(curl_tftp().arg("-o").arg(&dest).arg(url));
        assert!(std::fs::read(&dest).unwrap() == bytes, "{url}");
    }
    // Read-only by default over TFTP too.
    let upload = out.path().join("0");
    let refused = run_tool(curl_tftp().arg("-T").arg(&upload).arg(tftp_url(tftp, "new.img")), TOOL_TIMEOUT);
    assert!(!refused.status.success());
    assert!(!root.path().join("new.img").exists());
}

/// Only `--tftp PORT` (no FTP port): TFTP alone on the --bind address, and --writable applies.
#[test]
fn serves_tftp_alone_and_writable() {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ftserver"));
    cmd.args(["-q", "--bind", "127.0.0.1", "--writable", "--tftp-timeout", "2", "--tftp-retries", "3"])
        .arg("--root")
        .arg(root.path())
        .args(["--tftp", "0"]);
    let (_child, lines, _closed) = spawn(cmd);
    let tftp = ready_addr(&lines, root.path(), "over tftp ");
    let local = tempfile::tempdir().unwrap();
    let bytes = crate::support::awkward_bytes(70_000);
    std::fs::write(local.path().join("up.bin"), &bytes).unwrap();
    run_ok(curl_tftp().arg("-T").arg(local.path().join("up.bin")).arg(tftp_url(tftp, "up.bin")));
    assert!(std::fs::read(root.path().join("up.bin")).unwrap() == bytes);
    // Never replaced without --overwrite.
    std::fs::write(local.path().join("up.bin"), b"other").unwrap();
    let refused =
        run_tool(curl_tftp().arg("-T").arg(local.path().join("up.bin")).arg(tftp_url(tftp, "up.bin")), TOOL_TIMEOUT);
    assert!(!refused.status.success());
    assert!(std::fs::read(root.path().join("up.bin")).unwrap() == bytes);
}

#[test]
fn tftp_usage_errors() {
    let bin = env!("CARGO_BIN_EXE_ftserver");
    for args in
        [&["--root", "."][..], &["--tftp", "x"], &["--tftp-timeout", "5", "0"], &["--tftp", "0", "--tftp-timeout", "0"]]
    {
        let out = run_tool(Command::new(bin).args(args), TOOL_TIMEOUT);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = run_tool(Command::new(bin).args(["--tftp", "x"]), TOOL_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid listen address \"x\": expected PORT or ADDR:PORT"), "{stderr}");
    // The TFTP port is taken.
    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let spec = busy.local_addr().unwrap().to_string();
    let out = run_tool(Command::new(bin).args(["--tftp", &spec]), TOOL_TIMEOUT);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("ftserver: cannot listen for tftp on {spec}: address")), "{stderr}");
}

/// The peak resident memory of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Hundreds of simultaneous sessions up to --max-clients, 421 beyond, every session still
/// answered, and memory stays small (one thread with a small buffer per session).
#[test]
fn hundreds_of_concurrent_sessions() {
    const CLIENTS: usize = 300;
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f"), b"x").unwrap();
    let limit = CLIENTS.to_string();
    let server = start(root.path(), &["--max-clients", &limit, "--max-per-ip", &limit]);
    let pid = server.child.0.id();
    let mut sessions: Vec<Raw> = (0..CLIENTS)
        .map(|_| {
            let mut raw = Raw::connect(server.addr);
            raw.login();
            raw
        })
        .collect();
    let mut refused = std::net::TcpStream::connect(server.addr).unwrap();
    refused.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut text = String::new();
    refused.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("421 "), "{text:?}");
    for raw in &mut sessions {
        raw.expect("NOOP", 200);
    }
    assert_eq!(sessions[CLIENTS / 2].passive_transfer("NLST"), b"f\r\n");
    let peak = peak_rss_kb(pid);
    eprintln!("peak RSS with {CLIENTS} sessions: {peak} kB");
    assert!(peak < 256 * 1024, "peak RSS {peak} kB");
}

/// Starts ftserver serving `root` through `setpriv`, without the two capabilities that bypass
/// file permissions (tests run as root, whose CAP_DAC_OVERRIDE reads anything).
fn start_without_dac_caps(root: &Path) -> Running {
    let drop_caps = "-dac_override,-dac_read_search";
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set", drop_caps, "--inh-caps", drop_caps, env!("CARGO_BIN_EXE_ftserver")])
        .args(["-q", "--bind", "127.0.0.1", "--root"])
        .arg(root)
        .arg("0");
    start_command(cmd, root)
}

/// A root the server may not read stops it at startup with one line (it was accepted, and then
/// every client got `550 /: Permission denied`).
#[test]
fn an_unreadable_root_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("locked");
    std::fs::create_dir(&root).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o000)).unwrap();
    let drop_caps = "-dac_override,-dac_read_search";
    let mut cmd = Command::new("setpriv");
    cmd.args(["--bounding-set", drop_caps, "--inh-caps", drop_caps, env!("CARGO_BIN_EXE_ftserver")])
        .args(["--bind", "127.0.0.1", "--root"])
        .arg(&root)
        .arg("0");
    let out = run_tool(&mut cmd, TOOL_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, format!("ftserver: root {}: permission denied\n", root.display()));
}

/// A file the server process may not read gets 550, and the session (and everyone else) goes
/// on. Tests run as root, whose CAP_DAC_OVERRIDE reads anything, so the server is started
/// through `setpriv` without the two capabilities that bypass file permissions.
#[test]
fn unreadable_file_is_550_and_others_are_unaffected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("locked.txt"), b"secret").unwrap();
    std::fs::write(dir.path().join("open.txt"), b"hello").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path().join("locked.txt"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let server = start_without_dac_caps(dir.path());

    let mut other = Raw::connect(server.addr);
    other.login();
    let mut raw = Raw::connect(server.addr);
    raw.login();
    raw.cmd("TYPE I");
    let _data = raw.pasv_connect();
    let reply = raw.expect("RETR locked.txt", 550);
    assert!(reply.text().to_lowercase().contains("permission denied"), "{reply:?}");
    // The same session and another one still work.
    assert_eq!(raw.passive_transfer("RETR open.txt"), b"hello");
    other.cmd("TYPE I");
    assert_eq!(other.passive_transfer("RETR open.txt"), b"hello");
    raw.expect("SIZE locked.txt", 213);
}

/// A directory the server process may not read (mode 700, another owner) cannot be entered:
/// CWD answers 550 naming it, instead of 250 and then failing every listing. A listing that
/// fails in the current directory names that directory, never an empty path.
#[test]
fn an_unreadable_directory_is_refused_by_cwd() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    for sub in ["noread", "later"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let noread = dir.path().join("noread");
    std::os::unix::fs::chown(&noread, Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&noread, std::fs::Permissions::from_mode(0o700)).unwrap();
    let server = start_without_dac_caps(dir.path());

    let mut raw = Raw::connect(server.addr);
    raw.login();
    assert_eq!(raw.expect("CWD noread", 550).text(), "noread: Permission denied.");
    assert_eq!(raw.expect("PWD", 257).text(), "\"/\" is the current directory");
    raw.expect("CWD later", 250);
    std::fs::set_permissions(dir.path().join("later"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let _data = raw.pasv_connect();
    assert_eq!(raw.expect("MLSD", 550).text(), "/later: Permission denied.");
    assert_eq!(raw.expect("NLST ../noread", 550).text(), "../noread: Permission denied.");
}
