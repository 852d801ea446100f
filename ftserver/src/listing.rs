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

/// What clients may do, for the MLSx `perm` fact (RFC 3659 section 7.5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// Uploads and MKD (`--writable`).
    pub writable: bool,
    /// Replacing, appending to, deleting and renaming (`--overwrite`).
    pub overwrite: bool,
}

impl Access {
    /// The `perm` fact of a file: `r`, plus `adfw` when files may be changed.
    fn file_perm(self) -> &'static str {
        if self.writable && self.overwrite {
            "adfrw"
        } else {
            "r"
        }
    }

    /// The `perm` fact of a directory: `el`, plus `cm` (create files and directories) when
    /// writable and `dfp` (delete, rename, purge) with overwrite.
    fn dir_perm(self) -> &'static str {
        match (self.writable, self.overwrite) {
            (false, _) => "el",
            (true, false) => "celm",
            (true, true) => "cdeflmp",
        }
    }
}

/// Describes one file or directory; `perm` says what `access` allows on it.
pub fn entry(name: String, meta: &Metadata, access: Access) -> Entry {
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
        // A FIFO, device or socket keeps its type bits, so that LIST shows `p`, `c`, `b`, `s`.
        let type_bits = if kind == EntryKind::Other { 0o170000 } else { 0 };
        Some(meta.permissions().mode() & (0o777 | type_bits))
    };
    #[cfg(not(unix))]
    let mode = None;
    let perm = match kind {
        EntryKind::Dir => Some(access.dir_perm().to_owned()),
        EntryKind::File => Some(access.file_perm().to_owned()),
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
            entry("a b".into(), &std::fs::metadata(dir.path().join("a b")).unwrap(), Access::default()),
            entry("d".into(), &std::fs::metadata(dir.path().join("d")).unwrap(), Access::default()),
        ];
        let writable = Access { writable: true, overwrite: false };
        let meta = std::fs::metadata(dir.path().join("d")).unwrap();
        assert_eq!(entry("d".into(), &meta, writable).perm.as_deref(), Some("celm"));
        let meta = std::fs::metadata(dir.path().join("a b")).unwrap();
        assert_eq!(entry("a b".into(), &meta, writable).perm.as_deref(), Some("r"));
        let all = Access { writable: true, overwrite: true };
        assert_eq!(entry("a b".into(), &meta, all).perm.as_deref(), Some("adfrw"));
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
