//! Segmented downloads (`-g FILE --segments N`): byte-exact against ftserver and vsftpd, an
//! interrupted one resumed from its `.NAME.ftpart.segs` record, and one through the emulated
//! link (linkem) with loss and reordering.

use crate::support::{ftclient, start_test_server, wait_output, ChildGuard, Tree};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Serves `tree` on 127.0.0.1 port 0 in-process; stopped when dropped.
fn start(root: &Path) -> ftserver::ServerHandle {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ftserver::Server::spawn(listener, ftserver::Config::new(root).unwrap()).unwrap()
}

/// Writes a file of `len` pseudo-random bytes (seeded) under `dir` and returns its bytes.
fn make(dir: &Path, name: &str, len: usize, seed: u64) -> Vec<u8> {
    let data = crate::support::bytes(len, seed);
    std::fs::write(dir.join(name), &data).unwrap();
    data
}

#[test]
fn every_segment_count_from_1_to_8_gives_the_exact_file_from_ftserver() {
    let tree = Tree::new();
    // Odd sizes: ranges of unequal length, and a file shorter than some segment counts.
    let sizes = [5usize, 1_000_003, 3 * 1024 * 1024 + 7];
    let files: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let name = format!("odd {i}.bin");
            let data = make(tree.root.path(), &name, len, 40 + i as u64);
            (name, data)
        })
        .collect();
    let server = start(tree.root.path());
    let port = server.local_addr().port().to_string();
    for n in 1..=8 {
        for (name, data) in &files {
            let dir = tempfile::tempdir().unwrap();
            let segments = n.to_string();
            ftclient(dir.path(), &["-q", "127.0.0.1", &port, "-g", name, "--segments", &segments]).ok();
            assert!(std::fs::read(dir.path().join(name)).unwrap() == *data, "{name} with --segments {n} differs");
            assert_eq!(crate::support::dir_names(dir.path()), vec![name.clone()], "no .ftpart or .segs left");
        }
    }
}

#[test]
fn large_files_are_segmented_without_asking_and_segments_1_turns_it_off() {
    let tree = Tree::new();
    let data = make(tree.root.path(), "big.bin", (64 << 20) + 3, 9);
    let server = start(tree.root.path());
    let port = server.local_addr().port().to_string();
    for (extra, connections) in [(&[][..], "over 4 connections"), (&["--segments", "1"][..], "")] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["-v", "127.0.0.1", &port, "-g", "big.bin"];
        args.extend_from_slice(extra);
        let run = ftclient(dir.path(), &args).ok();
        assert!(std::fs::read(dir.path().join("big.bin")).unwrap() == data);
        if connections.is_empty() {
            assert!(!run.stderr.contains("connections"), "{}", run.stderr);
        } else {
            assert!(run.stderr.contains(connections), "{}", run.stderr);
        }
    }
}

#[test]
fn segments_from_vsftpd_are_byte_exact() {
    let tree = Tree::new();
    let data = make(tree.root.path(), "v.bin", 5 * 1024 * 1024 + 11, 3);
    let (_server, port, _state) = crate::vsftpd::start(&tree, "127.0.0.1");
    let port = port.to_string();
    for n in ["2", "5", "8"] {
        let dir = tempfile::tempdir().unwrap();
        ftclient(dir.path(), &["-q", "127.0.0.1", &port, "-g", "v.bin", "--segments", n]).ok();
        assert!(std::fs::read(dir.path().join("v.bin")).unwrap() == data, "--segments {n} differs");
        assert_eq!(crate::support::dir_names(dir.path()), vec!["v.bin".to_owned()]);
    }
}

const SERVE: &str = "FT_TEST_SEGMENTS_SERVE";

/// Not a test of its own: started again with `FT_TEST_SEGMENTS_SERVE=ROOT ADDR` (by
/// [`Link::serve`]), this test binary runs a writable ftserver on ADDR inside a namespace, FTP
/// on TCP and TFTP on UDP, and serves until killed. Run normally it returns at once.
#[test]
fn serve_process() {
    let Some(spec) = std::env::var_os(SERVE) else { return };
    let spec = spec.into_string().unwrap();
    let (root, addr) = spec.rsplit_once(' ').unwrap();
    let listener = TcpListener::bind(addr).unwrap();
    let mut config = ftserver::Config::new(root).unwrap();
    config.writable = true;
    let _server = ftserver::Server::spawn(listener, config).unwrap();
    // TFTP on the same address and port (UDP), writable too.
    let tftp = ftserver::tftp::TftpConfig { root: root.into(), writable: true, ..Default::default() };
    let _tftp = ftserver::tftp::spawn(std::net::UdpSocket::bind(addr).unwrap(), tftp).unwrap();
    println!("\nLISTENING");
    loop {
        std::thread::park();
    }
}

/// The linkem binary next to this test binary (`cargo build -p linkem` puts it there).
fn linkem_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("linkem");
    assert!(bin.is_file(), "linkem not found at {}: run cargo build -p linkem first", bin.display());
    bin
}

