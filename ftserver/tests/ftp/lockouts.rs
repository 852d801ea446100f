//! Cheap ways to lock others out (issue 20), each refused: connections that never log in,
//! passive listeners nobody uses, one address taking a small passive port range.

use crate::support::{Raw, TestServer, TOOL_TIMEOUT};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Connects to `target` from the loopback address `from` (all of 127/8 is local on Linux).
fn raw_from(from: Ipv4Addr, target: SocketAddr) -> Raw {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((from, 0)).into()).unwrap();
    socket.connect_timeout(&target.into(), Duration::from_secs(5)).unwrap();
    Raw::over(socket.into())
}

/// A connection that never logs in is closed at the login deadline, however often it sends
/// NOOP (which keeps an idle logged-in session open): silent connections cannot hold the
/// connection limits for ever. A client that logged in stays.
#[test]
fn a_connection_that_never_logs_in_is_closed_at_the_login_deadline() {
    let server = TestServer::start_with("127.0.0.1", |c| c.login_timeout = Duration::from_secs(1));
    let mut user = server.login();
    let mut lurker = server.raw();
    let deadline = Instant::now() + TOOL_TIMEOUT;
    let closing = loop {
        assert!(Instant::now() < deadline, "the lurker was never closed");
        lurker.send(b"NOOP");
        let reply = lurker.reply();
        if reply.code != 200 {
            break reply;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    };
    assert_eq!(closing.code, 421, "{closing:?}");
    assert!(closing.text().contains("Login timeout"), "{closing:?}");
    user.expect("NOOP", 200);
}

/// A passive listener nobody connects to is closed after the data timeout, without waiting for
/// the session's next command; the session goes on.
#[test]
fn an_unused_passive_listener_closes_after_the_data_timeout() {
    let server = TestServer::start_with("127.0.0.1", |c| c.data_timeout = Duration::from_secs(1));
    let mut raw = server.login();
    let reply = raw.expect("EPSV", 229);
    let port: u16 = reply.text().rsplit('|').nth(1).unwrap().parse().unwrap();
    let deadline = Instant::now() + TOOL_TIMEOUT;
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "the passive port {port} stayed open");
        std::thread::park_timeout(Duration::from_millis(50));
    }
    raw.expect("NOOP", 200);
    raw.expect("RETR hello.txt", 425);
}

/// With a small `--pasv-ports` range, one address holds at most its share (a quarter, at least
/// two): ten idle sessions from one address no longer take every port from everyone else.
#[test]
fn one_address_cannot_take_a_small_passive_range() {
    // Eight ports that are free right now (found by binding them, then letting them go).
    let free = |low: u16| (low..low + 8).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
    let low = (20000..60000).step_by(997).find(|&low| free(low)).expect("no 8 free ports in a row");
    let server = TestServer::start_with("127.0.0.1", |c| c.pasv_ports = Some(low..=low + 7));
    let greedy = Ipv4Addr::new(127, 0, 0, 2);
    let mut sessions: Vec<Raw> = (0..3).map(|_| raw_from(greedy, server.addr())).collect();
    let codes: Vec<u16> = sessions
        .iter_mut()
        .map(|raw| {
            raw.login();
            raw.cmd("EPSV").code
        })
        .collect();
    assert_eq!(codes, [229, 229, 425]);
    let mut other = raw_from(Ipv4Addr::new(127, 0, 0, 3), server.addr());
    other.login();
    other.expect("EPSV", 229);
    // A share is given back when its listener goes.
    sessions[0].expect("ABOR", 225);
    sessions[2].expect("EPSV", 229);
}

