//! Uploads (`-p`) and tree transfers (`-r -g`, `-r -p`, `--parallel`): round trips of a tree
//! with nested directories, many small files, a few large ones, awkward names and an empty
//! directory, compared by SHA-256; the remote-overwrite refusal; upload resume.

use crate::pyftpd;
use crate::support::{bytes, free_port_on, ftclient, Run};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::{IpAddr, TcpListener};
use std::path::Path;

/// Builds the test tree in `root`: nested directories, `small` small files, three large files,
/// names with spaces and emoji, an empty file, an empty directory, and a symbolic link that
/// points outside the tree (which uploads must skip).
pub fn build_tree(root: &Path, small: usize) {
    let dirs = ["a/b/c", "with space", "ünï 🚀", "empty dir", "many", "large"];
    for dir in dirs {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("a/b/c/deep.txt"), b"deep\n").unwrap();
    std::fs::write(root.join("a/top.txt"), b"top\n").unwrap();
    std::fs::write(root.join("with space/a file.txt"), b"spaced\n").unwrap();
    std::fs::write(root.join("ünï 🚀/ça va.txt"), "unicode ✓\n").unwrap();
    std::fs::write(root.join("zero.bin"), b"").unwrap();
    for i in 0..small {
        std::fs::write(root.join(format!("many/f{i:04}.txt")), bytes(i % 700 + 1, i as u64)).unwrap();
    }
    for (name, len) in [("one.bin", (2 << 20) + 7), ("two.bin", (1 << 20) + 3), ("three.bin", 700_001)] {
        std::fs::write(root.join("large").join(name), bytes(len, len as u64)).unwrap();
    }
    std::os::unix::fs::symlink("/etc/hostname", root.join("leak")).unwrap();
}