/// A running linkem between two namespaces made for one test; dropping it stops it (SIGTERM:
/// it then removes its namespaces).
struct Link {
    child: ChildGuard,
    ns_a: String,
    ns_b: String,
}

/// The server side's address and the port the test's server listens on there (a namespace the
/// test just created has nothing else listening).
const SERVER_ADDR: &str = "10.77.0.1:2121";

impl Link {
    fn start(settings: &[&str]) -> Link {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let base = format!("sg{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let (ns_a, ns_b) = (format!("{base}a"), format!("{base}b"));
        let mut child = Command::new(linkem_bin())
            .args(["--ns-a", &ns_a, "--ns-b", &ns_b])
            .args(settings)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start linkem");
        let stdout = child.stdout.take().unwrap();
        let link = Link { child: ChildGuard(child), ns_a, ns_b };
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(line.starts_with("ready "), "linkem did not start (needs root): {line:?}");
        link
    }

    /// ftserver serving `root` on [`SERVER_ADDR`] in namespace A; killed when dropped.
    fn serve(&self, root: &Path) -> ChildGuard {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns_a]).arg(std::env::current_exe().unwrap());
        cmd.env(SERVE, format!("{} {SERVER_ADDR}", root.display()));
        start_test_server(cmd, "segments::serve_process", "LISTENING").0
    }

    /// ftclient with `args` in namespace B, working in `dir`, not waited for.
    fn spawn_client(&self, dir: &Path, args: &[&str]) -> std::process::Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns_b])
            .arg(crate::support::client_bin())
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.0.id() as i32), nix::sys::signal::SIGTERM);
        let _ = self.child.0.wait();
        for ns in [&self.ns_a, &self.ns_b] {
            if Path::new("/run/netns").join(ns).exists() {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }
}

#[test]
fn through_a_lossy_reordering_link_the_segments_make_the_exact_file() {
    let link = Link::start(&["--delay", "5ms", "--loss", "1%", "--reorder", "1%", "--rate", "200mbit", "--seed", "18"]);
    let root = tempfile::tempdir().unwrap();
    let data = make(root.path(), "w.bin", 6 * 1024 * 1024 + 5, 18);
    let _server = link.serve(root.path());
    let dir = tempfile::tempdir().unwrap();
    let client = link.spawn_client(dir.path(), &["-q", "10.77.0.1", "2121", "-g", "w.bin", "--segments", "6"]);
    wait_output(client).ok();
    assert!(std::fs::read(dir.path().join("w.bin")).unwrap() == data, "the file differs");
    assert_eq!(crate::support::dir_names(dir.path()), vec!["w.bin".to_owned()]);
}

#[test]
fn a_killed_segmented_download_resumes_every_range() {
    // Slow enough (40 Mbit/s: about 3 s for the file) that the client is killed mid-way.
    let link = Link::start(&["--delay", "2ms", "--rate", "40mbit"]);
    let root = tempfile::tempdir().unwrap();
    let data = make(root.path(), "r.bin", 16 * 1024 * 1024 + 3, 21);
    let _server = link.serve(root.path());
    let dir = tempfile::tempdir().unwrap();
    let args = ["-q", "10.77.0.1", "2121", "-g", "r.bin", "--segments", "4"];
    let mut client = ChildGuard(link.spawn_client(dir.path(), &args));
    let side = dir.path().join(".r.bin.ftpart.segs");
    // Wait until the record counts at least 2 MiB, then kill the client without warning.
    let deadline = Instant::now() + Duration::from_secs(60);
    let done =
        |text: &str| -> u64 { text.lines().skip(2).filter_map(|l| l.split(' ').nth(2)?.parse::<u64>().ok()).sum() };
    loop {
        let recorded = std::fs::read_to_string(&side).map_or(0, |t| done(&t));
        if recorded >= 2 << 20 {
            break;
        }
        assert!(client.wait_until(Instant::now()).is_none(), "the download ended before it could be interrupted");
        assert!(Instant::now() < deadline, "the segment record never counted 2 MiB");
        std::thread::park_timeout(Duration::from_millis(5));
    }
    client.0.kill().unwrap();
    let _ = client.0.wait();
    let record = std::fs::read_to_string(&side).unwrap();
    assert_eq!(record.lines().count(), 2 + 4, "one line per range: {record}");
    let recorded = done(&record);
    assert!(recorded < data.len() as u64, "{record}");

    let mut resume = args.to_vec();
    resume[0] = "-v";
    resume.push("--resume");
    let run = wait_output(link.spawn_client(dir.path(), &resume)).ok();
    assert!(run.stderr.contains("resuming"), "{}", run.stderr);
    assert!(std::fs::read(dir.path().join("r.bin")).unwrap() == data, "the resumed file differs");
    assert_eq!(crate::support::dir_names(dir.path()), vec!["r.bin".to_owned()], "the record is gone");
    // Only what the record did not count travelled again.
    let summary = run.stderr.lines().find(|l| l.starts_with("saved r.bin")).unwrap().to_owned();
    assert!(summary.contains("of them now"), "{summary}");
}

