//! Uploads and tree changes (`--writable`, `--overwrite`): the policy for existing data,
//! confinement of writes, names, and real clients (curl, lftp) uploading files and trees. The
//! reply checks and file helpers here are shared with `resume.rs`.

use crate::support::{awkward_bytes, run_ok, run_tool, tree, url_path, TestServer, TOOL_TIMEOUT};
use std::io::Write;
use std::path::Path;
use std::process::Command;

/// Assertions on a reply, chained after `Raw::expect` and friends.
pub trait Check {
    /// The reply code is `code`.
    fn assert_code(&self, code: u16);
    /// The reply text is `text`.
    fn assert_text(&self, text: &str);
}

impl Check for common::Reply {
    fn assert_code(&self, code: u16) {
        assert_eq!(self.code, code, "{self:?}");
    }

    fn assert_text(&self, text: &str) {
        assert_eq!(self.text(), text, "{self:?}");
    }
}

/// curl with the options every upload test uses: quiet but for errors, bounded, no ~/.curlrc.
pub fn curl() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "30", "--disable"]);
    cmd
}

/// The `ftp://` URL of `path` on `server`.
pub fn url(server: &TestServer, path: &str) -> String {
    format!("ftp://{}/{}", server.addr(), url_path(path))
}

/// The contents of `path` under the server's root.
pub fn read(server: &TestServer, path: &str) -> Vec<u8> {
    std::fs::read(server.root.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Where the hidden partial file of an upload of `dir/name` lives.
pub fn partial(server: &TestServer, dir: &str, name: &str) -> std::path::PathBuf {
    server.root.path().join(dir).join(format!(".{name}.ftpart"))
}

#[test]
fn stores_binary_and_ascii_uploads() {
    let server = TestServer::writable(false);
    let mut raw = server.login();
    let bytes = awkward_bytes(300_000);
    raw.expect("TYPE I", 200);
    raw.passive_upload("STOR new.bin", &bytes).assert_code(226);
    assert!(read(&server, "new.bin") == bytes);
    raw.passive_upload("STOR sub/ünï cødé.bin", &bytes[..4097]).assert_code(226);
    assert!(read(&server, "sub/ünï cødé.bin") == bytes[..4097]);
    raw.passive_upload("STOR empty-upload", b"").assert_code(226);
    assert_eq!(read(&server, "empty-upload"), b"");
    // TYPE A: CRLF becomes LF, a lone CR stays (RFC 959 3.1.1.1).
    raw.expect("TYPE A", 200);
    raw.passive_upload("STOR text.txt", b"one\r\ntwo\r\n\r\nthree\rfour\r").assert_code(226);
    assert_eq!(read(&server, "text.txt"), b"one\ntwo\n\nthree\rfour\r");
    // No partial file stays behind.
    assert!(!tree(server.root.path()).iter().any(|n| n.contains(".ftpart")), "{:?}", tree(server.root.path()));
}

#[test]
fn never_replaces_or_deletes_without_overwrite() {
    let server = TestServer::writable(false);
    let before = tree(server.root.path());
    let mut raw = server.login();
    for cmd in ["STOR hello.txt", "APPE hello.txt", "STOU", "STOR sub"] {
        let reply = raw.cmd(cmd);
        if cmd == "STOU" {
            // STOU never collides; it is the one command here that may go ahead.
            assert_eq!(reply.code, 425, "{reply:?}");
            continue;
        }
        assert_eq!(reply.code, 553, "{cmd}: {reply:?}");
    }
    let reply = raw.cmd("STOR hello.txt");
    assert!(reply.text().contains("exists"), "{reply:?}");
    raw.expect("TYPE I", 200);
    raw.expect("REST 5", 350);
    raw.expect("STOR hello.txt", 553);
    for cmd in ["DELE hello.txt", "RMD sub", "RNFR hello.txt", "RNTO x"] {
        let reply = raw.expect(cmd, 550);
        assert!(reply.text().contains("never deletes"), "{cmd}: {reply:?}");
    }
    assert_eq!(tree(server.root.path()), before);
    assert_eq!(read(&server, "hello.txt"), b"hello, world\n");
    // MKD only adds.
    raw.expect("MKD new dir", 257).assert_text("\"/new dir\" created.");
    raw.expect("MKD new dir", 550);
    raw.expect("CWD new dir", 250);
    raw.expect("XMKD inner", 257).assert_text("\"/new dir/inner\" created.");
    raw.expect("MKD /", 550);
    assert!(server.root.path().join("new dir/inner").is_dir());
}

#[test]
fn overwrite_allows_replacing_deleting_and_renaming() {
    let server = TestServer::writable(true);
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    raw.passive_upload("STOR hello.txt", b"replaced").assert_code(226);
    assert_eq!(read(&server, "hello.txt"), b"replaced");
    raw.passive_upload("APPE hello.txt", b"+more").assert_code(226);
    assert_eq!(read(&server, "hello.txt"), b"replaced+more");
    raw.expect("RNFR hello.txt", 350);
    raw.expect("RNTO sub/renamed.txt", 250);
    assert_eq!(read(&server, "sub/renamed.txt"), b"replaced+more");
    assert!(!server.root.path().join("hello.txt").exists());
    // RNTO onto an existing name replaces it.
    raw.expect("RNFR lines.txt", 350);
    raw.expect("RNTO sub/renamed.txt", 250);
    assert_eq!(read(&server, "sub/renamed.txt"), b"one\ntwo\n\nthree\r\nfour");
    // RNTO must follow RNFR at once.
    raw.expect("RNTO x", 503);
    raw.expect("RNFR empty", 350);
    raw.expect("NOOP", 200);
    raw.expect("RNTO x", 503);
    raw.expect("RNFR missing", 550);
    raw.expect("RNFR /", 550);
    raw.expect("DELE sub/renamed.txt", 250);
    raw.expect("DELE sub/renamed.txt", 550);
    raw.expect("DELE sub", 550);
    raw.expect("MKD d", 257);
    // A directory may be renamed to a name ending in `/` (rename(2) allows it), a file not.
    raw.expect("RNFR d/", 350);
    raw.expect("RNTO e/", 250);
    raw.expect("RNFR e", 350);
    raw.expect("RNTO d", 250);
    raw.expect("RNFR empty/", 550).assert_text("empty/: Not a directory.");
    raw.expect("RMD sub", 550).assert_text("sub: directory not empty.");
    raw.expect("RMD d", 250);
    raw.expect("RMD /", 550);
    // The facts say so too: the root may be added to and emptied, not deleted or renamed.
    let root = raw.expect("MLST /", 250);
    assert!(root.lines[1].contains(";perm=celmp;"), "{root:?}");
    let sub = raw.expect("MLST sub", 250);
    assert!(sub.lines[1].contains(";perm=cdeflmp;"), "{sub:?}");
    assert!(!server.root.path().join("d").exists());
    assert!(server.root.path().join("sub/nested.txt").exists());
}

#[test]
fn read_only_server_writes_nothing() {
    let server = TestServer::start();
    let before = tree(server.root.path());
    let mut raw = server.login();
    let _data = raw.epsv_connect();
    raw.expect("STOR x", 550);
    raw.expect("REST 10", 350);
    raw.expect("APPE hello.txt", 550);
    raw.expect("STOU", 550);
    assert_eq!(tree(server.root.path()), before);
}

#[test]
fn stou_stores_under_a_new_name() {
    let server = TestServer::writable(false);
    let mut raw = server.login();
    let mut upload = |line: &str, body: &[u8]| {
        let mut data = raw.epsv_connect();
        let opening = raw.expect(line, 150);
        data.write_all(body).unwrap();
        drop(data);
        let done = raw.expect_reply(226);
        (opening.text(), done.text())
    };
    // RFC 1123 4.1.2.9: "150 FILE: <name>".
    assert_eq!(upload("STOU", b"1"), ("FILE: upload".into(), "Transfer complete, stored as upload.".into()));
    assert_eq!(upload("STOU", b"2").0, "FILE: upload.1");
    assert_eq!(upload("STOU hello.txt", b"3").0, "FILE: hello.txt.1");
    assert_eq!(read(&server, "upload.1"), b"2");
    assert_eq!(read(&server, "hello.txt"), b"hello, world\n");
    assert_eq!(read(&server, "hello.txt.1"), b"3");
}

#[test]
fn writes_never_leave_the_root() {
    let server = TestServer::writable(true);
    let outside_before = tree(server.outside.path());
    let mut raw = server.login();
    let _data = raw.epsv_connect();
    // `escape` is a symlink to a directory outside the root.
    for cmd in
        ["STOR escape/x", "APPE escape/secret", "STOU escape/x", "MKD escape/d", "DELE escape/secret", "RMD escape"]
    {
        let reply = raw.cmd(cmd);
        assert!(reply.code == 550, "{cmd}: {reply:?}");
    }
    raw.expect("RNFR hello.txt", 350);
    raw.expect("RNTO escape/hello.txt", 550);
    raw.expect("RNFR escape/secret", 550);
    // A symlink by the target name is replaced or removed itself, never written through.
    raw.passive_upload("STOR sub/secret-link", b"mine").assert_code(226);
    assert!(!std::fs::symlink_metadata(server.root.path().join("sub/secret-link")).unwrap().is_symlink());
    raw.expect("RNFR escape", 350);
    raw.expect("RNTO moved-link", 250);
    raw.expect("DELE moved-link", 250);
    assert_eq!(tree(server.outside.path()), outside_before);
    assert_eq!(std::fs::read(server.outside.path().join("secret")).unwrap(), b"top secret\n");
}

#[test]
fn the_upload_size_limit_removes_what_exceeds_it() {
    let server = TestServer::start_with("127.0.0.1", |c| {
        c.writable = true;
        c.max_upload_size = Some(1000);
    });
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    raw.passive_upload("STOR big", &[7; 1001]).assert_code(552);
    assert!(!server.root.path().join("big").exists());
    assert!(!partial(&server, "", "big").exists());
    raw.passive_upload("STOR fits", &[7; 1000]).assert_code(226);
}

#[test]
fn curl_uploads_creates_directories_and_refuses_to_replace() {
    let server = TestServer::writable(false);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f.bin");
    let bytes = awkward_bytes(300_000);
    std::fs::write(&file, &bytes).unwrap();
    run_ok(curl().arg("-T").arg(&file).arg(url(&server, "up.bin")));
    assert!(read(&server, "up.bin") == bytes);
    run_ok(curl().args(["--ftp-create-dirs", "-T"]).arg(&file).arg(url(&server, "a/b c/ü.bin")));
    assert!(read(&server, "a/b c/ü.bin") == bytes);
    run_ok(curl().args(["-P", "127.0.0.1", "-T"]).arg(&file).arg(url(&server, "active.bin")));
    assert!(read(&server, "active.bin") == bytes);
    // Again onto the same name: refused (curl exit 25, "upload failed"), the file untouched.
    std::fs::write(&file, b"other").unwrap();
    let out = run_tool(curl().arg("-T").arg(&file).arg(url(&server, "up.bin")), TOOL_TIMEOUT);
    assert_eq!(out.status.code(), Some(25), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(read(&server, "up.bin") == bytes);
}

fn lftp(server: &TestServer, home: &Path, script: &str) -> std::process::Output {
    let commands = format!(
        "set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes; \
         open -u anonymous,guest ftp://127.0.0.1:{}; {script}",
        server.port()
    );
    run_tool(Command::new("lftp").env("HOME", home).current_dir(home).arg("-c").arg(commands), TOOL_TIMEOUT)
}

/// A local tree: nested directories, awkward names, an empty directory, many small files and a
/// few larger ones.
fn local_tree(dir: &Path) {
    for i in 0..100 {
        let sub = dir.join(format!("many/{}", i % 7));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("small {i}.txt")), format!("file {i}\n")).unwrap();
    }
    std::fs::create_dir_all(dir.join("ünï cødé/deeper/deepest")).unwrap();
    std::fs::create_dir_all(dir.join("empty dir")).unwrap();
    std::fs::write(dir.join("ünï cødé/deeper/deepest/🚀.bin"), awkward_bytes(3 << 20)).unwrap();
    std::fs::write(dir.join("large.bin"), awkward_bytes(5 << 20)).unwrap();
    std::fs::write(dir.join("empty file"), b"").unwrap();
}

fn assert_same_tree(a: &Path, b: &Path) {
    assert_eq!(tree(a), tree(b));
    for name in tree(a).iter().filter(|n| !n.ends_with('/')) {
        assert!(std::fs::read(a.join(name)).unwrap() == std::fs::read(b.join(name)).unwrap(), "{name} differs");
    }
}

#[test]
fn lftp_mirror_reverse_uploads_a_tree_and_resumes_with_put_c() {
    let server = TestServer::writable(false);
    let home = tempfile::tempdir().unwrap();
    let local = home.path().join("local");
    local_tree(&local);
    let out = lftp(&server, home.path(), "mirror -R local /remote");
    assert!(out.status.success(), "{out:?}");
    assert_same_tree(&local, &server.root.path().join("remote"));

    // A changed file cannot replace the uploaded one without --overwrite.
    std::fs::write(local.join("large.bin"), b"changed").unwrap();
    let out = lftp(&server, home.path(), "mirror -R local /remote");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("553"), "{out:?}");
    assert!(read(&server, "remote/large.bin") == awkward_bytes(5 << 20));

    // `put -c` continues an interrupted upload with SIZE, REST and STOR.
    let bytes = awkward_bytes(5 << 20);
    std::fs::write(local.join("large.bin"), &bytes).unwrap();
    std::fs::write(partial(&server, "", "again.bin"), &bytes[..1 << 20]).unwrap();
    let out = lftp(&server, home.path(), "put -c local/large.bin -o again.bin");
    assert!(out.status.success(), "{out:?}");
    assert!(read(&server, "again.bin") == bytes);
}

