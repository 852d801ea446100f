//! Trees in block mode (`MODE B`) against a scripted server: one data connection serves the
//! listing and every file, a refused file leaves it for the next, and a connection that ends
//! before a file's end-of-file block never passes for the whole file, whatever the server says.

use crate::fake::{blocks, Conn, Fake, Script};
use crate::support::ftclient;
use std::io::Write;

const FILE: &str = "-rw-r--r--    1 ftp      ftp             5 Jan 01  2024 ";

/// A tree `t` of three 5-byte files, in block mode.
fn script() -> Script {
    let listing = format!("{FILE}a.txt\r\n{FILE}b.txt\r\n{FILE}c.txt\r\n");
    Script {
        dirs: vec![("/", Some("")), ("/t", Some(Box::leak(listing.into_boxed_str())))],
        block: true,
        ..Script::default()
    }
}

/// How the fake serves one RETR: `Whole` sends "hello" as blocks and keeps the connection,
/// `Refuse` answers 550, `Cut` sends part of a block and closes (still claiming success).
#[derive(Clone, Copy)]
enum Serve {
    Whole,
    Refuse,
    Cut,
}

/// A fake server that serves its n-th RETR (from 0) as `what(n)` says.
fn fake(what: fn(usize) -> Serve) -> Fake {
    let mut n = 0;
    Fake::start(
        script(),
        1,
        Box::new(move |conn: &mut Conn, _| {
            let serve = what(n);
            n += 1;
            match serve {
                Serve::Refuse => conn.reply(550, "not today"),
                Serve::Whole => {
                    conn.reply(125, "Data connection already open; transfer starting (5 bytes).");
                    let mut data = conn.open_data();
                    data.write_all(&blocks(b"hello")).unwrap();
                    conn.keep(data);
                    conn.reply(250, "Transfer complete; data connection kept open.");
                }
                Serve::Cut => {
                    conn.reply(125, "Data connection already open; transfer starting (5 bytes).");
                    let mut data = conn.open_data();
                    data.write_all(&blocks(b"hello")[..5]).unwrap();
                    drop(data);
                    conn.reply(250, "Transfer complete.");
                }
            }
        }),
    )
}

fn get_tree(fake: &Fake, dir: &std::path::Path) -> crate::support::Run {
    let port = fake.port.to_string();
    ftclient(dir, &["127.0.0.1", &port, "-r", "-g", "t", "--parallel", "1"])
}

fn count(commands: &[String], verb: &str) -> usize {
    commands.iter().filter(|c| c.starts_with(verb)).count()
}

#[test]
fn one_data_connection_serves_the_listing_and_every_file() {
    let fake = fake(|_| Serve::Whole);
    let dir = tempfile::tempdir().unwrap();
    get_tree(&fake, dir.path()).ok();
    for name in ["a.txt", "b.txt", "c.txt"] {
        assert_eq!(std::fs::read(dir.path().join("t").join(name)).unwrap(), b"hello", "{name}");
    }
    let commands = fake.commands();
    assert_eq!(count(&commands, "MODE B"), 1, "{commands:?}");
    assert_eq!(count(&commands, "EPSV"), 1, "one passive port for the walk and all files: {commands:?}");
    assert_eq!(count(&commands, "RETR"), 3, "{commands:?}");
}

#[test]
fn a_refused_file_leaves_the_data_connection_to_the_next() {
    let fake = fake(|n| if n == 0 { Serve::Refuse } else { Serve::Whole });
    let dir = tempfile::tempdir().unwrap();
    let run = get_tree(&fake, dir.path()).fails_with("1 of 3 files failed");
    assert!(run.stderr.contains("550 not today"), "{}", run.stderr);
    let saved: Vec<_> =
        ["a.txt", "b.txt", "c.txt"].iter().filter(|name| dir.path().join("t").join(name).exists()).collect();
    assert_eq!(saved.len(), 2, "{saved:?}");
    let commands = fake.commands();
    assert_eq!(count(&commands, "EPSV"), 1, "{commands:?}");
}

#[test]
fn a_connection_cut_before_the_end_of_file_block_saves_nothing_under_the_name() {
    // The server even says 250: in block mode only the end-of-file block ends a file.
    let fake = fake(|n| if n == 1 { Serve::Cut } else { Serve::Whole });
    let dir = tempfile::tempdir().unwrap();
    let run = get_tree(&fake, dir.path()).fails_with("1 of 3 files failed");
    assert!(run.stderr.contains("before the end-of-file block"), "{}", run.stderr);
    let names = crate::support::dir_names(&dir.path().join("t"));
    let whole: Vec<_> = names.iter().filter(|n| !n.starts_with('.')).collect();
    assert_eq!(whole.len(), 2, "{names:?}");
    for name in whole {
        assert_eq!(std::fs::read(dir.path().join("t").join(name)).unwrap(), b"hello", "{name}");
    }
    // The next file needed a new data connection: the cut one is gone.
    let commands = fake.commands();
    assert_eq!(count(&commands, "EPSV"), 2, "{commands:?}");
}
