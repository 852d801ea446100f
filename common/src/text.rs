//! Making text that came from the network safe to print on a terminal or in a log.

/// Replaces control characters (including ESC, CR, LF, DEL and the C1 range) with `?`-free
/// escapes, so a hostile peer cannot move the cursor, rewrite earlier lines or inject log lines.
///
/// Tabs become spaces; other control characters are shown as `\xNN` or `\u{NNNN}`.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\t' => out.push(' '),
            c if c.is_control() => {
                if (c as u32) < 0x100 {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push_str(&format!("\\u{{{:04x}}}", c as u32));
                }
            }
            // Bidirectional overrides can make a file name read differently than it is.
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                out.push_str(&format!("\\u{{{:04x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Like [`sanitize`], for bytes that may not be UTF-8 (invalid sequences become U+FFFD).
pub fn sanitize_bytes(bytes: &[u8]) -> String {
    sanitize(&String::from_utf8_lossy(bytes))
}

/// The one-line form of a command-line parser's error message: its first paragraph joined
/// into one line, without a leading `error: `, so that a binary can print `NAME: <line>` as its
/// only line on stderr (clap follows it with usage and a hint, which `--help` covers).
pub fn usage_line(message: &str) -> String {
    let paragraph: Vec<&str> = message
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let line = paragraph.join(" ");
    line.strip_prefix("error: ").map(str::to_owned).unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        for (input, expected) in [
            ("plain name.txt", "plain name.txt"),
            ("a\tb", "a b"),
            ("evil\x1b[2J", "evil\\x1b[2J"),
            ("line\r\nbreak", "line\\x0d\\x0abreak"),
            ("nul\0", "nul\\x00"),
            ("c1\u{9b}", "c1\\x9b"),
            ("rtl\u{202e}txt", "rtl\\u{202e}txt"),
            ("ünïcödé 🚀", "ünïcödé 🚀"),
        ] {
            assert_eq!(sanitize(input), expected);
        }
        assert_eq!(sanitize_bytes(b"\xffok"), "\u{fffd}ok");
    }

    #[test]
    fn shortens_usage_errors_to_one_line() {
        let clap =
            "error: invalid value '0' for '<PORT>': 0 is not in 1..=65535\n\nFor more information, try '--help'.\n";
        assert_eq!(usage_line(clap), "invalid value '0' for '<PORT>': 0 is not in 1..=65535");
        assert_eq!(
            usage_line("\nerror: the following required arguments were not provided:\n  <PORT>\n"),
            "the following required arguments were not provided: <PORT>"
        );
        assert_eq!(usage_line(""), "");
    }
}