#[test]
fn lftp_mirror_reverse_replaces_with_overwrite() {
    let server = TestServer::writable(true);
    let home = tempfile::tempdir().unwrap();
    let local = home.path().join("local");
    local_tree(&local);
    assert!(lftp(&server, home.path(), "mirror -R local /remote").status.success());
    std::fs::write(local.join("large.bin"), b"changed").unwrap();
    std::fs::remove_file(local.join("empty file")).unwrap();
    let out = lftp(&server, home.path(), "mirror -R --delete local /remote");
    assert!(out.status.success(), "{out:?}");
    assert_same_tree(&local, &server.root.path().join("remote"));
}

/// An argument ending in `/` or `/.` names a directory: commands on files refuse it unless it
/// is one (`a.txt/` is not `a.txt`, `STOR new/` creates no file `new`), and directory commands
/// take it as before.
#[test]
fn a_trailing_slash_never_names_a_file() {
    let server = TestServer::writable(true);
    let mut raw = server.login();
    for line in [
        "SIZE hello.txt/",
        "MDTM hello.txt/.",
        "RETR hello.txt/",
        "HASH hello.txt/",
        "XSHA256 hello.txt/.",
        "XCRC hello.txt/",
        "STOR new/",
        "STOR new/.",
        "APPE hello.txt/",
        "STOU new/",
        "DELE hello.txt/",
        "RNFR hello.txt/",
    ] {
        let arg = line.split_once(' ').unwrap().1;
        raw.expect(line, 550).assert_text(&format!("{arg}: Not a directory."));
    }
    raw.expect("RNFR hello.txt", 350);
    raw.expect("RNTO renamed/", 550).assert_text("renamed/: Not a directory.");
    raw.expect("SIZE sub/", 550).assert_text("sub/: Not a regular file.");
    raw.expect("MDTM sub", 550).assert_text("sub: Not a regular file.");
    raw.expect("RETR sub/.", 550).assert_text("sub/.: Not a regular file.");
    assert_eq!(read(&server, "hello.txt"), b"hello, world\n");
    assert!(!server.root.path().join("new").exists() && !server.root.path().join("renamed").exists());
    // Directory commands keep taking the slash.
    raw.expect("MKD made/", 257);
    raw.expect("CWD made/", 250);
    raw.expect("CWD ../sub/.", 250);
    assert_eq!(raw.passive_transfer("NLST ../made/"), b"");
    raw.expect("RMD /made/", 250);
    assert!(!server.root.path().join("made").exists());
}