/// The real binary, started with `args`, its stderr going to a file; returns the guard, the
/// FTP address from its ready line and the stderr file.
fn ftserver_binary(args: &[&str]) -> (crate::support::ChildGuard, SocketAddr, tempfile::NamedTempFile) {
    use std::io::BufRead;
    let log = tempfile::NamedTempFile::new().unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut child = crate::support::ChildGuard(
        std::process::Command::new(env!("CARGO_BIN_EXE_ftserver"))
            .args(["--bind", "127.0.0.1", "--root"])
            .arg(root.path())
            .args(args)
            .arg("0")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.split(" on 127.0.0.1:").nth(1).and_then(|rest| rest.split(' ').next()).unwrap();
    (child, SocketAddr::from(([127, 0, 0, 1], port.parse().unwrap())), log)
}

/// The accept queue is the system's longest (`ss` shows a listener's backlog as its Send-Q):
/// std's 128 left 60 of 1000 simultaneous clients without a greeting.
#[test]
fn the_accept_queue_is_the_systems_longest() {
    crate::support::peers::require("ss");
    let (_server, addr, _log) = ftserver_binary(&["-q"]);
    let out = std::process::Command::new("ss").args(["-ltnH", &format!("sport = :{}", addr.port())]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let backlog: u32 =
        text.split_whitespace().nth(2).and_then(|q| q.parse().ok()).unwrap_or_else(|| panic!("{text:?}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap().trim().parse().unwrap();
    assert_eq!(backlog, somaxconn.min(u32::from(u16::MAX)), "{text}");
}

/// A flood of refused connections is logged at most once a second, with a count, even with -q
/// (where only warnings are written).
#[test]
fn refused_connections_do_not_flood_the_log() {
    let (_server, addr, log) = ftserver_binary(&["-q", "--max-per-ip", "1"]);
    let mut first = Raw::connect(addr);
    for _ in 0..50 {
        let refused = Raw::connect(addr);
        assert_eq!(refused.greeting.code, 421);
    }
    first.expect("NOOP", 200);
    let text = std::fs::read_to_string(log.path()).unwrap();
    let lines = text.lines().filter(|l| l.contains("refused")).count();
    assert!((1..=10).contains(&lines), "{lines} lines for 50 refusals:\n{text}");
}

/// Telnet option negotiation (`IAC WILL x`, as a Telnet client sends) is not part of the
/// command that follows it (RFC 959 section 4.1, RFC 854); it was answered `500 Unknown command
/// \x01NOOP`. During a download it is not taken for the urgent ABOR either.
#[test]
fn telnet_negotiation_is_not_part_of_the_command() {
    let server = TestServer::start();
    let mut raw = server.login();
    raw.send(b"\xff\xfb\x01\xff\xfd\x03NOOP");
    raw.expect_reply(200);
    raw.expect("TYPE I", 200);
    let body = raw.passive_transfer("RETR hello.txt");
    assert_eq!(body, b"hello, world\n");
}

/// A listing deep in the tree resolves its path once per component (it canonicalised every
/// prefix from the root again: cubic, 23 s at depth 1600), and still leaves out a link back to
/// a directory it came through.
#[test]
fn deep_listings_stay_cheap_and_leave_out_loops() {
    let server = TestServer::start();
    let mut deep = server.root.path().to_owned();
    for _ in 0..1500 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("leaf.txt"), b"leaf").unwrap();
    std::os::unix::fs::symlink("../..", deep.join("up")).unwrap();
    let mut raw = server.login();
    raw.expect(&format!("CWD /{}", vec!["d"; 1500].join("/")), 250);
    assert_eq!(raw.passive_transfer("NLST"), b"leaf.txt\r\n");
}

/// The default per-address limit serves a classroom behind one NAT address: 50 sessions from
/// one address are greeted, the 51st gets 421 (vsftpd's default is 50 too).
#[test]
fn fifty_sessions_from_one_address_are_served_by_default() {
    let server = TestServer::start();
    let sessions: Vec<Raw> = (0..50).map(|_| server.raw()).collect();
    assert!(sessions.iter().all(|raw| raw.greeting.code == 220));
    assert_eq!(server.raw().greeting.code, 421);
}
