//! Local files for downloads: the final name, the temporary `.NAME.ftpart` file beside it, the
//! writer that (with `--fsync`) pushes its data to disk while the download runs, the free-space
//! check, and the move into place that never replaces an existing file the client named itself
//! (NAME.1, NAME.2, ... as wget does) unless asked to; a name the user gave (`-o PATH`) is
//! replaced atomically, as curl `-o` and wget `-O` do.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// After this many bytes, the data written so far is handed to the disk in the background.
const EARLY_SYNC_EVERY: u64 = 64 << 20;

/// A file being written. With `durable` (`--fsync`), its data goes to disk in the background
/// (`fdatasync` on a helper thread every [`EARLY_SYNC_EVERY`] bytes) while more arrives; the
/// final sync before the rename then has only the last part left to wait for, and the page
/// cache never holds a whole big file dirty. Without it (the default, as curl, wget and lftp)
/// it is a plain file: the rename after the checks already keeps incomplete data away from
/// the final name while the machine stays up.
#[derive(Debug)]
pub struct SyncingFile {
    file: File,
    durable: bool,
    since: u64,
    kick: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SyncingFile {
    /// Wraps `file`, syncing it when `durable`. The helper thread starts only once a file
    /// grows past [`EARLY_SYNC_EVERY`], so small files (trees of thousands) cost no thread.
    pub fn new(file: File, durable: bool) -> SyncingFile {
        SyncingFile { file, durable, since: 0, kick: None, thread: None }
    }

    /// Asks the helper thread (started on first use) to sync what was written so far.
    fn sync_in_background(&mut self) {
        if self.kick.is_none() && self.thread.is_none() {
            // Without a second handle (rare) the file is just a file: the final sync does all.
            let Ok(clone) = self.file.try_clone() else { return };
            let (tx, rx) = mpsc::sync_channel::<()>(1);
            // Errors are left to the final sync, which reports them.
            self.thread = Some(std::thread::spawn(move || rx.iter().for_each(|()| drop(clone.sync_data()))));
            self.kick = Some(tx);
        }
        if let Some(kick) = &self.kick {
            // A sync still running covers these bytes soon enough: never wait for it.
            let _ = kick.try_send(());
        }
    }

    /// The file is complete: when `durable`, waits for the background syncs, then makes
    /// everything durable (data and size).
    pub fn finish(mut self) -> io::Result<()> {
        self.stop();
        if self.durable {
            self.file.sync_all()?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        self.kick = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for SyncingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.since += n as u64;
        if self.durable && self.since >= EARLY_SYNC_EVERY {
            self.since = 0;
            self.sync_in_background();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for SyncingFile {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How many numbered alternatives (`NAME.1` ... ) are tried before giving up.
const MAX_ALTERNATIVES: u32 = 9999;

/// An exclusive lock on a download's temporary file, taken before the file is written and held
/// until it got its final name or the download failed. Without it two ftclient processes
/// downloading into the same name wrote into the same `.NAME.ftpart`, and one could report a
/// file saved that held the other's bytes; now the second fails at once.
///
/// It is an open file description lock (`F_OFD_SETLK`): released by the kernel when the last
/// descriptor of the open file closes (no unlock call), and it conflicts between the parallel
/// workers of one process too. The download writes through a duplicate of the lock's own
/// descriptor ([`PartLock::writer`]), so locking costs one `fcntl` and one `dup` per file.
/// Dropped without [`PartLock::committed`], it removes an empty temporary file it created (a
/// download that failed before its first byte leaves nothing behind).
#[derive(Debug)]
pub struct PartLock {
    file: File,
    path: PathBuf,
    created: bool,
    committed: bool,
}

impl PartLock {
    /// Opens (creating it if need be) and locks `part`; fails at once if another download
    /// holds it. An existing `part` must be a regular file: a symbolic link there is never
    /// followed (someone who can write the directory could point it at any file of ours), and
    /// a FIFO or device is refused without waiting on it.
    pub fn acquire(part: &Path) -> Result<PartLock> {
        use std::os::unix::fs::OpenOptionsExt;
        let cannot = || format!("cannot create {}", part.display());
        // The holder may rename or remove the file between our open and our lock: a lock on a
        // file no longer under that name protects nothing, so open again.
        for _ in 0..8 {
            let (file, created) = match std::fs::OpenOptions::new().write(true).create_new(true).open(part) {
                Ok(file) => (file, true),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let existing = std::fs::OpenOptions::new()
                        .write(true)
                        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
                        .open(part);
                    match existing {
                        Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => {
                            nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()))
                                .map_err(io::Error::from)
                                .with_context(cannot)?;
                            (file, false)
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                            bail!("{} is a symbolic link; ftclient does not write through one", part.display())
                        }
                        // ENXIO: a FIFO nobody reads.
                        Ok(_) => bail!("{} exists and is not a regular file", part.display()),
                        Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) => {
                            bail!("{} exists and is not a regular file", part.display())
                        }
                        Err(e) => return Err(e).with_context(cannot),
                    }
                }
                Err(e) => return Err(not_created(part, e)),
            };
            let whole = nix::libc::flock {
                l_type: nix::libc::F_WRLCK as i16,
                l_whence: nix::libc::SEEK_SET as i16,
                l_start: 0,
                l_len: 0,
                l_pid: 0,
            };
            match nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_SETLK(&whole)) {
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => bail!(
                    "{} is being written by another download into the same name; wait for it to finish",
                    part.display()
                ),
                // A file system without locks (NFS without lockd, some FUSE ones): download
                // as before locks, rather than not at all.
                Err(e @ (nix::errno::Errno::ENOLCK | nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::EINVAL)) => {
                    log::warn!("cannot lock {} ({e}); downloading without the lock", part.display());
                }
                Err(e) => return Err(io::Error::from(e)).with_context(|| format!("cannot lock {}", part.display())),
            }
            // A file we created is ours by that name: nobody could have renamed it before the
            // lock without holding it first (and then our lock would have failed).
            if created || is_named(&file, part) {
                return Ok(PartLock { file, path: part.to_owned(), created, committed: false });
            }
        }
        bail!("{} keeps being replaced; is another download into the same name running?", part.display())
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the temporary file was created by this lock (there was nothing to resume).
    pub fn created(&self) -> bool {
        self.created
    }

    /// The bytes the temporary file holds.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// A handle to write the temporary file through (it shares the lock), at its start with
    /// nothing in it (a file the lock created is empty already: one system call less per file
    /// of a tree).
    pub fn fresh_writer(&self) -> Result<File> {
        let file = self.writer()?;
        if !self.created {
            file.set_len(0).with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        Ok(file)
    }

    /// A handle to write the temporary file through (it shares the lock).
    pub fn writer(&self) -> Result<File> {
        self.file.try_clone().with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// The file got its final name: nothing to clean up.
    pub fn committed(&mut self) {
        self.committed = true;
    }
}

impl Drop for PartLock {
    fn drop(&mut self) {
        if self.created
            && !self.committed
            && self.file.metadata().is_ok_and(|m| m.len() == 0)
            && is_named(&self.file, &self.path)
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why the temporary file `part` could not be created. When the directory is at fault (not
/// writable, on a read-only file system, missing), the message names the directory: the user
/// never asked for `.NAME.ftpart` and cannot act on its name.
fn not_created(part: &Path, err: io::Error) -> anyhow::Error {
    let dir = shown_dir(part.parent().unwrap_or(Path::new("")));
    match err.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            anyhow::anyhow!("cannot save into {dir}: {}", crate::report::io_reason(&err))
        }
        io::ErrorKind::NotFound => anyhow::anyhow!("cannot save into {dir}: no such directory"),
        _ => anyhow::Error::new(err).context(format!("cannot create {}", part.display())),
    }
}

/// Is `file` the file `path` names now (same device and inode)?
fn is_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Standard output for a download's bytes: its descriptor written directly where it can be
/// duplicated (Rust's stdout is line-buffered, which splits every chunk of binary data at its
/// last newline: two writes instead of one).
pub fn stdout_writer() -> Box<dyn Write> {
    use std::os::fd::AsFd;
    match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(File::from(fd)),
        Err(_) => Box::new(std::io::stdout().lock()),
    }
}

/// Opens a device or FIFO ([`is_special`]) to write a download straight into it.
pub fn open_special(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new().write(true).open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// Does `path` exist as something other than a regular file or a directory (a character
/// device, a FIFO, a socket)? A download into one writes straight into it: there is no
/// temporary file to rename onto it, and replacing it with a regular file would break it.
/// Symbolic links are followed, as `cp` does.
pub fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// Fails when the file system that holds `dir` has room for fewer than `needed` more bytes
/// (for an unprivileged writer: statvfs `f_bavail`, what `df` shows), before a transfer that
/// could only end in a full disk starts. A file system that cannot say is not checked.
pub fn check_space(dir: &Path, needed: u64) -> Result<()> {
    let at = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    let Ok(stats) = nix::sys::statvfs::statvfs(at) else { return Ok(()) };
    let free = stats.blocks_available().saturating_mul(stats.fragment_size());
    if free < needed {
        bail!(
            "not enough disk space in {}: the download needs {} more, {} are free",
            shown_dir(dir),
            amount(needed),
            amount(free)
        );
    }
    Ok(())
}

/// Did `err` come from a full disk (or a full quota)?
pub fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|e| matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
}

/// `3.01 MiB (3157073 bytes)`.
pub fn amount(bytes: u64) -> String {
    if bytes < 1024 {
        return if bytes == 1 { "1 byte".into() } else { format!("{bytes} bytes") };
    }
    format!("{} ({bytes} bytes)", indicatif::BinaryBytes(bytes))
}

/// A directory as messages name it: `.` for the current one.
pub fn shown_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".into()
    } else {
        dir.display().to_string()
    }
}

/// Where a download is going: a directory and the file name wanted in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    dir: PathBuf,
    name: OsString,
    /// The user named this file (`-o PATH`): it is replaced, as curl `-o` and wget `-O` do.
    /// A name the client chose (the remote base name) is never replaced without
    /// `--overwrite`; the copy goes to NAME.1, NAME.2, ... instead.
    named: bool,
}

/// The last component of a remote path (`docs/a.txt` -> `a.txt`); `None` when there is no
/// usable name (`docs/`, `..`).
pub fn remote_base_name(remote: &str) -> Option<&str> {
    let base = remote.rsplit('/').next()?;
    (!base.is_empty() && base != "." && base != "..").then_some(base)
}

impl Target {
    /// The target for remote file `remote`: `output` when given (a directory means the remote
    /// base name inside it), else the remote base name in the current directory.
    pub fn new(output: Option<&Path>, remote: &str) -> Result<Target> {
        let base = || match remote_base_name(remote) {
            Some(base) => Ok(OsString::from(base)),
            None => bail!(
                "cannot derive a local file name from the remote path {}; name one with -o PATH",
                common::text::sanitize(remote)
            ),
        };
        match output {
            None => Ok(Target { dir: PathBuf::new(), name: base()?, named: false }),
            Some(path) if path.is_dir() => Ok(Target { dir: path.to_owned(), name: base()?, named: false }),
            // `DIR/` names a directory, never a file `DIR` (curl and wget refuse it too).
            Some(path) if path.as_os_str().as_encoded_bytes().ends_with(b"/") => {
                let exists = std::fs::symlink_metadata(path.components().as_path()).is_ok();
                let why = if exists { "it is not a directory" } else { "no such directory" };
                bail!("cannot save to {}: {why}", path.display())
            }
            Some(path) => match path.file_name() {
                Some(name) => {
                    let dir = path.parent().unwrap_or(Path::new(""));
                    Ok(Target { dir: dir.to_owned(), name: name.to_owned(), named: true })
                }
                None => bail!("cannot save to {}: expected a file name", path.display()),
            },
        }
    }

