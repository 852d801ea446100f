//! Virtual paths as a client sees them: absolute, `/`-separated, normalised, and unable to
//! climb above `/`. Turning one into a real file under the server's root is the server's job
//! (`ftserver::storage`), which also resolves symlinks.

use core::fmt;

/// A normalised absolute virtual path such as `/` or `/docs/a.txt`.
///
/// Invariant: the components contain no empty string, no `.`, no `..`, no `/`, no NUL, CR or LF.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VirtualPath {
    parts: Vec<String>,
}

/// Why a path argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// NUL, CR or LF in a path (RFC 2577 and RFC 959 forbid them in path names).
    #[error("path contains a control character")]
    ControlCharacter,
    /// A component longer than 255 bytes (the Linux NAME_MAX).
    #[error("path component too long")]
    ComponentTooLong,
}

impl VirtualPath {
    /// The root, `/`.
    pub fn root() -> Self {
        VirtualPath::default()
    }

    /// Resolves `arg` against `self` (the current directory). An absolute `arg` starts from the
    /// root. `.` and empty components are skipped; `..` removes one component but never goes
    /// above `/`, exactly as `cd ..` at `/` stays at `/`.
    pub fn join(&self, arg: &str) -> Result<VirtualPath, PathError> {
        if arg.contains(['\0', '\r', '\n']) {
            return Err(PathError::ControlCharacter);
        }
        let mut parts = if arg.starts_with('/') { Vec::new() } else { self.parts.clone() };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p if p.len() > 255 => return Err(PathError::ComponentTooLong),
                p => parts.push(p.to_owned()),
            }
        }
        Ok(VirtualPath { parts })
    }

    /// Parses an absolute or relative path from the root.
    pub fn parse(arg: &str) -> Result<VirtualPath, PathError> {
        VirtualPath::root().join(arg)
    }

    /// The components, outermost first; empty for the root.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().map(String::as_str)
    }

    /// Is this the root?
    pub fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// The last component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.parts.last().map(String::as_str)
    }

    /// The parent directory (the root's parent is the root).
    pub fn parent(&self) -> VirtualPath {
        let mut parts = self.parts.clone();
        parts.pop();
        VirtualPath { parts }
    }

    /// `path` seen from inside `self`: `/home/alice` within which `/a/b` is `/home/alice/a/b`.
    /// A user's view of the tree is this way confined under the user's root: a client path can
    /// never climb above `/`, so the result never leaves `self`.
    pub fn within(&self, path: &VirtualPath) -> VirtualPath {
        VirtualPath { parts: self.parts.iter().chain(&path.parts).cloned().collect() }
    }

    /// The path in `257` reply form, `"..."` with embedded quotes doubled (RFC 959 appendix II).
    pub fn quoted(&self) -> String {
        quote(&self.to_string())
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.parts.is_empty() {
            return f.write_str("/");
        }
        for part in &self.parts {
            write!(f, "/{part}")?;
        }
        Ok(())
    }
}

/// Does `arg` end as only a directory's name can, with `/` or `/.` (`a.txt/`, `a.txt/.`)?
/// [`VirtualPath::join`] drops such endings, so a command that acts on a file looks at its
/// argument with this to refuse `a.txt/` unless it is a directory.
pub fn names_a_directory(arg: &str) -> bool {
    arg.ends_with('/') || arg.ends_with("/.")
}

/// Quotes a path for a `257` reply: `"` + path with every `"` doubled + `"`.
pub fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

/// Extracts the quoted path from the text of a `257` reply (the inverse of [`quote`]).
pub fn unquote_257(text: &str) -> Option<String> {
    let rest = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '"' {
            if chars.peek() == Some(&'"') {
                chars.next();
                out.push('"');
            } else {
                return Some(out);
            }
        } else {
            out.push(c);
        }
    }
    None
}

/// The suffix of a partial file: a transfer of `NAME` is written to `.NAME.ftpart` beside it
/// and renamed to `NAME` once complete (the client's downloads, the server's uploads).
pub const PARTIAL_SUFFIX: &str = ".ftpart";

/// The longest file name Linux (and most file systems) allow, in bytes: NAME_MAX.
pub const NAME_MAX: usize = 255;

