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
//! Within one server only one resumable upload writes to a given partial file at a time
//! ([`Busy`], held by the [`super::LocalStorage`] that FTP and TFTP share); a second upload of
//! the same name meanwhile gets `450`. A TFTP upload ([`Start::Private`]) writes a temporary of
//! its own (`.NAME~tN.ftpart`, hidden like any partial file) and never waits for another: a
//! device retrying at once after a failure is served, and whichever complete upload commits
//! first gets the name. (Partial files are not locked against other programs: one server per
//! served tree is assumed.)

use super::{identity_of, Target};
use crate::storage::{Identity, Start, StorageError};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// The partial files being written right now by the uploads of one storage: FTP sessions and
/// TFTP transfers must not write the same partial file at once. Cloning shares the set.
#[derive(Debug, Default, Clone)]
pub(super) struct Busy {
    names: Arc<Mutex<BTreeSet<PathBuf>>>,
    /// Numbers the private temporaries of TFTP uploads.
    private: Arc<AtomicU64>,
}

impl Busy {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<PathBuf>> {
        // Each update is one insert or remove, so a poisoned set is still consistent.
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `path` busy until the returned claim is dropped; `None` if it already is.
    fn claim(&self, path: &Path) -> Option<Claim> {
        self.lock().insert(path.to_owned()).then(|| Claim { busy: self.clone(), path: path.to_owned() })
    }

    /// Is an upload writing the partial file of `target` right now?
    #[cfg(test)]
    fn is_busy(&self, target: &Target) -> bool {
        partial_path(target).is_some_and(|path| self.lock().contains(&path))
    }
}

/// Removes the partial files under `base` (the whole tree, symlinks not followed) last
/// written more than `age` ago that no upload holds now. Returns how many went.
pub(super) fn expire(base: &Path, busy: &Busy, age: std::time::Duration) -> u64 {
    let Some(before) = std::time::SystemTime::now().checked_sub(age) else { return 0 };
    let mut removed = 0;
    let mut dirs = vec![base.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let stale = kind.is_file()
                && entry.file_name().to_str().is_some_and(is_partial_name)
                && entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < before);
            // Claimed while it is removed, so no upload can start writing it meanwhile.
            if stale {
                if let Some(_claim) = busy.claim(&entry.path()) {
                    if fs::remove_file(entry.path()).is_ok() {
                        removed += 1;
                    }
                }
            }
        }
    }
    removed
}

/// Holds a partial file busy; dropping it frees it.
#[derive(Debug)]
struct Claim {
    busy: Busy,
    path: PathBuf,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.busy.lock().remove(&self.path);
    }
}

/// One upload in progress: its partial file, open for writing at the right offset.
#[derive(Debug)]
pub(super) struct LocalUpload {
    /// `None` for a private upload, which no other upload can name.
    _claim: Option<Claim>,
    target: Target,
    partial: PathBuf,
    file: File,
    offset: u64,
    overwrite: bool,
    /// A private upload's temporary is removed unless committed.
    private: bool,
    /// Set once the partial file has been moved or removed.
    done: bool,
}

