//! The storage seam: everything the FTP and TFTP front ends do to files goes through the
//! [`Storage`] trait, so a backend (a local directory today, a database tomorrow) is one
//! implementation of one trait, and nothing above it opens a path.
//!
//! The trait is blocking, like the rest of the server, and speaks in [`VirtualPath`]s: a
//! backend decides what a path means and keeps every client inside the tree it serves. Uploads
//! are push-style ([`Upload`] is a `Write`) and become visible only through an explicit,
//! atomic [`Upload::commit`]; dropping an upload without committing leaves nothing under the
//! final name (an FTP upload stays resumable, see [`Start`]).
//!
//! Each error kind maps to one FTP reply code and one TFTP error code, in [`error`].

pub mod error;
pub mod local;
pub mod postgres;

pub use error::StorageError;
pub use local::LocalStorage;

use common::path::VirtualPath;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

/// What kind of entry a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file: it can be read and its size is its length.
    File,
    /// A directory: it can be listed and entered.
    Dir,
    /// Anything else (a FIFO, a device, a socket): listed, never read.
    Other,
}

/// What a listing shows of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// File, directory or other.
    pub kind: Kind,
    /// The size in bytes (of a file; whatever the backend says for others).
    pub len: u64,
    /// The last modification, in UTC seconds since the epoch, when known.
    pub modified: Option<i64>,
    /// Unix permission bits (`0o644`), with the file type bits for [`Kind::Other`] entries, so
    /// a LIST line can show `p`, `c`, `b` or `s`; `None` when the backend has no modes.
    pub mode: Option<u32>,
}

impl Meta {
    /// Is this a directory?
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }

    /// Is this a regular file?
    pub fn is_file(&self) -> bool {
        self.kind == Kind::File
    }
}

/// What identifies a file's contents without reading them, for the digest cache: equal
/// identities mean equal contents. A local file's is its device, inode, size and timestamps; a
/// backend that cannot tell gives none, and its digests are never cached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity(pub Vec<u64>);

/// A file opened for reading, positioned at the offset it was opened at.
pub trait FileReader: Read + Send {
    /// A descriptor whose own file position is where reading continues, when the bytes are in
    /// a local file: the data connection then sends them with `sendfile(2)`, and must read
    /// through this descriptor only (reads through it advance the same position).
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// The identity of the contents (see [`Identity`]), as they are now.
    fn identity(&self) -> Option<Identity> {
        None
    }

    /// A digest the backend stored with the file, so `HASH` needs no read: `(algorithm name as
    /// on the wire, e.g. "SHA-256", digest bytes)`.
    fn stored_digest(&self, _algorithm: &str) -> Option<Vec<u8>> {
        None
    }
}

/// A file opened for reading, with what a transfer needs to know first.
pub struct Opened {
    /// The bytes, from the offset asked for.
    pub reader: Box<dyn FileReader>,
    /// The file's metadata when it was opened (its length is the whole file's).
    pub meta: Meta,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// Where an upload starts writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `STOR`/`STOU` without `REST`: a new resumable partial upload (an earlier interrupted
    /// one of the same name is started over).
    Fresh,
    /// `REST n` + `STOR`: continue the interrupted upload of the name from byte `n`.
    Resume(u64),
    /// `APPE`: continue at the end of the interrupted upload (a new one if there is none).
    Append,
    /// An upload nobody can resume (TFTP): it writes a temporary of its own, so a client's
    /// retry never waits for an abandoned attempt, and concurrent uploads of one name never
    /// share bytes; the commit decides which one (if any) gets the name.
    Private,
}

/// The protocol an upload came in by, for the backend's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// FTP.
    Ftp,
    /// TFTP.
    Tftp,
}

impl Protocol {
    /// Lower-case name, for logs and records.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ftp => "ftp",
            Protocol::Tftp => "tftp",
        }
    }
}

/// Who is uploading: what a backend that keeps an upload log records.
#[derive(Debug, Clone)]
pub struct Uploader {
    /// The client's address.
    pub peer: SocketAddr,
    /// The login name (sanitised), `None` for TFTP.
    pub user: Option<String>,
    /// How the file came.
    pub protocol: Protocol,
}

/// How an upload begins: where, from where, and whether an existing file may be replaced.
#[derive(Debug, Clone)]
pub struct UploadSpec {
    /// Where the bytes start.
    pub start: Start,
    /// Replace an existing file at commit (`--overwrite`); otherwise the commit fails when the
    /// name exists, decided atomically by the backend.
    pub overwrite: bool,
    /// For the backend's records.
    pub uploader: Uploader,
}