/// Every directory and regular file under `root` (symbolic links left out): `dir` for a
/// directory, the SHA-256 for a file.
pub fn digest(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, rel: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(root.join(rel)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                out.insert(child.clone(), "dir".into());
                walk(root, &child, out);
            } else if kind.is_file() {
                let sum = Sha256::digest(std::fs::read(entry.path()).unwrap());
                out.insert(child, sum.iter().map(|b| format!("{b:02x}")).collect());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

/// Asserts that two digests of trees are equal, naming only the entries that differ.
#[track_caller]
pub fn assert_same(got: &BTreeMap<String, String>, expected: &BTreeMap<String, String>, what: &str) {
    let differ: Vec<&String> = expected
        .keys()
        .chain(got.keys())
        .filter(|k| got.get(*k) != expected.get(*k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(differ.is_empty(), "{what}: {} entries differ: {differ:?}", differ.len());
}

/// Runs ftclient against `host` `port` in a fresh directory. In active mode the connections
/// listen on DATA_PORT .. DATA_PORT+N-1; when another test took one of those ports meanwhile
/// (a race of the test, not of the client) the run is repeated afresh.
pub fn run_fresh(host: &str, port: u16, args: &[&str], active: bool) -> (tempfile::TempDir, Run) {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let port = port.to_string();
        let data_port = free_port_range(host, 8).to_string();
        let mut all = vec![host, port.as_str()];
        all.extend_from_slice(args);
        if active {
            all.push(&data_port);
        }
        let run = ftclient(dir.path(), &all);
        let lost_race = run.stderr.contains("cannot listen on data port") && run.stderr.contains("in use");
        if !(active && lost_race) {
            return (dir, run);
        }
    }
    panic!("could not find free data ports in five attempts");
}

/// The first of `n` consecutive ports that were free on `host` a moment ago.
fn free_port_range(host: &str, n: u16) -> u16 {
    let ip: IpAddr = host.parse().unwrap();
    loop {
        let first = free_port_on(ip);
        if first > u16::MAX - n {
            continue;
        }
        if (1..n).all(|i| TcpListener::bind((ip, first + i)).is_ok()) {
            return first;
        }
    }
}

/// Uploads a tree with `-r -p`, checks the server's copy, downloads it again with `-r -g` and
/// checks that copy: every file byte-identical, every directory (also the empty one) present.
pub fn round_trip(host: &str, port: u16, server_root: &Path, small: usize, active: bool, parallel: &str) {
    let source = tempfile::tempdir().unwrap();
    build_tree(&source.path().join("tree"), small);
    let source_tree = source.path().join("tree");
    let expected = digest(&source_tree);
    let mode = if active { "active" } else { "passive" };
    let tree_arg = source_tree.to_str().unwrap();
    let (_dir, up) = run_fresh(host, port, &["-r", "-p", tree_arg, "--parallel", parallel], active);
    let up = up.ok();
    assert!(up.stderr.contains(&format!("uploaded {} of {} files", small + 8, small + 8)), "{mode}: {}", up.stderr);
    assert!(up.stderr.contains("skipped leak: a symbolic link that points outside the tree"), "{}", up.stderr);
    assert_same(&digest(&server_root.join("tree")), &expected, &format!("{mode}: the server's copy"));

    let (back, down) = run_fresh(host, port, &["-r", "-g", "tree", "--parallel", parallel], active);
    let down = down.ok();
    assert!(down.stderr.contains(&format!("downloaded {} of {} files", small + 8, small + 8)), "{}", down.stderr);
    assert_same(&digest(&back.path().join("tree")), &expected, &format!("{mode}: the downloaded copy"));
}

#[test]
fn trees_round_trip_through_pyftpdlib_in_passive_mode_with_parallel_connections() {
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = pyftpd::start_writable(root.path());
    round_trip("127.0.0.1", port, root.path(), 1000, false, "4");
}

#[test]
fn trees_round_trip_through_pyftpdlib_in_active_mode() {
    // pyftpdlib sometimes leaves one of several simultaneous active-mode data connections
    // (which it opens while answering PORT/EPRT) hanging until its 30 s timeout; lftp's
    // `mirror --parallel` in active mode stalls against it the same way. So active mode runs
    // one connection here; parallel active transfers are tested against ftserver.
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = pyftpd::start_writable(root.path());
    round_trip("127.0.0.1", port, root.path(), 100, true, "1");
}

#[test]
fn uploads_never_replace_remote_files_without_overwrite() {
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = pyftpd::start_writable(root.path());
    let dir = tempfile::tempdir().unwrap();
    let port = port.to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["127.0.0.1", port.as_str()];
        all.extend_from_slice(args);
        ftclient(dir.path(), &all)
    };
    std::fs::write(dir.path().join("f.txt"), b"first").unwrap();
    let first = run(&["-p", "f.txt"]).ok();
    assert!(first.stderr.contains("uploaded f.txt as f.txt"), "{}", first.stderr);
    assert_eq!(std::fs::read(root.path().join("f.txt")).unwrap(), b"first");

    std::fs::write(dir.path().join("f.txt"), b"second version").unwrap();
    run(&["-p", "f.txt"]).fails_with("the remote file f.txt already exists; use --overwrite to replace it");
    assert_eq!(std::fs::read(root.path().join("f.txt")).unwrap(), b"first", "the remote file was replaced");
    run(&["-p", "f.txt", "--overwrite", "-q"]).ok();
    assert_eq!(std::fs::read(root.path().join("f.txt")).unwrap(), b"second version");

    // --to names the remote file; --dir the directory it goes into.
    std::fs::create_dir(root.path().join("in")).unwrap();
    run(&["-p", "f.txt", "--to", "g.txt", "--dir", "in", "-q"]).ok();
    assert_eq!(std::fs::read(root.path().join("in/g.txt")).unwrap(), b"second version");
    run(&["-p", "f.txt", "--to", "in/g.txt"]).fails_with("the remote file in/g.txt already exists");

    // A tree onto an existing tree: every existing file is refused, none is touched.
    build_tree(&dir.path().join("tree"), 5);
    run(&["-r", "-p", "tree", "-q"]).ok();
    let before = digest(&root.path().join("tree"));
    std::fs::write(dir.path().join("tree/a/top.txt"), b"changed locally").unwrap();
    let again = run(&["-r", "-p", "tree"]).fails_with("13 of 13 files failed");
    assert!(
        again.stderr.contains("failed a/top.txt: the remote file tree/a/top.txt already exists"),
        "{}",
        again.stderr
    );
    assert_same(&digest(&root.path().join("tree")), &before, "after a refused tree upload");
}

#[test]
fn interrupted_uploads_resume() {
    let root = tempfile::tempdir().unwrap();
    let (_server, port) = pyftpd::start_writable(root.path());
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(3 << 20, 11);
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    // What an interrupted STOR leaves on pyftpdlib: the first part under the final name.
    std::fs::write(root.path().join("big.bin"), &data[..1_000_000]).unwrap();
    let port = port.to_string();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-p", "big.bin", "--resume", "-v"]).ok();
    assert!(run.stderr.contains("of them now"), "{}", run.stderr);
    assert_eq!(std::fs::read(root.path().join("big.bin")).unwrap(), data);
    // Nothing left to send: the check alone runs.
    ftclient(dir.path(), &["127.0.0.1", &port, "-p", "big.bin", "--resume", "-q"]).ok();
    // A remote file longer than the local one is not a partial upload of it.
    std::fs::write(dir.path().join("short.bin"), &data[..10]).unwrap();
    std::fs::write(root.path().join("short.bin"), &data[..20]).unwrap();
    ftclient(dir.path(), &["127.0.0.1", &port, "-p", "short.bin", "--resume"])
        .fails_with("it is not a partial upload of this file");
}

#[test]
fn refused_uploads_are_reported_on_one_line() {
    // The default pyftpdlib launcher gives the anonymous user read-only rights.
    let tree = crate::support::Tree::new();
    let (_server, port) = pyftpd::start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("new.txt"), b"x").unwrap();
    ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-p", "new.txt"])
        .fails_with("the server refused the upload of new.txt: 550");
    assert!(!tree.root.path().join("new.txt").exists());
    ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-p", "."]).fails_with("is a directory; use -r");
}

#[test]
fn tree_downloads_from_ftserver_in_both_modes_with_parallel_connections() {
    let root = tempfile::tempdir().unwrap();
    build_tree(&root.path().join("tree"), 300);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = ftserver::Server::spawn(listener, ftserver::Config::new(root.path()).unwrap()).unwrap();
    let port = server.local_addr().port();
    let mut expected = digest(&root.path().join("tree"));
    for active in [false, true] {
        let (dir, run) = run_fresh("127.0.0.1", port, &["-r", "-g", "tree", "--parallel", "4", "-o", "copy"], active);
        let run = run.ok();
        assert!(run.stderr.contains("downloaded 308 of 308 files"), "{}", run.stderr);
        // The server may list the link that points outside its root, or hide it; either way
        // no file outside the root arrives.
        let got = digest(&dir.path().join("copy"));
        expected.retain(|k, _| k != "leak");
        assert_same(&got, &expected, &format!("active: {active}"));
    }
    // Again into the same directory: every file exists, so each copy gets a numbered name.
    let (dir, _) = run_fresh("127.0.0.1", port, &["-r", "-g", "tree/a", "-q"], false);
    let again = ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-r", "-g", "tree/a"]).ok();
    assert!(again.stderr.contains("2 saved as NAME.1"), "{}", again.stderr);
    assert_eq!(std::fs::read(dir.path().join("a/top.txt.1")).unwrap(), b"top\n");
}

/// ftserver in-process on 127.0.0.1 serving `root`, with uploads and, if asked, replacing.
fn writable_ftserver(root: &Path, overwrite: bool) -> ftserver::ServerHandle {
    writable_ftserver_on("127.0.0.1", root, overwrite)
}

/// ftserver in-process on `ip` serving `root`, with uploads and, if asked, replacing.
fn writable_ftserver_on(ip: &str, root: &Path, overwrite: bool) -> ftserver::ServerHandle {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let mut config = ftserver::Config::new(root).unwrap();
    config.writable = true;
    config.overwrite = overwrite;
    ftserver::Server::spawn(listener, config).unwrap()
}

#[test]
fn trees_round_trip_through_ftserver_in_both_modes_with_parallel_connections() {
    for active in [false, true] {
        let root = tempfile::tempdir().unwrap();
        let server = writable_ftserver(root.path(), false);
        round_trip("127.0.0.1", server.local_addr().port(), root.path(), 1000, active, "4");
    }
}

#[test]
fn trees_round_trip_through_ftserver_over_ipv6() {
    for active in [false, true] {
        let root = tempfile::tempdir().unwrap();
        let server = writable_ftserver_on("::1", root.path(), false);
        round_trip("::1", server.local_addr().port(), root.path(), 50, active, "3");
    }
}

#[test]
fn uploads_to_ftserver_are_verified_refused_when_the_name_exists_and_resumed() {
    let root = tempfile::tempdir().unwrap();
    let server = writable_ftserver(root.path(), false);
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(3 << 20, 5);
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["127.0.0.1", port.as_str()];
        all.extend_from_slice(args);
        ftclient(dir.path(), &all)
    };
    let up = run(&["-p", "big.bin", "-v"]).ok();
    assert!(up.stderr.contains("CRC32 matches the server's"), "{}", up.stderr);
    assert_eq!(std::fs::read(root.path().join("big.bin")).unwrap(), data);

    // The client refuses before the server would; with --overwrite the server refuses too,
    // as it was started without --overwrite: a one-line error with its reply.
    run(&["-p", "big.bin"]).fails_with("the remote file big.bin already exists");
    run(&["-p", "big.bin", "--overwrite"]).fails_with("the server refused the upload of big.bin: 55");
    assert_eq!(std::fs::read(root.path().join("big.bin")).unwrap(), data);

    // ftserver keeps an interrupted upload hidden as .NAME.ftpart and reports its size to SIZE:
    // --resume continues from there.
    std::fs::write(root.path().join(".again.bin.ftpart"), &data[..1_234_567]).unwrap();
    std::fs::write(dir.path().join("again.bin"), &data).unwrap();
    let resumed = run(&["-p", "again.bin", "--resume", "-v"]).ok();
    assert!(resumed.stderr.contains("of them now"), "{}", resumed.stderr);
    assert!(resumed.stderr.contains("CRC32 matches the server's"), "{}", resumed.stderr);
    assert_eq!(std::fs::read(root.path().join("again.bin")).unwrap(), data);
    assert!(!root.path().join(".again.bin.ftpart").exists());
}

