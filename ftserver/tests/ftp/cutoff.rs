//! A cut-off upload is never published under its final name (issue 20). In stream mode a
//! killed client's data connection ends like a finished one; the server tells them apart by the
//! control connection closing too. Here that close comes late: nftables, in a network namespace
//! the test makes, drops the first FIN of every control connection, so the server learns of the
//! death only from the retransmitted FIN, a retransmission timeout (200 ms or more) later.
//! curl's own rate limit makes its upload slow enough to cut while its socket buffers stay
//! nearly empty, so its data connection ends at once when it dies.

use crate::support::{peers, Raw, TOOL_TIMEOUT};
use ftserver::{Config, Server, ServerHandle};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A network namespace of the test's own, deleted on drop.
struct Netns {
    name: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

impl Netns {
    /// A namespace whose loopback is up.
    fn create() -> Netns {
        peers::require("ip");
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let ns = Netns { name: format!("ftcut{}x{nanos:x}", std::process::id()) };
        assert!(Command::new("ip").args(["netns", "add", &ns.name]).status().unwrap().success());
        ns.run("ip", &["link", "set", "lo", "up"]);
        ns.run(
            "tc",
            &["qdisc", "add", "dev", "lo", "root", "tbf", "rate", "8mbit", "burst", "256kb", "latency", "400ms"],
        );
        ns
    }

    /// Runs `program` in the namespace and asserts it succeeded.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new("ip").args(["netns", "exec", &self.name, program]).args(args).output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Drops every FIN a client sends on a connection to `port` for 400 ms after its first: the
    /// first FIN and its quick retransmissions (a tail loss probe follows within tens of
    /// milliseconds on a loopback) are lost, as on a path that drops one and has a longer
    /// round trip.
    fn drop_first_fin(&self, port: u16) {
        peers::require("nft");
        let rules = format!(
            "table inet cutoff {{
                set seen {{ type inet_service; }}
                set window {{ type inet_service; flags timeout; }}
                chain input {{
                    type filter hook input priority 0; policy accept;
                    tcp dport {port} tcp flags & fin == fin tcp sport != @seen \
                        add @seen {{ tcp sport }} add @window {{ tcp sport timeout 400ms }} drop
                    tcp dport {port} tcp flags & fin == fin tcp sport @window drop
                }}
            }}"
        );
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        nft.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
        assert!(nft.wait().unwrap().success(), "nft could not install the rule");
    }

    /// How many client ports have had a FIN dropped.
    fn dropped_fins(&self) -> usize {
        let set = self.run("nft", &["list", "set", "inet", "cutoff", "seen"]);
        set.split("elements = {").nth(1).map_or(0, |rest| rest.split('}').next().unwrap().split(',').count())
    }

    /// Runs `f` on a thread inside the namespace: sockets it makes live there, and so do the
    /// threads it starts (a server's sessions among them).
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }
}

/// A writable server with the default settle times, in the namespace.
fn server_in(ns: &Netns, root: &Path) -> (ServerHandle, SocketAddr) {
    let root = root.to_owned();
    let handle = ns.inside(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut config = Config::new(&root).unwrap();
        config.writable = true;
        Server::spawn(listener, config).unwrap()
    });
    let addr = handle.local_addr();
    ns.drop_first_fin(addr.port());
    (handle, addr)
}

/// Waits (bounded) until `path` holds at least `len` bytes.
fn wait_for_size(path: &Path, len: u64) {
    let deadline = Instant::now() + TOOL_TIMEOUT;
    while std::fs::metadata(path).map_or(true, |m| m.len() < len) {
        assert!(Instant::now() < deadline, "{} never reached {len} bytes", path.display());
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// Waits (bounded) until the server has finished with every session.
fn wait_idle(server: &ServerHandle) {
    let deadline = Instant::now() + TOOL_TIMEOUT;
    while server.active_sessions() > 0 {
        assert!(Instant::now() < deadline, "sessions still open");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// curl -T killed mid-upload (no size announced): the server waits out the lost FIN and keeps
/// the partial upload, never the final name. A curl that finishes is published.
#[test]
fn curl_killed_mid_upload_is_never_published_when_its_fin_comes_late() {
    let curl = peers::require("curl");
    let ns = Netns::create();
    let root = tempfile::tempdir().unwrap();
    let (server, addr) = server_in(&ns, root.path());
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.bin");
    std::fs::write(&file, vec![7u8; 4 << 20]).unwrap();
    let url = |name: &str| format!("ftp://{addr}/{name}");

    let mut child = crate::support::ChildGuard(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(&curl)
            .args(["-sS", "--limit-rate", "1M", "-T"])
            .arg(&file)
            .arg(url("cut.bin"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_size(&root.path().join(".cut.bin.ftpart"), 1 << 20);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    wait_idle(&server);
    assert!(ns.dropped_fins() >= 1, "no FIN was dropped: the test did not test the late FIN");
    assert!(!root.path().join("cut.bin").exists(), "a cut-off upload was published");
    assert!(root.path().join(".cut.bin.ftpart").exists(), "the partial upload should stay resumable");

    let small = local.path().join("small.bin");
    std::fs::write(&small, b"whole").unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&curl)
        .arg("-sS")
        .arg("-T")
        .arg(&small)
        .arg(url("ok.bin"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(root.path().join("ok.bin")).unwrap(), b"whole");
}

/// A client that announced its size (ALLO, as ftclient does) and died after part of it: the
/// size settles it at once, whatever the control connection says.
#[test]
fn an_upload_shorter_than_announced_is_never_published() {
    let ns = Netns::create();
    let root = tempfile::tempdir().unwrap();
    let (server, addr) = server_in(&ns, root.path());
    ns.inside(move || {
        let mut raw = Raw::connect(addr);
        raw.login();
        raw.expect("TYPE I", 200);
        raw.expect("ALLO 1000000", 200);
        let reply = raw.expect("EPSV", 229);
        let port: u16 = reply.text().rsplit('|').nth(1).unwrap().parse().unwrap();
        let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
        raw.expect("STOR short.bin", 150);
        data.write_all(&[1u8; 300_000]).unwrap();
        // As a killed process's kernel does: both connections closed, data first.
        drop(data);
        drop(raw);
    });
    wait_idle(&server);
    assert!(!root.path().join("short.bin").exists(), "an upload shorter than announced was published");
    assert_eq!(std::fs::metadata(root.path().join(".short.bin.ftpart")).unwrap().len(), 300_000);
}
