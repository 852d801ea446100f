//! Who may log in and what they may do: the users file, password checks, failure throttling,
//! and the [`Principal`] a login yields (its root and permissions), which every command asks
//! instead of a server-wide flag.
//!
//! Login is one function, [`Accounts::login`]: (user, password, peer address) in, a
//! [`Principal`] or a [`Refused`] out; [`Accounts`] is the server's `auth::Authenticator`
//! when `--users` is given. An unknown user and a wrong password give the same
//! refusal after the same work (a dummy hash, made like the accounts' own, is verified for
//! unknown users).

mod password;
mod throttle;
mod users;

pub use password::{hash_password, read_password, HashError, PasswordHash, MAX_ARGON2_MEMORY_KIB};
pub use throttle::{AddressTracker, LoginPolicy, SessionFailures};
pub use users::{User, UserSet, UsersError};

pub use crate::auth::{Access, Perm, Rights};
use crate::auth::{AfterFailure, Attempt, Authenticator, Principal, Refused};
use common::path::VirtualPath;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

/// The anonymous user: the whole served root with `access`.
pub fn anonymous_principal(access: Access) -> Principal {
    Principal { name: "anonymous".into(), root: VirtualPath::root(), rights: access.rights(), anonymous: true }
}

/// The accounts a server accepts: the users file (replaced whole by [`Accounts::reload`]), the
/// anonymous setting, and the failure tracker shared by all sessions.
#[derive(Debug)]
pub struct Accounts {
    path: Option<PathBuf>,
    current: RwLock<Arc<Loaded>>,
    anonymous: Option<Access>,
    tracker: AddressTracker,
    roots: RootCheck,
}

/// Says whether a user's root exists in the served tree (`Ok`) or why not; applied at load and
/// at every reload.
pub type RootExists = Box<dyn Fn(&VirtualPath) -> Result<(), String> + Send + Sync>;

struct RootCheck(Option<RootExists>);

impl std::fmt::Debug for RootCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "RootCheck(on)" } else { "RootCheck(off)" })
    }
}

impl RootCheck {
    fn apply(&self, path: &Path, users: &UserSet) -> Result<(), UsersError> {
        match &self.0 {
            Some(exists) => users.check_roots(&path.display().to_string(), exists),
            None => Ok(()),
        }
    }
}

/// A user set with the dummy hash verified for names it lacks.
#[derive(Debug)]
struct Loaded {
    users: UserSet,
    dummy: OnceLock<PasswordHash>,
}

impl Loaded {
    /// The dummy hash is made like the first account's (algorithm and cost), so an unknown
    /// name costs what a known one costs. It is made now, not at the first unknown name, whose
    /// refusal would otherwise take twice as long; an empty set (anonymous only) needs none.
    fn new(users: UserSet) -> Loaded {
        let loaded = Loaded { dummy: OnceLock::new(), users };
        if !loaded.users.is_empty() {
            loaded.dummy();
        }
        loaded
    }

    fn dummy(&self) -> &PasswordHash {
        self.dummy.get_or_init(|| PasswordHash::dummy(self.users.iter().next().map(|u| &u.password)))
    }
}

impl Accounts {
    /// Accounts from the users file at `path`; `anonymous` also lets `anonymous`/`ftp` in
    /// with that access to the whole served root.
    pub fn load(path: &Path, anonymous: Option<Access>, policy: LoginPolicy) -> Result<Accounts, UsersError> {
        let users = UserSet::load(path)?;
        Ok(Accounts::with_users(Some(path.to_owned()), users, anonymous, policy))
    }

    /// Accounts from an already checked set (`path`: where [`Accounts::reload`] reads from).
    pub fn with_users(
        path: Option<PathBuf>,
        users: UserSet,
        anonymous: Option<Access>,
        policy: LoginPolicy,
    ) -> Accounts {
        Accounts {
            path,
            current: RwLock::new(Arc::new(Loaded::new(users))),
            anonymous,
            tracker: AddressTracker::new(policy),
            roots: RootCheck(None),
        }
    }

    /// Accounts from the users file at `path`, each user's root checked with `exists` now and
    /// at every [`Accounts::reload`].
    pub fn load_checked(
        path: &Path,
        anonymous: Option<Access>,
        policy: LoginPolicy,
        exists: RootExists,
    ) -> Result<Accounts, UsersError> {
        let users = UserSet::load(path)?;
        let roots = RootCheck(Some(exists));
        roots.apply(path, &users)?;
        let mut accounts = Accounts::with_users(Some(path.to_owned()), users, anonymous, policy);
        accounts.roots = roots;
        Ok(accounts)
    }

    /// Only anonymous logins (no `--users`): any name is taken for `anonymous`, as today.
    pub fn anonymous_only(access: Access, policy: LoginPolicy) -> Accounts {
        Accounts::with_users(None, UserSet::default(), Some(access), policy)
    }

