//! Named accounts (`--users`): each user confined to their root with their rights, the same
//! refusal for an unknown user and a wrong password, the growing delay and disconnect, the
//! per-address lockout, anonymous logins only with `--anonymous`; and through the binary:
//! `--hash-password`, one-line users-file errors (exit 2), passwords absent from `-vv` logs,
//! and SIGHUP reloading the users file.

use crate::support::{peers, run_ok, run_tool, ChildGuard, Raw, TOOL_TIMEOUT};
use crate::tls::{password, users_file, Secure, Setup};
use ftserver::accounts::LoginPolicy;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn users() -> Secure {
    Secure::start(Setup { users: true, ..Setup::default() })
}

/// A plain control connection logged in as `user` (TLS is not required here).
fn login(server: &Secure, user: &str) -> Raw {
    let mut raw = Raw::connect(server.addr());
    raw.expect(&format!("USER {user}"), 331);
    raw.expect(&format!("PASS {}", password(user)), 230);
    raw
}

#[test]
fn alice_cannot_read_or_list_bobs_root() {
    let server = users();
    let mut alice = login(&server, "alice");
    assert_eq!(alice.passive_transfer("NLST"), b"alice.txt\r\n");
    assert_eq!(alice.passive_transfer("NLST /"), b"alice.txt\r\n");
    assert_eq!(alice.passive_transfer("NLST ../.."), b"alice.txt\r\n", "`..` stops at her root");
    for cmd in ["CWD /bob", "CWD ../bob", "SIZE ../bob/bob.txt", "MLST /bob", "RETR ../bob/bob.txt", "NLST ../bob"] {
        let reply = alice.cmd(cmd);
        assert_eq!(reply.code, 550, "{cmd}: {reply:?}");
    }
    alice.expect("TYPE I", 200);
    assert_eq!(alice.passive_transfer("RETR alice.txt"), b"alice's file\n");
    let pwd = alice.expect("PWD", 257).text();
    assert!(pwd.starts_with("\"/\""), "{pwd}");
}

#[test]
fn a_read_user_cannot_write() {
    let server = users();
    let mut bob = login(&server, "bob");
    bob.expect("TYPE I", 200);
    assert_eq!(bob.passive_transfer("RETR bob.txt"), b"bob's secret\n");
    for cmd in ["STOR new.txt", "APPE bob.txt", "STOU", "MKD dir", "DELE bob.txt", "RMD /", "RNFR bob.txt"] {
        let reply = bob.cmd(cmd);
        assert_eq!(reply.code, 550, "{cmd}: {reply:?}");
        assert!(reply.text().contains("your account may not"), "{cmd}: {reply:?}");
    }
    assert_eq!(crate::support::tree(&server.root.path().join("bob")), ["bob.txt"]);
}

#[test]
fn a_write_user_uploads_but_never_replaces() {
    let server = users();
    let mut alice = login(&server, "alice");
    alice.expect("TYPE I", 200);
    assert_eq!(alice.passive_upload("STOR new.txt", b"first").code, 226);
    alice.expect("MKD made", 257);
    alice.expect("EPSV", 229);
    alice.expect("STOR new.txt", 553);
    for cmd in ["DELE new.txt", "RNFR new.txt", "RMD made"] {
        let reply = alice.cmd(cmd);
        assert_eq!(reply.code, 550, "{cmd}: {reply:?}");
    }
    assert_eq!(std::fs::read(server.root.path().join("alice/new.txt")).unwrap(), b"first");
    // A full user may replace, rename and delete.
    let mut carol = login(&server, "carol");
    carol.expect("TYPE I", 200);
    assert_eq!(carol.passive_upload("STOR alice/new.txt", b"replaced").code, 226);
    carol.expect("RNFR alice/new.txt", 350);
    carol.expect("RNTO alice/renamed.txt", 250);
    carol.expect("DELE alice/renamed.txt", 250);
    carol.expect("RMD alice/made", 250);
    assert_eq!(crate::support::tree(&server.root.path().join("alice")), ["alice.txt"]);
}

