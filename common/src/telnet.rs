//! Telnet on the control connection (RFC 959 section 4.1 says it speaks the Telnet protocol,
//! RFC 854): the commands a client may mix into a command line, taken out.

/// Telnet's "interpret as command" byte (RFC 854).
const IAC: u8 = 0xff;

/// Removes Telnet commands from a line (RFC 959 section 4.1: the control connection speaks the
/// Telnet protocol; RFC 854): `IAC IAC` is a literal 0xFF, option negotiation (`IAC WILL x`,
/// `WONT`, `DO`, `DONT`) takes three bytes, a subnegotiation runs to `IAC SE`, any other command
/// (`IAC IP`, `IAC DM` before an urgent `ABOR`, `IAC NOP`) two. The bare IP and DM bytes that
/// remain at the start when the urgent mark split the sequence go too.
pub fn strip(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut line = line;
    while let [0xf2 | 0xf4, rest @ ..] = line {
        line = rest;
    }
    if !line.contains(&IAC) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let mut rest = line;
    loop {
        match rest {
            [] => break,
            [IAC, IAC, tail @ ..] => {
                out.push(IAC);
                rest = tail;
            }
            // SB: skip to IAC SE (or to the end of a line that never closes it).
            [IAC, 0xfa, tail @ ..] => {
                let end = tail.windows(2).position(|w| w == [IAC, 0xf0]).map_or(tail.len(), |at| at + 2);
                rest = &tail[end..];
            }
            [IAC, 0xfb..=0xfe, _, tail @ ..] | [IAC, _, tail @ ..] => rest = tail,
            [IAC] => break,
            [byte, tail @ ..] => {
                out.push(*byte);
                rest = tail;
            }
        }
    }
    // Leading IP/DM bytes the sequence left behind, as above.
    let start = out.iter().position(|b| !matches!(b, 0xf2 | 0xf4)).unwrap_or(out.len());
    out.drain(..start);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 854 via RFC 959 section 4.1: Telnet commands anywhere in a line are not part of it.
    #[test]
    fn strips_telnet_commands() {
        for (line, expected) in [
            (&b"\xff\xfb\x01NOOP"[..], &b"NOOP"[..]),
            (b"\xff\xfd\x03\xff\xfc\x01NOOP", b"NOOP"),
            (b"NO\xff\xf1OP", b"NOOP"),
            (b"\xff\xfa\x18\x01\xff\xf0NOOP", b"NOOP"),
            (b"\xff\xf4\xff\xf2ABOR", b"ABOR"),
            (b"\xf2ABOR", b"ABOR"),
            (b"RETR a\xff\xffb", b"RETR a\xffb"),
            (b"plain", b"plain"),
            (b"\xff", b""),
        ] {
            assert_eq!(&*strip(line), expected, "{line:?}");
        }
    }
}
