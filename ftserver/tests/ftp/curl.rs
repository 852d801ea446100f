//! curl against the server: passive (EPSV) and active (EPRT/PORT) downloads, `-C -` resume,
//! and `-l` name listings.

use crate::support::{assert_same_file, fixtures, run_ok, url_path, TestServer, TOP_NAMES};
use std::process::Command;

fn curl() -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["--silent", "--show-error", "--max-time", "30", "--disable"]);
    cmd
}

fn base(server: &TestServer) -> String {
    match server.addr() {
        std::net::SocketAddr::V4(a) => format!("ftp://{a}"),
        std::net::SocketAddr::V6(a) => format!("ftp://[{}]:{}", a.ip(), a.port()),
    }
}

fn downloads(server: &TestServer, extra: &[&str]) {
    let out = tempfile::tempdir().unwrap();
    for (i, (name, bytes)) in fixtures().iter().enumerate() {
        let dest = out.path().join(i.to_string());
        run_ok(curl().args(extra).arg("-o").arg(&dest).arg(format!("{}/{}", base(server), url_path(name))));
        assert_same_file(&dest, bytes);
    }
}

#[test]
fn passive_downloads() {
    downloads(&TestServer::start(), &[]);
}

#[test]
fn active_downloads() {
    downloads(&TestServer::start(), &["-P", "127.0.0.1"]);
}

/// Without EPRT/EPSV curl falls back to PORT and PASV.
#[test]
fn classic_port_and_pasv_downloads() {
    let server = TestServer::start();
    downloads(&server, &["--disable-eprt", "-P", "127.0.0.1"]);
    downloads(&server, &["--disable-epsv"]);
}

#[test]
fn resumes_a_partial_download() {
    let server = TestServer::start();
    let out = tempfile::tempdir().unwrap();
    let (name, bytes) = &fixtures()[2];
    let dest = out.path().join("partial");
    std::fs::write(&dest, &bytes[..12_345]).unwrap();
    run_ok(curl().args(["-C", "-", "-o"]).arg(&dest).arg(format!("{}/{name}", base(&server))));
    assert_same_file(&dest, bytes);
}

#[test]
fn lists_names_and_long_listing() {
    let server = TestServer::start();
    let names = run_ok(curl().arg("-l").arg(format!("{}/", base(&server))));
    assert_eq!(names.lines().collect::<Vec<_>>(), TOP_NAMES);
    let nested = run_ok(curl().arg("-l").arg(format!("{}/sub/", base(&server))));
    // The symlink to a file outside the root is not listed.
    assert_eq!(nested.lines().collect::<Vec<_>>(), ["nested.txt"]);
    let long = run_ok(curl().arg(format!("{}/", base(&server))));
    assert_eq!(long.lines().count(), TOP_NAMES.len(), "{long}");
    assert!(long.lines().any(|l| l.starts_with("-rw") && l.ends_with(" ünïcødé 🚀.bin")), "{long}");
}

#[test]
fn ipv6_downloads() {
    if !crate::support::ipv6_available() {
        eprintln!("skipped: ::1 is not available here");
        return;
    }
    let server = TestServer::start_with("::1", |_| {});
    downloads(&server, &[]);
    downloads(&server, &["-P", "::1"]);
}