impl LocalUpload {
    /// Starts an upload to `target`. Without `overwrite` an existing name is refused here (and
    /// again, atomically, by [`LocalUpload::commit`]).
    pub(super) fn open(
        busy: &Busy,
        target: Target,
        start: Start,
        overwrite: bool,
    ) -> Result<LocalUpload, StorageError> {
        let partial = partial_path(&target).ok_or(StorageError::NameTooLong)?;
        // Not followed: a symlink by the final name counts as existing and is never written
        // through.
        let existing = fs::symlink_metadata(target.path()).ok();
        match &existing {
            Some(meta) if meta.is_dir() => return Err(StorageError::ExistsNotAFile),
            Some(_) if !overwrite => return Err(StorageError::Exists),
            _ => {}
        }
        if start == Start::Private {
            return Self::open_private(busy, target, overwrite);
        }
        let claim = busy.claim(&partial).ok_or(StorageError::Busy)?;
        let partial_len = fs::symlink_metadata(&partial).ok().filter(|m| m.is_file()).map(|m| m.len());
        let complete = existing.filter(|m| m.is_file()).map(|m| m.len());
        let (mut file, offset) = match (start, partial_len, complete) {
            (Start::Fresh | Start::Private, _, _) | (Start::Resume(0) | Start::Append, None, None) => {
                (create_partial(&partial)?, 0)
            }
            (Start::Resume(offset), Some(size), _) => (continue_partial(&partial, offset, size)?, offset),
            (Start::Append, Some(size), Some(_)) => return Err(StorageError::PartialPending { size }),
            (Start::Append, Some(size), None) => (continue_partial(&partial, size, size)?, size),
            // Only reachable with `overwrite`: change a copy, never the file in place.
            (Start::Resume(_) | Start::Append, None, Some(_)) => {
                let mut file = create_partial(&partial)?;
                let size = io::copy(&mut File::open(target.path())?, &mut file)?;
                let offset = if let Start::Resume(offset) = start { offset } else { size };
                if offset > size {
                    drop(file);
                    let _ = fs::remove_file(&partial);
                    return Err(StorageError::BeyondPartial { offset, size });
                }
                file.set_len(offset)?;
                (file, offset)
            }
            (Start::Resume(_), None, None) => return Err(StorageError::NothingToResume),
        };
        file.seek(SeekFrom::Start(offset))?;
        Ok(LocalUpload { _claim: Some(claim), target, partial, file, offset, overwrite, private: false, done: false })
    }

    /// A private upload: a temporary of its own beside the target, which no other upload names.
    fn open_private(busy: &Busy, target: Target, overwrite: bool) -> Result<LocalUpload, StorageError> {
        let n = busy.private.fetch_add(1, Ordering::Relaxed);
        let scratch = Target { dir: target.dir.clone(), name: format!("{}~t{n}", target.name) };
        let partial = partial_path(&scratch).ok_or(StorageError::NameTooLong)?;
        let file = create_partial(&partial)?;
        Ok(LocalUpload { _claim: None, target, partial, file, offset: 0, overwrite, private: true, done: false })
    }

    /// Starts an upload under a name that does not exist yet (`STOU`): `target`'s name, else the
    /// name with `.1`, `.2`, ... appended.
    pub(super) fn open_unique(busy: &Busy, target: Target) -> Result<LocalUpload, StorageError> {
        for i in 0..UNIQUE_TRIES {
            let name = if i == 0 { target.name.clone() } else { format!("{}.{i}", target.name) };
            let candidate = Target { dir: target.dir.clone(), name };
            if candidate.exists() || partial_size(&candidate).is_some() {
                continue;
            }
            match LocalUpload::open(busy, candidate, Start::Fresh, false) {
                Err(StorageError::Exists | StorageError::Busy) => continue,
                other => return other,
            }
        }
        Err(StorageError::NoUniqueName)
    }

    /// Moves the complete upload to its final name. Without `overwrite` this fails with
    /// [`StorageError::Exists`] if the name appeared meanwhile (the upload is then removed).
    fn publish(&mut self) -> Result<(), StorageError> {
        self.done = true;
        let dest = self.target.path();
        if self.overwrite {
            return fs::rename(&self.partial, &dest).map_err(|e| match e.kind() {
                io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => StorageError::ExistsNotAFile,
                _ => StorageError::from(e),
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
                Err(StorageError::Exists)
            }
            Err(e) => {
                self.done = false;
                Err(StorageError::from(e))
            }
        }
    }
}

impl Write for LocalUpload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl crate::storage::Upload for LocalUpload {
    fn offset(&self) -> u64 {
        self.offset
    }

    fn name(&self) -> &str {
        &self.target.name
    }

    fn commit(mut self: Box<Self>) -> Result<Option<Identity>, StorageError> {
        self.publish()?;
        // Linking and renaming change the ctime the digest cache keys on: read it afterwards.
        Ok(self.file.metadata().ok().map(|m| identity_of(&m)))
    }