#[test]
fn resume_without_a_record_continues_a_one_stream_part_in_segments() {
    let tree = Tree::new();
    let data = make(tree.root.path(), "h.bin", 2 * 1024 * 1024 + 9, 5);
    let server = start(tree.root.path());
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".h.bin.ftpart"), &data[..700_001]).unwrap();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-g", "h.bin", "--segments", "3", "--resume"]).ok();
    assert!(run.stderr.contains("of them now"), "{}", run.stderr);
    assert!(std::fs::read(dir.path().join("h.bin")).unwrap() == data);
}

#[test]
fn a_server_that_allows_fewer_connections_still_gets_every_range_fetched() {
    let tree = Tree::new();
    let data = make(tree.root.path(), "few.bin", 3 * 1024 * 1024 + 1, 8);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = ftserver::Config::new(tree.root.path()).unwrap();
    config.max_per_ip = 2;
    let server = ftserver::Server::spawn(listener, config).unwrap();
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-g", "few.bin", "--segments", "6"]).ok();
    assert!(run.stderr.contains("could not log in"), "{}", run.stderr);
    assert!(std::fs::read(dir.path().join("few.bin")).unwrap() == data);
}

#[test]
fn a_record_whose_temporary_file_is_gone_or_changed_is_not_trusted() {
    let tree = Tree::new();
    let data = make(tree.root.path(), "s.bin", 1024 * 1024 + 1, 6);
    let server = start(tree.root.path());
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    // A record that claims the first half is done, but no temporary file: everything is fetched.
    let record = format!("ftclient segments 1\nsize {}\n0 {} 524288\n", data.len(), data.len());
    std::fs::write(dir.path().join(".s.bin.ftpart.segs"), &record).unwrap();
    let args = ["-q", "127.0.0.1", &port, "-g", "s.bin", "--resume", "--segments", "2", "--no-verify"];
    ftclient(dir.path(), &args).ok();
    assert!(std::fs::read(dir.path().join("s.bin")).unwrap() == data);
    assert_eq!(crate::support::dir_names(dir.path()), vec!["s.bin".to_owned()]);
    // A temporary file of another size than the record's: refused, both kept.
    std::fs::remove_file(dir.path().join("s.bin")).unwrap();
    std::fs::write(dir.path().join(".s.bin.ftpart.segs"), &record).unwrap();
    std::fs::write(dir.path().join(".s.bin.ftpart"), b"short").unwrap();
    ftclient(dir.path(), &args).fails_with("expects 1048577");
}

/// The other features that meet a real network: a tree (`-r -g --parallel`, one control
/// connection reused for every file) and TFTP both ways with the adaptive timer and windows,
/// through a link that drops and reorders: every byte arrives, nothing else is left behind.
#[test]
fn trees_and_tftp_come_through_a_lossy_reordering_link_exact() {
    let link = Link::start(&["--delay", "10ms", "--loss", "2%", "--reorder", "2%", "--rate", "100mbit", "--seed", "7"]);
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("tree/sub")).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| {
            let name = if i % 3 == 0 { format!("tree/sub/f{i}") } else { format!("tree/f{i}") };
            let data = make(root.path(), &name, 1000 * i + 17, i as u64);
            (name, data)
        })
        .collect();
    // Files of several blocks too (block mode's blocks hold at most 65535 bytes).
    let mut files = files;
    files.push(("tree/sub/large".to_owned(), make(root.path(), "tree/sub/large", 300_001, 5)));
    let big = make(root.path(), "t.bin", 3 * 1024 * 1024 + 11, 99);
    let _server = link.serve(root.path());
    let dir = tempfile::tempdir().unwrap();

    let tree = link.spawn_client(dir.path(), &["-q", "10.77.0.1", "2121", "-r", "-g", "tree", "--parallel", "4"]);
    wait_output(tree).ok();
    for (name, data) in &files {
        assert!(std::fs::read(dir.path().join(name)).unwrap() == *data, "{name} differs");
    }
    // And the tree back up the same link (ftserver and ftclient: block mode both ways).
    let up = link
        .spawn_client(dir.path(), &["-q", "10.77.0.1", "2121", "-r", "-p", "tree", "--to", "up", "--parallel", "4"]);
    wait_output(up).ok();
    for (name, data) in &files {
        let back = root.path().join(name.replacen("tree/", "up/", 1));
        assert!(std::fs::read(&back).unwrap() == *data, "{} differs", back.display());
    }

    let get = link.spawn_client(dir.path(), &["-q", "--tftp", "10.77.0.1", "2121", "-g", "t.bin"]);
    wait_output(get).ok();
    assert!(std::fs::read(dir.path().join("t.bin")).unwrap() == big, "the TFTP download differs");
    let put = link.spawn_client(dir.path(), &["-q", "--tftp", "10.77.0.1", "2121", "-p", "t.bin", "--to", "back.bin"]);
    wait_output(put).ok();
    assert!(std::fs::read(root.path().join("back.bin")).unwrap() == big, "the TFTP upload differs");
}
