//! What users bring from curl, wget and lftp (issue 19): `-o PATH` replaces, `ftp://` URLs,
//! a full disk explained, exit 130/143 on Ctrl-C/SIGTERM, a directory given to `-g`, usage
//! errors that point to `--help`, a port that is not FTP, and messages without "(os error N)".

use crate::fake::{Conn, Fake, Script};
use crate::support::{
    bytes, client_bin, dir_names, ftclient, ftclient_active, spawn_ftclient, wait_for_len, wait_output, ChildGuard,
    Tree, LIMIT,
};
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

/// Serves `root` with ftserver on `ip` port 0; the handle stops it when dropped.
fn serve(root: &Path, ip: &str) -> ftserver::ServerHandle {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    ftserver::Server::spawn(listener, ftserver::Config::new(root).unwrap()).unwrap()
}

/// Asserts that nothing ftclient printed carries Rust's "(os error N)".
fn no_error_numbers(run: &crate::support::Run) {
    assert!(!run.stderr.contains("os error"), "{}", run.stderr);
}

#[test]
fn a_named_output_is_replaced_after_the_checks_and_a_default_name_is_not() {
    let tree = Tree::new();
    let server = serve(tree.root.path(), "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let new = tree.read("docs/a.txt");
    let named = dir.path().join("named.txt");
    std::fs::write(&named, b"old").unwrap();
    // A hard link to the old file: it must keep the old bytes, which shows the new file took
    // the name with a rename (atomic), not by writing over the old one.
    std::fs::hard_link(&named, dir.path().join("link")).unwrap();

    // A failed check replaces nothing.
    let wrong = format!("crc32:{}", "0".repeat(8));
    ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs/a.txt", "-o", "named.txt", "--checksum", &wrong])
        .fails_with("checksum mismatch");
    assert_eq!(std::fs::read(&named).unwrap(), b"old");

    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs/a.txt", "-o", "named.txt"]).ok();
    assert!(run.stderr.starts_with("saved named.txt: "), "{}", run.stderr);
    assert_eq!(std::fs::read(&named).unwrap(), new);
    assert_eq!(std::fs::read(dir.path().join("link")).unwrap(), b"old");
    // Only the named file (and the test's link) is there: no named.txt.1, no .ftpart.
    assert_eq!(dir_names(dir.path()), ["link", "named.txt"]);

    // The default name keeps the NAME.1 rule, and so does a directory given to -o.
    ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs/a.txt", "-q"]).ok();
    ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs/a.txt", "-q"]).ok();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/a.txt"), b"mine").unwrap();
    ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs/a.txt", "-o", "sub", "-q"]).ok();
    assert_eq!(dir_names(dir.path()), ["a.txt", "a.txt.1", "link", "named.txt", "sub"]);
    assert_eq!(dir_names(&dir.path().join("sub")), ["a.txt", "a.txt.1"]);
    assert_eq!(std::fs::read(dir.path().join("sub/a.txt")).unwrap(), b"mine");
}

#[test]
fn ftp_urls_list_and_get_beside_the_card_forms() {
    let tree = Tree::new();
    std::fs::write(tree.root.path().join("one"), b"1").unwrap();
    let server = serve(tree.root.path(), "127.0.0.1");
    let port = server.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let base = format!("ftp://127.0.0.1:{port}");

    // A path that ends in '/' (or no path) lists; any other path gets.
    let listed = ftclient(dir.path(), &[&format!("{base}/")]).ok().out();
    assert_eq!(listed, Tree::root_listing().replace("empty\n", "empty\none\n"));
    assert_eq!(ftclient(dir.path(), &[&base]).ok().out(), listed);
    assert_eq!(ftclient(dir.path(), &[&format!("{base}/docs/")]).ok().out(), "a.txt\n");
    ftclient(dir.path(), &[&format!("{base}/docs/a.txt"), "-q"]).ok();
    assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), tree.read("docs/a.txt"));

    // Percent-decoding, a user in the URL, and -o as with the card's form.
    ftclient(dir.path(), &[&format!("ftp://anonymous@127.0.0.1:{port}/%C3%BCn%C3%AF%20%F0%9F%9A%80.txt"), "-q"]).ok();
    assert_eq!(std::fs::read(dir.path().join("ünï 🚀.txt")).unwrap(), b"emoji\n");
    ftclient(dir.path(), &[&format!("{base}/with%20space.txt"), "-o", "-", "-q"]).ok();

    // A number after the URL is the active-mode data port.
    let (run, _) = ftclient_active(dir.path(), &[&format!("{base}/docs/a.txt"), "-o", "-"], Ipv4Addr::LOCALHOST.into());
    assert_eq!(run.ok().stdout, tree.read("docs/a.txt"));

    // "1 byte", not "1 B (1 bytes)".
    let run = ftclient(dir.path(), &[&format!("{base}/one")]).ok();
    assert!(run.stderr.contains("saved one: 1 byte in "), "{}", run.stderr);

    // -r with a URL copies the tree.
    ftclient(dir.path(), &["-r", &format!("{base}/docs/"), "-q"]).ok();
    assert_eq!(std::fs::read(dir.path().join("docs/a.txt")).unwrap(), tree.read("docs/a.txt"));

    // The card's forms still work unchanged.
    let port = port.to_string();
    assert_eq!(ftclient(dir.path(), &["127.0.0.1", &port, "-l"]).ok().out(), listed);
    ftclient(dir.path(), &["127.0.0.1", &port, "-g", "one", "-o", "-"]).ok();
}

