//! ftclient against our own ftserver, run in-process on a port the kernel picks.

use crate::scenarios::{self, Endpoint};
use crate::support::Tree;
use std::net::TcpListener;

/// Serves `tree` on `ip` port 0; the handle stops the server when dropped.
fn start(tree: &Tree, ip: &str) -> ftserver::ServerHandle {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let config = ftserver::Config::new(tree.root.path()).unwrap();
    ftserver::Server::spawn(listener, config).unwrap()
}

#[test]
fn lists_and_gets_in_both_modes() {
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    scenarios::all(&Endpoint { host: "127.0.0.1", port: server.local_addr().port(), tree: &tree });
}

/// `ftclient -l | head`: a reader that goes away before the listing is written is no error,
/// as with `ls` (it was "cannot write the listing to stdout: Broken pipe", exit 1).
#[test]
fn a_listing_reader_that_went_away_is_no_error() {
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ftclient"))
        .args(["127.0.0.1", &port, "-l"])
        .stdout(writer)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn works_over_ipv6() {
    let tree = Tree::new();
    let server = start(&tree, "::1");
    scenarios::all(&Endpoint { host: "::1", port: server.local_addr().port(), tree: &tree });
}

#[test]
fn the_same_data_port_works_run_after_run_and_host_names_resolve() {
    // The coursework flow reuses one DATA_PORT; the previous connection may still be in
    // TIME_WAIT, which SO_REUSEADDR allows.
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let port = server.local_addr().port().to_string();
    let args = ["localhost", port.as_str(), "-l"];
    let (first, data_port) = crate::support::ftclient_active(dir.path(), &args, [127, 0, 0, 1].into());
    assert_eq!(first.ok().out(), Tree::root_listing());
    for _ in 0..2 {
        let data_port = data_port.to_string();
        let run = crate::support::ftclient(dir.path(), &["localhost", &port, "-l", &data_port]).ok();
        assert_eq!(run.out(), Tree::root_listing());
    }
}

#[test]
fn files_beyond_4_gib_list_and_resume_past_4_gib() {
    // A sparse 5 GiB file whose last bytes are data; the partial local copy is sparse too, so
    // only the tail travels (REST beyond 4 GiB) and the test stays fast.
    const SIZE: u64 = 5 << 30;
    let tail = crate::support::bytes(4096, 5);
    let tree = Tree::new();
    let remote = tree.root.path().join("huge.bin");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = std::fs::File::create(&remote).unwrap();
        file.seek(SeekFrom::Start(SIZE - tail.len() as u64)).unwrap();
        file.write_all(&tail).unwrap();
    }
    let server = start(&tree, "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let long = crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-l", "--long"]).ok().out();
    assert!(long.lines().any(|l| l.contains(&format!(" {SIZE} ")) && l.ends_with(" huge.bin")), "{long}");

    let part = std::fs::File::create(dir.path().join(".huge.bin.ftpart")).unwrap();
    part.set_len(SIZE - 10_000).unwrap();
    drop(part);
    // --no-verify: hashing 5 GiB in a debug build would dominate the test; HASH is checked in
    // `downloads_are_verified_with_the_servers_hash`.
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "huge.bin", "--resume", "--no-verify"]).ok();
    let local = dir.path().join("huge.bin");
    assert_eq!(std::fs::metadata(&local).unwrap().len(), SIZE);
    let mut end = vec![0u8; tail.len()];
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(&local).unwrap();
        file.seek(SeekFrom::Start(SIZE - tail.len() as u64)).unwrap();
        file.read_exact(&mut end).unwrap();
    }
    assert_eq!(end, tail);
}

#[test]
fn a_full_disk_fails_cleanly() {
    // A 256 KiB tmpfs in a private mount namespace (unshare -rm: no privileges needed beyond
    // user namespaces) is too small for big.bin: the free-space check must fail the download
    // before it starts, leaving nothing behind. (Running out during the transfer is in
    // `habits::running_out_of_disk_says_disk_full_and_how_much_is_needed`.)
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let mount_point = tempfile::tempdir().unwrap();
    let script = r#"mount -t tmpfs -o size=256k tmpfs "$1" && cd "$1" || exit 99
        "$2" 127.0.0.1 "$3" -g big.bin; rc=$?; ls -A; exit $rc"#;
    let child = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(mount_point.path())
        .arg(crate::support::client_bin())
        .arg(server.local_addr().port().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) is installed");
    let run = crate::support::wait_output(child);
    assert_ne!(run.code(), 99, "cannot mount a tmpfs in a user namespace: {}", run.stderr);
    let run = run.fails_with("not enough disk space in .: the download needs 3.01 MiB (3158073 bytes) more");
    assert_eq!(run.out(), "", "what the failed download left: {}", run.stderr);
}