#[test]
fn wrong_password_and_unknown_user_look_the_same() {
    let server = Secure::start(Setup { users: true, policy: quick(3, 100), ..Setup::default() });
    let mut answers = Vec::new();
    for (user, pass) in [("alice", "wrong"), ("mallory", "alice-pw"), ("Alice", "alice-pw")] {
        let mut raw = Raw::connect(server.addr());
        let user_reply = raw.cmd(&format!("USER {user}"));
        let pass_reply = raw.cmd(&format!("PASS {pass}"));
        answers.push((user_reply, pass_reply));
    }
    assert_eq!(answers[0].1.code, 530);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

/// A policy with short delays (the tests never time them).
fn quick(session_failures: u32, lockout_failures: u32) -> LoginPolicy {
    LoginPolicy {
        failure_delay: Duration::from_millis(5),
        max_failure_delay: Duration::from_millis(20),
        session_failures,
        lockout_failures,
        ..LoginPolicy::default()
    }
}

#[test]
fn three_failures_end_the_session() {
    let server = Secure::start(Setup { users: true, policy: quick(3, 100), ..Setup::default() });
    let mut raw = Raw::connect(server.addr());
    for _ in 0..3 {
        raw.expect("USER alice", 331);
        raw.expect("PASS nope", 530);
    }
    let mut rest = Vec::new();
    raw.ctrl.get_mut().read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty() && raw.ctrl.pending().is_empty(), "{rest:?}");
}

#[test]
fn repeated_failures_lock_the_address_out() {
    let server = Secure::start(Setup { users: true, policy: quick(10, 4), ..Setup::default() });
    for _ in 0..2 {
        let mut raw = Raw::connect(server.addr());
        for _ in 0..2 {
            raw.expect("USER bob", 331);
            raw.expect("PASS guess", 530);
        }
    }
    // Even the right password is refused now, with 421, and the connection ends.
    let mut raw = Raw::connect(server.addr());
    raw.expect("USER bob", 331);
    raw.expect(&format!("PASS {}", password("bob")), 421);
    let mut rest = Vec::new();
    let _ = raw.ctrl.get_mut().read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn anonymous_only_with_the_option() {
    let closed = users();
    let mut raw = Raw::connect(closed.addr());
    raw.expect("USER anonymous", 331);
    raw.expect("PASS me@example.com", 530);
    let open = Secure::start(Setup { users: true, anonymous: true, ..Setup::default() });
    let mut anon = Raw::connect(open.addr());
    anon.login();
    assert_eq!(anon.passive_transfer("NLST"), b"alice\r\nbob\r\ntop.txt\r\n");
    let refused = anon.cmd("MKD x");
    assert_eq!(refused.code, 550, "{refused:?}");
}

/// Runs `ftserver` with `args`, returning its exit status and stderr.
fn ftserver(args: &[&str], stdin: &[u8]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ftserver"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}

#[test]
fn hash_password_prints_a_phc_string() {
    let (status, out) = ftserver(&["--hash-password"], b"correct horse\n");
    assert!(status.success(), "{out}");
    let hash = out.trim();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") && !hash.contains("correct"), "{hash}");
    let (status, out) = ftserver(&["--hash-password"], b"");
    assert_eq!((status.code(), out.trim()), (Some(1), "ftserver: cannot read the password: empty password"));
}

/// Each kind of mistake in a users file stops the server with one line naming the file and
/// the line, and exit status 2.
#[test]
fn users_file_mistakes_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("alice")).unwrap();
    let good = users_file(&[("alice", "alice", "write")]);
    let hash = good.lines().find_map(|l| l.strip_prefix("password = ")).unwrap().to_owned();
    let user = |extra: &str, name: &str, password: &str, root: &str, access: &str| {
        format!("[[user]]\nname = \"{name}\"\npassword = {password}\nroot = \"{root}\"\naccess = \"{access}\"\n{extra}")
    };
    let cases = [
        (user("pasword = \"x\"\n", "alice", &hash, "alice", "write"), ":6: unknown key `pasword`"),
        (user("", "alice", "\"hunter2\"", "alice", "write"), ":3: password is not an argon2id or bcrypt hash"),
        (user("", "alice", &hash, "../etc", "write"), ":4: root `../etc` climbs out of the served root"),
        (user("", "alice", &hash, "alice", "admin"), ":5: access `admin` is not read, write or full"),
        (format!("{good}\n{good}"), ":9: duplicate user `alice` (first on line 2)"),
        (user("", "alice", &hash, "missing", "write"), ":4: root of user `alice` (/missing): "),
    ];
    let file = dir.path().join("users.toml");
    for (text, expected) in cases {
        std::fs::write(&file, &text).unwrap();
        let (status, out) = ftserver(&["--root", root.to_str().unwrap(), "--users", file.to_str().unwrap(), "0"], b"");
        assert_eq!(status.code(), Some(2), "{out}");
        assert_eq!(out.lines().count(), 1, "{out}");
        let prefix = format!("ftserver: {}{expected}", file.display());
        assert!(out.starts_with(&prefix), "{out:?}, expected {prefix:?}");
        assert!(!out.contains("$argon2id"), "{out}");
    }
}

