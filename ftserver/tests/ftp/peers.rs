//! The test peers (programs from other projects that the tests run) and the one line a test
//! fails with when one is missing: its name and how to get it, never a skip. Shared by the
//! ftserver and ftclient test binaries (included with `#[path]`); scripts/test.sh installs
//! every peer named here.

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// How to get each peer: the program (or Python module) and the package that provides it,
/// as scripts/test.sh installs it.
const PACKAGES: &[(&str, &str)] = &[
    ("vsftpd", "apt-get install vsftpd"),
    ("in.tftpd", "apt-get install tftpd-hpa"),
    ("tftp", "apt-get install tftp-hpa"),
    ("atftp", "apt-get install atftp"),
    ("curl", "apt-get install curl"),
    ("lftp", "apt-get install lftp"),
    ("socat", "apt-get install socat"),
    ("aria2c", "apt-get install aria2"),
    ("iperf3", "apt-get install iperf3"),
    ("ip", "apt-get install iproute2"),
    ("tc", "apt-get install iproute2"),
    ("nft", "apt-get install nftables"),
    ("iptables", "apt-get install iptables"),
    ("unshare", "apt-get install util-linux"),
    ("setpriv", "apt-get install util-linux"),
    ("kill", "apt-get install procps"),
    ("python3", "apt-get install python3"),
    ("pyftpdlib", "pip install pyftpdlib"),
];

/// The line a test fails with when `peer` is missing, e.g. `vsftpd not found: run
/// scripts/test.sh (or apt-get install vsftpd)`.
pub fn missing(peer: &str) -> String {
    let how = PACKAGES
        .iter()
        .find(|(name, _)| *name == peer)
        .map_or_else(|| format!("apt-get install {peer}"), |(_, how)| (*how).to_owned());
    format!("{peer} not found: run scripts/test.sh (or {how})")
}

/// The path of `program` on PATH; fails the calling test with [`missing`]'s line when it is
/// not installed.
#[track_caller]
pub fn require(program: &str) -> PathBuf {
    match find(program) {
        Some(path) => path,
        None => panic!("{}", missing(program)),
    }
}

/// Fails the calling test with [`missing`]'s line unless python3 can import `module` (a pip
/// package such as pyftpdlib).
#[track_caller]
pub fn require_python_module(module: &str) {
    require("python3");
    let imports = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !imports {
        panic!("{}", missing(module));
    }
}

/// The first executable file named `program` in a PATH directory (or `program` itself when it
/// is a path).
fn find(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return is_executable(Path::new(program)).then(|| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
