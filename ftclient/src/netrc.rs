//! The netrc file (`$NETRC`, else `~/.netrc`), as ftp(1), curl and lftp read it: `machine
//! NAME login USER password PASS` entries, a `default` entry for any other host, `account`
//! values skipped, `macdef NAME` macros skipped up to the next empty line, `#` comments, and
//! curl's double-quoted values (`"a b\"c"`) for passwords with spaces.

use crate::credentials::{io_problem, Secret};
use std::path::{Path, PathBuf};

/// One `machine` (or `default`) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The host name; `None` for the `default` entry.
    pub machine: Option<String>,
    /// `login`.
    pub login: Option<String>,
    /// `password`.
    pub password: Option<Secret>,
}

/// A parsed netrc file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Netrc {
    entries: Vec<Entry>,
}

/// A netrc file that could not be read or parsed: `FILE:LINE: PROBLEM`. Never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {problem}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct NetrcError {
    /// The file's path.
    pub file: String,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub problem: String,
}

/// `$NETRC` if set, else `$HOME/.netrc`; `None` without either.
pub fn default_path() -> Option<PathBuf> {
    match std::env::var_os("NETRC") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| Path::new(&home).join(".netrc")),
    }
}

impl Netrc {
    /// Reads and parses the file at `path`. A file that others may read while it holds a
    /// password gets a warning (ftp(1) refuses such a file; curl does not, so neither do we).
    pub fn load(path: &Path) -> Result<Netrc, NetrcError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| NetrcError {
            file: file.clone(),
            line: None,
            problem: io_problem(&e),
        })?;
        let netrc = Netrc::parse(&file, &text)?;
        if netrc.entries.iter().any(|e| e.password.is_some()) {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                log::warn!("{file}: holds passwords but others may read it (chmod 600 {file})");
            }
        }
        Ok(netrc)
    }

    /// Parses netrc text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Netrc, NetrcError> {
        let fail = |line: usize, problem: String| NetrcError { file: file.to_owned(), line: Some(line), problem };
        let mut tokens = Tokens { text, at: 0, line: 1 };
        let mut entries: Vec<Entry> = Vec::new();
        while let Some((line, keyword)) = tokens.next().map_err(|l| fail(l, "unterminated quoted value".into()))? {
            let mut value = |what: &str| match tokens.next() {
                Ok(Some((_, v))) => Ok(v),
                Ok(None) => Err(fail(line, format!("`{what}` needs a value"))),
                Err(l) => Err(fail(l, "unterminated quoted value".into())),
            };
            match keyword.as_str() {
                "machine" => {
                    let machine = value("machine")?;
                    entries.push(Entry { machine: Some(machine), login: None, password: None });
                }
                "default" => entries.push(Entry { machine: None, login: None, password: None }),
                "login" | "password" | "account" => {
                    let v = value(&keyword)?;
                    let Some(entry) = entries.last_mut() else {
                        return Err(fail(line, format!("`{keyword}` before any `machine` or `default`")));
                    };
                    match keyword.as_str() {
                        "login" => entry.login = Some(v),
                        "password" => entry.password = Some(Secret::new(v)),
                        _ => {}
                    }
                }
                "macdef" => {
                    value("macdef")?;
                    tokens.skip_macro();
                }
                // Not repeated: a misplaced password would be shown.
                _ => log::warn!("{file}:{line}: unknown netrc keyword ignored"),
            }
        }
        Ok(Netrc { entries })
    }

    /// The entry for `host` (a `machine` named so, ignoring case; with `login`, only one with
    /// that login), else the `default` entry, as curl and ftp(1) choose.
    pub fn find(&self, host: &str, login: Option<&str>) -> Option<&Entry> {
        let login_fits = |e: &&Entry| login.is_none() || e.login.is_none() || e.login.as_deref() == login;
        self.entries
            .iter()
            .filter(login_fits)
            .find(|e| e.machine.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(host)))
            .or_else(|| self.entries.iter().filter(login_fits).find(|e| e.machine.is_none()))
    }

    /// The entries in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// Splits netrc text into tokens, tracking the line for errors.