#[test]
fn ftserver_with_overwrite_lets_uploads_replace_files() {
    let root = tempfile::tempdir().unwrap();
    let server = writable_ftserver(root.path(), true);
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f.txt"), b"old").unwrap();
    std::fs::write(dir.path().join("f.txt"), b"new content").unwrap();
    ftclient(dir.path(), &["127.0.0.1", &port, "-p", "f.txt"]).fails_with("already exists");
    assert_eq!(std::fs::read(root.path().join("f.txt")).unwrap(), b"old");
    ftclient(dir.path(), &["127.0.0.1", &port, "-p", "f.txt", "--overwrite"]).ok();
    assert_eq!(std::fs::read(root.path().join("f.txt")).unwrap(), b"new content");
}

#[test]
fn interrupted_tree_transfers_resume_file_by_file() {
    let root = tempfile::tempdir().unwrap();
    build_tree(&root.path().join("tree"), 20);
    std::fs::remove_file(root.path().join("tree/leak")).unwrap();
    let server = writable_ftserver(root.path(), false);
    let port = server.local_addr().port().to_string();
    let expected = digest(&root.path().join("tree"));

    // A download that stopped: one file complete, one partial, the rest missing.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("tree");
    std::fs::create_dir_all(local.join("large")).unwrap();
    let one = std::fs::read(root.path().join("tree/large/one.bin")).unwrap();
    std::fs::write(local.join("large/.one.bin.ftpart"), &one[..100_000]).unwrap();
    std::fs::write(local.join("zero.bin"), b"").unwrap();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-r", "-g", "tree", "--resume"]).ok();
    assert!(run.stderr.contains("28 of 28 files"), "{}", run.stderr);
    // The files the stopped run never started are not a warning each.
    assert!(!run.stderr.contains("nothing to resume"), "{}", run.stderr);
    // The complete file was checked, not fetched again as zero.bin.1.
    assert_same(&digest(&local), &expected, "resumed download");

    // An upload that stopped: ftserver keeps the partial hidden; the rest is missing.
    let up_root = tempfile::tempdir().unwrap();
    let up_server = writable_ftserver(up_root.path(), false);
    let up_port = up_server.local_addr().port().to_string();
    std::fs::create_dir_all(up_root.path().join("tree/large")).unwrap();
    std::fs::write(up_root.path().join("tree/large/.one.bin.ftpart"), &one[..200_000]).unwrap();
    let run = ftclient(dir.path(), &["127.0.0.1", &up_port, "-r", "-p", "tree", "--resume", "-vv"]).ok();
    assert!(run.stderr.contains("uploaded 28 of 28 files"), "{}", run.stderr);
    assert!(run.stderr.contains("> REST 200000"), "the partial upload was not continued");
    assert_same(&digest(&up_root.path().join("tree")), &expected, "resumed upload");
}

