//! Uploads on disk: the partial file an upload writes while its bytes arrive, how an upload is
//! resumed, and the atomic move to its final name. Nothing here touches a socket.
//!
//! # The partial file
//!
//! An upload of `NAME` into a directory writes to `.NAME.ftpart` in that same directory (the
//! *partial file*; same directory, so the final move is a rename on one filesystem). Names of
//! that form are hidden from listings and refused by every command (`fs::Root` treats them as
//! absent), so a client never reads, lists or names a partial file directly.
//!
//! The session calls [`Upload::commit`] only when the data connection ended with a clean
//! end-of-file while the client was still connected on the control connection and had not sent
//! ABOR. Then the partial file becomes `NAME`:
//!
//! - by default with `link(2)` then `unlink(2)` of the partial name: the link fails atomically
//!   when `NAME` exists, even if it appeared during the upload, so existing data is never
//!   replaced (no check-then-rename race);
//! - with `--overwrite` with `rename(2)`, which atomically replaces `NAME`.
//!
//! An upload that ends any other way (data connection reset or timed out, ABOR, the client gone,
//! the server stopping) leaves its partial file in place and nothing under `NAME`.
//!
//! # Resuming
//!
//! `SIZE NAME`, when `NAME` does not exist but its partial file does, reports the partial file's
//! size (see [`partial_size`]). That is what resuming clients ask, and both usual ways to
//! resume then work:
//!
//! - curl `-C - -T`: `SIZE NAME`, then `APPE NAME`, which appends to the partial file;
//! - lftp `put -c` (and REST-aware clients): `SIZE NAME`, `REST n`, `STOR NAME`, which cuts the
//!   partial file to `n` bytes (n may not exceed its size) and writes from there.
//!
//! A `STOR NAME` without `REST` starts a partial file over. With `--overwrite`, `APPE` or
//! `REST n` + `STOR` onto a complete file copies it to a partial file first, so even an
//! interrupted append never leaves a half-changed file under the final name.
//!
//! # Failures that remove the partial file
//!
//! A full disk (`452`) and `--max-upload-size` (`552`) remove the partial file: it freed no
//! space for anyone, and resuming cannot succeed until an administrator acts anyway. Nothing else
//! is ever removed.
//!
//! # One upload per name
//!
//! Within one server process only one upload, FTP or TFTP, writes to a given partial file at a
//! time ([`Busy`]); a second upload of the same name meanwhile gets `450` (TFTP: an error).
//! (Partial files are not locked against other programs: one server per served tree is
//! assumed.)

use crate::fs::{FsError, Target};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Partial files are `.NAME.ftpart` (shortened for long names: `common::path::partial_name`).
const PARTIAL_PREFIX: &str = ".";
use common::path::PARTIAL_SUFFIX;

/// How many names `STOU` tries (`NAME`, `NAME.1`, ...) before giving up.
const UNIQUE_TRIES: u32 = 1000;

/// Is `name` the name of a partial upload (`.NAME.ftpart`)? Such names are hidden from clients.
pub fn is_partial_name(name: &str) -> bool {
    name.len() > PARTIAL_PREFIX.len() + PARTIAL_SUFFIX.len()
        && name.starts_with(PARTIAL_PREFIX)
        && name.ends_with(PARTIAL_SUFFIX)
}

/// The partial file for `target`, or `None` when its name would be too long (a name itself
/// longer than the file system allows).
fn partial_path(target: &Target) -> Option<PathBuf> {
    if target.name.len() > common::path::NAME_MAX {
        return None;
    }
    let name = String::from_utf8(common::path::partial_name(target.name.as_bytes())).ok()?;
    Some(target.dir.join(name))
}

/// The size of the interrupted upload of `target`, when there is one (what `SIZE` reports for a
/// name that has only a partial file, so clients can resume).
pub fn partial_size(target: &Target) -> Option<u64> {
    let meta = fs::symlink_metadata(partial_path(target)?).ok()?;
    meta.is_file().then_some(meta.len())
}

/// The partial files being written right now, in the whole process: FTP sessions and TFTP
/// transfers (each with their own [`Busy`] handle) must not write the same partial file at once.
static BUSY: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// A handle on the uploads running in this process. Every handle sees the same set, so FTP and
/// TFTP uploads of the same name exclude each other.
#[derive(Debug, Default)]
pub struct Busy {
    _shared: (),
}

