//! Turning file metadata into `common::listing::Entry` values and whole LIST, NLST and MLSD
//! bodies (CRLF-terminated lines, as they go over the data connection).

use common::listing::{format_list_line, format_mlsx, Entry, EntryKind, Facts};
use std::fs::Metadata;
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
    unix_seconds(SystemTime::now())
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The modification time of `meta` in UTC seconds, when the platform knows it.
pub fn modified(meta: &Metadata) -> Option<i64> {
    meta.modified().ok().map(unix_seconds)
}

/// Describes one file or directory. The `perm` fact is read-only: `r` for files, `el` for
/// directories (RFC 3659 section 7.5.5).
pub fn entry(name: String, meta: &Metadata) -> Entry {
    let kind = if meta.is_dir() {
        EntryKind::Dir
    } else if meta.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    #[cfg(unix)]
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        Some(meta.permissions().mode() & 0o777)
    };
    #[cfg(not(unix))]
    let mode = None;
    let perm = match kind {
        EntryKind::Dir => Some("el".to_owned()),
        EntryKind::File => Some("r".to_owned()),
        _ => None,
    };
    Entry { name, kind, size: meta.len(), modified: modified(meta), mode, perm }
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
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a b"), b"12345").unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let entries = vec![
            entry("a b".into(), &std::fs::metadata(dir.path().join("a b")).unwrap()),
            entry("d".into(), &std::fs::metadata(dir.path().join("d")).unwrap()),
        ];
        let t = now();
        assert_eq!(body(ListKind::Nlst, &entries, Facts::default(), t), b"a b\r\nd\r\n");
        let mlsd = String::from_utf8(body(ListKind::Mlsd, &entries, Facts::default(), t)).unwrap();
        let lines: Vec<&str> = mlsd.split_terminator("\r\n").collect();
        assert!(lines[0].starts_with("type=file;size=5;modify="), "{mlsd}");
        assert!(lines[0].ends_with(";perm=r; a b"), "{mlsd}");
        assert!(lines[1].starts_with("type=dir;modify=") && lines[1].ends_with(";perm=el; d"), "{mlsd}");
        let list = String::from_utf8(body(ListKind::List, &entries, Facts::default(), t)).unwrap();
        assert!(list.starts_with("-rw") && list.contains(" 5 ") && list.contains("\r\nd"), "{list}");
    }
}