#[test]
fn a_server_that_stops_an_upload_midway_is_reported_on_one_line() {
    // ftserver with --max-upload-size answers 552 once the limit is passed and drops the
    // data connection: the client reports the server's reply, not a broken pipe.
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = ftserver::Config::new(root.path()).unwrap();
    config.writable = true;
    config.max_upload_size = Some(1 << 20);
    let server = ftserver::Server::spawn(listener, config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("big.bin"), bytes(8 << 20, 4)).unwrap();
    let port = server.local_addr().port().to_string();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-p", "big.bin"]).fails_with("the server refused the upload");
    assert!(run.stderr.contains(": 552 ") && !run.stderr.contains("--resume"), "{}", run.stderr);
    assert!(!root.path().join("big.bin").exists());
}

/// A run of `n` free data ports on 127.0.0.1, the second held by the returned listener (so the
/// second connection of a parallel transfer cannot listen on it).
fn data_ports_with_the_second_taken(n: u16) -> (u16, TcpListener) {
    loop {
        let first = free_port_range("127.0.0.1", n);
        if let Ok(taken) = TcpListener::bind(("127.0.0.1", first + 1)) {
            return (first, taken);
        }
    }
}

#[test]
fn a_taken_data_port_leaves_its_files_to_the_other_connections() {
    let root = tempfile::tempdir().unwrap();
    build_tree(&root.path().join("tree"), 40);
    std::fs::remove_file(root.path().join("tree/leak")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = ftserver::Server::spawn(listener, ftserver::Config::new(root.path()).unwrap()).unwrap();
    let port = server.local_addr().port().to_string();
    // Connection 2 would listen on DATA_PORT+1, which this test holds.
    let (data_port, _taken) = data_ports_with_the_second_taken(3);
    let dir = tempfile::tempdir().unwrap();
    let args = ["127.0.0.1", &port, "-r", "-g", "tree", "--parallel", "3", &data_port.to_string()];
    let run = ftclient(dir.path(), &args).ok();
    assert!(run.stderr.contains("downloaded 48 of 48 files"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "connection 2 of the transfer stops: cannot listen on data port 127.0.0.1:{}",
            data_port + 1
        )),
        "{}",
        run.stderr
    );
    assert_same(&digest(&dir.path().join("tree")), &digest(&root.path().join("tree")), "copy");
}