#[test]
fn ftp_urls_name_where_an_upload_goes() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("in")).unwrap();
    let mut config = ftserver::Config::new(root.path()).unwrap();
    config.writable = true;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = ftserver::Server::spawn(listener, config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"up").unwrap();
    let base = format!("ftp://127.0.0.1:{}", server.local_addr().port());
    // A path that ends in '/' is the directory to upload into; any other is the remote name.
    ftclient(dir.path(), &["-p", "a.txt", &format!("{base}/in/"), "-q"]).ok();
    ftclient(dir.path(), &["-p", "a.txt", &format!("{base}/in/b%20c.txt"), "-q"]).ok();
    assert_eq!(dir_names(&root.path().join("in")), ["a.txt", "b c.txt"]);
}

#[test]
fn ftp_urls_take_ipv6_addresses_in_brackets() {
    let tree = Tree::new();
    let server = serve(tree.root.path(), "::1");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ftp://[::1]:{}/docs/", server.local_addr().port());
    assert_eq!(ftclient(dir.path(), &[&url]).ok().out(), "a.txt\n");
}

#[test]
fn usage_errors_point_to_help() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["ftps://127.0.0.1/f", "--tls"][..], "ftclient: an ftp:// URL cannot be used with --tls when it is ftps://"),
        (&["http://127.0.0.1/f"], "unsupported URL scheme http://"),
        (&["ftp://127.0.0.1/f", "-g", "x"], "an ftp:// URL cannot be used with -l or -g"),
        (&["ftp://bob:hunter2@127.0.0.1/f", "--password", "x"], "--password"),
        (&["127.0.0.1", "0", "-l"], "invalid value '0' for '<PORT>'"),
        (&["127.0.0.1", "21"], "required"),
        (&["127.0.0.1", "21", "-g", "a", "-o", "-", "--resume"], "--resume cannot be used with -o -"),
    ] {
        let run = ftclient(dir.path(), args);
        assert_eq!(run.code(), 2, "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.stderr.ends_with("; see --help\n"), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    }
    let help = ftclient(dir.path(), &["--help"]).ok().out();
    for needle in ["ftp://[USER[:PASSWORD]@]HOST[:PORT]/PATH", "lists PATH when it ends in '/'", "130", "143"] {
        assert!(help.contains(needle), "{needle} missing from --help");
    }
}

#[test]
fn get_on_a_directory_says_to_use_r() {
    // ftserver has MLST, which tells a directory from a file.
    let tree = Tree::new();
    let server = serve(tree.root.path(), "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs"]);
    run.fails_with("docs is a directory; use -r to get a tree");
    assert!(dir_names(dir.path()).is_empty());

    // Without MLST the client looks with CWD, and goes back where it was.
    let script = Script { dirs: vec![("/", Some("")), ("/docs", Some(""))], ..Script::default() };
    let fake = Fake::start(script, 2, Box::new(|conn: &mut Conn, _| conn.reply(550, "not a plain file")));
    let port = fake.port.to_string();
    ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs"]).fails_with("docs is a directory; use -r to get a tree");
    let commands = fake.commands();
    let tail: Vec<&str> = commands.iter().map(String::as_str).skip_while(|c| !c.starts_with("RETR")).collect();
    assert_eq!(tail, ["RETR docs", "PWD", "CWD docs", "CWD /"], "{commands:?}");
    // A missing file keeps the server's own words.
    ftclient(dir.path(), &["127.0.0.1", &port, "-g", "nothing"]).fails_with("cannot get nothing: 550 not a plain file");
    assert!(dir_names(dir.path()).is_empty());
}

