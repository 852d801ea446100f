//! Why a storage operation failed, and the one place each kind becomes an FTP reply code and a
//! TFTP error code.

use common::tftp::ErrorCode;
use std::io;

/// Why a storage operation failed. [`StorageError::reply_code`] and
/// [`StorageError::tftp_code`] choose what the client is told.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Nothing by that name (or a component of the path is missing).
    #[error("no such file or directory")]
    NotFound,
    /// The backend refused access.
    #[error("permission denied")]
    PermissionDenied,
    /// The path resolves (through a link) to somewhere outside the served tree.
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
    /// `MKD` of a name that exists.
    #[error("already exists")]
    AlreadyExists,
    /// `RMD` of a directory that still has entries.
    #[error("directory not empty")]
    DirectoryNotEmpty,
    /// An upload's name exists and replacing is not allowed.
    #[error("file exists (this server never replaces files)")]
    Exists,
    /// An upload's name exists and is not a regular file.
    #[error("exists and is not a regular file")]
    ExistsNotAFile,
    /// Another client is uploading the same name right now.
    #[error("being uploaded by another client, try again later")]
    Busy,
    /// The name itself exceeds the 255-byte file name limit.
    #[error("file name too long for an upload")]
    NameTooLong,
    /// `REST n` with `n > 0`, but no interrupted upload of that name.
    #[error("no interrupted upload to resume")]
    NothingToResume,
    /// `REST n` beyond what the interrupted upload holds.
    #[error("restart offset {offset} is beyond the {size} bytes uploaded so far")]
    BeyondPartial {
        /// The offset asked for.
        offset: u64,
        /// The interrupted upload's size.
        size: u64,
    },
    /// A read offset beyond the end of the file.
    #[error("restart offset {offset} is beyond the end of the file ({size} bytes)")]
    BeyondEnd {
        /// The offset asked for.
        offset: u64,
        /// The file's size.
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
        /// The interrupted upload's size.
        size: u64,
    },
    /// The disk (or a quota) is full.
    #[error("{}", io_text(.0))]
    Full(io::Error),
    /// The backend cannot be reached (a database that is down); worth trying again later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Some other failure.
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

/// Is this the disk (or a quota) being full?
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => StorageError::NotFound,
            io::ErrorKind::PermissionDenied => StorageError::PermissionDenied,
            _ if is_disk_full(&e) => StorageError::Full(e),
            _ => StorageError::Io(e),
        }
    }
}

impl StorageError {
    /// The FTP reply code (RFC 959 4.2, RFC 3659 5.5): `550` for paths, whatever the reason,
    /// so a client cannot tell a missing file from a forbidden one; `553` for names an upload
    /// cannot use; `450` for a name busy right now; `554` for a bad restart offset; `452` for
    /// a full disk; `451` for other local errors.
    pub fn reply_code(&self) -> u16 {
        match self {
            StorageError::NotFound
            | StorageError::PermissionDenied
            | StorageError::OutsideRoot
            | StorageError::NotADirectory
            | StorageError::NotAFile
            | StorageError::IsRoot
            | StorageError::AlreadyExists
            | StorageError::DirectoryNotEmpty => 550,
            StorageError::Exists
            | StorageError::ExistsNotAFile
            | StorageError::NameTooLong
            | StorageError::NoUniqueName => 553,
            StorageError::Busy | StorageError::PartialPending { .. } => 450,
            StorageError::NothingToResume | StorageError::BeyondPartial { .. } | StorageError::BeyondEnd { .. } => 554,
            StorageError::Full(_) => 452,
            StorageError::Unavailable(_) | StorageError::Io(_) => 451,
        }
    }

    /// The TFTP error code (RFC 1350 appendix).
    pub fn tftp_code(&self) -> ErrorCode {
        match self {
            StorageError::NotFound | StorageError::NotAFile | StorageError::NotADirectory => ErrorCode::FileNotFound,
            StorageError::PermissionDenied
            | StorageError::OutsideRoot
            | StorageError::IsRoot
            | StorageError::ExistsNotAFile
            | StorageError::NameTooLong => ErrorCode::AccessViolation,
            StorageError::Exists | StorageError::AlreadyExists => ErrorCode::FileExists,
            StorageError::Full(_) => ErrorCode::DiskFull,
            StorageError::Io(e) => match e.kind() {
                io::ErrorKind::AlreadyExists => ErrorCode::FileExists,
                _ => ErrorCode::NotDefined,
            },
            StorageError::DirectoryNotEmpty
            | StorageError::Busy
            | StorageError::NothingToResume
            | StorageError::BeyondPartial { .. }
            | StorageError::BeyondEnd { .. }
            | StorageError::NoUniqueName
            | StorageError::PartialPending { .. }
            | StorageError::Unavailable(_) => ErrorCode::NotDefined,
        }
    }

    /// The TFTP error message: short words a device's log can show.
    pub fn tftp_message(&self) -> String {
        match self {
            StorageError::Full(_) => "disk full or quota exceeded".to_owned(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_without_the_os_error_number() {
        let e = io::Error::from_raw_os_error(21);
        assert_eq!(StorageError::Io(e).to_string(), "Is a directory");
        assert_eq!(io_text(&io::Error::other("plain")), "plain");
    }

    #[test]
    fn every_kind_has_its_codes() {
        let full = || StorageError::from(io::Error::from(io::ErrorKind::StorageFull));
        for (err, ftp, tftp) in [
            (StorageError::NotFound, 550, ErrorCode::FileNotFound),
            (StorageError::OutsideRoot, 550, ErrorCode::AccessViolation),
            (StorageError::Exists, 553, ErrorCode::FileExists),
            (StorageError::Busy, 450, ErrorCode::NotDefined),
            (StorageError::BeyondPartial { offset: 2, size: 1 }, 554, ErrorCode::NotDefined),
            (full(), 452, ErrorCode::DiskFull),
            (StorageError::Unavailable("down".into()), 451, ErrorCode::NotDefined),
        ] {
            assert_eq!((err.reply_code(), err.tftp_code()), (ftp, tftp), "{err}");
        }
        assert!(matches!(StorageError::from(io::Error::from_raw_os_error(2)), StorageError::NotFound));
    }
}