    /// Re-reads the users file. On success the new set replaces the old one for every later
    /// login (sessions already logged in keep their principal) and its size is returned; on
    /// error the old set stays and the error says why. Failure counts survive a reload.
    pub fn reload(&self) -> Result<usize, UsersError> {
        let Some(path) = &self.path else { return Ok(0) };
        let users = UserSet::load(path)?;
        self.roots.apply(path, &users)?;
        let count = users.len();
        let loaded = Arc::new(Loaded::new(users));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = loaded;
        Ok(count)
    }

    /// How many accounts the users file has now.
    pub fn count(&self) -> usize {
        self.current.read().unwrap_or_else(|e| e.into_inner()).users.len()
    }

    /// The throttling policy (for [`SessionFailures::record`]).
    pub fn policy(&self) -> &LoginPolicy {
        self.tracker.policy()
    }

    /// Is `user` one of the anonymous names? Sessions ask this to answer `USER` with `331`
    /// ("send your e-mail address") rather than `331` ("password required").
    pub fn is_anonymous_name(user: &str) -> bool {
        user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
    }

    /// Checks a login from `peer`. Slow by design (one argon2id or bcrypt verification) except
    /// for anonymous logins and locked-out addresses; call it off any shared lock. The caller
    /// sleeps for [`SessionFailures::record`]'s delay after a refusal.
    pub fn login(&self, user: &str, password: &str, peer: IpAddr) -> Result<Principal, Refused> {
        self.login_at(user, password, peer, Instant::now())
    }

    fn login_at(&self, user: &str, password: &str, peer: IpAddr, now: Instant) -> Result<Principal, Refused> {
        if let Some(remaining) = self.tracker.locked_out(peer, now) {
            return Err(Refused::LockedOut { remaining });
        }
        let loaded = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()));
        if self.path.is_none() || Accounts::is_anonymous_name(user) {
            return match self.anonymous {
                Some(access) => Ok(anonymous_principal(access)),
                None => Err(Refused::AnonymousDisabled),
            };
        }
        let account = loaded.users.get(user);
        let hash = account.map_or_else(|| loaded.dummy(), |u| &u.password);
        // Both branches do one verification, and the result is looked at only afterwards.
        let matched = hash.verify(password);
        match account {
            Some(account) if matched => Ok(Principal {
                name: account.name.clone(),
                root: account.root.clone(),
                rights: account.access.rights(),
                anonymous: false,
            }),
            _ => {
                if self.tracker.record_failure(peer, now) {
                    log::warn!("{peer}: locked out after repeated failed logins");
                }
                Err(Refused::Incorrect)
            }
        }
    }
}

impl Authenticator for Accounts {
    fn login(&self, attempt: &Attempt<'_>) -> Result<Principal, Refused> {
        Accounts::login(self, attempt.user, attempt.password, attempt.peer)
    }

    fn after_failure(&self, failures: u32) -> AfterFailure {
        self.policy().after_failures(failures)
    }

    fn has_accounts(&self) -> bool {
        self.path.is_some()
    }

    fn reload(&self) -> Result<usize, String> {
        Accounts::reload(self).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

    fn accounts(anonymous: Option<Access>, policy: LoginPolicy) -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        std::fs::write(&path, users_file(&[("alice", "wonder", "alice", "write"), ("bob", "builder", "bob", "read")]))
            .unwrap();
        let accounts = Accounts::load(&path, anonymous, policy).unwrap();
        (dir, accounts)
    }

    fn users_file(users: &[(&str, &str, &str, &str)]) -> String {
        users
            .iter()
            .map(|(name, pw, root, access)| {
                format!(
                    "[[user]]\nname = \"{name}\"\npassword = \"{}\"\nroot = \"{root}\"\naccess = \"{access}\"\n",
                    users::tests::cheap_hash(pw)
                )
            })
            .collect()
    }

