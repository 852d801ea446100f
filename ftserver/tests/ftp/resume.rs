//! Uploads that do not finish in one go: partial files that never appear under the final name
//! and can be resumed (REST + STOR, APPE, curl, ftplib), clients killed or stalled mid-upload,
//! ABOR, and a second upload of a name that is being uploaded.

use crate::support::{awkward_bytes, run_ok, run_tool, ChildGuard, TestServer, TOOL_TIMEOUT};
use crate::upload::{curl, partial, read, url, Check};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

#[test]
fn an_interrupted_upload_stays_hidden_and_resumes_with_rest_stor() {
    let server = TestServer::writable(false);
    let bytes = awkward_bytes(1 << 20);
    let half = bytes.len() / 2;
    {
        // A client that vanishes mid-upload: both connections close with a clean FIN, exactly
        // like a killed process's.
        let mut raw = server.login();
        raw.expect("TYPE I", 200);
        let mut data = raw.epsv_connect();
        raw.expect("STOR sub/big.bin", 150);
        data.write_all(&bytes[..half]).unwrap();
        drop(raw);
        drop(data);
    }
    server.wait_idle();
    assert!(!server.root.path().join("sub/big.bin").exists());
    assert_eq!(std::fs::metadata(partial(&server, "sub", "big.bin")).unwrap().len(), half as u64);

    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    // Hidden from listings and from direct use; SIZE reports it so clients can resume.
    let names = raw.passive_transfer("NLST sub");
    assert!(!String::from_utf8_lossy(&names).contains("ftpart"), "{names:?}");
    raw.expect("RETR sub/.big.bin.ftpart", 550);
    raw.expect("STOR sub/.big.bin.ftpart", 550);
    raw.expect("SIZE sub/big.bin", 213).assert_text(&half.to_string());
    raw.expect(&format!("REST {}", half + 1), 350);
    raw.expect("STOR sub/big.bin", 554);
    raw.expect(&format!("REST {half}"), 350);
    raw.passive_upload("STOR sub/big.bin", &bytes[half..]).assert_code(226);
    assert!(read(&server, "sub/big.bin") == bytes);
    assert!(!partial(&server, "sub", "big.bin").exists());
}

#[test]
fn abor_keeps_the_partial_upload_and_appe_completes_it() {
    let server = TestServer::writable(false);
    let bytes = awkward_bytes(200_000);
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    let mut data = raw.epsv_connect();
    raw.expect("STOR f.bin", 150);
    data.write_all(&bytes[..1000]).unwrap();
    raw.send(b"ABOR");
    drop(data);
    raw.expect_reply(426);
    raw.expect_reply(226);
    assert!(!server.root.path().join("f.bin").exists());
    raw.expect("SIZE f.bin", 213).assert_text("1000");
    raw.passive_upload("APPE f.bin", &bytes[1000..]).assert_code(226);
    assert!(read(&server, "f.bin") == bytes);
}

#[test]
fn a_second_upload_of_the_same_name_waits_its_turn() {
    let server = TestServer::writable(false);
    let mut first = server.login();
    let mut data = first.epsv_connect();
    first.expect("STOR same", 150);
    data.write_all(b"first").unwrap();
    let mut second = server.login();
    second.expect("STOR same", 450);
    drop(data);
    first.expect_reply(226);
    assert_eq!(read(&server, "same"), b"first");
    second.expect("STOR same", 553);
}

/// A writable server for tests that kill a client mid-upload. The kernel closes a killed
/// client's two connections one after the other, and on a loaded machine the dying process can
/// be preempted in between for a scheduler tick or more; the test servers' short
/// `unannounced_settle` (100 ms, for speed) is raised to 500 ms here so that a busy test
/// machine cannot make it flaky (the default, 1 s, is tested in `cutoff.rs`).
fn for_killed_clients() -> TestServer {
    TestServer::start_with("127.0.0.1", |c| {
        c.writable = true;
        c.unannounced_settle = std::time::Duration::from_millis(500);
    })
}

