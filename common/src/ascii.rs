//! TYPE A (ASCII) line-ending conversion, streaming and stateful across chunk boundaries.
//!
//! RFC 959 section 3.1.1.1: in ASCII mode the sender converts its local end-of-line to CRLF and
//! the receiver converts CRLF back. Our local convention is the Unix LF.

/// Converts LF to CRLF as bytes stream out. An LF that already follows a CR is left alone, so a
/// file that already uses CRLF is not doubled.
#[derive(Debug, Default, Clone)]
pub struct ToNetwork {
    last_was_cr: bool,
}

impl ToNetwork {
    /// A converter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the converted form of `input` to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 16);
        for &b in input {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}

/// Converts CRLF to LF as bytes stream in. A CR not followed by LF is kept.
#[derive(Debug, Default, Clone)]
pub struct FromNetwork {
    pending_cr: bool,
}

impl FromNetwork {
    /// A converter at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the converted form of `input` to `out`.
    pub fn convert(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 1);
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                if b != b'\n' {
                    out.push(b'\r');
                }
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
    }

    /// Flushes a CR held back at the very end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_net(chunks: &[&[u8]]) -> Vec<u8> {
        let mut c = ToNetwork::new();
        let mut out = Vec::new();
        for chunk in chunks {
            c.convert(chunk, &mut out);
        }
        out
    }

    fn from_net(chunks: &[&[u8]]) -> Vec<u8> {
        let mut c = FromNetwork::new();
        let mut out = Vec::new();
        for chunk in chunks {
            c.convert(chunk, &mut out);
        }
        c.finish(&mut out);
        out
    }

    #[test]
    fn converts_to_network() {
        assert_eq!(to_net(&[b"a\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(to_net(&[b"a\r\nb"]), b"a\r\nb");
        assert_eq!(to_net(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(to_net(&[b"\n\n"]), b"\r\n\r\n");
        assert_eq!(to_net(&[b""]), b"");
    }

    #[test]
    fn converts_from_network() {
        assert_eq!(from_net(&[b"a\r\nb\r\n"]), b"a\nb\n");
        assert_eq!(from_net(&[b"a\r", b"\nb"]), b"a\nb");
        assert_eq!(from_net(&[b"a\rb"]), b"a\rb");
        assert_eq!(from_net(&[b"end\r"]), b"end\r");
        assert_eq!(from_net(&[b"\r", b"\r", b"\n"]), b"\r\n");
    }

    #[test]
    fn round_trips_unix_text() {
        let text: &[u8] = b"one\ntwo\n\nthree";
        for split in 0..text.len() {
            let net = to_net(&[&text[..split], &text[split..]]);
            let net_split = split.min(net.len());
            assert_eq!(from_net(&[&net[..net_split], &net[net_split..]]), text);
        }
    }
}
