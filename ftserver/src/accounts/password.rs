//! Password hashes: parsing the argon2id PHC strings (and bcrypt `$2b$` strings) a users file
//! holds, verifying a password against one in constant time, making new ones for
//! `ftserver --hash-password`, and reading that password from standard input or a terminal.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::fmt;
use std::io::{self, BufRead, IsTerminal, Write};

/// The most memory an argon2id hash may ask for, in KiB (1 GiB). Every login with such a hash
/// allocates that much, so a typo such as `m=1945600` would let a few logins exhaust the
/// machine; the file is refused instead.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 1024 * 1024;

/// A parsed password hash from a users file. Its `Debug` names only the algorithm.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    kind: Kind,
    phc: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Argon2id,
    Bcrypt,
}

/// Why a `password` value is not a usable hash. The messages never repeat the value: it may be
/// a plain password someone wrote there by mistake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Neither `$argon2id$...` nor `$2b$...` (nor `$2a$`/`$2y$`).
    #[error("password is not an argon2id or bcrypt hash (make one with ftserver --hash-password)")]
    NotAHash,
    /// `$argon2i$` or `$argon2d$`: the weaker variants.
    #[error("password is an {0} hash; only argon2id (or bcrypt) is accepted")]
    WeakArgon2(&'static str),
    /// A PHC string that does not parse, or whose parameters argon2 refuses.
    #[error("password hash is malformed: {0}")]
    Malformed(String),
    /// An argon2id hash asking for more than [`MAX_ARGON2_MEMORY_KIB`].
    #[error("password hash asks for {0} KiB of memory per login; at most 1 GiB is allowed")]
    TooMuchMemory(u32),
}

impl PasswordHash {
    /// Parses an argon2id PHC string (`$argon2id$v=19$m=..,t=..,p=..$SALT$HASH`) or a bcrypt
    /// string (`$2b$NN$` + 53 characters; `$2a$` and `$2y$`, as htpasswd writes, too).
    pub fn parse(text: &str) -> Result<PasswordHash, HashError> {
        if let Some(kind) = ["argon2i", "argon2d"].into_iter().find(|k| text.starts_with(&format!("${k}$"))) {
            return Err(HashError::WeakArgon2(kind));
        }
        if text.starts_with("$argon2id$") {
            let parsed =
                argon2::PasswordHash::new(text).map_err(|e| HashError::Malformed(lower_first(&e.to_string())))?;
            let params = Params::try_from(&parsed).map_err(|e| HashError::Malformed(lower_first(&e.to_string())))?;
            if parsed.hash.is_none() {
                return Err(HashError::Malformed("no hash after the salt".into()));
            }
            if params.m_cost() > MAX_ARGON2_MEMORY_KIB {
                return Err(HashError::TooMuchMemory(params.m_cost()));
            }
            return Ok(PasswordHash { kind: Kind::Argon2id, phc: text.to_owned() });
        }
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
            return if is_bcrypt(text) {
                Ok(PasswordHash { kind: Kind::Bcrypt, phc: text.to_owned() })
            } else {
                Err(HashError::Malformed("expected $2b$, a cost from 04 to 31, $ and 53 characters".into()))
            };
        }
        Err(HashError::NotAHash)
    }

    /// Does `password` match? The comparison of the computed hash is constant-time (both
    /// crates compare with `subtle`), and the time spent computing it depends only on the
    /// hash's parameters, never on how much of the password was right.
    pub fn verify(&self, password: &str) -> bool {
        match self.kind {
            Kind::Argon2id => argon2::PasswordHash::new(&self.phc)
                .is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()),
            Kind::Bcrypt => bcrypt::verify(password, &self.phc).unwrap_or(false),
        }
    }

    /// The argon2 parameters of an argon2id hash (`None` for bcrypt).
    pub(crate) fn argon2_params(&self) -> Option<Params> {
        match self.kind {
            Kind::Argon2id => argon2::PasswordHash::new(&self.phc).ok().and_then(|h| Params::try_from(&h).ok()),
            Kind::Bcrypt => None,
        }
    }

    /// A hash of a random password made like `like` (the same algorithm and cost; argon2id
    /// with the default parameters when `None`), verified when the user is unknown so the
    /// refusal takes as long as a wrong password for a real user.
    pub(crate) fn dummy(like: Option<&PasswordHash>) -> PasswordHash {
        let mut secret = [0u8; 16];
        argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut secret);
        let secret = hex(&secret);
        if let Some(like) = like.filter(|h| h.kind == Kind::Bcrypt) {
            let cost = like.phc[4..6].parse().unwrap_or(bcrypt::DEFAULT_COST);
            if let Ok(phc) = bcrypt::hash(&secret, cost) {
                return PasswordHash { kind: Kind::Bcrypt, phc };
            }
        }
        let params = like.and_then(PasswordHash::argon2_params).unwrap_or_default();
        PasswordHash { kind: Kind::Argon2id, phc: hash_with(&secret, params) }
    }

    /// The bcrypt cost of a bcrypt hash (`None` for argon2id).
    #[cfg(test)]
    fn bcrypt_cost(&self) -> Option<u32> {
        (self.kind == Kind::Bcrypt).then(|| self.phc[4..6].parse().ok()).flatten()
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PasswordHash({:?}, ..)", self.kind)
    }
}