/// The partial file's name for `name` (raw bytes: a local name need not be UTF-8):
/// `.NAME.ftpart`, or, when that would be longer than [`NAME_MAX`], the start of the name, `~`
/// and a hash of the whole name (`.START~HASH.ftpart`), so a name that is itself allowed
/// always has a partial name that is, and the same one every time (a resume finds it again).
/// A UTF-8 name is cut between characters.
pub fn partial_name(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(NAME_MAX);
    out.push(b'.');
    if 1 + name.len() + PARTIAL_SUFFIX.len() <= NAME_MAX {
        out.extend_from_slice(name);
    } else {
        // FNV-1a: short, stable across runs and platforms, and enough to tell long names apart.
        let hash =
            name.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let tag = format!("~{hash:016x}");
        let mut keep = NAME_MAX - 1 - tag.len() - PARTIAL_SUFFIX.len();
        // Back off to a character boundary (a UTF-8 continuation byte is 0b10xx_xxxx).
        while keep > 0 && name[keep] & 0xc0 == 0x80 {
            keep -= 1;
        }
        out.extend_from_slice(&name[..keep]);
        out.extend_from_slice(tag.as_bytes());
    }
    out.extend_from_slice(PARTIAL_SUFFIX.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn partial_names_fit_the_name_limit() {
        assert_eq!(partial_name(b"a.txt"), b".a.txt.ftpart");
        let longest_plain = "x".repeat(NAME_MAX - 8);
        assert_eq!(partial_name(longest_plain.as_bytes()), format!(".{longest_plain}.ftpart").into_bytes());
        for name in ["y".repeat(NAME_MAX - 7), "z".repeat(NAME_MAX), "é".repeat(127)] {
            let partial = partial_name(name.as_bytes());
            assert!(partial.len() <= NAME_MAX, "{}", partial.len());
            let text = String::from_utf8(partial.clone()).expect("cut between characters");
            assert!(text.starts_with(&format!(".{}", &name[..100])) && text.ends_with(".ftpart"), "{text}");
            assert_eq!(partial_name(name.as_bytes()), partial, "the same every time");
        }
        // Names that share their first 230 bytes still get different partial files.
        let (a, b) = ("q".repeat(NAME_MAX - 1) + "a", "q".repeat(NAME_MAX - 1) + "b");
        assert_ne!(partial_name(a.as_bytes()), partial_name(b.as_bytes()));
    }

    use super::*;

    fn check(cwd: &str, arg: &str, expected: Result<&str, PathError>) {
        let cwd = VirtualPath::parse(cwd).unwrap();
        assert_eq!(cwd.join(arg).map(|p| p.to_string()), expected.map(str::to_owned), "{cwd} + {arg}");
    }

    #[test]
    fn paths_within_a_root_stay_under_it() {
        for (root, path, expected) in
            [("/", "/a", "/a"), ("/home/al", "/", "/home/al"), ("/home/al", "/../x/./y", "/home/al/x/y")]
        {
            let (root, path) = (VirtualPath::parse(root).unwrap(), VirtualPath::parse(path).unwrap());
            assert_eq!(root.within(&path).to_string(), expected);
        }
    }

    #[test]
    fn resolves_paths() {
        check("/", "a", Ok("/a"));
        check("/", "/", Ok("/"));
        check("/a", "b/c", Ok("/a/b/c"));
        check("/a", "/b", Ok("/b"));
        check("/a/b", "..", Ok("/a"));
        check("/a/b", "../..", Ok("/"));
        check("/", "..", Ok("/"));
        check("/", "../../../etc/passwd", Ok("/etc/passwd"));
        check("/a", "a/../../../x", Ok("/x"));
        check("/", "a//b/./c/", Ok("/a/b/c"));
        check("/", ".", Ok("/"));
        check("/", "", Ok("/"));
        check("/", "sp ace/ünï 🚀", Ok("/sp ace/ünï 🚀"));
        check("/", "...", Ok("/..."));
        check("/", "a\nb", Err(PathError::ControlCharacter));
        check("/", "a\0b", Err(PathError::ControlCharacter));
        check("/", &"x".repeat(256), Err(PathError::ComponentTooLong));
    }

    #[test]
    fn tells_directory_endings() {
        for (arg, dir) in
            [("a.txt", false), ("a.txt/", true), ("a.txt/.", true), ("a.txt//", true), ("/", true), (".", false)]
        {
            assert_eq!(names_a_directory(arg), dir, "{arg}");
        }
        assert!(!names_a_directory("a/..") && !names_a_directory(".hidden") && !names_a_directory("a/.b"));
    }

    #[test]
    fn quotes_for_257() {
        for (path, quoted) in [("/", "\"/\""), ("/a \"q\" b", "\"/a \"\"q\"\" b\""), ("/\"", "\"/\"\"\"")] {
            assert_eq!(quote(path), quoted);
            assert_eq!(unquote_257(&format!("{quoted} is the current directory")).as_deref(), Some(path));
        }
        assert_eq!(unquote_257("no quotes"), None);
        assert_eq!(unquote_257("\"unterminated"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_escapes_the_root(arg in "[a./]{0,30}") {
            let p = VirtualPath::parse("/a/b").unwrap().join(&arg).unwrap();
            proptest::prop_assert!(p.components().all(|c| c != ".." && c != "." && !c.is_empty()));
            // Display and parse round trip.
            proptest::prop_assert_eq!(VirtualPath::parse(&p.to_string()).unwrap(), p);
        }
    }
}
