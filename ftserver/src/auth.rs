//! The authentication seam: a login is one call, [`Authenticator::login`], and its result, a
//! [`Principal`], carries everything a session needs to know about who is there: the root they
//! see as `/` and what they may do. Every command asks the principal, never a server flag.
//!
//! Today's rule is the only implementation: [`Anonymous`], anyone with any password, with the
//! rights the server was started with (read-only unless `--writable`). Named accounts with
//! password hashes are a second implementation of the same trait.

use common::path::VirtualPath;
use std::net::IpAddr;

/// What a principal may do (the permission words of SFTPGo, grouped as the server's options
/// group them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights {
    /// Upload new files (STOR, APPE and STOU onto free names, resuming its own interrupted
    /// uploads) and create directories.
    pub upload: bool,
    /// Replace and append to existing files, delete files and directories, rename.
    pub change: bool,
}

impl Rights {
    /// Read-only: list and download.
    pub const READ: Rights = Rights { upload: false, change: false };

    /// The rights the server's `--writable` and `--overwrite` options give.
    pub fn from_options(writable: bool, overwrite: bool) -> Rights {
        Rights { upload: writable, change: writable && overwrite }
    }

    /// In words, for logs and STAT.
    pub fn describe(self) -> &'static str {
        match (self.upload, self.change) {
            (false, _) => "read-only access",
            (true, false) => "uploads allowed, nothing replaced or deleted",
            (true, true) => "uploads, replacing, deleting and renaming allowed",
        }
    }
}

/// Someone logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The login name, sanitised (for logs).
    pub name: String,
    /// Where this principal's `/` is in the served tree; they never see above it.
    pub root: VirtualPath,
    /// What they may do.
    pub rights: Rights,
    /// Logged in without an account.
    pub anonymous: bool,
}

/// A login attempt. The password is borrowed for the call only, never stored or logged.
#[derive(Clone, Copy)]
pub struct Attempt<'a> {
    /// The name given with USER.
    pub user: &'a str,
    /// The password given with PASS.
    pub password: &'a str,
    /// The client's address.
    pub peer: IpAddr,
    /// Whether the control connection is encrypted.
    pub encrypted: bool,
}

impl std::fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("user", &self.user)
            .field("password", &"****")
            .field("peer", &self.peer)
            .field("encrypted", &self.encrypted)
            .finish()
    }
}

/// Why a login was refused: one answer for every reason a client may not learn (an unknown
/// user and a wrong password look the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The user name and password do not match an account.
    #[error("login incorrect")]
    Incorrect,
}

/// Turns a login attempt into a principal.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Checks `attempt`; on success says who logged in and what they may do.
    fn login(&self, attempt: &Attempt<'_>) -> Result<Principal, Refused>;
}

/// Anyone, with any password, sees the whole tree with the same rights.
#[derive(Debug, Clone, Copy)]
pub struct Anonymous {
    /// What every login may do.
    pub rights: Rights,
}

impl Authenticator for Anonymous {
    fn login(&self, attempt: &Attempt<'_>) -> Result<Principal, Refused> {
        Ok(Principal {
            name: common::text::sanitize(attempt.user),
            root: VirtualPath::root(),
            rights: self.rights,
            anonymous: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anyone_logs_in_with_the_server_rights() {
        let auth = Anonymous { rights: Rights::from_options(true, false) };
        let attempt = Attempt { user: "x\ny", password: "secret", peer: [127, 0, 0, 1].into(), encrypted: false };
        let who = auth.login(&attempt).unwrap();
        assert_eq!(who.root, VirtualPath::root());
        assert_eq!(who.rights, Rights { upload: true, change: false });
        assert!(!who.name.contains('\n'));
        assert!(!format!("{attempt:?}").contains("secret"));
        // Replacing needs uploads too, as --overwrite needs --writable.
        assert_eq!(Rights::from_options(false, true), Rights::READ);
    }
}
