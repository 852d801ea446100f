//! Faults with a real ftserver in another process: the server is killed with SIGKILL in the
//! middle of a download, restarted, and `--resume` completes the file, verified by the hash the
//! server offers.

use crate::support::{dir_names, ftclient, start_test_server, wait_output, ChildGuard};
use std::process::Command;

const SERVE_ROOT: &str = "FT_TEST_SERVE_ROOT";

/// Not a test of its own: when this test binary is started again with `FT_TEST_SERVE_ROOT` set
/// (by [`serve`]), this runs ftserver in that separate process, prints `PORT <n>` and serves
/// until killed. A separate process is what lets the test below kill a server with SIGKILL.
/// Run normally, without the variable, it returns at once.
#[test]
fn serve_process() {
    let Some(root) = std::env::var_os(SERVE_ROOT) else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = ftserver::Server::spawn(listener, ftserver::Config::new(root).unwrap()).unwrap();
    // libtest has already printed "test kill::serve_process ... " without a newline.
    println!("\nPORT {}", server.local_addr().port());
    loop {
        std::thread::park();
    }
}

/// Starts ftserver serving `root` in a process of its own: this test binary, running only
/// [`serve_process`]. Returns the guard and the port.
fn serve(root: &std::path::Path) -> (ChildGuard, u16) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(SERVE_ROOT, root);
    let (guard, port) = start_test_server(cmd, "kill::serve_process", "PORT ");
    (guard, port.parse().unwrap())
}

#[test]
fn ftserver_killed_mid_download_then_resume_completes_a_verified_file() {
    let root = tempfile::tempdir().unwrap();
    // Large enough that the download is still running when the server dies: 256 MiB whose
    // first MiB is random and the rest a repeating pattern (cheap to make, not all zeros).
    let mut data = crate::support::bytes(1 << 20, 7);
    let pattern = data.clone();
    while data.len() < 256 << 20 {
        data.extend_from_slice(&pattern[..pattern.len() - 13]);
    }
    std::fs::write(root.path().join("big.bin"), &data).unwrap();

    let (mut server, port) = serve(root.path());
    let dir = tempfile::tempdir().unwrap();
    // One stream (a file this big is otherwise segmented): the temporary file then grows from its
    // start, which this test relies on; segments.rs interrupts segmented downloads.
    let one = ["--segments", "1"];
    let child = crate::support::spawn_ftclient(
        dir.path(),
        &["-q", "127.0.0.1", &port.to_string(), "-g", "big.bin", one[0], one[1]],
    );
    let part = dir.path().join(".big.bin.ftpart");
    crate::support::wait_for_len(&part, 4 << 20);
    server.0.kill().unwrap(); // SIGKILL: no 426, no goodbye, sockets reset by the kernel
    let _ = server.0.wait();
    let failed = wait_output(child);
    assert_eq!(failed.code(), 1, "{failed:?}");
    assert!(failed.stderr.contains("--resume"), "{}", failed.stderr);
    assert_eq!(dir_names(dir.path()), vec![".big.bin.ftpart"], "nothing under the final name");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < data.len() as u64, "{kept}");

    // Corrupt one byte of what was kept: the resumed file must then fail the server's hash
    // check and stay out of place, which proves the check covers the resumed prefix too.
    let mut prefix = std::fs::read(&part).unwrap();
    prefix[1000] ^= 0xff;
    std::fs::write(&part, &prefix).unwrap();
    let (_server, port) = serve(root.path());
    let run =
        ftclient(dir.path(), &["-q", "127.0.0.1", &port.to_string(), "-g", "big.bin", "--resume", one[0], one[1]]);
    assert_eq!(run.code(), 1, "a corrupt prefix must not pass verification: {}", run.stderr);
    assert_eq!(dir_names(dir.path()), vec![".big.bin.ftpart"]);

    // Repair the byte, resume again: the whole file arrives and matches.
    prefix[1000] ^= 0xff;
    std::fs::write(&part, &prefix).unwrap();
    ftclient(dir.path(), &["-q", "127.0.0.1", &port.to_string(), "-g", "big.bin", "--resume", one[0], one[1]]).ok();
    assert_eq!(dir_names(dir.path()), vec!["big.bin"]);
    assert!(std::fs::read(dir.path().join("big.bin")).unwrap() == data, "resumed file differs");
}
