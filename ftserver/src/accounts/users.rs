//! The users file (`--users FILE`): TOML `[[user]]` tables read into a [`UserSet`], each
//! mistake reported as one line naming the file, the line and the problem
//! (`users.toml:7: unknown key `pasword``).
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! root = "alice"            # relative to the served root; "." is all of it
//! access = "write"          # read | write | full
//! ```

use super::password::PasswordHash;
use crate::auth::Access;
use common::path::VirtualPath;
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// One account from the users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name, exactly as `USER` must give it.
    pub name: String,
    /// The password hash (its `Debug` shows only the algorithm).
    pub password: PasswordHash,
    /// The directory the user is confined to, relative to the served root.
    pub root: VirtualPath,
    /// What the user may do there.
    pub access: Access,
    /// The line of the `root` key, for errors found after parsing (a root that does not exist).
    pub root_line: usize,
}

/// Every account of a users file, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSet {
    users: Vec<User>,
    by_name: HashMap<String, usize>,
}

impl UserSet {
    /// Reads and checks the users file at `path`. Errors name the path as given.
    pub fn load(path: &Path) -> Result<UserSet, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|e| UsersError {
            file: path.display().to_string(),
            line: None,
            problem: crate::storage::error::io_text(&e).to_lowercase(),
        })?;
        UserSet::parse(&path.display().to_string(), &text)
    }

    /// Checks the text of a users file; `file` is the name its errors give.
    pub fn parse(file: &str, text: &str) -> Result<UserSet, UsersError> {
        let fail = |span: Option<Range<usize>>, problem: String| UsersError {
            file: file.to_owned(),
            line: span.map(|s| line_of(text, s.start)),
            problem,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| fail(e.span(), toml_problem(e.message())))?;
        if raw.user.is_empty() {
            return Err(fail(None, "no [[user]] tables".into()));
        }
        let mut set = UserSet::default();
        let mut name_offsets = Vec::new();
        for entry in raw.user {
            let user = check(entry.into_inner(), text).map_err(|(span, problem)| fail(Some(span), problem))?;
            let (user, name_span) = user;
            if let Some(&first) = set.by_name.get(&user.name) {
                let first_line = line_of(text, name_offsets[first]);
                let problem = format!("duplicate user `{}` (first on line {first_line})", user.name);
                return Err(fail(Some(name_span), problem));
            }
            set.by_name.insert(user.name.clone(), set.users.len());
            set.users.push(user);
            name_offsets.push(name_span.start);
        }
        Ok(set)
    }

    /// The account named exactly `name`.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name).map(|&i| &self.users[i])
    }

    /// The accounts in file order.
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.users.iter()
    }

    /// How many accounts.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Checks every root with `exists` (does the directory exist in the served tree?); the
    /// first that does not is an error at its line of `file`.
    pub fn check_roots(
        &self,
        file: &str,
        exists: &dyn Fn(&VirtualPath) -> Result<(), String>,
    ) -> Result<(), UsersError> {
        for user in &self.users {
            exists(&user.root).map_err(|problem| UsersError {
                file: file.to_owned(),
                line: Some(user.root_line),
                problem: format!("root of user `{}` ({}): {problem}", user.name, user.root),
            })?;
        }
        Ok(())
    }

    /// No accounts (only for [`UserSet::default`]: a file must have one).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// A mistake in the users file, or the file could not be read: `FILE:LINE: PROBLEM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct UsersError {
    /// The file's name as given on the command line.
    pub file: String,
    /// The 1-based line of the mistake, when it has one.
    pub line: Option<usize>,
    /// What is wrong, lower case, one line, never quoting a password value.
    pub problem: String,
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.problem),
            None => write!(f, "{}: {}", self.file, self.problem),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<Spanned<RawUser>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: Spanned<String>,
    password: Spanned<String>,
    root: Spanned<String>,
    access: Spanned<String>,
}

/// Checks one `[[user]]` table; the span is the name's, for a duplicate.
fn check(raw: RawUser, text: &str) -> Result<(User, Range<usize>), (Range<usize>, String)> {
    let name = raw.name.get_ref();
    let name_span = raw.name.span();
    if name.is_empty() {
        return Err((name_span, "empty user name".into()));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err((name_span, "user name contains a space or a control character".into()));
    }
    if ["anonymous", "ftp"].iter().any(|r| name.eq_ignore_ascii_case(r)) {
        return Err((name_span, format!("user name `{name}` is reserved for anonymous logins (see --anonymous)")));
    }
    let password = PasswordHash::parse(raw.password.get_ref()).map_err(|e| (raw.password.span(), e.to_string()))?;
    let root = check_root(raw.root.get_ref()).map_err(|problem| (raw.root.span(), problem))?;
    let access = match raw.access.get_ref().as_str() {
        "read" => Access::Read,
        "write" => Access::Write,
        "full" => Access::Full,
        other => return Err((raw.access.span(), format!("access `{other}` is not read, write or full"))),
    };
    let root_line = line_of(text, raw.root.span().start);
    Ok((User { name: name.clone(), password, root, access, root_line }, name_span))
}