/// The job of a connection whose data port is taken goes to another connection even when
/// that one has nothing left to do (it waits for handed-back jobs instead of leaving): two
/// files on two connections, the second connection's port taken, both files arrive.
#[test]
fn a_taken_data_port_hands_its_last_file_to_a_connection_that_is_done() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("two")).unwrap();
    std::fs::write(root.path().join("two/a"), b"first").unwrap();
    std::fs::write(root.path().join("two/b"), b"second").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = ftserver::Server::spawn(listener, ftserver::Config::new(root.path()).unwrap()).unwrap();
    let port = server.local_addr().port().to_string();
    let (data_port, _taken) = data_ports_with_the_second_taken(2);
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let args = ["127.0.0.1", &port, "-r", "-g", "two", "--parallel", "2", &data_port.to_string()];
        let run = ftclient(dir.path(), &args).ok();
        assert!(run.stderr.contains("downloaded 2 of 2 files"), "{}", run.stderr);
        assert_eq!(std::fs::read(dir.path().join("two/a")).unwrap(), b"first");
        assert_eq!(std::fs::read(dir.path().join("two/b")).unwrap(), b"second");
    }
}

#[test]
fn a_resumed_upload_onto_a_foreign_partial_says_the_remote_file_differs() {
    let root = tempfile::tempdir().unwrap();
    let server = writable_ftserver(root.path(), false);
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = bytes(100_000, 8);
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    // The hidden partial on the server holds other bytes than the local file's start.
    std::fs::write(root.path().join(".f.bin.ftpart"), bytes(40_000, 12)).unwrap();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-p", "f.bin", "--resume"]);
    let run = run.fails_with("the server's f.bin now differs from f.bin: the 40000 bytes already on the server");
    assert!(run.stderr.contains("upload it again with --overwrite"), "{}", run.stderr);
}

