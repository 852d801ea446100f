//! The checks every real server must pass, in passive and active mode: listings, downloads
//! with byte-identical results, remote paths, stdout output and the duplicate-name rule.

use crate::support::{dir_names, ftclient, ftclient_active, Tree, BIG};
use std::path::Path;

/// How to reach a server under test.
pub struct Endpoint<'a> {
    /// Host argument for ftclient.
    pub host: &'a str,
    /// Control port.
    pub port: u16,
    /// The files the server serves.
    pub tree: &'a Tree,
}

impl Endpoint<'_> {
    /// Runs ftclient in `dir` with the host, the port, `rest`, and in active mode a data port.
    fn run(&self, dir: &Path, rest: &[&str], active: bool) -> crate::support::Run {
        let port = self.port.to_string();
        let mut args = vec![self.host, &port];
        args.extend_from_slice(rest);
        if active {
            ftclient_active(dir, &args, self.host.parse().unwrap()).0
        } else {
            ftclient(dir, &args)
        }
    }
}

/// Runs every scenario in passive mode and in active mode.
pub fn all(ep: &Endpoint<'_>) {
    for active in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let run = |rest: &[&str]| ep.run(dir.path(), rest, active);
        let mode = if active { "active" } else { "passive" };

        let listing = run(&["-l"]).ok();
        assert_eq!(listing.out(), Tree::root_listing(), "{mode} listing");
        assert_eq!(run(&["-l", "--dir", "docs"]).ok().out(), "a.txt\n", "{mode} listing of docs");
        let long = run(&["-l", "--long"]).ok().out();
        let big_line = long.lines().find(|l| l.ends_with(" big.bin")).unwrap_or_else(|| panic!("{long}"));
        assert!(big_line.starts_with("file") && big_line.contains(&format!(" {BIG} ")), "{mode}: {big_line}");
        assert!(long.lines().any(|l| l.starts_with("dir") && l.ends_with(" docs/")), "{mode}: {long}");

        for (remote, local) in [
            ("big.bin", "big.bin"),
            ("docs/a.txt", "a.txt"),
            ("with space.txt", "with space.txt"),
            ("empty", "empty"),
            ("ünï 🚀.txt", "ünï 🚀.txt"),
        ] {
            let got = run(&["-g", remote]).ok();
            assert!(got.stdout.is_empty(), "{mode}: -g wrote to stdout");
            assert!(got.stderr.contains(&format!("saved {local}")), "{mode}: {}", got.stderr);
            assert_eq!(std::fs::read(dir.path().join(local)).unwrap(), ep.tree.read(remote), "{mode} {remote}");
        }
        let names_before = dir_names(dir.path());
        assert!(!names_before.iter().any(|n| n.ends_with(".ftpart")), "{names_before:?}");

        // The duplicate-name rule: big.bin exists, so the next copies are big.bin.1 and .2.
        let again = run(&["-g", "big.bin"]).ok();
        assert!(again.stderr.contains("saved big.bin.1 (big.bin already exists)"), "{}", again.stderr);
        run(&["-g", "big.bin"]).ok();
        assert_eq!(std::fs::read(dir.path().join("big.bin.2")).unwrap(), ep.tree.read("big.bin"), "{mode}");
        std::fs::write(dir.path().join("a.txt"), b"local edits").unwrap();
        run(&["-g", "docs/a.txt", "--overwrite"]).ok();
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), ep.tree.read("docs/a.txt"), "{mode}");
        assert!(!dir.path().join("a.txt.1").exists());

        let to_stdout = run(&["-g", "big.bin", "-o", "-"]).ok();
        assert_eq!(to_stdout.stdout, ep.tree.read("big.bin"), "{mode} -o -");
        let named = run(&["-g", "docs/a.txt", "-o", "renamed.txt", "-q"]).ok();
        assert!(named.stderr.is_empty(), "-q printed {:?}", named.stderr);
        assert_eq!(std::fs::read(dir.path().join("renamed.txt")).unwrap(), ep.tree.read("docs/a.txt"));

        // Resume: a partial temporary file left by an interrupted run is continued with REST.
        let resume_dir = tempfile::tempdir().unwrap();
        let big = ep.tree.read("big.bin");
        std::fs::write(resume_dir.path().join(".big.bin.ftpart"), &big[..BIG / 3]).unwrap();
        let resumed = ep.run(resume_dir.path(), &["-g", "big.bin", "--resume"], active).ok();
        assert_eq!(std::fs::read(resume_dir.path().join("big.bin")).unwrap(), big, "{mode} resume");
        assert_eq!(dir_names(resume_dir.path()), vec!["big.bin"], "{mode}: {}", resumed.stderr);
        // A partial file longer than the remote one cannot be resumed.
        std::fs::write(resume_dir.path().join(".empty.ftpart"), b"junk").unwrap();
        ep.run(resume_dir.path(), &["-g", "empty", "--resume"], active).fails_with("delete it or run without --resume");
        assert!(!resume_dir.path().join("empty").exists());

        // A missing file: exit 1, the server's reply in the message, nothing created.
        let before = dir_names(dir.path());
        run(&["-g", "no such file"]).fails_with("no such file");
        assert_eq!(dir_names(dir.path()), before, "{mode}: a failed get left files behind");
        run(&["-l", "--dir", "no such dir"]).fails_with("cannot change to the remote directory no such dir");
    }
}
