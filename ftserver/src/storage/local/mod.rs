//! The only place a client's virtual path becomes a real path: join its components to the root,
//! resolve symlinks, and refuse whatever ends up outside the root.
//!
//! Containment is checked on the canonical path (`canonicalize` then `starts_with`), never by
//! looking at the text for `..`, so a symlink inside the root that points outside is refused
//! exactly like `/../etc/passwd` would be (the approach of sigoden/dufs).

use common::path::VirtualPath;
use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};

/// Why a path could not be used. [`FsError::reply_code`] chooses the FTP reply.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Nothing by that name (or a component of the path is missing).
    #[error("no such file or directory")]
    NotFound,
    /// The operating system refused access.
    #[error("permission denied")]
    PermissionDenied,
    /// The path resolves (through a symlink) to somewhere outside the served root.
    #[error("permission denied (outside the served directory)")]
    OutsideRoot,
    /// A directory was needed.
    #[error("not a directory")]
    NotADirectory,
    /// A regular file was needed.
    #[error("not a regular file")]
    NotAFile,
    /// The root itself cannot be created, replaced, renamed or removed.
    #[error("not allowed on the root directory")]
    IsRoot,
    /// Some other I/O failure.
    #[error("{}", io_text(.0))]
    Io(io::Error),
}

/// An I/O error as a reply may show it: the system's words without the "(os error N)" that
/// Rust appends ("Is a directory", not "Is a directory (os error 21)").
pub fn io_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

impl FsError {
    /// The FTP reply code: 550, "requested action not taken; file unavailable" (RFC 959 4.2),
    /// for every kind, so a client cannot tell a missing file from a forbidden one.
    pub fn reply_code(&self) -> u16 {
        550
    }

    pub(crate) fn from_io(e: io::Error) -> FsError {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => FsError::NotFound,
            io::ErrorKind::PermissionDenied => FsError::PermissionDenied,
            _ => FsError::Io(e),
        }
    }
}

/// An entry to create, replace or remove: a real directory inside the root and a plain name
/// in it (see [`Root::target`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The canonical directory, inside the root.
    pub dir: PathBuf,
    /// One path component: no `/`, never `.` or `..`, never a partial-upload name.
    pub name: String,
}

impl Target {
    /// The real path of the entry (not resolved: a symlink stays a symlink).
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Is something (a file, a directory, a symlink, even a broken one) there already?
    pub fn exists(&self) -> bool {
        fs::symlink_metadata(self.path()).is_ok()
    }
}

/// The served directory tree.
#[derive(Debug, Clone)]
pub struct Root {
    /// Canonical: absolute, no symlinks.
    base: PathBuf,
}

impl Root {
    /// Serves `dir`, which is canonicalised here.
    pub fn new(dir: &Path) -> io::Result<Root> {
        Ok(Root { base: crate::config::canonical_dir(dir)? })
    }

    /// The canonical root directory.
    pub fn path(&self) -> &Path {
        &self.base
    }

    /// Turns a virtual path into the canonical real path, refusing what does not exist and what
    /// resolves outside the root.
    pub fn resolve(&self, vpath: &VirtualPath) -> Result<PathBuf, FsError> {
        // Partial uploads are invisible: no command reads, lists or names them directly.
        if vpath.components().any(crate::upload::is_partial_name) {
            return Err(FsError::NotFound);
        }
        let mut joined = self.base.clone();
        // VirtualPath guarantees its components are plain names (no `/`, `.`, `..`, or empty).
        joined.extend(vpath.components());
        self.contain(&joined)
    }

    /// Canonicalises `path` and checks it is still under the root.
    fn contain(&self, path: &Path) -> Result<PathBuf, FsError> {
        let real = path.canonicalize().map_err(FsError::from_io)?;
        if real.starts_with(&self.base) {
            Ok(real)
        } else {
            Err(FsError::OutsideRoot)
        }
    }

    /// The place a write command acts on: the parent directory of `vpath`, resolved and
    /// confined like any path (so a symlinked directory that points outside is refused), and
    /// the last component kept as a plain name that is never followed. A symlink by that name
    /// is an existing entry to be refused, replaced or removed, never written through.
    pub fn target(&self, vpath: &VirtualPath) -> Result<Target, FsError> {
        let name = vpath.file_name().ok_or(FsError::IsRoot)?;
        if crate::upload::is_partial_name(name) {
            return Err(FsError::NotFound);
        }
        let dir = self.resolve(&vpath.parent())?;
        if !fs::metadata(&dir).map_err(FsError::from_io)?.is_dir() {
            return Err(FsError::NotFound);
        }
        Ok(Target { dir, name: name.to_owned() })
    }

    /// For a command that acts on a file: `arg`, which resolved to `vpath`, may end in `/` or
    /// `/.` only when it names a directory (normalising drops those endings, and `a.txt/` must
    /// not reach `a.txt`, nor `STOR new/` create a file `new`).
    pub fn check_file_arg(&self, arg: &str, vpath: &VirtualPath) -> Result<(), FsError> {
        if common::path::names_a_directory(arg) && !self.metadata(vpath).is_ok_and(|m| m.is_dir()) {
            return Err(FsError::NotADirectory);
        }
        Ok(())
    }