struct Tokens<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl Tokens<'_> {
    /// The next token and its line; `Err(line)` for a quote that never closes.
    fn next(&mut self) -> Result<Option<(usize, String)>, usize> {
        let bytes = self.text.as_bytes();
        loop {
            while self.at < bytes.len() && bytes[self.at].is_ascii_whitespace() {
                self.line += usize::from(bytes[self.at] == b'\n');
                self.at += 1;
            }
            if self.at < bytes.len() && bytes[self.at] == b'#' {
                while self.at < bytes.len() && bytes[self.at] != b'\n' {
                    self.at += 1;
                }
                continue;
            }
            break;
        }
        if self.at >= bytes.len() {
            return Ok(None);
        }
        let line = self.line;
        if bytes[self.at] == b'"' {
            let mut value = String::new();
            let mut chars = self.text[self.at + 1..].char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        self.at += 1 + i + 1;
                        return Ok(Some((line, value)));
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 'r')) => value.push('\r'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, other)) => value.push(other),
                        None => break,
                    },
                    '\n' => {
                        self.line += 1;
                        value.push(c);
                    }
                    c => value.push(c),
                }
            }
            return Err(line);
        }
        let start = self.at;
        while self.at < bytes.len() && !bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
        Ok(Some((line, self.text[start..self.at].to_owned())))
    }

    /// Skips a macro body: everything up to and including the next empty line.
    fn skip_macro(&mut self) {
        match self.text[self.at..].find("\n\n") {
            Some(i) => {
                self.line += self.text[self.at..self.at + i + 2].matches('\n').count();
                self.at += i + 2;
            }
            None => self.at = self.text.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Netrc {
        Netrc::parse("netrc", text).unwrap()
    }

    fn found(netrc: &Netrc, host: &str, login: Option<&str>) -> Option<(Option<String>, Option<String>)> {
        netrc.find(host, login).map(|e| (e.login.clone(), e.password.as_ref().map(|p| p.expose().to_owned())))
    }

    fn pair(login: &str, password: &str) -> Option<(Option<String>, Option<String>)> {
        Some((Some(login.into()), Some(password.into())))
    }

    #[test]
    fn machines_logins_and_default() {
        let netrc = parse(
            "# my hosts\nmachine ftp.example.com login alice password s3cret\n\
             machine other.example login bob account acct password 'x'\n\
             machine ftp.example.com login carol password c4rol\n\
             default login anonymous password me@example.com\n",
        );
        assert_eq!(found(&netrc, "ftp.example.com", None), pair("alice", "s3cret"));
        assert_eq!(found(&netrc, "FTP.Example.COM", None), pair("alice", "s3cret"), "host names ignore case");
        assert_eq!(found(&netrc, "ftp.example.com", Some("carol")), pair("carol", "c4rol"));
        assert_eq!(found(&netrc, "other.example", None), pair("bob", "'x'"));
        assert_eq!(found(&netrc, "elsewhere", None), pair("anonymous", "me@example.com"));
        assert_eq!(found(&netrc, "elsewhere", Some("dave")), None);
        assert_eq!(found(&parse("machine a login x password y\n"), "b", None), None);
    }

    #[test]
    fn one_line_or_many_tokens_per_line() {
        let netrc = parse("machine\n  h\n login\n   u\n password\tp\n");
        assert_eq!(found(&netrc, "h", None), pair("u", "p"));
        let no_password = parse("machine h login u");
        assert_eq!(found(&no_password, "h", None), Some((Some("u".into()), None)));
    }

    #[test]
    fn macros_are_skipped_to_the_empty_line() {
        let text = "macdef init\ncd /pub\nmachine fake login no password no\n\nmachine h login u password p\n";
        let netrc = parse(text);
        assert_eq!(netrc.entries().len(), 1);
        assert_eq!(found(&netrc, "h", None), pair("u", "p"));
        assert_eq!(parse("macdef m\nbin\nget x\n").entries().len(), 0);
    }

    #[test]
    fn quoted_values_and_comments() {
        let netrc = parse("machine h # trailing comment\nlogin \"a b\" password \"q\\\"uote\\\\d \\t#not\"\n");
        assert_eq!(found(&netrc, "h", None), pair("a b", "q\"uote\\d \t#not"));
        assert_eq!(found(&parse("machine h login u password p#x\n"), "h", None), pair("u", "p#x"));
    }

    #[test]
    fn errors_name_the_line_and_never_the_password() {
        let check = |text: &str, expected: &str| {
            let err = Netrc::parse("/home/me/.netrc", text).unwrap_err().to_string();
            assert_eq!(err, expected, "{text:?}");
        };
        check("login alice password hunter2\n", "/home/me/.netrc:1: `login` before any `machine` or `default`");
        check("machine h login u\npassword", "/home/me/.netrc:2: `password` needs a value");
        check("machine h\n\nlogin u password \"hunter2\n", "/home/me/.netrc:3: unterminated quoted value");
        check("machine", "/home/me/.netrc:1: `machine` needs a value");
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netrc");
        let err = Netrc::load(&path).unwrap_err().to_string();
        assert_eq!(err, format!("{}: no such file or directory", path.display()));
        std::fs::write(&path, "machine h login u password p\n").unwrap();
        assert_eq!(found(&Netrc::load(&path).unwrap(), "h", None), pair("u", "p"));
    }

    #[test]
    fn debug_hides_passwords() {
        let netrc = parse("machine h login u password hunter2\n");
        let debug = format!("{netrc:?}");
        assert!(!debug.contains("hunter2") && debug.contains("****"), "{debug}");
    }
}
