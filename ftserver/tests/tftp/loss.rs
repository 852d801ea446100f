//! Loss: a network namespace whose loopback drops, duplicates, reorders and delays packets,
//! and real clients transferring through it.

use crate::peers;
use crate::support::{assert_same_file, bytes, run_in};
use ftserver::tftp::{TftpConfig, TftpHandle};
use std::fs;
use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;

/// A network namespace with a lossy loopback, deleted on drop.
pub struct LossyNetns {
    /// The name `ip netns` knows it by.
    pub name: String,
}

impl LossyNetns {
    /// `None` (after saying so loudly) when not root: namespaces need CAP_SYS_ADMIN. Without
    /// `duplicate` the loopback only drops (and, with netem, reorders and delays).
    fn create(duplicate: bool) -> Option<LossyNetns> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: TFTP loss tests need root to create a network namespace");
            return None;
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("ftt{}x{nanos:x}", std::process::id());
        peers::require("ip");
        let status = Command::new("ip").args(["netns", "add", &name]).status().unwrap();
        assert!(status.success(), "ip netns add {name} failed");
        let ns = LossyNetns { name };
        run_in(Some(&ns.name), "ip", &["link", "set", "lo", "up"]);
        let dup_percent = if duplicate { 2 } else { 0 };
        let netem = format!("qdisc add dev lo root netem loss 5% duplicate {dup_percent}% reorder 10% delay 1ms");
        let tc = Command::new("ip").args(["netns", "exec", &ns.name, "tc"]).args(netem.split(' ')).output().unwrap();
        if !tc.status.success() {
            // Some kernels (this project's VMs) are built without sch_netem. nftables on the
            // loopback's ingress can still drop and duplicate; it cannot reorder or delay.
            eprintln!(
                "NOTE: tc netem unavailable ({}); emulating 5% loss and {dup_percent}% duplication with \
                 nftables, without reordering or delay",
                String::from_utf8_lossy(&tc.stderr).trim()
            );
            let rules = format!(
                r#"table netdev lossy {{
                    chain in {{
                        type filter hook ingress device "lo" priority 0; policy accept;
                        meta l4proto udp numgen random mod 100 < {dup_percent} dup to "lo"
                        meta l4proto udp numgen random mod 100 < 5 drop
                    }}
                }}"#
            );
            peers::require("nft");
            let mut nft = Command::new("ip")
                .args(["netns", "exec", &ns.name, "nft", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            nft.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
            assert!(nft.wait().unwrap().success(), "nft could not install the loss rules");
        }
        Some(ns)
    }

    /// Starts a server whose sockets live in the namespace: a thread enters it and spawns the
    /// server from there, and every thread the server starts inherits the namespace.
    fn server(&self, root: &Path) -> TftpHandle {
        let ns_path = format!("/var/run/netns/{}", self.name);
        let root = root.to_owned();
        std::thread::spawn(move || {
            let ns = fs::File::open(&ns_path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            // The default timeout (1 s) and retries: what a deployment runs.
            let config = TftpConfig { root, writable: true, ..Default::default() };
            ftserver::tftp::spawn(socket, config).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for LossyNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A lossy namespace with a server in it, the server's root, a file to fetch, and a scratch
/// directory for the client.
pub struct LossyRig {
    /// The server, listening inside the namespace.
    pub server: TftpHandle,
    root: tempfile::TempDir,
    out: tempfile::TempDir,
    /// The contents of `f` in the server's root.
    pub data: Vec<u8>,
    /// The namespace. Declared last: it goes after the server has stopped.
    pub ns: LossyNetns,
}

impl LossyRig {
    /// 5% loss and 2% duplication.
    pub fn new(size: usize) -> Option<LossyRig> {
        LossyRig::create(size, true)
    }

    fn create(size: usize, duplicate: bool) -> Option<LossyRig> {
        let ns = LossyNetns::create(duplicate)?;
        let root = tempfile::tempdir().unwrap();
        let server = ns.server(root.path());
        let data = bytes(size, 10);
        fs::write(root.path().join("f"), &data).unwrap();
        Some(LossyRig { server, root, out: tempfile::tempdir().unwrap(), data, ns })
    }

    fn port(&self) -> String {
        self.server.local_addr().port().to_string()
    }

    /// The path of `name` in the client's scratch directory.
    pub fn local(&self, name: &str) -> String {
        self.out.path().join(name).to_str().unwrap().to_owned()
    }

    fn run(&self, program: &str, args: &[&str]) {
        run_in(Some(&self.ns.name), program, args);
    }

    /// Runs atftp in the namespace, up to four times. atftp 0.8 gives up after a few timeouts in
    /// a row, which 5% random loss produces now and then (about one windowed run in four on
    /// this machine): that is the client's limit, not the server's, so it may try again. A
    /// run counts as done when it succeeded or `done()` holds (the transfer completed but
    /// atftp gave up on the last exchange); the bytes themselves are checked afterwards.
    fn atftp_retrying(&self, args: &[&str], done: impl Fn() -> bool) {
        peers::require("atftp");
        for attempt in 1..=4 {
            let output = Command::new("timeout")
                .args(["-k", "5", "300", "ip", "netns", "exec", &self.ns.name, "atftp"])
                .args(args)
                .output()
                .unwrap();
            if output.status.success() || done() {
                return;
            }
            eprintln!(
                "NOTE: atftp attempt {attempt} gave up under loss ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        panic!("atftp {args:?} gave up four times under 5% loss");
    }

    /// Checks the client's download and the server's copy of the upload.
    pub fn check(&self, local: &str, uploaded: &str) {
        assert_same_file(Path::new(local), &self.data);
        assert_same_file(&self.root.path().join(uploaded), &self.data);
    }
}

/// curl, lock-step with blksize 1468 (no windowsize), downloading. curl derives its timers from
/// its time limits: `--connect-timeout 5` makes it retransmit the request after 1 s and send
/// `timeout 1` (by default 6 s), and `-m 120` makes it retransmit a block after 5 s.
#[test]
fn loss_curl_lock_step() {
    let Some(rig) = LossyRig::new(100_000) else { return };
    let (port, local) = (rig.port(), rig.local("curl"));
    rig.run("curl", &[&CURL_UNDER_LOSS[..], &["-o", &local, &format!("tftp://127.0.0.1:{port}/f")]].concat());
    assert_same_file(Path::new(&local), &rig.data);
}

/// curl's options for the loss tests (see `loss_curl_lock_step`).
const CURL_UNDER_LOSS: [&str; 7] = ["-sS", "--connect-timeout", "5", "-m", "120", "--tftp-blksize", "1468"];

/// 30 curl uploads of a small file under 5% loss, at once, each complete. curl 7.88 answers
/// every OACK it receives while sending by sending its *next* block as block 1. When the server
/// repeated its OACK on a timer after a lost DATA 1, that cost uploads their second block (1 to
/// 7 in 30 in our runs, both sides reporting success); the server now repeats it only for a
/// repeated WRQ (`repeated_write_request_gets_the_first_reply_again`), which curl sends only
/// before it has seen an OACK. `--connect-timeout 30` gives curl six tries at the request (with
/// 5 s, three in a row lost in 5% loss ended about one run in a thousand).
///
/// No duplication here: an OACK (or WRQ) the network duplicates still makes curl skip a block,
/// which no server can prevent. The server refuses the upload when block 1 then arrives twice
/// with different bytes (`block_1_with_different_data_ends_the_upload`); if that second block 1
/// is lost as well, it cannot tell.
#[test]
fn loss_curl_uploads() {
    let Some(rig) = LossyRig::create(1468 * 6 + 100, false) else { return };
    let port = rig.port();
    // Seven blocks: the first two are the ones at stake, more only make the test longer.
    let source = rig.local("small");
    fs::write(&source, &rig.data).unwrap();
    let curl = ["-sS", "--connect-timeout", "30", "-m", "120", "--tftp-blksize", "1468", "-T", &source];
    peers::require("curl");
    let uploads: Vec<_> = (0..30)
        .map(|i| {
            let url = format!("tftp://127.0.0.1:{port}/up{i}");
            Command::new("timeout")
                .args(["-k", "5", "300", "ip", "netns", "exec", &rig.ns.name, "curl"])
                .args(curl)
                .arg(url)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Every child is waited for before anything is asserted (timeout(1) bounds each).
    let outputs: Vec<_> = uploads.into_iter().map(|child| child.wait_with_output().unwrap()).collect();
    for (i, output) in outputs.iter().enumerate() {
        assert!(output.status.success(), "upload {i}: {}: {}", output.status, String::from_utf8_lossy(&output.stderr));
        let got = fs::read(rig.root.path().join(format!("up{i}"))).unwrap_or_else(|e| panic!("upload {i}: {e}"));
        assert!(got == rig.data, "upload {i}: {} bytes stored, {} sent", got.len(), rig.data.len());
    }
}

/// atftp with windowsize 16 in both directions. atftp 0.8's windowed sender recovers from a loss
/// only on its own timer (it waits out a mid-window ACK) and gives up after a few timeouts in a
/// row, so the file is kept small (21 blocks, two windows) that its retry limit is not a lottery.
/// Our own client covers larger windowed transfers under loss (`loss_our_client_windowed`).
#[test]
fn loss_atftp_windowed() {
    let Some(rig) = LossyRig::new(30_000) else { return };
    let (port, local) = (rig.port(), rig.local("atftp"));
    let opts = ["--tftp-timeout", "1", "--option", "blksize 1468", "--option", "windowsize 16"];
    let downloaded = || fs::read(&local).is_ok_and(|got| got == rig.data);
    rig.atftp_retrying(&[&opts[..], &["-g", "-r", "f", "-l", &local, "127.0.0.1", &port]].concat(), downloaded);
    // The server moves an upload into place only when it is complete (and deletes an
    // interrupted one), so a file under the name means the upload finished.
    let uploaded = || rig.root.path().join("up").exists();
    rig.atftp_retrying(&[&opts[..], &["-p", "-r", "up", "-l", &local, "127.0.0.1", &port]].concat(), uploaded);
    rig.check(&local, "up");
}

/// tftp-hpa: RFC 1350 with no options at all, 512-byte blocks. Its commands come on stdin to
/// set its timers: `rexmt 1` (default 5 s) and `timeout 60`, its total patience for one block
/// (default 25 s, which a few losses in a row on a loaded machine exhaust).
#[test]
fn loss_tftp_hpa_no_options() {
    let Some(rig) = LossyRig::new(30_000) else { return };
    let (port, local) = (rig.port(), rig.local("hpa"));
    let script = format!("rexmt 1\ntimeout 60\nbinary\nget f {local}\nput {local} up\nquit\n");
    peers::require("tftp");
    let mut child = Command::new("timeout")
        .args(["-k", "5", "300", "ip", "netns", "exec", &rig.ns.name, "tftp", "127.0.0.1", &port])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "tftp-hpa: {}", String::from_utf8_lossy(&output.stdout));
    rig.check(&local, "up");
}