#[test]
fn downloads_are_verified_with_the_servers_hash() {
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let port = server.local_addr().port().to_string();
    // The cheapest digest the server offers (CRC32) unless --hash names another.
    let run = crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "big.bin", "-v"]).ok();
    assert!(run.stderr.contains("CRC32 matches the server's"), "{}", run.stderr);
    assert_eq!(std::fs::read(dir.path().join("big.bin")).unwrap(), tree.read("big.bin"));
    for algo in ["sha256", "sha1", "md5"] {
        let args = ["127.0.0.1", &port, "-g", "big.bin", "-o", "-", "-v", "--hash", algo];
        let run = crate::support::ftclient(dir.path(), &args).ok();
        let name = match algo {
            "sha256" => "SHA-256",
            "sha1" => "SHA-1",
            _ => "MD5",
        };
        assert!(run.stderr.contains(&format!("{name} matches the server's")), "{}", run.stderr);
        assert_eq!(run.stdout, tree.read("big.bin"));
    }

    // Below 128 MiB the hash is asked for on the same connection after the transfer.
    std::fs::write(tree.root.path().join("mid.bin"), crate::support::bytes(17 << 20, 3)).unwrap();
    let run = crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "mid.bin", "-v"]).ok();
    assert_eq!(run.stderr.matches(": connected to ").count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("CRC32 matches the server's"), "{}", run.stderr);
    assert_eq!(std::fs::read(dir.path().join("mid.bin")).unwrap(), tree.read("mid.bin"));

    // From 128 MiB on, a second connection asks for the hash while the download runs (a
    // sparse file: mostly zeros, one marked byte near the end).
    let large = std::fs::File::create(tree.root.path().join("large.bin")).unwrap();
    large.set_len((128 << 20) + 5).unwrap();
    std::os::unix::fs::FileExt::write_at(&large, b"x", 128 << 20).unwrap();
    drop(large);
    let run = crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "large.bin", "-o", "-", "-v"]).ok();
    assert_eq!(run.stderr.matches(": connected to ").count(), 2, "{}", run.stderr);
    assert!(run.stderr.contains("CRC32 matches the server's"), "{}", run.stderr);
    assert!(run.stdout == tree.read("large.bin"), "large.bin differs");
}

#[test]
fn devices_and_fifos_are_written_into_and_directories_receive_the_file() {
    use std::os::unix::fs::FileTypeExt;
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let port = server.local_addr().port().to_string();
    let get = |output: &str| crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "big.bin", "-o", output]);

    // /dev/null is written into: no /dev/null.1, no temporary file in /dev, still a device.
    // (Never --overwrite here: an old bug renamed a regular file over /dev/null.)
    let beside_null = || {
        let names = crate::support::dir_names(std::path::Path::new("/dev"));
        names.into_iter().filter(|n| n.contains("null")).collect::<Vec<_>>()
    };
    let before = beside_null();
    let run = get("/dev/null").ok();
    assert!(run.stderr.contains("wrote big.bin to /dev/null"), "{}", run.stderr);
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    assert_eq!(beside_null(), before, "no /dev/null.1 or /dev/.null.ftpart may appear");

    // A FIFO gets the bytes, read by a thread; nothing else appears beside it.
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo (coreutils) runs");
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    get(fifo.to_str().unwrap()).ok();
    assert_eq!(reader.join().unwrap(), tree.read("big.bin"));
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(crate::support::dir_names(dir.path()), vec!["pipe"]);
    // --resume cannot continue into a FIFO: a one-line error before anything is sent.
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "big.bin", "-o", "pipe", "--resume"])
        .fails_with("--resume cannot continue into pipe");

    // An existing directory receives the file under its remote name, like cp; `DIR/` names a
    // directory, never a file called DIR.
    std::fs::create_dir(dir.path().join("into")).unwrap();
    get("into").ok();
    assert_eq!(std::fs::read(dir.path().join("into/big.bin")).unwrap(), tree.read("big.bin"));
    get("newdir/").fails_with("cannot save to newdir/: no such directory");
    get("pipe/").fails_with("cannot save to pipe/: it is not a directory");
    // --overwrite onto a directory is refused before the transfer, leaving nothing behind.
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "big.bin", "-o", "into/big.bin", "-q"]).ok();
    std::fs::create_dir(dir.path().join("big.bin")).unwrap();
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "big.bin", "--overwrite"])
        .fails_with("cannot replace big.bin: it is a directory");
    assert_eq!(crate::support::dir_names(dir.path()), vec!["big.bin", "into", "pipe"]);
}