/// Every name the file system allows can be uploaded, up to 255 bytes: the hidden partial file
/// of a long name is shortened (`.START~HASH.ftpart`), stays hidden, and an interrupted upload
/// of it resumes like any other.
#[test]
fn names_up_to_the_file_name_limit_can_be_uploaded() {
    let server = TestServer::writable(false);
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    for len in [247, 248, 255] {
        let name = "n".repeat(len - 4) + ".bin";
        raw.passive_upload(&format!("STOR {name}"), b"long").assert_code(226);
        assert_eq!(read(&server, &name), b"long");
    }
    let name = "é".repeat(125) + ".bin";
    let mut data = raw.epsv_connect();
    raw.expect(&format!("STOR {name}"), 150);
    data.write_all(b"first").unwrap();
    raw.send(b"ABOR");
    drop(data);
    raw.expect_reply(426);
    raw.expect_reply(226);
    assert!(!raw.passive_transfer("NLST").windows(7).any(|w| w == b".ftpart"), "the partial file is listed");
    raw.expect(&format!("SIZE {name}"), 213).assert_text("5");
    raw.passive_upload(&format!("APPE {name}"), b" second").assert_code(226);
    assert_eq!(read(&server, &name), b"first second");
    let names: Vec<_> = std::fs::read_dir(server.root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().ends_with(".ftpart")), "{names:?}");
}