    fn discard(mut self: Box<Self>) {
        self.done = true;
        let _ = fs::remove_file(&self.partial);
    }
}

impl Drop for LocalUpload {
    /// An interrupted resumable upload stays for a later resume; a private one is of no use to
    /// anyone.
    fn drop(&mut self) {
        if self.private && !self.done {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

/// A new, empty partial file. A stale one (or anything else by that name) is removed first, and
/// `create_new` (O_EXCL) never follows a symlink.
fn create_partial(path: &Path) -> Result<File, StorageError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    Ok(OpenOptions::new().write(true).create_new(true).open(path)?)
}

/// The existing partial file, cut to `offset` bytes.
fn continue_partial(path: &Path, offset: u64, size: u64) -> Result<File, StorageError> {
    if offset > size {
        return Err(StorageError::BeyondPartial { offset, size });
    }
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(offset)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Upload as _;

    fn target(dir: &Path, name: &str) -> Target {
        Target { dir: dir.to_owned(), name: name.to_owned() }
    }

    fn write(upload: &mut LocalUpload, bytes: &[u8]) {
        upload.write_all(bytes).unwrap();
    }

    fn commit(upload: LocalUpload) -> Result<(), StorageError> {
        crate::storage::Upload::commit(Box::new(upload)).map(drop)
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
        let mut up = LocalUpload::open(&busy, target(dir.path(), "f"), Start::Fresh, false).unwrap();
        write(&mut up, b"one");
        assert!(!dir.path().join("f").exists());
        assert_eq!(partial_size(&target(dir.path(), "f")), Some(3));
        // The same name is busy while the upload runs, for every handle (FTP and TFTP).
        assert!(busy.is_busy(&target(dir.path(), "f")));
        let other = busy.clone();
        assert!(matches!(
            LocalUpload::open(&other, target(dir.path(), "f"), Start::Fresh, false),
            Err(StorageError::Busy)
        ));
        // A file that appears meanwhile is not replaced.
        std::fs::write(dir.path().join("f"), b"theirs").unwrap();
        assert!(matches!(commit(up), Err(StorageError::Exists)));
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"theirs");
        assert!(!busy.is_busy(&target(dir.path(), "f")));
        assert!(matches!(
            LocalUpload::open(&busy, target(dir.path(), "f"), Start::Fresh, false),
            Err(StorageError::Exists)
        ));

        let mut up = LocalUpload::open(&busy, target(dir.path(), "f"), Start::Fresh, true).unwrap();
        write(&mut up, b"mine");
        commit(up).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"mine");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["f"]);
    }