/// Runs `script` as root of a fresh mount namespace (unshare -rm), with `$1` = `mount_point`,
/// `$2` = the ftclient binary and `$3`... = `args`; returns the finished run. Exit 99 from the
/// script means the namespace or mount could not be made, which fails the test with one line.
fn in_mount_namespace(script: &str, mount_point: &Path, args: &[&str]) -> crate::support::Run {
    let child = Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(mount_point)
        .arg(client_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) is needed for this test: apt-get install util-linux");
    let run = wait_output(child);
    assert_ne!(run.code(), 99, "cannot mount a tmpfs in a private mount namespace: {}", run.stderr);
    run
}

#[test]
fn a_read_only_directory_is_named_instead_of_the_temporary_file() {
    let tree = Tree::new();
    let server = serve(tree.root.path(), "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let mount_point = tempfile::tempdir().unwrap();
    let script = r#"mount -t tmpfs -o ro,size=64k tmpfs "$1" || exit 99
        "$2" 127.0.0.1 "$3" -g docs/a.txt -o "$1/a.txt""#;
    let run = in_mount_namespace(script, mount_point.path(), &[&port]);
    let shown = mount_point.path().display().to_string();
    let run = run.fails_with(&format!("cannot save into {shown}: read-only file system"));
    assert!(!run.stderr.contains(".ftpart"), "{}", run.stderr);
    no_error_numbers(&run);
}

#[test]
fn running_out_of_disk_says_disk_full_and_how_much_is_needed() {
    // The file (900 KiB) fits the 1 MiB tmpfs when the download starts; then the test fills
    // the disk (through the shell's working directory, /proc/PID/cwd, which reaches into the
    // private mount) and lets the server send the rest.
    const SIZE: usize = 900 << 10;
    let data = bytes(SIZE, 5);
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (sent_tx, go_rx) = (Mutex::new(sent_tx), Mutex::new(go_rx));
    let fake = Fake::start(
        Script { size: Some(SIZE as u64), ..Script::default() },
        1,
        Box::new(move |conn: &mut Conn, _| {
            conn.reply(150, "here it comes");
            let mut stream = conn.open_data();
            stream.write_all(&data[..64 << 10]).unwrap();
            let _ = sent_tx.lock().unwrap().send(());
            let _ = go_rx.lock().unwrap().recv_timeout(LIMIT);
            let _ = stream.write_all(&data[64 << 10..]);
            drop(stream);
            conn.reply(226, "done");
        }),
    );
    let mount_point = tempfile::tempdir().unwrap();
    let script = r#"mount -t tmpfs -o size=1m tmpfs "$1" && cd "$1" || exit 99
        "$2" 127.0.0.1 "$3" -g f; rc=$?; ls -A; exit $rc"#;
    let port = fake.port.to_string();
    let child = Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(mount_point.path())
        .arg(client_bin())
        .arg(&port)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) is needed for this test: apt-get install util-linux");
    let shell = child.id();
    let started = sent_rx.recv_timeout(LIMIT);
    if started.is_ok() {
        // Once the first bytes are stored, fill what is left of the tmpfs (the last write
        // fails with ENOSPC, as intended).
        wait_for_len(Path::new(&format!("/proc/{shell}/cwd/.f.ftpart")), 64 << 10);
        let filler = format!("/proc/{shell}/cwd/filler");
        let mut file = std::fs::File::create(&filler).expect("cannot reach the private tmpfs");
        let _ = file.write_all(&vec![0u8; 2 << 20]);
    }
    drop(go_tx);
    let run = wait_output(child);
    assert_ne!(run.code(), 99, "cannot mount a tmpfs in a private mount namespace: {}", run.stderr);
    started.expect("the download never started");
    let run = run.fails_with("download of f stopped after 65536 of 921600 bytes: disk full in .: ");
    assert!(
        run.stderr.contains(" more needed; free some space, then run the same command with --resume"),
        "{}",
        run.stderr
    );
    assert_eq!(run.out(), ".f.ftpart\nfiller\n", "what the failed download left: {}", run.stderr);
    no_error_numbers(&run);
}