/// An upload in progress. Bytes written go to a place no client can see; [`Upload::commit`]
/// publishes them under the final name in one atomic step. Dropping it without a commit keeps
/// a resumable upload for later ([`Start::Fresh`], [`Start::Resume`], [`Start::Append`]) or
/// throws a [`Start::Private`] one away.
pub trait Upload: Write + Send {
    /// The offset the upload started writing at (0 for a new upload).
    fn offset(&self) -> u64;

    /// The final name (for `STOU`'s reply, which may differ from the one asked for).
    fn name(&self) -> &str;

    /// Publishes the upload under its final name, after flushing what was written. Without
    /// `overwrite` this fails with [`StorageError::Exists`] if the name appeared meanwhile,
    /// and the upload is thrown away. Returns the identity of the published contents, for the
    /// digest cache.
    fn commit(self: Box<Self>) -> Result<Option<Identity>, StorageError>;

    /// Throws the upload away, partial bytes included (disk full, size limit, TFTP failures).
    fn discard(self: Box<Self>);
}

/// One served tree. See the module documentation.
pub trait Storage: Send + Sync + std::fmt::Debug {
    /// A short description for the ready line and logs (a directory, a database).
    fn describe(&self) -> String;

    /// Metadata of whatever `path` names (links inside the tree followed).
    fn stat(&self, path: &VirtualPath) -> Result<Meta, StorageError>;

    /// The entries of a directory, sorted by name, with their metadata. Entries no client
    /// could name again, or may not see, are left out.
    fn list(&self, dir: &VirtualPath) -> Result<Vec<(String, Meta)>, StorageError>;

    /// Checks that `path` is a directory that can be listed (for `CWD`).
    fn require_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        match self.stat(path)? {
            meta if meta.is_dir() => self.list(path).map(drop),
            _ => Err(StorageError::NotADirectory),
        }
    }

    /// Opens a regular file for reading from `offset` (which may be its length, not more).
    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<Opened, StorageError>;

    /// Begins an upload to `path` (see [`Start`]). An existing name without
    /// [`UploadSpec::overwrite`] is refused here, and again atomically at commit.
    fn begin_upload(&self, path: &VirtualPath, spec: UploadSpec) -> Result<Box<dyn Upload>, StorageError>;

    /// Begins an upload under a name that does not exist yet (`STOU`): `path`'s name, else that
    /// name with `.1`, `.2`, ... appended.
    fn begin_unique(&self, path: &VirtualPath, uploader: Uploader) -> Result<Box<dyn Upload>, StorageError>;

    /// The size of the interrupted upload of `path`, if there is one (what `SIZE` reports for
    /// a name that has only an interrupted upload, so clients can resume).
    fn partial_size(&self, path: &VirtualPath) -> Option<u64>;

    /// Creates one directory (never replaces anything).
    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError>;

    /// Removes a file (a link itself, never its target).
    fn remove_file(&self, path: &VirtualPath) -> Result<(), StorageError>;

    /// Removes an empty directory.
    fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError>;

    /// Checks that `path` names an existing entry that [`Storage::rename`] could move.
    fn check_rename_source(&self, path: &VirtualPath) -> Result<(), StorageError>;

    /// Renames an entry; an existing destination file is replaced (the caller checked the
    /// client may).
    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError>;

    /// Free bytes for an upload into `dir`, when known.
    fn free_space(&self, dir: &VirtualPath) -> Option<u64>;

    /// Removes interrupted uploads untouched for longer than `age` that nobody is writing now,
    /// so anonymous uploaders cannot fill the storage with partial files no listing shows.
    /// Returns how many went.
    fn expire_partials(&self, age: std::time::Duration) -> Result<u64, StorageError>;
}

/// For a command that acts on a file: `arg`, which resolved to `path`, may end in `/` or `/.`
/// only when it names a directory (normalising drops those endings, and `a.txt/` must not
/// reach `a.txt`, nor `STOR new/` create a file `new`).
pub fn check_file_arg(storage: &dyn Storage, arg: &str, path: &VirtualPath) -> Result<(), StorageError> {
    if common::path::names_a_directory(arg) && !storage.stat(path).is_ok_and(|m| m.is_dir()) {
        return Err(StorageError::NotADirectory);
    }
    Ok(())
}