/// Hashes `password` as an argon2id PHC string with a random salt and the default parameters
/// (m=19456 KiB, t=2, p=1: OWASP's first recommendation), for `ftserver --hash-password`.
pub fn hash_password(password: &str) -> String {
    hash_with(password, Params::default())
}

fn hash_with(password: &str, params: Params) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashing with valid parameters and a generated salt cannot fail")
        .to_string()
}

/// Reads the password for `--hash-password`: on a terminal, prompts twice on standard error
/// with echo off and insists both match; otherwise reads the first line of standard input
/// (`echo secret | ftserver --hash-password`). The line end is removed; an empty password is
/// an error.
pub fn read_password() -> io::Result<String> {
    let stdin = io::stdin();
    let password = if stdin.is_terminal() {
        let first = prompt_hidden(&stdin, "password: ")?;
        let second = prompt_hidden(&stdin, "again: ")?;
        if first != second {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "the two passwords differ"));
        }
        first
    } else {
        read_line(&mut stdin.lock())?
    };
    if password.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty password"));
    }
    Ok(password)
}

/// One line without its `\n` or `\r\n`.
fn read_line(input: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let trimmed = line.strip_suffix('\n').unwrap_or(&line);
    Ok(trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned())
}

/// Prints `prompt` on standard error and reads a line from the terminal with echo turned off;
/// the terminal's settings come back even when reading fails.
fn prompt_hidden(stdin: &io::Stdin, prompt: &str) -> io::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let saved = tcgetattr(stdin).map_err(io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    io::stderr().flush()?;
    tcsetattr(stdin, SetArg::TCSAFLUSH, &quiet).map_err(io::Error::from)?;
    let line = read_line(&mut stdin.lock());
    let restored = tcsetattr(stdin, SetArg::TCSAFLUSH, &saved).map_err(io::Error::from);
    let line = line?;
    restored?;
    Ok(line)
}

