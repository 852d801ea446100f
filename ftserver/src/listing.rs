//! Turning file metadata into `common::listing::Entry` values and whole LIST, NLST and MLSD
//! bodies (CRLF-terminated lines, as they go over the data connection).

use crate::auth::{Perm, Rights};
use crate::storage::{Kind, Meta};
use common::listing::{format_list_line, format_mlsx, Entry, EntryKind, Facts};
use std::time::{SystemTime, UNIX_EPOCH};

/// Which listing a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `LIST`: `ls -l` lines.
    List,
    /// `NLST`: bare names.
    Nlst,
    /// `MLSD`: RFC 3659 fact lines.
    Mlsd,
}

/// The current time in UTC seconds since the epoch.
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The `perm` fact of a file (RFC 3659 section 7.5.5): `r` to download, `a` and `w` to append
/// and replace, `d` to delete, `f` to rename.
fn file_perm(rights: Rights) -> String {
    letters(
        rights,
        &[
            ('a', Perm::Overwrite),
            ('d', Perm::Delete),
            ('f', Perm::Rename),
            ('r', Perm::Download),
            ('w', Perm::Overwrite),
        ],
    )
}

/// The `perm` fact of a directory: `e` and `l` to enter and list, `c` to create files, `m` to
/// make directories, `d`, `f` and `p` to delete, rename and purge.
fn dir_perm(rights: Rights) -> String {
    letters(
        rights,
        &[
            ('c', Perm::Upload),
            ('d', Perm::Delete),
            ('e', Perm::List),
            ('f', Perm::Rename),
            ('l', Perm::List),
            ('m', Perm::CreateDirs),
            ('p', Perm::Delete),
        ],
    )
}

fn letters(rights: Rights, table: &[(char, Perm)]) -> String {
    table.iter().filter(|(_, perm)| rights.allows(*perm)).map(|(c, _)| *c).collect()
}

/// Describes one file or directory; `perm` says what `rights` allow on it.
pub fn entry(name: String, meta: &Meta, rights: Rights) -> Entry {
    let (kind, perm) = match meta.kind {
        Kind::Dir => (EntryKind::Dir, Some(dir_perm(rights))),
        Kind::File => (EntryKind::File, Some(file_perm(rights))),
        Kind::Other => (EntryKind::Other, None),
    };
    Entry { name, kind, size: meta.len, modified: meta.modified, mode: meta.mode, perm }
}

/// Formats one entry as a line of the given listing kind, without the line ending.
pub fn line(kind: ListKind, entry: &Entry, facts: Facts, now: i64) -> String {
    match kind {
        ListKind::List => format_list_line(entry, now),
        ListKind::Nlst => entry.name.clone(),
        ListKind::Mlsd => format_mlsx(entry, facts),
    }
}

/// Formats a whole listing body: one CRLF-terminated line per entry.
pub fn body(kind: ListKind, entries: &[Entry], facts: Facts, now: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(line(kind, e, facts, now).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bodies() {
        let file = Meta { kind: Kind::File, len: 5, modified: Some(now()), mode: Some(0o644) };
        let dir = Meta { kind: Kind::Dir, len: 4096, modified: Some(now()), mode: Some(0o755) };
        let entries = vec![entry("a b".into(), &file, Rights::READ), entry("d".into(), &dir, Rights::READ)];
        let upload = crate::auth::Access::Write.rights();
        assert_eq!(entry("d".into(), &dir, upload).perm.as_deref(), Some("celm"));
        assert_eq!(entry("a b".into(), &file, upload).perm.as_deref(), Some("r"));
        let all = crate::auth::Access::Full.rights();
        assert_eq!(entry("a b".into(), &file, all).perm.as_deref(), Some("adfrw"));
        let t = now();
        assert_eq!(body(ListKind::Nlst, &entries, Facts::default(), t), b"a b\r\nd\r\n");
        let mlsd = String::from_utf8(body(ListKind::Mlsd, &entries, Facts::default(), t)).unwrap();
        let lines: Vec<&str> = mlsd.split_terminator("\r\n").collect();
        assert!(lines[0].starts_with("type=file;size=5;modify="), "{mlsd}");
        assert!(lines[0].ends_with(";perm=r; a b"), "{mlsd}");
        assert!(lines[1].starts_with("type=dir;modify=") && lines[1].ends_with(";perm=el; d"), "{mlsd}");
        let list = String::from_utf8(body(ListKind::List, &entries, Facts::default(), t)).unwrap();
        assert!(list.starts_with("-rw") && list.contains(" 5 ") && list.contains("\r\nd"), "{list}");
        // A FIFO keeps its type bits, so LIST shows `p` as ls does.
        let fifo = Meta { kind: Kind::Other, len: 0, modified: None, mode: Some(0o010644) };
        assert!(listing_line(&entry("p".into(), &fifo, Rights::READ)).starts_with('p'));
    }

    fn listing_line(e: &Entry) -> String {
        line(ListKind::List, e, Facts::default(), now())
    }
}
