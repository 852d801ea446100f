//! FTP replies (RFC 959 section 4.2): `NNN text` and multi-line `NNN-first ... NNN last`,
//! formatted by the server and parsed by the client.

use crate::line::{find_line, Line};
use core::fmt;

/// One reply: a three-digit code and one or more lines of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code, 100 to 599.
    pub code: u16,
    /// The text lines, without codes or line endings. A single-line reply has one line.
    pub lines: Vec<String>,
}

/// Why bytes could not be read as a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// A line longer than the limit.
    #[error("reply line longer than {0} bytes")]
    TooLong(usize),
    /// The first line does not start with a three-digit code from 100 to 599.
    #[error("malformed reply line {0:?}")]
    Malformed(String),
    /// A multi-line reply with more lines than the limit.
    #[error("multi-line reply longer than {0} lines")]
    TooManyLines(usize),
}

/// The most lines one multi-line reply may have (a FEAT or HELP reply has a few dozen).
pub const MAX_REPLY_LINES: usize = 10_000;

impl Reply {
    /// A reply with one line of text.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Reply { code, lines: vec![text.into()] }
    }

    /// A multi-line reply. `lines` must not be empty.
    pub fn multi(code: u16, lines: Vec<String>) -> Self {
        assert!(!lines.is_empty(), "a reply has at least one line");
        Reply { code, lines }
    }

    /// The first digit class: 1 preliminary, 2 completion, 3 intermediate, 4 transient
    /// failure, 5 permanent failure.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    /// Is this a 1xx (positive preliminary) reply?
    pub fn is_preliminary(&self) -> bool {
        self.class() == 1
    }

    /// Is this a 2xx (positive completion) reply?
    pub fn is_success(&self) -> bool {
        self.class() == 2
    }

    /// Is this a 3xx (positive intermediate) reply?
    pub fn is_intermediate(&self) -> bool {
        self.class() == 3
    }

    /// Is this a 4xx or 5xx (failure) reply?
    pub fn is_failure(&self) -> bool {
        self.class() >= 4
    }

    /// All text lines joined with a space (the last line alone is usually the message).
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// The reply as it goes on the wire, CRLF line endings included.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Parses one complete reply from the start of `buf`. Returns `Ok(None)` when more bytes are
    /// needed, else the reply and the number of bytes it used.
    ///
    /// A multi-line reply ends at the first line that starts with the same code followed by a
    /// space (RFC 959 section 4.2); lines in between may start with anything.
    pub fn parse(buf: &[u8], max_line: usize) -> Result<Option<(Reply, usize)>, ReplyError> {
        let mut offset = 0;
        let mut builder = ReplyBuilder::default();
        loop {
            match find_line(&buf[offset..], max_line) {
                Line::Incomplete => return Ok(None),
                Line::TooLong => return Err(ReplyError::TooLong(max_line)),
                Line::Complete { line, consumed } => {
                    offset += consumed;
                    if let Some(reply) = builder.push_line(line)? {
                        return Ok(Some((reply, offset)));
                    }
                }
            }
        }
    }
}

/// Assembles a reply from lines, one at a time.
#[derive(Debug, Default, Clone)]
pub struct ReplyBuilder {
    code: Option<u16>,
    lines: Vec<String>,
}

fn leading_code(line: &[u8]) -> Option<u16> {
    match line {
        [a @ b'1'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
            Some(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => None,
    }
}

impl ReplyBuilder {
    /// Feeds one line (without its terminator). Returns the reply once its last line arrived.
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        match self.code {
            None => {
                let code = leading_code(line).ok_or_else(|| ReplyError::Malformed(text(line)))?;
                match line.get(3) {
                    None => Ok(Some(Reply::new(code, ""))),
                    Some(b' ') => Ok(Some(Reply::new(code, text(&line[4..])))),
                    Some(b'-') => {
                        self.code = Some(code);
                        self.lines.push(text(&line[4..]));
                        Ok(None)
                    }
                    Some(_) => Err(ReplyError::Malformed(text(line))),
                }
            }
            Some(code) => {
                let is_last = leading_code(line) == Some(code) && matches!(line.get(3), None | Some(b' '));
                if is_last {
                    self.lines.push(text(line.get(4..).unwrap_or_default()));
                    let lines = std::mem::take(&mut self.lines);
                    self.code = None;
                    Ok(Some(Reply { code, lines }))
                } else if self.lines.len() >= MAX_REPLY_LINES {
                    Err(ReplyError::TooManyLines(MAX_REPLY_LINES))
                } else {
                    // Some servers repeat "NNN-" on inner lines; drop that prefix.
                    let inner =
                        if leading_code(line) == Some(code) && line.get(3) == Some(&b'-') { &line[4..] } else { line };
                    self.lines.push(text(inner));
                    Ok(None)
                }
            }
        }
    }
}

impl fmt::Display for Reply {
    /// Formats the reply with CRLF line endings. Inner lines of a multi-line reply that could be
    /// mistaken for the last line (a code and a space) get a leading space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code;
        let n = self.lines.len();
        for (i, line) in self.lines.iter().enumerate() {
            if i + 1 == n {
                write!(f, "{code} {line}\r\n")?;
            } else if i == 0 {
                write!(f, "{code}-{line}\r\n")?;
            } else if leading_code(line.as_bytes()).is_some() {
                write!(f, " {line}\r\n")?;
            } else {
                write!(f, "{line}\r\n")?;
            }
        }
        Ok(())
    }
}