/// Is `text` a bcrypt string: `$2?$`, a two-digit cost from 04 to 31, `$`, then 22 characters
/// of salt and 31 of hash in bcrypt's base64 alphabet?
fn is_bcrypt(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 60 || bytes[6] != b'$' {
        return false;
    }
    let cost = std::str::from_utf8(&bytes[4..6]).ok().and_then(|c| c.parse::<u32>().ok());
    matches!(cost, Some(4..=31))
        && bytes[4..6].iter().all(u8::is_ascii_digit)
        && bytes[7..].iter().all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so the tests do not spend seconds in unoptimised argon2.
    fn cheap() -> Params {
        Params::new(64, 1, 1, None).unwrap()
    }

    #[test]
    fn argon2id_round_trip() {
        let hash = PasswordHash::parse(&hash_with("correct horse", cheap())).unwrap();
        assert!(hash.verify("correct horse"));
        assert!(!hash.verify("correct hors"));
        assert!(!hash.verify(""));
    }

    #[test]
    fn hash_password_makes_a_default_argon2id_phc_string() {
        let phc = hash_password("s3cret");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(PasswordHash::parse(&phc).unwrap().verify("s3cret"));
    }

    #[test]
    fn bcrypt_hashes_verify() {
        let made = bcrypt::hash_with_result("hunter2", 4).unwrap();
        for version in [bcrypt::Version::TwoB, bcrypt::Version::TwoA, bcrypt::Version::TwoY] {
            let text = made.format_for_version(version);
            let hash = PasswordHash::parse(&text).unwrap();
            assert!(hash.verify("hunter2"), "{text}");
            assert!(!hash.verify("hunter3"), "{text}");
        }
    }

    #[test]
    fn what_is_refused() {
        let good = hash_with("x", cheap());
        let check = |text: &str, expected: HashError| assert_eq!(PasswordHash::parse(text), Err(expected), "{text}");
        check("hunter2", HashError::NotAHash);
        check("", HashError::NotAHash);
        check("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA", HashError::WeakArgon2("argon2i"));
        check("$argon2d$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA", HashError::WeakArgon2("argon2d"));
        check(&good.replace("m=64", "m=2000000"), HashError::TooMuchMemory(2_000_000));
        assert!(matches!(PasswordHash::parse("$argon2id$v=19$garbage"), Err(HashError::Malformed(_))));
        let no_hash = good.rsplit_once('$').unwrap().0;
        assert!(matches!(PasswordHash::parse(no_hash), Err(HashError::Malformed(_))), "{no_hash}");
        let bcrypt = "$2b$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
        assert!(PasswordHash::parse(bcrypt).is_ok());
        for bad in
            [&bcrypt[..59], &bcrypt.replace("$04$", "$03$"), &bcrypt.replace("$04$", "$4a$"), &bcrypt.replace('a', "!")]
        {
            assert!(matches!(PasswordHash::parse(bad), Err(HashError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn errors_and_debug_never_show_the_value() {
        let err = PasswordHash::parse("plaintext-secret").unwrap_err();
        assert!(!err.to_string().contains("plaintext-secret"));
        let hash = PasswordHash::parse(&hash_with("x", cheap())).unwrap();
        let debug = format!("{hash:?}");
        assert_eq!(debug, "PasswordHash(Argon2id, ..)");
    }

    #[test]
    fn dummy_hash_costs_what_the_model_costs() {
        let argon = PasswordHash::parse(&hash_with("x", cheap())).unwrap();
        let dummy = PasswordHash::dummy(Some(&argon));
        assert_eq!(dummy.argon2_params().unwrap().m_cost(), 64);
        assert!(!dummy.verify("") && !dummy.verify("x"));
        let bcrypt = PasswordHash::parse(&bcrypt::hash("x", 5).unwrap()).unwrap();
        assert_eq!(PasswordHash::dummy(Some(&bcrypt)).bcrypt_cost(), Some(5));
        let default = PasswordHash::dummy(None).argon2_params().unwrap();
        assert_eq!((default.m_cost(), default.t_cost(), default.p_cost()), (19456, 2, 1));
    }

    #[test]
    fn read_line_strips_line_ends() {
        for (input, expected) in [("pw\n", "pw"), ("pw\r\n", "pw"), ("pw", "pw"), ("a b\nrest\n", "a b"), ("", "")] {
            assert_eq!(read_line(&mut input.as_bytes()).unwrap(), expected, "{input:?}");
        }
    }
}