#[test]
fn ipv6_uploads() {
    if !crate::support::ipv6_available() {
        eprintln!("skipped: ::1 is not available here");
        return;
    }
    let server = TestServer::start_with("::1", |c| c.writable = true);
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f.bin");
    let bytes = awkward_bytes(100_000);
    std::fs::write(&file, &bytes).unwrap();
    let base = format!("ftp://[::1]:{}", server.port());
    run_ok(curl().arg("-T").arg(&file).arg(format!("{base}/passive.bin")));
    run_ok(curl().args(["-P", "::1", "-T"]).arg(&file).arg(format!("{base}/active.bin")));
    assert!(read(&server, "passive.bin") == bytes);
    assert!(read(&server, "active.bin") == bytes);
}

/// FTP and TFTP serving the same root: an upload of one name by each at once never mixes their
/// bytes. Each writes its own temporary and the first to complete gets the name; the other is
/// refused at its commit (FTP `553`), and a TFTP upload is never refused just because another
/// upload of the name is running (a device retrying at once must be served).
#[test]
fn ftp_and_tftp_uploads_of_one_name_never_mix() {
    let server = TestServer::writable(false);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config =
        ftserver::tftp::TftpConfig { root: server.root.path().to_owned(), writable: true, ..Default::default() };
    let tftp = ftserver::tftp::spawn(socket, config).unwrap();
    let local = tempfile::tempdir().unwrap();
    std::fs::write(local.path().join("other"), b"from tftp").unwrap();

    let mut raw = server.login();
    let mut data = raw.epsv_connect();
    raw.expect("STOR same", 150);
    data.write_all(b"from ftp").unwrap();
    let tftp_url = format!("tftp://{}/same", tftp.local_addr());
    run_ok(curl().arg("-T").arg(local.path().join("other")).arg(&tftp_url));
    assert_eq!(read(&server, "same"), b"from tftp");
    drop(data);
    raw.expect_reply(553);
    assert_eq!(read(&server, "same"), b"from tftp");
    // The name exists now: TFTP does not replace it either.
    let refused = run_tool(curl().arg("-T").arg(local.path().join("other")).arg(&tftp_url), TOOL_TIMEOUT);
    assert!(!refused.status.success(), "{refused:?}");
    assert_eq!(read(&server, "same"), b"from tftp");
    let names: Vec<_> = std::fs::read_dir(server.root.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!names.iter().any(|n| n.to_string_lossy().ends_with(".ftpart")), "{names:?}");
    tftp.shutdown();
}