/// Finds the size a `150` reply announces, `... for f (1234 bytes).`, as vsftpd and many other
/// servers send it (curl and Python's ftplib read it too). `None` when the text has no such number.
pub fn parse_transfer_size(text: &str) -> Option<u64> {
    text.match_indices('(').find_map(|(i, _)| {
        let rest = &text[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let after = rest[digits..].trim_start_matches(' ');
        if digits == 0 || !after.to_ascii_lowercase().starts_with("bytes") {
            return None;
        }
        rest[..digits].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<Option<(Reply, usize)>, ReplyError>) {
        assert_eq!(Reply::parse(input.as_bytes(), 8192), expected, "input {input:?}");
    }

    #[test]
    fn parses_replies() {
        check("220 ready\r\n", Ok(Some((Reply::new(220, "ready"), 11))));
        check("220 ready\n", Ok(Some((Reply::new(220, "ready"), 10))));
        check("200\r\n", Ok(Some((Reply::new(200, ""), 5))));
        check("220 ready", Ok(None));
        check("220-a\r\n", Ok(None));
        check(
            "211-Features:\r\n EPSV\r\n MLST type*;size*;\r\n211 End\r\n",
            Ok(Some((
                Reply::multi(211, vec!["Features:".into(), " EPSV".into(), " MLST type*;size*;".into(), "End".into()]),
                51,
            ))),
        );
        // An inner line that starts with a different code, or the same code and no space, is text.
        check(
            "220-Welcome\r\n230 not the end\r\n220-still\r\n220 end\r\n",
            Ok(Some((
                Reply::multi(220, vec!["Welcome".into(), "230 not the end".into(), "still".into(), "end".into()]),
                50,
            ))),
        );
        check("abc\r\n", Err(ReplyError::Malformed("abc".into())));
        check("099 x\r\n", Err(ReplyError::Malformed("099 x".into())));
        check("220x\r\n", Err(ReplyError::Malformed("220x".into())));
        assert_eq!(Reply::parse(b"220 abcdef", 4), Err(ReplyError::TooLong(4)));
        // A server that never ends a multi-line reply is cut off at the line limit.
        let endless = format!("211-start\r\n{}", "x\r\n".repeat(MAX_REPLY_LINES + 1));
        assert_eq!(Reply::parse(endless.as_bytes(), 8192), Err(ReplyError::TooManyLines(MAX_REPLY_LINES)));
    }

    #[test]
    fn finds_announced_transfer_sizes() {
        for (text, expected) in [
            ("Opening BINARY mode data connection for f (1234 bytes).", Some(1234)),
            ("Opening BINARY mode data connection for a (b) (5368709120 bytes)", Some(5_368_709_120)),
            ("Opening data connection (0 Bytes)", Some(0)),
            ("File status okay. About to open data connection.", None),
            ("Here comes (x bytes)", None),
            ("(12 kilobytes)", None),
        ] {
            assert_eq!(parse_transfer_size(text), expected, "{text}");
        }
    }

    #[test]
    fn round_trips() {
        for reply in [
            Reply::new(220, "ft ready"),
            Reply::new(257, "\"/a \"\"q\"\" b\" is the current directory"),
            Reply::new(200, ""),
            Reply::multi(211, vec!["Features:".into(), " EPRT".into(), " UTF8".into(), "End".into()]),
            Reply::multi(214, vec!["Commands:".into(), " 214 lookalike".into(), "Done".into()]),
        ] {
            let bytes = reply.to_bytes();
            assert_eq!(Reply::parse(&bytes, 8192), Ok(Some((reply.clone(), bytes.len()))));
        }
        // A line that would end the reply early is protected by a leading space.
        let tricky = Reply::multi(214, vec!["a".into(), "214 b".into(), "c".into()]);
        let (parsed, _) = Reply::parse(&tricky.to_bytes(), 8192).unwrap().unwrap();
        assert_eq!(parsed.lines, vec!["a", " 214 b", "c"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
            let _ = Reply::parse(&bytes, 64);
        }

        #[test]
        fn single_lines_round_trip(code in 100u16..600, text in "[^\r\n]{0,60}") {
            let reply = Reply::new(code, text);
            let bytes = reply.to_bytes();
            proptest::prop_assert_eq!(Reply::parse(&bytes, 8192), Ok(Some((reply, bytes.len()))));
        }
    }
}