    #[test]
    fn resumes_and_appends_to_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        let t = || target(dir.path(), "f");
        let mut up = LocalUpload::open(&busy, t(), Start::Fresh, false).unwrap();
        write(&mut up, b"abcdef");
        drop(up); // interrupted: the partial file stays
        assert!(matches!(
            LocalUpload::open(&busy, t(), Start::Resume(7), false),
            Err(StorageError::BeyondPartial { .. })
        ));
        let mut up = LocalUpload::open(&busy, t(), Start::Resume(4), false).unwrap();
        assert_eq!(up.offset(), 4);
        write(&mut up, b"XY");
        drop(up);
        let mut up = LocalUpload::open(&busy, t(), Start::Append, false).unwrap();
        assert_eq!(up.offset(), 6);
        write(&mut up, b"!");
        commit(up).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"abcdXY!");
        assert_eq!(partial_size(&t()), None);
        assert!(matches!(LocalUpload::open(&busy, t(), Start::Append, false), Err(StorageError::Exists)));
        assert!(matches!(
            LocalUpload::open(&busy, target(dir.path(), "g"), Start::Resume(1), false),
            Err(StorageError::NothingToResume)
        ));
    }

    #[test]
    fn appending_with_overwrite_changes_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        std::fs::write(dir.path().join("f"), b"base").unwrap();
        let mut up = LocalUpload::open(&busy, target(dir.path(), "f"), Start::Append, true).unwrap();
        write(&mut up, b"+more");
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"base");
        commit(up).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"base+more");

        // An interrupted replacement leaves a partial beside the complete file: appending is
        // then refused (to which of the two?), and the partial resumes with REST.
        let mut up = LocalUpload::open(&busy, target(dir.path(), "f"), Start::Fresh, true).unwrap();
        write(&mut up, b"new");
        drop(up);
        let refused = LocalUpload::open(&busy, target(dir.path(), "f"), Start::Append, true);
        assert!(matches!(refused, Err(StorageError::PartialPending { size: 3 })), "{refused:?}");
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"base+more");
        let mut up = LocalUpload::open(&busy, target(dir.path(), "f"), Start::Resume(3), true).unwrap();
        write(&mut up, b" version");
        commit(up).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new version");
    }

    #[test]
    fn unique_names_skip_taken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        std::fs::write(dir.path().join("u"), b"").unwrap();
        let first = LocalUpload::open_unique(&busy, target(dir.path(), "u")).unwrap();
        assert_eq!(first.name(), "u.1");
        let second = LocalUpload::open_unique(&busy, target(dir.path(), "u")).unwrap();
        assert_eq!(second.name(), "u.2");
        commit(first).unwrap();
        crate::storage::Upload::discard(Box::new(second));
        assert!(dir.path().join("u.1").exists() && !dir.path().join("u.2").exists());
    }

    #[test]
    fn refuses_directories_and_long_names() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert!(matches!(
            LocalUpload::open(&busy, target(dir.path(), "d"), Start::Fresh, true),
            Err(StorageError::ExistsNotAFile)
        ));
        // Up to the file system's limit a name gets a partial file; beyond it, no upload.
        assert!(LocalUpload::open(&busy, target(dir.path(), &"x".repeat(255)), Start::Fresh, false).is_ok());
        let long = "x".repeat(256);
        assert!(matches!(
            LocalUpload::open(&busy, target(dir.path(), &long), Start::Fresh, false),
            Err(StorageError::NameTooLong)
        ));
    }

    #[test]
    fn private_uploads_never_wait_and_the_first_commit_wins() {
        let dir = tempfile::tempdir().unwrap();
        let busy = Busy::default();
        let t = || target(dir.path(), "cfg");
        // An abandoned attempt holds nothing: a retry starts at once.
        let abandoned = LocalUpload::open(&busy, t(), Start::Private, false).unwrap();
        let mut first = LocalUpload::open(&busy, t(), Start::Private, false).unwrap();
        let mut second = LocalUpload::open(&busy, t(), Start::Private, false).unwrap();
        write(&mut first, b"first");
        write(&mut second, b"second");
        drop(abandoned);
        commit(first).unwrap();
        assert!(matches!(commit(second), Err(StorageError::Exists)));
        assert_eq!(std::fs::read(dir.path().join("cfg")).unwrap(), b"first");
        // Nothing is left behind: no partial, no temporaries.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["cfg"]);
        assert_eq!(partial_size(&t()), None);
    }

    #[test]
    fn stale_partials_expire_unless_an_upload_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let busy = Busy::default();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86400);
        for name in [".a.ftpart", "sub/.b.ftpart", ".held.ftpart", "keep.txt"] {
            let file = File::create(dir.path().join(name)).unwrap();
            file.set_modified(old).unwrap();
        }
        std::fs::write(dir.path().join(".fresh.ftpart"), b"x").unwrap();
        let _held = busy.claim(&dir.path().join(".held.ftpart")).unwrap();
        assert_eq!(expire(dir.path(), &busy, std::time::Duration::from_secs(86400)), 2);
        let mut left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, [".fresh.ftpart", ".held.ftpart", "keep.txt", "sub"]);
        assert!(!dir.path().join("sub/.b.ftpart").exists());
    }
}
