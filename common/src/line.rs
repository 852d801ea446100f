//! Finding one CRLF- (or bare LF-) terminated line in a byte buffer, with a length limit.

/// What [`find_line`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A whole line: its bytes without the terminator, and how many bytes it used up.
    Complete { line: &'a [u8], consumed: usize },
    /// No terminator yet and still within the limit: read more bytes.
    Incomplete,
    /// More than `limit` bytes without a terminator: the line is too long.
    TooLong,
}

/// Finds the first line in `buf`.
///
/// A line ends at LF; one CR right before the LF is part of the terminator (RFC 959 asks for
/// CRLF, but many clients and servers send bare LF, so both are accepted). `limit` is the
/// longest line allowed, terminator not counted.
pub fn find_line(buf: &[u8], limit: usize) -> Line<'_> {
    let window = &buf[..buf.len().min(limit.saturating_add(2))];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let end = if lf > 0 && buf[lf - 1] == b'\r' { lf - 1 } else { lf };
            if end > limit {
                Line::TooLong
            } else {
                Line::Complete { line: &buf[..end], consumed: lf + 1 }
            }
        }
        None if buf.len() > limit.saturating_add(1) => Line::TooLong,
        // Exactly limit+1 bytes could still be `line + CR` waiting for its LF.
        None if Some(buf.len()) == limit.checked_add(1) && buf[limit] != b'\r' => Line::TooLong,
        None => Line::Incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], limit: usize, expected: Line<'_>) {
        assert_eq!(find_line(input, limit), expected, "input {:?}", String::from_utf8_lossy(input));
    }

    #[test]
    fn finds_lines() {
        check(b"USER a\r\nPASS", 100, Line::Complete { line: b"USER a", consumed: 8 });
        check(b"USER a\nPASS", 100, Line::Complete { line: b"USER a", consumed: 7 });
        check(b"\r\n", 100, Line::Complete { line: b"", consumed: 2 });
        check(b"USER a\r", 100, Line::Incomplete);
        check(b"", 100, Line::Incomplete);
        // A CR inside a line is not a terminator.
        check(b"a\rb\r\n", 100, Line::Complete { line: b"a\rb", consumed: 5 });
    }

    #[test]
    fn enforces_the_limit() {
        check(b"abcd\r\n", 4, Line::Complete { line: b"abcd", consumed: 6 });
        check(b"abcd\r", 4, Line::Incomplete);
        check(b"abcde", 4, Line::TooLong);
        check(b"abcde\r\n", 4, Line::TooLong);
        check(b"abcd", 4, Line::Incomplete);
        check(b"abc", usize::MAX, Line::Incomplete);
    }
}