/// A root relative to the served root: `alice`, `teams/blue`, `.` for all of it. Absolute
/// paths and `..` that would climb above the served root are refused rather than clamped, as
/// they are in a client's `CWD`: here they are the administrator's mistake.
fn check_root(root: &str) -> Result<VirtualPath, String> {
    if root.is_empty() {
        return Err("empty root (use \".\" for the whole served root)".into());
    }
    if root.starts_with('/') {
        return Err(format!("root `{root}` must be relative to the served root (use \".\" for all of it)"));
    }
    let mut depth = 0usize;
    for part in root.split('/') {
        match part {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return Err(format!("root `{root}` climbs out of the served root")),
            },
            _ => depth += 1,
        }
    }
    VirtualPath::parse(root).map_err(|e| format!("root: {e}"))
}

/// The serde/toml message as one lower-case line, in the file's words ("key", not "field").
fn toml_problem(message: &str) -> String {
    let one_line = message.trim().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ");
    one_line.replace("unknown field", "unknown key").replace("missing field", "missing key")
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    /// An argon2id hash with cheap parameters, so unoptimised tests stay fast.
    pub(crate) fn cheap_hash(password: &str) -> String {
        let params = argon2::Params::new(64, 1, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn user(name: &str, root: &str, access: &str) -> String {
        format!(
            "[[user]]\nname = \"{name}\"\npassword = \"{}\"\nroot = \"{root}\"\naccess = \"{access}\"\n",
            cheap_hash(name)
        )
    }

    #[test]
    fn a_good_file() {
        let text = format!(
            "# accounts\n{}\n{}{}",
            user("alice", "alice", "write"),
            user("bob", "teams/./blue/", "read"),
            user("root", ".", "full")
        );
        let set = UserSet::parse("users.toml", &text).unwrap();
        assert_eq!(set.len(), 3);
        let alice = set.get("alice").unwrap();
        assert_eq!((alice.root.to_string().as_str(), alice.access), ("/alice", Access::Write));
        assert!(alice.password.verify("alice"));
        let bob = set.get("bob").unwrap();
        assert_eq!((bob.root.to_string().as_str(), bob.access), ("/teams/blue", Access::Read));
        assert!(set.get("root").unwrap().root.is_root());
        assert!(set.get("Alice").is_none(), "names are exact");
        assert_eq!(set.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["alice", "bob", "root"]);
    }

    /// Each kind of mistake gives one line naming the file, the line and the problem.
    #[test]
    fn every_mistake_is_one_line() {
        let good = user("alice", "alice", "read");
        let hash = cheap_hash("x");
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{good}\n[[user]]\nname = \"bob\"\npasword = \"{hash}\"\nroot = \"b\"\naccess = \"read\"\n"),
                "users.toml:9: unknown key `pasword`, expected one of `name`, `password`, `root`, `access`",
            ),
            (
                format!("[[user]]\nname = \"bob\"\npassword = \"{hash}\"\naccess = \"read\"\n"),
                "users.toml:1: missing key `root`",
            ),
            (
                "[[user]]\nname = \"bob\"\npassword = \"hunter2\"\nroot = \"b\"\naccess = \"read\"\n".into(),
                "users.toml:3: password is not an argon2id or bcrypt hash (make one with ftserver --hash-password)",
            ),
            (user("bob", "../etc", "read"), "users.toml:4: root `../etc` climbs out of the served root"),
            (user("bob", "a/../../b", "read"), "users.toml:4: root `a/../../b` climbs out of the served root"),
            (
                user("bob", "/srv/ftp", "read"),
                "users.toml:4: root `/srv/ftp` must be relative to the served root (use \".\" for all of it)",
            ),
            (user("bob", "", "read"), "users.toml:4: empty root (use \".\" for the whole served root)"),
            (
                format!("{good}\n\n{}", user("alice", "a", "read")),
                "users.toml:9: duplicate user `alice` (first on line 2)",
            ),
            (user("bob", "b", "rw"), "users.toml:5: access `rw` is not read, write or full"),
            (user("", "b", "read"), "users.toml:2: empty user name"),
            (
                user("ftp", "b", "read"),
                "users.toml:2: user name `ftp` is reserved for anonymous logins (see --anonymous)",
            ),
            (
                user("Anonymous", "b", "read"),
                "users.toml:2: user name `Anonymous` is reserved for anonymous logins (see --anonymous)",
            ),
            (user("a b", "b", "read"), "users.toml:2: user name contains a space or a control character"),
            (format!("{good}[[users]]\nname = \"x\"\n"), "users.toml:6: unknown key `users`, expected `user`"),
            ("# nobody\n".into(), "users.toml: no [[user]] tables"),
            (format!("{good}access = \"full\"\n"), "users.toml:6: duplicate key"),
        ];
        for (text, expected) in cases {
            let err = UserSet::parse("users.toml", &text).unwrap_err().to_string();
            assert_eq!(err, expected, "file:\n{text}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn a_plain_password_is_never_repeated() {
        let text = "[[user]]\nname = \"bob\"\npassword = \"Tr0ub4dor&3\"\nroot = \"b\"\naccess = \"read\"\n";
        let err = UserSet::parse("users.toml", text).unwrap_err().to_string();
        assert!(!err.contains("Tr0ub4dor"), "{err}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("users.toml");
        let err = UserSet::load(&missing).unwrap_err().to_string();
        assert_eq!(err, format!("{}: no such file or directory", missing.display()));
        std::fs::write(&missing, user("carol", "c", "full")).unwrap();
        assert_eq!(UserSet::load(&missing).unwrap().get("carol").unwrap().access, Access::Full);
    }
}