    /// Metadata of whatever `vpath` names (symlinks inside the root followed).
    pub fn metadata(&self, vpath: &VirtualPath) -> Result<Metadata, FsError> {
        fs::metadata(self.resolve(vpath)?).map_err(FsError::from_io)
    }

    /// Checks that `vpath` is a directory the server may list (for `CWD`): a directory it may
    /// not read would be entered and then fail every listing.
    pub fn require_dir(&self, vpath: &VirtualPath) -> Result<(), FsError> {
        let real = self.resolve(vpath)?;
        if !fs::metadata(&real).map_err(FsError::from_io)?.is_dir() {
            return Err(FsError::NotADirectory);
        }
        fs::read_dir(&real).map(drop).map_err(FsError::from_io)
    }

    /// Opens a regular file for reading, with its metadata.
    ///
    /// Opened non-blocking and checked before anything reads it: a plain open of a FIFO waits
    /// for a writer, which would hold the session (or a TFTP transfer slot) forever; a device
    /// is not made our controlling terminal. Regular files then read as usual.
    pub fn open_file(&self, vpath: &VirtualPath) -> Result<(File, Metadata), FsError> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        use std::os::unix::fs::OpenOptionsExt;
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
            .open(self.resolve(vpath)?)
            .map_err(FsError::from_io)?;
        let meta = file.metadata().map_err(FsError::from_io)?;
        if !meta.is_file() {
            return Err(FsError::NotAFile);
        }
        fcntl(&file, FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| FsError::from_io(e.into()))?;
        Ok((file, meta))
    }

    /// The entries of a directory, sorted by name, with their metadata (a symlink's target's).
    ///
    /// Left out: names that are not UTF-8 or contain CR or LF (no FTP client could ask for them
    /// again), broken symlinks, symlinks that point outside the root (listing them would leak
    /// facts about files the client may not read), and symlinks to a directory the client
    /// came through to get here (`up -> ..`, or `a/l -> ../b` seen from `/b/l/`): listed as
    /// directories, they send recursive clients (lftp mirror, wget -r) round the loop until
    /// the path is too long. They can still be entered by name.
    pub fn read_dir(&self, vpath: &VirtualPath) -> Result<Vec<(String, Metadata)>, FsError> {
        let dir = self.resolve(vpath)?;
        // The real directories of the path's prefixes: `/`, `/a`, `/a/l`, ...
        let mut came_through = vec![self.base.clone()];
        let mut prefix = VirtualPath::root();
        for part in vpath.components() {
            let Ok(next) = prefix.join(part) else { break };
            prefix = next;
            if let Ok(real) = self.resolve(&prefix) {
                came_through.push(real);
            }
        }
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(FsError::from_io)? {
            let entry = entry.map_err(FsError::from_io)?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if name.contains(['\r', '\n']) || crate::upload::is_partial_name(&name) {
                continue;
            }
            let meta = match entry.file_type() {
                Ok(t) if t.is_symlink() => {
                    let Ok(real) = self.contain(&entry.path()) else { continue };
                    match fs::metadata(&real) {
                        Ok(meta) if meta.is_dir() && came_through.iter().any(|d| d.starts_with(&real)) => continue,
                        Ok(meta) => meta,
                        Err(_) => continue,
                    }
                }
                Ok(_) => match entry.metadata() {
                    Ok(meta) => meta,
                    // Deleted between read_dir and stat.
                    Err(_) => continue,
                },
                Err(_) => continue,
            };
            out.push((name, meta));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vp(p: &str) -> VirtualPath {
        VirtualPath::parse(p).unwrap()
    }

    #[test]
    fn io_errors_read_without_the_os_error_number() {
        let e = io::Error::from_raw_os_error(21);
        assert_eq!(FsError::Io(e).to_string(), "Is a directory");
        assert_eq!(io_text(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn confines_paths_to_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), b"f").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("sub/f", dir.path().join("in")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.path().join("broken")).unwrap();
        let root = Root::new(dir.path()).unwrap();

        assert!(root.open_file(&vp("/sub/f")).is_ok());
        assert!(root.open_file(&vp("in")).is_ok());
        assert!(matches!(root.open_file(&vp("/out/secret")), Err(FsError::OutsideRoot)));
        assert!(matches!(root.require_dir(&vp("/out")), Err(FsError::OutsideRoot)));
        assert!(matches!(root.open_file(&vp("/missing")), Err(FsError::NotFound)));
        assert!(matches!(root.open_file(&vp("/sub")), Err(FsError::NotAFile)));
        // A FIFO is refused at once, not waited on for a writer.
        nix::unistd::mkfifo(&dir.path().join("pipe"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(root.open_file(&vp("/pipe")), Err(FsError::NotAFile)));
        std::fs::remove_file(dir.path().join("pipe")).unwrap();
        assert!(matches!(root.require_dir(&vp("/sub/f")), Err(FsError::NotADirectory)));
        // `..` never leaves the root: VirtualPath already clamps it at `/`.
        assert_eq!(root.resolve(&vp("/../../..")).unwrap(), root.path());

        let names: Vec<String> = root.read_dir(&vp("/")).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["in", "sub"]);
    }
}