/// Runs `ftclient 127.0.0.1 PORT args...` in `dir` with `input` on its stdin.
fn ftclient_with_stdin(dir: &Path, port: &str, args: &[&str], input: &[u8]) -> Run {
    let mut all = vec!["127.0.0.1", port];
    all.extend_from_slice(args);
    let mut child = std::process::Command::new(crate::support::client_bin())
        .args(&all)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    // A writer thread: the pipe holds only 64 KiB, so the client must be reading meanwhile.
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let run = crate::support::wait_output(child);
    let _ = writer.join().unwrap();
    run
}

#[test]
fn uploads_from_stdin_and_fifos_are_streamed_once_and_verified() {
    let root = tempfile::tempdir().unwrap();
    let server = writable_ftserver(root.path(), false);
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = bytes((2 << 20) + 77, 11);
    let up = ftclient_with_stdin(dir.path(), &port, &["-p", "-", "--to", "in.bin", "-v"], &data).ok();
    assert!(up.stderr.contains("CRC32 matches the server's"), "{}", up.stderr);
    assert!(up.stderr.contains("uploaded standard input as in.bin"), "{}", up.stderr);
    assert_eq!(std::fs::read(root.path().join("in.bin")).unwrap(), data);

    // A FIFO: the client opens it and reads it once; a writer thread feeds it.
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let feed = {
        let (fifo, data) = (fifo.clone(), data.clone());
        std::thread::spawn(move || std::fs::write(fifo, data))
    };
    let up = ftclient(dir.path(), &["127.0.0.1", &port, "-p", "fifo", "--to", "f.bin", "-v"]).ok();
    feed.join().unwrap().unwrap();
    assert!(up.stderr.contains("CRC32 matches the server's"), "{}", up.stderr);
    assert_eq!(std::fs::read(root.path().join("f.bin")).unwrap(), data);

    // Usage errors: stdin needs a name; neither can be resumed.
    for (args, needle) in [
        (&["-p", "-"][..], "-p - (stdin) needs --to REMOTE_FILE"),
        (&["-p", "-", "--to", "x", "--resume"], "--resume cannot be used with -p - (stdin)"),
        (&["-p", "fifo", "--resume"], "--resume cannot be used with -p fifo"),
        (&["-r", "-p", "-"], "-r cannot be used with -p - (stdin)"),
    ] {
        let run = ftclient_with_stdin(dir.path(), &port, args, b"");
        assert_eq!(run.code(), 2, "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
}