impl Busy {
    fn lock(&self) -> MutexGuard<'static, BTreeSet<PathBuf>> {
        // Each update is one insert or remove, so a poisoned set is still consistent.
        BUSY.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `path` busy until the returned claim is dropped; `None` if it already is.
    fn claim(&self, path: &Path) -> Option<Claim<'_>> {
        self.lock().insert(path.to_owned()).then(|| Claim { busy: self, path: path.to_owned() })
    }

    /// Is an upload writing the partial file of `target` right now?
    pub fn is_busy(&self, target: &Target) -> bool {
        partial_path(target).is_some_and(|path| self.lock().contains(&path))
    }
}

/// Holds a partial file busy; dropping it frees it.
#[derive(Debug)]
struct Claim<'a> {
    busy: &'a Busy,
    path: PathBuf,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.busy.lock().remove(&self.path);
    }
}

/// Where an upload starts writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `STOR`/`STOU` without `REST`: a new partial file.
    Fresh,
    /// `REST n` + `STOR`: continue the partial file from byte `n`.
    Resume(u64),
    /// `APPE`: continue at the end of the partial file (a new one if there is none).
    Append,
}

/// Why an upload could not start or finish. [`UploadError::reply_code`] chooses the reply.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The name exists and replacing is not allowed.
    #[error("file exists (this server never replaces files)")]
    Exists,
    /// The name exists and is not a regular file.
    #[error("exists and is not a regular file")]
    NotAFile,
    /// Another client is uploading the same name right now.
    #[error("being uploaded by another client, try again later")]
    Busy,
    /// The name itself exceeds the 255-byte file name limit.
    #[error("file name too long for an upload")]
    NameTooLong,
    /// `REST n` with `n > 0`, but no partial upload of that name.
    #[error("no interrupted upload to resume")]
    NothingToResume,
    /// `REST n` beyond what the partial file holds.
    #[error("restart offset {offset} is beyond the {size} bytes uploaded so far")]
    BeyondPartial {
        /// The offset asked for.
        offset: u64,
        /// The partial file's size.
        size: u64,
    },
    /// `STOU` found no free name.
    #[error("no unique name left")]
    NoUniqueName,
    /// `APPE` to a name that exists while an interrupted upload of it is pending too: which of
    /// the two to append to is ambiguous (SIZE reports the complete file, the resumable data is
    /// in the partial one), and guessing wrong stores a mix of two versions.
    #[error(
        "an interrupted upload of this name holds {size} bytes; resume it with REST {size} and STOR, \
         or upload it anew with STOR"
    )]
    PartialPending {
        /// The partial file's size.
        size: u64,
    },
    /// A path problem.
    #[error("{0}")]
    Fs(#[from] FsError),
    /// The disk refused.
    #[error("{}", crate::fs::io_text(.0))]
    Io(io::Error),
}

impl From<io::Error> for UploadError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::PermissionDenied => {
                UploadError::Fs(FsError::from_io(e))
            }
            _ => UploadError::Io(e),
        }
    }
}

impl UploadError {
    /// The FTP reply code (RFC 959 4.2): `553` for names that cannot be used, `450` for a name
    /// busy right now, `554` for a bad restart offset (RFC 3659 5.5), `452` for a full disk,
    /// `550` for path errors, `451` for other local errors.
    pub fn reply_code(&self) -> u16 {
        match self {
            UploadError::Exists | UploadError::NotAFile | UploadError::NameTooLong | UploadError::NoUniqueName => 553,
            UploadError::Busy | UploadError::PartialPending { .. } => 450,
            UploadError::NothingToResume | UploadError::BeyondPartial { .. } => 554,
            UploadError::Fs(e) => e.reply_code(),
            UploadError::Io(e) if is_disk_full(e) => 452,
            UploadError::Io(_) => 451,
        }
    }
}

/// Is this the disk (or a quota) being full?
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// One upload in progress: its partial file, open for writing at the right offset.
#[derive(Debug)]
pub struct Upload<'a> {
    _claim: Claim<'a>,
    target: Target,
    partial: PathBuf,
    file: File,
    offset: u64,
}