#[test]
fn a_data_port_in_use_is_named_once() {
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    // A listening socket holds the port: the client's bind fails even with SO_REUSEADDR.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let data_port = taken.local_addr().unwrap().port().to_string();
    let port = server.local_addr().port().to_string();
    let run = crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "empty", &data_port]);
    let run = run.fails_with(&format!("cannot listen on data port 127.0.0.1:{data_port}: "));
    assert_eq!(run.stderr.matches("in use").count(), 1, "{}", run.stderr);
}

/// A file whose name is near the 255-byte limit downloads like any other (its temporary file
/// `.NAME.ftpart` would be too long, so it is shortened), a second copy gets NAME.1 (NAME
/// shortened to make room), and a name longer than any file may have fails before the
/// transfer, leaving nothing behind.
#[test]
fn names_near_the_file_name_limit() {
    let tree = Tree::new();
    let name = "l".repeat(254);
    std::fs::write(tree.root.path().join(&name), b"long name").unwrap();
    let server = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let port = server.local_addr().port().to_string();
    for saved in [name.clone(), format!("{}.1", &name[..253])] {
        crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", &name, "-q"]).ok();
        assert_eq!(std::fs::read(dir.path().join(&saved)).unwrap(), b"long name");
    }
    assert_eq!(crate::support::dir_names(dir.path()).len(), 2);
    let too_long = "m".repeat(256);
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", &name, "-o", &too_long])
        .fails_with("the name is 256 bytes, longer than the 255 a file name may have");
    assert_eq!(crate::support::dir_names(dir.path()).len(), 2);
}

/// Two downloads into the same name never share a temporary file: while another process
/// holds `.NAME.ftpart` (a POSIX record lock, which conflicts with ftclient's open file
/// description lock), ftclient fails at once and leaves that file as it was; once
/// it is free, the download goes through.
#[test]
fn a_temporary_file_in_use_by_another_download_is_left_alone() {
    use std::io::{BufRead, Write};
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join(".a.txt.ftpart");
    std::fs::write(&part, b"another download's bytes").unwrap();
    let mut holder = std::process::Command::new("python3")
        .arg("-c")
        .arg("import fcntl, sys; f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()")
        .arg(&part)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line, "locked\n");
    let port = server.local_addr().port().to_string();
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs/a.txt"])
        .fails_with("is being written by another download into the same name");
    assert_eq!(std::fs::read(&part).unwrap(), b"another download's bytes");
    assert!(!dir.path().join("a.txt").exists());
    holder.stdin.take().unwrap().write_all(b"done").unwrap();
    holder.wait().unwrap();
    crate::support::ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs/a.txt", "-q"]).ok();
    assert_eq!(crate::support::dir_names(dir.path()), ["a.txt"]);
}

/// A symbolic link (dangling or not) or a FIFO where the temporary file goes is never written
/// through or waited on: whoever can write the directory could otherwise point it at any file
/// of ours, which the download (or a --resume) would rewrite.
#[test]
fn a_temporary_file_that_is_not_a_regular_file_is_refused() {
    let tree = Tree::new();
    let server = start(&tree, "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let part = dir.path().join(".a.txt.ftpart");
    for (plant, message) in
        [("link", "is a symbolic link"), ("dangling", "is a symbolic link"), ("fifo", "is not a regular file")]
    {
        match plant {
            "link" => std::os::unix::fs::symlink(&victim, &part).unwrap(),
            "dangling" => std::os::unix::fs::symlink("nowhere", &part).unwrap(),
            _ => nix::unistd::mkfifo(&part, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap(),
        }
        for extra in [&[][..], &["--resume"][..]] {
            let args = [&["127.0.0.1", &port, "-g", "docs/a.txt"][..], extra].concat();
            crate::support::ftclient(dir.path(), &args).fails_with(message);
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(!dir.path().join("a.txt").exists());
        std::fs::remove_file(&part).unwrap();
    }
}