    /// The file `name` in `dir`, exactly (tree transfers, where the name comes from a listing).
    pub fn in_dir(dir: &Path, name: &str) -> Target {
        Target { dir: dir.to_owned(), name: OsString::from(name), named: false }
    }

    /// Fails when the name is longer than the file system allows (255 bytes), before anything
    /// is transferred: `-o PATH` names a shorter one.
    pub fn check_name(&self) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let len = self.name.as_bytes().len();
        if len > common::path::NAME_MAX {
            bail!(
                "cannot save as {}: the name is {len} bytes, longer than the {} a file name may have; name the copy with -o PATH",
                self.path().display(),
                common::path::NAME_MAX
            );
        }
        Ok(())
    }

    /// Whether an existing file under this name is replaced: the user named it (`-o PATH`)
    /// or asked for `--overwrite`.
    pub fn replaces(&self, overwrite: bool) -> bool {
        overwrite || self.named
    }

    /// The directory the file goes into (empty: the current one).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name asked for.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// The temporary file: `.NAME.ftpart` in the same directory (shortened for a long name,
    /// see `common::path::partial_name`), so the final rename is atomic and `--resume` finds it
    /// again.
    pub fn part_path(&self) -> PathBuf {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        self.dir.join(OsString::from_vec(common::path::partial_name(self.name.as_bytes())))
    }

