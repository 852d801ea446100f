//! Virtual paths as a client sees them: absolute, `/`-separated, normalised, and unable to
//! climb above `/`. Turning one into a real file under the server's root is the server's job
//! (`ftserver::fs`), which also resolves symlinks.

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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cwd: &str, arg: &str, expected: Result<&str, PathError>) {
        let cwd = VirtualPath::parse(cwd).unwrap();
        assert_eq!(cwd.join(arg).map(|p| p.to_string()), expected.map(str::to_owned), "{cwd} + {arg}");
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
