//! `-l`: fetch a directory listing (MLSD when FEAT lists MLST, else LIST), and print it sorted,
//! one entry per line, directories marked with a trailing `/`.

use crate::session::Session;
use crate::transfer::{self, Mode};
use anyhow::{Context, Result};
use common::listing::{civil_from_unix, parse_list_line, parse_mlsx, Entry, EntryKind};
use common::text::sanitize;
use common::Command;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest listing accepted, in bytes (a hostile server could otherwise fill memory).
pub const MAX_LISTING: u64 = 256 << 20;

/// What `-l` should show.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Show type, size and modification time too.
    pub long: bool,
    /// The remote directory to list, instead of the login directory.
    pub dir: Option<String>,
}

/// Lists a remote directory and writes it to `out`.
pub fn run(session: &mut Session, mode: Mode, opts: &ListOptions, out: &mut dyn Write) -> Result<()> {
    if let Some(dir) = &opts.dir {
        session.expect_success(&Command::Cwd(dir.clone()), || {
            format!("cannot change to the remote directory {}", sanitize(dir))
        })?;
    }
    let mut entries = fetch(session, mode)?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut text = String::new();
    for entry in &entries {
        text.push_str(&format_entry(entry, opts.long));
        text.push('\n');
    }
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // The reader went away (`ftclient -l | head`): it has what it wanted, as with `ls`.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        written => written.context("cannot write the listing to stdout"),
    }
}

/// Fetches and parses the listing: MLSD when the server has it (exact, machine-readable facts),
/// otherwise LIST parsed as `ls -l` or DOS lines. The pseudo-entries `.`/`..` are left out.
pub fn fetch(session: &mut Session, mode: Mode) -> Result<Vec<Entry>> {
    if session.features.mlst {
        let pending = transfer::prepare(session, mode)?;
        let reply = session.command(&Command::Mlsd(None))?;
        // A server that advertises MLST but refuses MLSD (500/502) still has LIST.
        if !matches!(reply.code, 500 | 502) {
            let data = receive_listing(session, pending, reply)?;
            return Ok(parse_lines(&data, |line| parse_mlsx(line).map(Some)));
        }
        log::info!("the server refused MLSD, using LIST");
    }
    let pending = transfer::prepare(session, mode)?;
    let reply = session.command(&Command::List(None))?;
    let data = receive_listing(session, pending, reply)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    Ok(parse_lines(&data, |line| parse_list_line(line, now)))
}

/// Completes a listing transfer whose command was sent and answered with `reply`.
fn receive_listing(session: &mut Session, pending: transfer::Pending, reply: common::Reply) -> Result<Vec<u8>> {
    const WHAT: &str = "cannot list the remote directory";
    let mut stream = transfer::established(session, pending, reply, WHAT)?;
    let mut data = Vec::new();
    let mut count = 0;
    transfer::receive(session, &mut stream, &mut data, &mut count, MAX_LISTING, |_| {}).context(WHAT)?;
    transfer::complete(session, stream).context(WHAT)?;
    Ok(data)
}

/// Splits listing data into lines (CRLF or LF) and parses each; lines that do not parse are
/// skipped with a warning, as lftp and FileZilla do.
fn parse_lines<E>(data: &[u8], parse: impl Fn(&str) -> Result<Option<Entry>, E>) -> Vec<Entry>
where
    E: std::fmt::Display,
{
    let text = String::from_utf8_lossy(data);
    let mut entries = Vec::new();
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).filter(|l| !l.is_empty()) {
        match parse(line) {
            Ok(Some(entry)) if !matches!(entry.kind, EntryKind::CurrentDir | EntryKind::ParentDir) => {
                if entry.name != "." && entry.name != ".." {
                    entries.push(entry);
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("skipped a listing line ({e}): {}", sanitize(line)),
        }
    }
    entries
}

/// One output line: the name (sanitised, `/` after directories), with `long` preceded by the
/// type, the size and the UTC modification time.
fn format_entry(entry: &Entry, long: bool) -> String {
    let mut name = sanitize(&entry.name);
    if entry.is_dir() {
        name.push('/');
    }
    if !long {
        return name;
    }
    let kind = match entry.kind {
        EntryKind::File => "file",
        EntryKind::Dir | EntryKind::CurrentDir | EntryKind::ParentDir => "dir",
        EntryKind::Symlink => "link",
        EntryKind::Other => "other",
    };
    let time = entry.modified.map_or_else(
        || "-".to_owned(),
        |t| {
            let (y, mo, d, h, mi, s) = civil_from_unix(t);
            format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
        },
    );
    format!("{kind:<5} {:>13} {time:<19} {name}", entry.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_entries() {
        let file = Entry {
            name: "a b.txt".into(),
            kind: EntryKind::File,
            size: 1234,
            modified: Some(1_710_408_360),
            mode: None,
            perm: None,
        };
        assert_eq!(format_entry(&file, false), "a b.txt");
        assert_eq!(format_entry(&file, true), "file           1234 2024-03-14 09:26:00 a b.txt");
        let dir = Entry { name: "d\x1b".into(), kind: EntryKind::Dir, modified: None, ..file };
        assert_eq!(format_entry(&dir, false), "d\\x1b/");
        assert_eq!(format_entry(&dir, true), "dir            1234 -                   d\\x1b/");
    }

    #[test]
    fn parses_mlsd_and_list_data() {
        let mlsd = b"type=cdir; .\r\ntype=pdir; ..\r\ntype=dir;modify=20240314092600; docs\r\ntype=file;size=5; a.txt\r\nbogus\r\n";
        let names: Vec<_> =
            parse_lines(mlsd, |l| parse_mlsx(l).map(Some)).into_iter().map(|e| (e.name, e.kind)).collect();
        assert_eq!(names, vec![("docs".to_owned(), EntryKind::Dir), ("a.txt".to_owned(), EntryKind::File)]);
        let list = b"total 8\ndrwxr-xr-x 2 ftp ftp 4096 Mar 14 09:26 docs\n-rw-r--r-- 1 ftp ftp 5 Mar 14  2020 a b\n";
        let entries = parse_lines(list, |l| parse_list_line(l, 1_710_408_360));
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[1].name.as_str(), entries[1].size), ("a b", 5));
    }
}