    /// NAME.n, with NAME shortened (between characters) when NAME.n would pass 255 bytes.
    fn numbered(&self, n: u32) -> PathBuf {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        if n == 0 {
            return self.path();
        }
        let suffix = format!(".{n}");
        let name = self.name.as_bytes();
        let mut keep = name.len().min(common::path::NAME_MAX - suffix.len());
        while keep > 0 && keep < name.len() && name[keep] & 0xc0 == 0x80 {
            keep -= 1;
        }
        let mut numbered = name[..keep].to_vec();
        numbered.extend_from_slice(suffix.as_bytes());
        self.dir.join(OsString::from_vec(numbered))
    }

    /// Moves the finished `part` file into place and returns where it went. With `replace`
    /// ([`Target::replaces`]) the target is replaced atomically (a rename); otherwise the first free name of NAME, NAME.1,
    /// NAME.2, ... is taken without ever replacing a file that appears in the meantime.
    pub fn commit(&self, part: &Path, replace: bool) -> io::Result<PathBuf> {
        if replace {
            let path = self.path();
            std::fs::rename(part, &path)?;
            return Ok(path);
        }
        for n in 0..=MAX_ALTERNATIVES {
            let candidate = self.numbered(n);
            // renameat2(RENAME_NOREPLACE) fails if the name exists, so no check-then-rename
            // race can clobber a file; it is one directory operation where link + unlink are
            // two (which matters for trees of small files).
            match no_replace_rename(part, &candidate) {
                Ok(()) => return Ok(candidate),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                // Not supported by this file system (or kernel): a hard link also refuses an
                // existing name.
                Err(_) => {}
            }
            // File systems without hard links fall back to the racy check.
            match std::fs::hard_link(part, &candidate) {
                Ok(()) => {
                    std::fs::remove_file(part)?;
                    return Ok(candidate);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) if !exists(&candidate)? => {
                    std::fs::rename(part, &candidate)?;
                    return Ok(candidate);
                }
                Err(_) => continue,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} and {MAX_ALTERNATIVES} numbered alternatives exist", self.path().display()),
        ))
    }
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`), atomically.
fn no_replace_rename(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
        renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE).map_err(io::Error::from)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (from, to);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

fn exists(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_fit_the_name_limit() {
        use std::os::unix::ffi::OsStrExt;
        let t = Target::in_dir(Path::new("d"), "a.txt");
        assert_eq!(t.numbered(2), PathBuf::from("d/a.txt.2"));
        for name in ["x".repeat(254), "é".repeat(127), "y".repeat(255)] {
            let t = Target::in_dir(Path::new(""), &name);
            for n in [1, 10, 9999] {
                let numbered = t.numbered(n);
                let bytes = numbered.as_os_str().as_bytes();
                assert!(bytes.len() <= 255, "{}", bytes.len());
                let text = std::str::from_utf8(bytes).expect("cut between characters");
                assert!(
                    text.ends_with(&format!(".{n}")) && name.starts_with(text.rsplit_once('.').unwrap().0),
                    "{text}"
                );
            }
        }
        assert!(Target::in_dir(Path::new(""), &"z".repeat(255)).check_name().is_ok());
        assert!(Target::in_dir(Path::new(""), &"z".repeat(256)).check_name().is_err());
    }

    #[test]
    fn derives_names() {
        for (remote, expected) in [
            ("a.txt", Some("a.txt")),
            ("docs/a b.txt", Some("a b.txt")),
            ("/abs/x", Some("x")),
            ("docs/", None),
            ("..", None),
            ("docs/.", None),
            ("", None),
        ] {
            assert_eq!(remote_base_name(remote), expected, "{remote:?}");
        }
        let t = Target::new(None, "docs/a.txt").unwrap();
        assert_eq!((t.path(), t.part_path()), (PathBuf::from("a.txt"), PathBuf::from(".a.txt.ftpart")));
        let t = Target::new(Some(Path::new("out/b.bin")), "docs/a.txt").unwrap();
        assert_eq!((t.path(), t.part_path()), (PathBuf::from("out/b.bin"), PathBuf::from("out/.b.bin.ftpart")));
        let t = Target::new(Some(Path::new("b.bin")), "docs/").unwrap();
        assert_eq!(t.path(), PathBuf::from("b.bin"));
        // A name the user gave is replaced; one the client derived is not (without --overwrite).
        assert!(t.replaces(false));
        assert!(!Target::new(None, "docs/a.txt").unwrap().replaces(false));
        assert!(!Target::in_dir(Path::new("d"), "a").replaces(false));
        assert!(Target::in_dir(Path::new("d"), "a").replaces(true));
        assert!(Target::new(None, "docs/").is_err());
    }

    #[test]
    fn never_replaces_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target::new(Some(&dir.path().join("f")), "f").unwrap();
        let finish = |content: &str, overwrite: bool| {
            std::fs::write(target.part_path(), content).unwrap();
            let path = target.commit(&target.part_path(), overwrite).unwrap();
            assert!(!target.part_path().exists());
            path.file_name().unwrap().to_str().unwrap().to_owned()
        };
        assert_eq!(finish("one", false), "f");
        assert_eq!(finish("two", false), "f.1");
        assert_eq!(finish("three", false), "f.2");
        assert_eq!(finish("four", true), "f");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!((read("f").as_str(), read("f.1").as_str(), read("f.2").as_str()), ("four", "two", "three"));
    }

    #[test]
    fn a_syncing_file_writes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for durable in [true, false] {
            let mut file = SyncingFile::new(File::create(&path).unwrap(), durable);
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..(EARLY_SYNC_EVERY >> 20) + 3 {
                file.write_all(&chunk).unwrap();
            }
            assert_eq!(file.thread.is_some(), durable, "only durable files sync in the background");
            file.finish().unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), EARLY_SYNC_EVERY + (3 << 20));
        }
    }

    #[test]
    fn a_directory_output_keeps_the_remote_name() {
        let dir = tempfile::tempdir().unwrap();
        let t = Target::new(Some(dir.path()), "x/y.bin").unwrap();
        assert_eq!(t.path(), dir.path().join("y.bin"));
    }
}