/// Waits (bounded) until `path` exists and holds at least `len` bytes.
fn wait_for_size(path: &Path, len: u64) {
    let deadline = Instant::now() + TOOL_TIMEOUT;
    while std::fs::metadata(path).map_or(true, |m| m.len() < len) {
        assert!(Instant::now() < deadline, "{} never reached {len} bytes", path.display());
        std::thread::yield_now();
    }
}

#[test]
fn curl_killed_mid_upload_leaves_nothing_and_resumes() {
    let server = for_killed_clients();
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("big.bin");
    let bytes = awkward_bytes(4 << 20);
    std::fs::write(&file, &bytes).unwrap();
    let mut child = ChildGuard(
        curl()
            .args(["--limit-rate", "512K", "-T"])
            .arg(&file)
            .arg(url(&server, "big.bin"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_size(&partial(&server, "", "big.bin"), 256 << 10);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    server.wait_idle();
    assert!(!server.root.path().join("big.bin").exists());
    let kept = std::fs::metadata(partial(&server, "", "big.bin")).unwrap().len();
    assert!(kept > 0 && kept < bytes.len() as u64, "{kept}");
    // curl resumes with SIZE + APPE.
    run_ok(curl().args(["-C", "-", "-T"]).arg(&file).arg(url(&server, "big.bin")));
    assert!(read(&server, "big.bin") == bytes);
    assert!(!partial(&server, "", "big.bin").exists());
}

/// Logs in and starts a binary STOR of `name`, sending `bytes`; returns the control and the
/// still open data connection.
fn upload_started(server: &TestServer, name: &str, bytes: &[u8]) -> (crate::support::Raw, std::net::TcpStream) {
    let mut raw = server.login();
    raw.expect("TYPE I", 200);
    let mut data = raw.epsv_connect();
    raw.expect(&format!("STOR {name}"), 150);
    data.write_all(bytes).unwrap();
    (raw, data)
}

/// A client that sent a command during its upload (a keep-alive NOOP) and then died: its
/// control connection closes behind the unread command, and the data connection's end-of-file
/// must not commit the truncated file. A client that ends with a lone QUIT meant its upload to
/// be complete; one that is still there gets its replies in order.
#[test]
fn a_client_dying_after_a_noop_leaves_only_the_partial_file() {
    let server = for_killed_clients();
    let bytes = awkward_bytes(100_000);

    let (mut raw, data) = upload_started(&server, "k.bin", &bytes);
    raw.send(b"NOOP");
    // The kernel closes a killed process's sockets in this order: data first, then control.
    drop(data);
    drop(raw);
    server.wait_idle();
    assert!(!server.root.path().join("k.bin").exists());
    assert_eq!(std::fs::metadata(partial(&server, "", "k.bin")).unwrap().len(), bytes.len() as u64);

    let (mut raw, data) = upload_started(&server, "q.bin", &bytes);
    raw.send(b"QUIT");
    drop(data);
    raw.ctrl.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
    raw.expect_reply(226);
    raw.expect_reply(221);
    assert!(read(&server, "q.bin") == bytes);

    let (mut raw, data) = upload_started(&server, "n.bin", &bytes);
    raw.send(b"NOOP");
    drop(data);
    raw.expect_reply(226);
    raw.expect_reply(200);
    assert!(read(&server, "n.bin") == bytes);
}

/// Uploads with ftplib: `storbinary` (optionally dying after `die_after` blocks, the way a killed
/// process would, or resuming at `rest`) and `storlines`.
const FTPLIB_STORE: &str = r#"
import ftplib, os, sys
port, local, remote, mode, arg = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", port, timeout=20)
ftp.login()
blocks = 0
def counted(block):
    global blocks
    blocks += 1
    if mode == "die" and blocks == arg:
        os._exit(3)
with open(local, "rb") as f:
    if mode == "lines":
        print(ftp.storlines("STOR " + remote, f))
    elif mode == "resume":
        rest = ftp.size(remote)
        f.seek(rest)
        print(rest, ftp.storbinary("STOR " + remote, f, 8192, None, rest))
    else:
        print(ftp.storbinary("STOR " + remote, f, 8192, counted))
ftp.quit()
"#;

fn ftplib_store(server: &TestServer, local: &Path, remote: &str, mode: &str, arg: usize) -> std::process::Output {
    run_tool(
        Command::new("python3").args(["-c", FTPLIB_STORE, &server.port().to_string()]).arg(local).args([
            remote,
            mode,
            &arg.to_string(),
        ]),
        TOOL_TIMEOUT,
    )
}

#[test]
fn ftplib_stores_binary_and_lines_and_resumes_after_dying() {
    let server = for_killed_clients();
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f.bin");
    let bytes = awkward_bytes(1 << 20);
    std::fs::write(&file, &bytes).unwrap();
    let out = ftplib_store(&server, &file, "whole.bin", "binary", 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "226 Transfer complete.", "{out:?}");
    assert!(read(&server, "whole.bin") == bytes);

    // storlines sends CRLF lines in TYPE A; the file is stored with LF.
    let text = local.path().join("t.txt");
    std::fs::write(&text, "one\ntwo\n\nthree\n").unwrap();
    assert!(ftplib_store(&server, &text, "t.txt", "lines", 0).status.success());
    assert_eq!(read(&server, "t.txt"), b"one\ntwo\n\nthree\n");

    // The process dies after 10 blocks: nothing under the name, the partial file resumable.
    let out = ftplib_store(&server, &file, "died.bin", "die", 10);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    server.wait_idle();
    assert!(!server.root.path().join("died.bin").exists());
    let kept = std::fs::metadata(partial(&server, "", "died.bin")).unwrap().len();
    assert!((9 * 8192..=10 * 8192).contains(&kept), "{kept}");
    let out = ftplib_store(&server, &file, "died.bin", "resume", 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{kept} 226 Transfer complete."), "{out:?}");
    assert!(read(&server, "died.bin") == bytes);
}

#[test]
fn a_stalled_upload_times_out_and_is_kept() {
    let server = TestServer::start_with("127.0.0.1", |c| {
        c.writable = true;
        c.data_timeout = std::time::Duration::from_secs(1);
    });
    let mut raw = server.login();
    let status = raw.expect("STAT", 211);
    assert!(status.text().contains("Access: uploads allowed, nothing replaced or deleted"), "{status:?}");
    let mut data = raw.epsv_connect();
    raw.expect("STOR slow.bin", 150);
    data.write_all(b"a start").unwrap();
    // The client sends nothing more and keeps the connection open: the server gives up.
    raw.expect_reply(426);
    drop(data);
    assert!(!server.root.path().join("slow.bin").exists());
    raw.expect("SIZE slow.bin", 213).assert_text("7");
}

/// A stalled upload fails at the data timeout, not at twice it (with SO_RCVLOWAT the first
/// timed-out read returns the bytes that did arrive), and an ABOR during a stalled upload is
/// answered at once rather than at the timeout. The waits are bounds far above the expected
/// times: 1.5 times the data timeout, and a data timeout far beyond the ABOR wait.
#[test]
fn a_stalled_upload_fails_at_the_data_timeout_and_answers_abor_at_once() {
    let timeout = std::time::Duration::from_secs(3);
    let server = TestServer::start_with("127.0.0.1", |c| {
        c.writable = true;
        c.data_timeout = timeout;
    });
    let (mut raw, data) = upload_started(&server, "stalled.bin", &[7u8; 1000]);
    raw.ctrl.get_ref().set_read_timeout(Some(timeout * 3 / 2)).unwrap();
    raw.expect_reply(426);
    drop(data);
    raw.expect("SIZE stalled.bin", 213).assert_text("1000");

    let server = TestServer::start_with("127.0.0.1", |c| {
        c.writable = true;
        c.data_timeout = std::time::Duration::from_secs(120);
    });
    let (mut raw, _data) = upload_started(&server, "aborted.bin", &[7u8; 1000]);
    raw.ctrl.get_ref().set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    raw.send(b"ABOR");
    raw.expect_reply(426);
    raw.expect_reply(226);
    assert!(!server.root.path().join("aborted.bin").exists());
    raw.expect("SIZE aborted.bin", 213).assert_text("1000");
}
