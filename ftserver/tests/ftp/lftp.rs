//! lftp against the server: `ls`, `get` and `mirror`, in passive and active mode. lftp sends
//! FEAT before login, tries AUTH TLS, and uses MLSD for `mirror` because FEAT lists MLST.

use crate::support::{assert_same_file, fixtures, run_ok, TestServer, TOP_NAMES};
use std::process::Command;

fn lftp(server: &TestServer, passive: bool, home: &std::path::Path, script: &str) -> String {
    let mode = if passive { "on" } else { "off" };
    let commands = format!(
        "set net:max-retries 1; set net:timeout 10; set cmd:fail-exit yes; set ftp:passive-mode {mode}; \
         open -u anonymous,guest ftp://127.0.0.1:{}; {script}",
        server.port()
    );
    // A private HOME keeps the user's ~/.lftp settings and bookmarks out of the test.
    run_ok(Command::new("lftp").env("HOME", home).current_dir(home).arg("-c").arg(commands))
}

fn check(passive: bool) {
    let server = TestServer::start();
    let home = tempfile::tempdir().unwrap();
    let files = fixtures();
    let mut script = "ls; ".to_owned();
    for (i, (name, _)) in files.iter().enumerate() {
        script.push_str(&format!("get \"{name}\" -o got-{i}; "));
    }
    script.push_str("mirror / mirrored");
    let listing = lftp(&server, passive, home.path(), &script);
    assert_eq!(listing.lines().count(), TOP_NAMES.len(), "{listing}");
    for name in TOP_NAMES {
        assert!(listing.lines().any(|l| l.ends_with(&format!(" {name}"))), "{name} not in {listing}");
    }
    for (i, (name, bytes)) in files.iter().enumerate() {
        assert_same_file(&home.path().join(format!("got-{i}")), bytes);
        assert_same_file(&home.path().join("mirrored").join(name), bytes);
    }
    // Nothing from outside the root came along.
    assert!(!home.path().join("mirrored/escape").exists());
    assert!(!home.path().join("mirrored/sub/secret-link").exists());
}

#[test]
fn passive_ls_get_and_mirror() {
    check(true);
}

#[test]
fn active_ls_get_and_mirror() {
    check(false);
}

/// Symlinks back to a directory the listing came through are left out of listings, so a
/// mirror ends (lftp went 40 levels deep into `sub/up/sub/up/...`); other symlinks inside the
/// root are listed and copied, and a loop's link can still be entered by name.
#[test]
fn mirror_does_not_loop_through_symlinks() {
    let server = TestServer::start();
    let root = server.root.path();
    std::os::unix::fs::symlink("..", root.join("sub/up")).unwrap();
    std::os::unix::fs::symlink(".", root.join("sub/self")).unwrap();
    std::os::unix::fs::symlink(".", root.join("loop")).unwrap();
    std::os::unix::fs::symlink("sub", root.join("alias")).unwrap();
    // A loop through two links: each is followed once, never round again.
    for (dir, file, other) in [("a", "x", "../b"), ("b", "y", "../a")] {
        std::fs::create_dir(root.join(dir)).unwrap();
        std::fs::write(root.join(dir).join(file), file).unwrap();
        std::os::unix::fs::symlink(other, root.join(dir).join("l")).unwrap();
    }
    let mut raw = server.login();
    let names = raw.passive_transfer("NLST sub");
    assert_eq!(String::from_utf8(names).unwrap(), "nested.txt\r\n");
    raw.expect("CWD sub/up/sub/self", 250);
    raw.expect("PWD", 257);
    let home = tempfile::tempdir().unwrap();
    lftp(&server, true, home.path(), "mirror / mirrored");
    let copy = home.path().join("mirrored");
    assert_same_file(&copy.join("sub/nested.txt"), b"nested\n");
    assert_same_file(&copy.join("alias/nested.txt"), b"nested\n");
    assert_same_file(&copy.join("a/l/y"), b"y");
    assert_same_file(&copy.join("b/l/x"), b"x");
    for gone in ["sub/up", "sub/self", "loop", "a/l/l", "b/l/l"] {
        assert!(std::fs::symlink_metadata(copy.join(gone)).is_err(), "{gone} was copied");
    }
}