    #[test]
    fn a_good_login_yields_the_principal() {
        let (_dir, accounts) = accounts(None, LoginPolicy::default());
        let alice = accounts.login("alice", "wonder", PEER).unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.root.to_string(), "/alice");
        assert!(alice.allows(Perm::Upload) && !alice.allows(Perm::Delete) && !alice.anonymous);
    }

    #[test]
    fn unknown_user_and_wrong_password_are_refused_alike() {
        let (_dir, accounts) = accounts(None, LoginPolicy::default());
        let wrong = accounts.login("alice", "wonderland", PEER);
        let unknown = accounts.login("mallory", "wonder", PEER);
        assert_eq!(wrong, Err(Refused::Incorrect));
        assert_eq!(unknown, wrong);
        assert_eq!(accounts.login("Alice", "wonder", PEER), Err(Refused::Incorrect));
        // The dummy hash carries the accounts' parameters, so both cost one equal verification.
        let loaded = accounts.current.read().unwrap();
        assert_eq!(loaded.dummy().argon2_params(), loaded.users.get("alice").unwrap().password.argon2_params());
    }

    #[test]
    fn anonymous_only_when_configured() {
        let (_dir, closed) = accounts(None, LoginPolicy::default());
        assert_eq!(closed.login("anonymous", "me@example.com", PEER), Err(Refused::AnonymousDisabled));
        assert_eq!(closed.login("FTP", "", PEER), Err(Refused::AnonymousDisabled));
        let (_dir, open) = accounts(Some(Access::Read), LoginPolicy::default());
        let anon = open.login("ftp", "", PEER).unwrap();
        assert_eq!(anon, anonymous_principal(Access::Read));
        assert!(anon.root.is_root() && anon.anonymous && !anon.allows(Perm::Upload));
        let today = Accounts::anonymous_only(Access::Full, LoginPolicy::default());
        assert_eq!(today.login("whoever", "x", PEER).unwrap().rights, Access::Full.rights());
    }

    #[test]
    fn lockout_across_sessions_refuses_even_the_right_password() {
        let policy = LoginPolicy { lockout_failures: 3, ..LoginPolicy::default() };
        let (_dir, accounts) = accounts(None, policy.clone());
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(accounts.login_at("bob", "nope", PEER, now), Err(Refused::Incorrect));
        }
        let refused = accounts.login_at("bob", "builder", PEER, now);
        assert_eq!(refused, Err(Refused::LockedOut { remaining: policy.lockout_duration }));
        let elsewhere = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert!(accounts.login_at("bob", "builder", elsewhere, now).is_ok());
        assert!(accounts.login_at("bob", "builder", PEER, now + policy.lockout_duration).is_ok());
    }

    #[test]
    fn reload_replaces_the_set_or_keeps_the_old_one() {
        let (dir, accounts) = accounts(None, LoginPolicy::default());
        let path = dir.path().join("users.toml");
        std::fs::write(&path, users_file(&[("carol", "c4rol", ".", "full")])).unwrap();
        assert_eq!(accounts.reload(), Ok(1));
        assert!(accounts.login("carol", "c4rol", PEER).unwrap().root.is_root());
        assert_eq!(accounts.login("alice", "wonder", PEER), Err(Refused::Incorrect));
        std::fs::write(&path, "[[user]]\nname = \"dave\"\n").unwrap();
        let err = accounts.reload().unwrap_err();
        assert_eq!(err.to_string(), format!("{}:1: missing key `password`", path.display()));
        assert!(accounts.login("carol", "c4rol", PEER).is_ok(), "the old set stays");
    }

    #[test]
    fn the_authenticator_delays_and_disconnects() {
        let (_dir, accounts) = accounts(None, LoginPolicy::default());
        let auth: &dyn Authenticator = &accounts;
        let attempt = Attempt { user: "bob", password: "builder", peer: PEER, encrypted: true };
        assert_eq!(auth.login(&attempt).unwrap().name, "bob");
        let wrong = Attempt { password: "nope", ..attempt };
        assert_eq!(auth.login(&wrong), Err(Refused::Incorrect));
        assert!(auth.has_accounts());
        let third = auth.after_failure(3);
        assert!(third.disconnect && !auth.after_failure(2).disconnect);
        assert!(third.delay > auth.after_failure(1).delay);
    }

    #[test]
    fn roots_must_exist_at_load_and_reload() {
        let (dir, _) = accounts(None, LoginPolicy::default());
        let path = dir.path().join("users.toml");
        let exists = |missing: &'static str| -> RootExists {
            Box::new(
                move |root: &VirtualPath| if root.to_string() == missing { Err("not found".into()) } else { Ok(()) },
            )
        };
        let err = Accounts::load_checked(&path, None, LoginPolicy::default(), exists("/bob")).unwrap_err();
        assert_eq!(err.to_string(), format!("{}:9: root of user `bob` (/bob): not found", path.display()));
        let accounts = Accounts::load_checked(&path, None, LoginPolicy::default(), exists("/carol")).unwrap();
        std::fs::write(&path, users_file(&[("carol", "c4rol", "carol", "full")])).unwrap();
        assert!(accounts.reload().unwrap_err().to_string().ends_with(":4: root of user `carol` (/carol): not found"));
        assert!(accounts.login("bob", "builder", PEER).is_ok(), "the old set stays");
    }

    #[test]
    fn shared_by_session_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Accounts>();
        shareable::<Principal>();
        assert!(Accounts::is_anonymous_name("Anonymous") && Accounts::is_anonymous_name("FTP"));
        assert!(!Accounts::is_anonymous_name("ftpuser"));
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let (_dir, accounts) = accounts(None, LoginPolicy::default());
        let debug = format!("{accounts:?}");
        assert!(!debug.contains("$argon2id$"), "{debug}");
        assert!(debug.contains("alice"));
    }
}