#[test]
fn a_size_announced_only_in_the_150_reply_is_checked_against_the_free_space_too() {
    let fake = Fake::start(
        Script::default(),
        1,
        Box::new(|conn: &mut Conn, _| {
            conn.reply(150, "Opening BINARY mode data connection for f (2000000 bytes).");
            let mut stream = conn.open_data();
            let _ = stream.write_all(&bytes(2_000_000, 3));
            drop(stream);
            conn.reply(226, "done");
        }),
    );
    let mount_point = tempfile::tempdir().unwrap();
    let script = r#"mount -t tmpfs -o size=256k tmpfs "$1" && cd "$1" || exit 99
        "$2" 127.0.0.1 "$3" -g f; rc=$?; ls -A; exit $rc"#;
    let run = in_mount_namespace(script, mount_point.path(), &[&fake.port.to_string()]);
    let run = run.fails_with("not enough disk space in .: the download needs 1.91 MiB (2000000 bytes) more");
    assert_eq!(run.out(), "", "what the failed download left: {}", run.stderr);
}

#[test]
fn sigterm_exits_143_and_keeps_a_resumable_part() {
    const LEN: usize = 300_001;
    let data = bytes(LEN, 11);
    let sent = data.clone();
    let (release, wait) = mpsc::channel::<()>();
    let wait = Mutex::new(wait);
    // A server that sends the first bytes, then trickles nothing until the test is done.
    let fake = Fake::start(
        Script { size: Some(LEN as u64), ..Script::default() },
        1,
        Box::new(move |conn: &mut Conn, _| {
            conn.reply(150, "go");
            let mut stream = conn.open_data();
            stream.write_all(&sent[..1000]).unwrap();
            let _ = wait.lock().unwrap().recv_timeout(LIMIT);
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_ftclient(dir.path(), &["127.0.0.1", &fake.port.to_string(), "-g", "f"]);
    let part = dir.path().join(".f.ftpart");
    wait_for_len(&part, 1000);
    let mut kill = ChildGuard(Command::new("kill").args(["-TERM", &child.id().to_string()]).spawn().unwrap());
    kill.wait_until(Instant::now() + LIMIT).expect("kill ran");
    let out = wait_output(child);
    drop(release);
    assert_eq!(out.code(), 143, "128 + SIGTERM: {out:?}");
    assert!(out.stderr.contains("--resume") && out.stderr.contains("interrupted"), "{}", out.stderr);
    assert_eq!(dir_names(dir.path()), [".f.ftpart"]);
    assert_eq!(std::fs::read(&part).unwrap(), data[..1000]);

    // The kept part resumes against a server that has the whole file.
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("f"), &data).unwrap();
    let server = serve(root.path(), "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-g", "f", "--resume"]).ok();
    assert!(run.stderr.contains("of them now"), "{}", run.stderr);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), data);
}

/// Accepts connections on 127.0.0.1 and answers each as `answer` says (holding it open until
/// the test ends); returns the port.
fn not_ftp(answer: &'static [u8]) -> (u16, mpsc::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else { return };
        let _ = stream.write_all(answer);
        // Hold the connection until the test is over (its sender dropped).
        let _ = wait.recv_timeout(LIMIT);
    });
    (port, done)
}

#[test]
fn a_port_that_is_not_ftp_is_given_up_after_10_s() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts and says nothing, like an HTTP server waiting for its request.
    let (port, _held) = not_ftp(b"");
    let run = ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-l"]);
    run.fails_with(&format!("no greeting from 127.0.0.1:{port} within 10 s; it may not be an FTP server"));
    // Answers with something that is not an FTP reply.
    let (port, _held) = not_ftp(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    let run = ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-l"]);
    run.fails_with(&format!("127.0.0.1:{port} did not greet as FTP servers do; it may not be an FTP server"));
    // A shorter --timeout still applies to the greeting.
    let (port, _held) = not_ftp(b"");
    let run = ftclient(dir.path(), &["127.0.0.1", &port.to_string(), "-l", "--timeout", "1"]);
    run.fails_with("within 1 s; it may not be an FTP server");
}

#[test]
fn system_errors_are_said_in_words_without_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port().to_string();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-l"]).fails_with("connection refused");
    no_error_numbers(&run);
    let tree = Tree::new();
    let server = serve(tree.root.path(), "127.0.0.1");
    let port = server.local_addr().port().to_string();
    let run = ftclient(dir.path(), &["127.0.0.1", &port, "-g", "docs/a.txt", "-o", "missing/a.txt"]);
    no_error_numbers(&run.fails_with("cannot save into missing: no such directory"));
}
