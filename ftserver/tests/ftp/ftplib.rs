//! Python's ftplib against the server: passive and active downloads, REST, MLSD, NLST, LIST.

use crate::support::{assert_same_file, fixtures, run_ok, TestServer, TOP_NAMES};
use std::process::Command;

/// Downloads every fixture given on the command line into OUTDIR/<index>, then a resumed copy
/// of the third one into OUTDIR/rest, then prints the listings, one entry per line.
const SCRIPT: &str = r#"
import ftplib, sys
host, port, mode, outdir, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=20)
ftp.login()
ftp.set_pasv(mode == "passive")
for i, name in enumerate(names):
    with open(f"{outdir}/{i}", "wb") as f:
        ftp.retrbinary("RETR " + name, f.write)
with open(f"{outdir}/rest", "wb") as f:
    ftp.retrbinary("RETR " + names[2], f.write, rest=1000)
for name, facts in ftp.mlsd():
    print("mlsd", facts.get("type"), facts.get("size", "-"), name, sep="\t")
for name in ftp.nlst():
    print("nlst", name, sep="\t")
lines = []
ftp.retrlines("LIST", lines.append)
for line in lines:
    print("list", line, sep="\t")
print("pwd", ftp.pwd(), sep="\t")
ftp.cwd("sub")
print("pwd", ftp.pwd(), sep="\t")
print("size", ftp.size("nested.txt"), sep="\t")
ftp.quit()
"#;

fn check(host: &str, mode: &str) {
    let server = TestServer::start_with(host, |_| {});
    let out = tempfile::tempdir().unwrap();
    let files = fixtures();
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let stdout = run_ok(
        Command::new("python3")
            .args(["-c", SCRIPT, host, &server.port().to_string(), mode])
            .arg(out.path())
            .args(&names),
    );
    for (i, (_, bytes)) in files.iter().enumerate() {
        assert_same_file(&out.path().join(i.to_string()), bytes);
    }
    assert_same_file(&out.path().join("rest"), &files[2].1[1000..]);

    let field = |kind: &str| -> Vec<Vec<String>> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(kind).and_then(|l| l.strip_prefix('\t')))
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    };
    let mlsd = field("mlsd");
    let mlsd_names: Vec<&str> = mlsd.iter().map(|f| f[2].as_str()).collect();
    assert_eq!(mlsd_names, TOP_NAMES);
    assert!(mlsd.contains(&vec!["file".into(), "300000".into(), "awkward.bin".into()]), "{mlsd:?}");
    assert!(mlsd.contains(&vec!["dir".into(), "-".into(), "sub".into()]), "{mlsd:?}");
    let nlst: Vec<String> = field("nlst").into_iter().map(|f| f[0].clone()).collect();
    assert_eq!(nlst, TOP_NAMES);
    let list = field("list");
    assert_eq!(list.len(), TOP_NAMES.len(), "{list:?}");
    assert!(list.iter().any(|f| f[0].starts_with('d') && f[0].ends_with(" sub")), "{list:?}");
    assert!(list.iter().any(|f| f[0].starts_with("-rw") && f[0].ends_with(" with space.txt")), "{list:?}");
    assert_eq!(field("pwd"), [vec!["/".to_owned()], vec!["/sub".to_owned()]]);
    assert_eq!(field("size"), [vec!["7".to_owned()]]);
}

#[test]
fn passive_downloads_and_listings() {
    check("127.0.0.1", "passive");
}

#[test]
fn active_downloads_and_listings() {
    check("127.0.0.1", "active");
}

/// On IPv6 ftplib uses EPSV for passive and EPRT |2| for active mode.
#[test]
fn ipv6_passive_and_active() {
    if !crate::support::ipv6_available() {
        eprintln!("skipped: ::1 is not available here");
        return;
    }
    check("::1", "passive");
    check("::1", "active");
}