/// A running `ftserver` whose stderr lines are collected.
struct Logged {
    child: ChildGuard,
    addr: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

fn start_logged(root: &Path, args: &[&str]) -> Logged {
    let mut child = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_ftserver"))
            .args(["--bind", "127.0.0.1", "--root"])
            .arg(root)
            .args(args)
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut ready = String::new();
    stdout.read_line(&mut ready).unwrap();
    let addr = ready.split(" on ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(ready.contains("account(s) from "), "{ready}");
    let (tx, stderr) = mpsc::channel();
    let pipe = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    Logged { child, addr, stderr }
}

impl Logged {
    /// Waits for a log line containing `text`; returns the lines up to it.
    fn wait_for(&self, text: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self.stderr.recv_timeout(TOOL_TIMEOUT).unwrap_or_else(|_| panic!("no {text:?} in {seen:#?}"));
            let found = line.contains(text);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.0.id() as i32), signal).unwrap();
    }
}

fn curl_login(addr: SocketAddr, user: &str, pass: &str) -> std::process::Output {
    peers::require("curl");
    run_tool(
        Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "30", "-l", "-u"])
            .arg(format!("{user}:{pass}"))
            .arg(format!("ftp://{addr}/")),
        TOOL_TIMEOUT,
    )
}

#[test]
fn passwords_never_reach_the_log_even_at_vv() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("alice")).unwrap();
    let file = dir.path().join("users.toml");
    std::fs::write(&file, users_file(&[("alice", "alice", "read")])).unwrap();
    let server = start_logged(&root, &["-vv", "--users", file.to_str().unwrap()]);
    assert!(curl_login(server.addr, "alice", &password("alice")).status.success());
    assert!(!curl_login(server.addr, "alice", "not-her-password").status.success());
    let mut lines = server.wait_for("refused");
    server.signal(nix::sys::signal::Signal::SIGTERM);
    while let Ok(line) = server.stderr.recv_timeout(TOOL_TIMEOUT) {
        lines.push(line);
    }
    let log = lines.join("\n");
    assert!(log.contains("PASS ****"), "{log}");
    for secret in [password("alice").as_str(), "not-her-password"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[test]
fn sighup_reloads_the_users_file_and_keeps_it_when_bad() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("alice")).unwrap();
    std::fs::create_dir_all(root.join("dave")).unwrap();
    let file = dir.path().join("users.toml");
    std::fs::write(&file, users_file(&[("alice", "alice", "read")])).unwrap();
    let server = start_logged(&root, &["--users", file.to_str().unwrap()]);
    assert!(!curl_login(server.addr, "dave", &password("dave")).status.success());
    std::fs::write(&file, users_file(&[("dave", "dave", "read")])).unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server.wait_for("reloaded 1 account(s)");
    assert!(curl_login(server.addr, "dave", &password("dave")).status.success());
    std::fs::write(&file, "[[user]]\nname = \"eve\"\n").unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let lines = server.wait_for("kept the old accounts");
    assert!(lines.last().unwrap().contains("users.toml:1: missing key `password`"), "{lines:?}");
    let still = run_ok(
        Command::new("curl")
            .args(["--silent", "--max-time", "30", "-l", "-u"])
            .arg(format!("dave:{}", password("dave")))
            .arg(format!("ftp://{}/", server.addr)),
    );
    assert_eq!(still, "");
}