impl<'a> Upload<'a> {
    /// Starts an upload to `target`. Without `overwrite` an existing name is refused here (and
    /// again, atomically, by [`Upload::commit`]).
    pub fn open(busy: &'a Busy, target: Target, start: Start, overwrite: bool) -> Result<Upload<'a>, UploadError> {
        let partial = partial_path(&target).ok_or(UploadError::NameTooLong)?;
        // Not followed: a symlink by the final name counts as existing and is never written
        // through.
        let existing = fs::symlink_metadata(target.path()).ok();
        match &existing {
            Some(meta) if meta.is_dir() => return Err(UploadError::NotAFile),
            Some(_) if !overwrite => return Err(UploadError::Exists),
            _ => {}
        }
        let claim = busy.claim(&partial).ok_or(UploadError::Busy)?;
        let partial_len = fs::symlink_metadata(&partial).ok().filter(|m| m.is_file()).map(|m| m.len());
        let complete = existing.filter(|m| m.is_file()).map(|m| m.len());
        let (mut file, offset) = match (start, partial_len, complete) {
            (Start::Fresh, _, _) | (Start::Resume(0) | Start::Append, None, None) => (create_partial(&partial)?, 0),
            (Start::Resume(offset), Some(size), _) => (continue_partial(&partial, offset, size)?, offset),
            (Start::Append, Some(size), Some(_)) => return Err(UploadError::PartialPending { size }),
            (Start::Append, Some(size), None) => (continue_partial(&partial, size, size)?, size),
            // Only reachable with `overwrite`: change a copy, never the file in place.
            (Start::Resume(_) | Start::Append, None, Some(_)) => {
                let mut file = create_partial(&partial)?;
                let size = io::copy(&mut File::open(target.path())?, &mut file)?;
                let offset = if let Start::Resume(offset) = start { offset } else { size };
                if offset > size {
                    drop(file);
                    let _ = fs::remove_file(&partial);
                    return Err(UploadError::BeyondPartial { offset, size });
                }
                file.set_len(offset)?;
                (file, offset)
            }
            (Start::Resume(_), None, None) => return Err(UploadError::NothingToResume),
        };
        file.seek(SeekFrom::Start(offset))?;
        Ok(Upload { _claim: claim, target, partial, file, offset })
    }

    /// Starts an upload under a name that does not exist yet (`STOU`): `target`'s name, else the
    /// name with `.1`, `.2`, ... appended.
    pub fn open_unique(busy: &'a Busy, target: Target) -> Result<Upload<'a>, UploadError> {
        for i in 0..UNIQUE_TRIES {
            let name = if i == 0 { target.name.clone() } else { format!("{}.{i}", target.name) };
            let candidate = Target { dir: target.dir.clone(), name };
            if candidate.exists() || partial_size(&candidate).is_some() {
                continue;
            }
            match Upload::open(busy, candidate, Start::Fresh, false) {
                Err(UploadError::Exists | UploadError::Busy) => continue,
                other => return other,
            }
        }
        Err(UploadError::NoUniqueName)
    }

    /// The partial file, positioned where the upload's bytes go.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The offset writing started at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The final name (for `STOU`'s reply).
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// Moves the complete upload to its final name. Without `overwrite` this fails with
    /// [`UploadError::Exists`] if the name appeared meanwhile (the upload is then removed).
    pub fn commit(self, overwrite: bool) -> Result<(), UploadError> {
        let dest = self.target.path();
        if overwrite {
            return fs::rename(&self.partial, &dest).map_err(|e| match e.kind() {
                io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => UploadError::NotAFile,
                _ => UploadError::from(e),
            });
        }
        match fs::hard_link(&self.partial, &dest) {
            Ok(()) => {
                // The data is safe under its final name; a failure here only leaves a hidden
                // second name behind.
                let _ = fs::remove_file(&self.partial);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = fs::remove_file(&self.partial);
                Err(UploadError::Exists)
            }
            Err(e) => Err(UploadError::from(e)),
        }
    }

    /// Removes the partial file (disk full, size limit).
    pub fn discard(self) {
        let _ = fs::remove_file(&self.partial);
    }
}

/// A new, empty partial file. A stale one (or anything else by that name) is removed first, and
/// `create_new` (O_EXCL) never follows a symlink.
fn create_partial(path: &Path) -> Result<File, UploadError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    Ok(OpenOptions::new().write(true).create_new(true).open(path)?)
}

/// The existing partial file, cut to `offset` bytes.
fn continue_partial(path: &Path, offset: u64, size: u64) -> Result<File, UploadError> {
    if offset > size {
        return Err(UploadError::BeyondPartial { offset, size });
    }
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(offset)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn target(dir: &Path, name: &str) -> Target {
        Target { dir: dir.to_owned(), name: name.to_owned() }
    }

    fn write(upload: &mut Upload<'_>, bytes: &[u8]) {
        upload.file().write_all(bytes).unwrap();
    }

    #[test]
    fn recognises_partial_names() {
        for (name, partial) in
            [(".a.ftpart", true), (".a b.ftpart", true), (".ftpart", false), ("a.ftpart", false), (".a", false)]
        {
            assert_eq!(is_partial_name(name), partial, "{name}");
        }
    }

    #[test]
    fn commits_only_onto_a_free_name_unless_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        let mut up = Upload::open(&busy, target(dir.path(), "f"), Start::Fresh, false).unwrap();
        write(&mut up, b"one");
        assert!(!dir.path().join("f").exists());
        assert_eq!(partial_size(&target(dir.path(), "f")), Some(3));
        // The same name is busy while the upload runs, for every handle (FTP and TFTP).
        assert!(busy.is_busy(&target(dir.path(), "f")));
        let other = Busy::default();
        assert!(matches!(Upload::open(&other, target(dir.path(), "f"), Start::Fresh, false), Err(UploadError::Busy)));
        // A file that appears meanwhile is not replaced.
        std::fs::write(dir.path().join("f"), b"theirs").unwrap();
        assert!(matches!(up.commit(false), Err(UploadError::Exists)));
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"theirs");
        assert!(!busy.is_busy(&target(dir.path(), "f")));
        assert!(matches!(Upload::open(&busy, target(dir.path(), "f"), Start::Fresh, false), Err(UploadError::Exists)));

