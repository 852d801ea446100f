//! The authentication seam: a login is one call, [`Authenticator::login`], and its result, a
//! [`Principal`], carries everything a session needs to know about who is there: the root they
//! see as `/` and what they may do ([`Rights`], SFTPGo's permission words). Every command asks
//! the principal, never a server flag.
//!
//! Two implementations: [`Anonymous`] (anyone with any password, with the rights the server was
//! started with: read-only unless `--writable`) and `accounts::Accounts` (the users file).

use common::path::VirtualPath;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// One right, in SFTPGo's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Perm {
    /// LIST, NLST, MLSD, MLST, STAT of a path, SIZE, MDTM, CWD.
    List,
    /// RETR and the HASH family.
    Download,
    /// STOR, STOU and APPE of a file that does not exist yet (and resuming one's own
    /// interrupted upload).
    Upload,
    /// STOR or APPE onto an existing file.
    Overwrite,
    /// DELE and RMD.
    Delete,
    /// RNFR/RNTO.
    Rename,
    /// MKD.
    CreateDirs,
}

const ALL_PERMS: [Perm; 7] =
    [Perm::List, Perm::Download, Perm::Upload, Perm::Overwrite, Perm::Delete, Perm::Rename, Perm::CreateDirs];

/// What a principal may do: a set of [`Perm`]s.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rights(u8);

impl Rights {
    /// No rights at all.
    pub const NONE: Rights = Rights(0);

    /// Read-only: list and download.
    pub const READ: Rights = Rights::of(&[Perm::List, Perm::Download]);

    /// A set of the given rights.
    pub const fn of(perms: &[Perm]) -> Rights {
        let mut bits = 0;
        let mut i = 0;
        while i < perms.len() {
            bits |= 1 << perms[i] as u8;
            i += 1;
        }
        Rights(bits)
    }

    /// Is `perm` in the set?
    pub fn allows(self, perm: Perm) -> bool {
        self.0 & (1 << perm as u8) != 0
    }

    /// The rights in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Perm> {
        ALL_PERMS.into_iter().filter(move |&p| self.allows(p))
    }

    /// The rights the server's `--writable` and `--overwrite` options give anonymous logins.
    pub fn from_options(writable: bool, overwrite: bool) -> Rights {
        Access::from_flags(writable, overwrite).rights()
    }

    /// In words, for logs and STAT.
    pub fn describe(self) -> &'static str {
        if !self.allows(Perm::Upload) {
            "read-only access"
        } else if !self.allows(Perm::Overwrite) && !self.allows(Perm::Delete) {
            "uploads allowed, nothing replaced or deleted"
        } else {
            "uploads, replacing, deleting and renaming allowed"
        }
    }
}

impl fmt::Debug for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The `access` word of a users file (and what `--writable`/`--overwrite` mean).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// List and download.
    Read,
    /// Also upload new files and make directories; never replace, delete or rename.
    Write,
    /// Also replace, delete and rename.
    Full,
}

impl Access {
    /// The rights the word grants.
    pub fn rights(self) -> Rights {
        const WRITE: &[Perm] = &[Perm::List, Perm::Download, Perm::Upload, Perm::CreateDirs];
        match self {
            Access::Read => Rights::READ,
            Access::Write => Rights::of(WRITE),
            Access::Full => Rights::of(&ALL_PERMS),
        }
    }

    /// The word as the users file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Full => "full",
        }
    }

    /// The server-wide `--writable` and `--overwrite` flags as an access word, for anonymous
    /// sessions.
    pub fn from_flags(writable: bool, overwrite: bool) -> Access {
        match (writable, overwrite) {
            (false, _) => Access::Read,
            (true, false) => Access::Write,
            (true, true) => Access::Full,
        }
    }
}

/// Someone logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The login name, sanitised (for logs); `anonymous` for anonymous logins to accounts.
    pub name: String,
    /// Where this principal's `/` is in the served tree; they never see above it.
    pub root: VirtualPath,
    /// What they may do.
    pub rights: Rights,
    /// Logged in without an account.
    pub anonymous: bool,
}

impl Principal {
    /// May the principal do `perm`?
    pub fn allows(&self, perm: Perm) -> bool {
        self.rights.allows(perm)
    }
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

/// Why a login was refused. [`Refused::Incorrect`] covers both an unknown user and a wrong
/// password, so the reply cannot tell them apart; the other reasons are for the log and decide
/// between `530` and `421`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The user name and password do not match an account (reply `530`).
    #[error("login incorrect")]
    Incorrect,
    /// `anonymous`/`ftp` while anonymous logins are off (reply `530`).
    #[error("anonymous logins are not allowed")]
    AnonymousDisabled,
    /// Too many failures from this address; no password was checked (reply `421` and close).
    #[error("too many failed logins from this address")]
    LockedOut {
        /// How much longer the lockout lasts.
        remaining: Duration,
    },
}

/// Turns a login attempt into a principal.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// Checks `attempt`; on success says who logged in and what they may do. Slow by design
    /// for password hashes: call it off any shared lock.
    fn login(&self, attempt: &Attempt<'_>) -> Result<Principal, Refused>;

    /// After a refused login: how long the session waits before it replies `530`, and whether
    /// it then disconnects. `failures` counts this session's refusals so far, this one
    /// included. The default: no delay, never disconnect.
    fn after_failure(&self, failures: u32) -> AfterFailure {
        let _ = failures;
        AfterFailure { delay: Duration::ZERO, disconnect: false }
    }

    /// Are accounts checked (rather than anyone let in anonymously)? For the ready line and
    /// STAT.
    fn has_accounts(&self) -> bool {
        false
    }

    /// Re-reads what the logins are checked against (SIGHUP); returns how many accounts there
    /// are now, or why the old ones stay.
    fn reload(&self) -> Result<usize, String> {
        Ok(0)
    }
}

/// What a session does after a refused login: sleep `delay` before replying `530`, then close
/// the connection if `disconnect` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    /// How long to wait before the `530` reply.
    pub delay: Duration,
    /// Close the control connection after the reply.
    pub disconnect: bool,
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
        assert_eq!(who.rights, Access::Write.rights());
        assert!(who.allows(Perm::Upload) && !who.allows(Perm::Overwrite));
        assert!(!who.name.contains('\n'));
        assert!(!format!("{attempt:?}").contains("secret"));
        // Replacing needs uploads too, as --overwrite needs --writable.
        assert_eq!(Rights::from_options(false, true), Rights::READ);
        assert_eq!(auth.after_failure(5), AfterFailure { delay: Duration::ZERO, disconnect: false });
    }

    #[test]
    fn access_words_map_to_sftpgo_permissions() {
        use Perm::*;
        let words = |a: Access| a.rights().iter().collect::<Vec<_>>();
        assert_eq!(words(Access::Read), [List, Download]);
        assert_eq!(words(Access::Write), [List, Download, Upload, CreateDirs]);
        assert_eq!(words(Access::Full), [List, Download, Upload, Overwrite, Delete, Rename, CreateDirs]);
        assert!(!Access::Write.rights().allows(Overwrite), "write never replaces");
        assert_eq!(format!("{:?}", Access::Read.rights()), "{List, Download}");
        assert_eq!(Access::from_flags(true, false), Access::Write);
        assert_eq!(Access::Full.as_str(), "full");
        assert_eq!(Rights::NONE.iter().count(), 0);
        let described: Vec<_> = [Access::Read, Access::Write, Access::Full].map(|a| a.rights().describe()).into();
        assert_eq!(described.len(), 3);
        assert_ne!(described[0], described[1]);
        assert_ne!(described[1], described[2]);
    }
}