        let mut up = Upload::open(&busy, target(dir.path(), "f"), Start::Fresh, true).unwrap();
        write(&mut up, b"mine");
        up.commit(true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"mine");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["f"]);
    }

    #[test]
    fn resumes_and_appends_to_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        let t = || target(dir.path(), "f");
        let mut up = Upload::open(&busy, t(), Start::Fresh, false).unwrap();
        write(&mut up, b"abcdef");
        drop(up); // interrupted: the partial file stays
        assert!(matches!(Upload::open(&busy, t(), Start::Resume(7), false), Err(UploadError::BeyondPartial { .. })));
        let mut up = Upload::open(&busy, t(), Start::Resume(4), false).unwrap();
        assert_eq!(up.offset(), 4);
        write(&mut up, b"XY");
        drop(up);
        let mut up = Upload::open(&busy, t(), Start::Append, false).unwrap();
        assert_eq!(up.offset(), 6);
        write(&mut up, b"!");
        up.commit(false).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"abcdXY!");
        assert_eq!(partial_size(&t()), None);
        assert!(matches!(Upload::open(&busy, t(), Start::Append, false), Err(UploadError::Exists)));
        assert!(matches!(
            Upload::open(&busy, target(dir.path(), "g"), Start::Resume(1), false),
            Err(UploadError::NothingToResume)
        ));
    }

    #[test]
    fn appending_with_overwrite_changes_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        std::fs::write(dir.path().join("f"), b"base").unwrap();
        let mut up = Upload::open(&busy, target(dir.path(), "f"), Start::Append, true).unwrap();
        write(&mut up, b"+more");
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"base");
        up.commit(true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"base+more");

        // An interrupted replacement leaves a partial beside the complete file: appending is
        // then refused (to which of the two?), and the partial resumes with REST.
        let mut up = Upload::open(&busy, target(dir.path(), "f"), Start::Fresh, true).unwrap();
        write(&mut up, b"new");
        drop(up);
        let refused = Upload::open(&busy, target(dir.path(), "f"), Start::Append, true);
        assert!(matches!(refused, Err(UploadError::PartialPending { size: 3 })), "{refused:?}");
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"base+more");
        let mut up = Upload::open(&busy, target(dir.path(), "f"), Start::Resume(3), true).unwrap();
        write(&mut up, b" version");
        up.commit(true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new version");
    }

    #[test]
    fn unique_names_skip_taken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        std::fs::write(dir.path().join("u"), b"").unwrap();
        let first = Upload::open_unique(&busy, target(dir.path(), "u")).unwrap();
        assert_eq!(first.name(), "u.1");
        let second = Upload::open_unique(&busy, target(dir.path(), "u")).unwrap();
        assert_eq!(second.name(), "u.2");
        first.commit(false).unwrap();
        second.discard();
        assert!(dir.path().join("u.1").exists() && !dir.path().join("u.2").exists());
    }

    #[test]
    fn refuses_directories_and_long_names() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert!(matches!(Upload::open(&busy, target(dir.path(), "d"), Start::Fresh, true), Err(UploadError::NotAFile)));
        // Up to the file system's limit a name gets a partial file; beyond it, no upload.
        assert!(Upload::open(&busy, target(dir.path(), &"x".repeat(255)), Start::Fresh, false).is_ok());
        let long = "x".repeat(256);
        assert!(matches!(
            Upload::open(&busy, target(dir.path(), &long), Start::Fresh, false),
            Err(UploadError::NameTooLong)
        ));
    }
}
