//! Netascii (RFC 764 as TFTP uses it): an encoder and a decoder that keep their state across
//! block boundaries, a reader and a writer built on them, and [`ModeWriter`] for either mode.

use super::packet::Mode;
use std::io::{self, Read, Write};

/// Netascii encoder (RFC 764 as TFTP uses it): LF becomes CR LF and CR becomes CR NUL. The
/// second byte of a pair that does not fit in the output is held until the next call, so the
/// stream can be cut into blocks anywhere.
#[derive(Debug, Default, Clone)]
pub struct NetasciiEncoder {
    pending: Option<u8>,
}

impl NetasciiEncoder {
    /// An encoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes from `input` into `out`; returns (bytes of `input` consumed, bytes written). The
    /// output is full unless all of `input` was consumed.
    pub fn encode(&mut self, input: &[u8], out: &mut [u8]) -> (usize, usize) {
        let mut written = 0;
        if let Some(b) = self.pending {
            if out.is_empty() {
                return (0, 0);
            }
            out[0] = b;
            written = 1;
            self.pending = None;
        }
        let mut consumed = 0;
        while consumed < input.len() && written < out.len() {
            let b = input[consumed];
            consumed += 1;
            let (first, second) = match b {
                b'\n' => (b'\r', Some(b'\n')),
                b'\r' => (b'\r', Some(0)),
                b => (b, None),
            };
            out[written] = first;
            written += 1;
            if let Some(second) = second {
                if written < out.len() {
                    out[written] = second;
                    written += 1;
                } else {
                    self.pending = Some(second);
                }
            }
        }
        (consumed, written)
    }

    /// Is a byte held back for the next call?
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }
}

/// Netascii decoder: CR LF becomes LF and CR NUL becomes CR; a CR before anything else is kept
/// as it is. A CR at the end of one block is held until the next block shows what follows it.
#[derive(Debug, Default, Clone)]
pub struct NetasciiDecoder {
    pending_cr: bool,
}

impl NetasciiDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the decoded form of `input` to `out`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 1);
        for &b in input {
            if std::mem::take(&mut self.pending_cr) {
                match b {
                    b'\n' => {
                        out.push(b'\n');
                        continue;
                    }
                    0 => {
                        out.push(b'\r');
                        continue;
                    }
                    _ => out.push(b'\r'),
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

/// A reader of netascii: reads local text from `inner` and yields it encoded.
#[derive(Debug)]
pub struct NetasciiReader<R> {
    inner: R,
    encoder: NetasciiEncoder,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
}

impl<R: Read> NetasciiReader<R> {
    /// Encodes what `inner` yields.
    pub fn new(inner: R) -> Self {
        NetasciiReader { inner, encoder: NetasciiEncoder::new(), buf: vec![0; 64 << 10].into(), pos: 0, len: 0 }
    }
}

impl<R: Read> Read for NetasciiReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos == self.len {
            self.len = self.inner.read(&mut self.buf)?;
            self.pos = 0;
        }
        // At the end of the input this still flushes a held-back byte.
        let (used, wrote) = self.encoder.encode(&self.buf[self.pos..self.len], out);
        self.pos += used;
        Ok(wrote)
    }
}

/// A writer of netascii: decodes what is written and writes local text to `inner`.
/// [`NetasciiWriter::finish`] writes a CR held back at the very end.
#[derive(Debug)]
pub struct NetasciiWriter<W: Write> {
    inner: W,
    decoder: NetasciiDecoder,
    buf: Vec<u8>,
}

impl<W: Write> NetasciiWriter<W> {
    /// Decodes into `inner`.
    pub fn new(inner: W) -> Self {
        NetasciiWriter { inner, decoder: NetasciiDecoder::new(), buf: Vec::new() }
    }

    /// Writes what is held back, flushes, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.buf.clear();
        self.decoder.finish(&mut self.buf);
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for NetasciiWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.clear();
        self.decoder.decode(data, &mut self.buf);
        self.inner.write_all(&self.buf)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where received DATA payloads go in either mode: as they are (octet) or decoded from netascii.
#[derive(Debug)]
pub enum ModeWriter<W: Write> {
    /// Octet: the payloads as they are.
    Octet(W),
    /// Netascii: the payloads decoded.
    Netascii(NetasciiWriter<W>),
}

impl<W: Write> ModeWriter<W> {
    /// Writes into `inner` as `mode` says.
    pub fn new(inner: W, mode: Mode) -> Self {
        match mode {
            Mode::Octet => ModeWriter::Octet(inner),
            Mode::Netascii => ModeWriter::Netascii(NetasciiWriter::new(inner)),
        }
    }

    /// Writes what netascii holds back, flushes, and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            ModeWriter::Octet(mut inner) => {
                inner.flush()?;
                Ok(inner)
            }
            ModeWriter::Netascii(writer) => writer.finish(),
        }
    }
}

impl<W: Write> Write for ModeWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            ModeWriter::Octet(inner) => inner.write(data),
            ModeWriter::Netascii(writer) => writer.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ModeWriter::Octet(inner) => inner.flush(),
            ModeWriter::Netascii(writer) => writer.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tftp::read_block;

    fn encode_in_blocks(input: &[u8], block: usize, chunk: usize) -> Vec<Vec<u8>> {
        let mut enc = NetasciiEncoder::new();
        let mut blocks = Vec::new();
        let mut rest = input;
        loop {
            let mut buf = vec![0u8; block];
            let mut filled = 0;
            // Feed the input in small chunks to exercise the held-back byte at both edges.
            loop {
                let take = rest.len().min(chunk);
                let (used, wrote) = enc.encode(&rest[..take], &mut buf[filled..]);
                rest = &rest[used..];
                filled += wrote;
                if filled == block || (rest.is_empty() && !enc.has_pending()) {
                    break;
                }
            }
            buf.truncate(filled);
            let last = filled < block;
            blocks.push(buf);
            if last {
                return blocks;
            }
        }
    }

    #[test]
    fn netascii_encodes_across_blocks() {
        assert_eq!(encode_in_blocks(b"a\nb\rc", 100, 100).concat(), b"a\r\nb\r\0c");
        assert_eq!(encode_in_blocks(b"ab\n", 3, 1), vec![b"ab\r".to_vec(), b"\n".to_vec()]);
        assert_eq!(encode_in_blocks(b"ab\r", 3, 2), vec![b"ab\r".to_vec(), b"\0".to_vec()]);
        assert_eq!(encode_in_blocks(b"\n", 2, 1), vec![b"\r\n".to_vec(), b"".to_vec()]);
    }

    #[test]
    fn netascii_decodes() {
        let decode = |chunks: &[&[u8]]| {
            let mut d = NetasciiDecoder::new();
            let mut out = Vec::new();
            for c in chunks {
                d.decode(c, &mut out);
            }
            d.finish(&mut out);
            out
        };
        assert_eq!(decode(&[b"a\r\nb\r\0c"]), b"a\nb\rc");
        assert_eq!(decode(&[b"a\r", b"\nb\r", b"\0"]), b"a\nb\r");
        assert_eq!(decode(&[b"a\rb"]), b"a\rb");
        assert_eq!(decode(&[b"end\r"]), b"end\r");
        assert_eq!(decode(&[b"\r", b"\r\n"]), b"\r\n");
    }

    #[test]
    fn netascii_reader_and_writer_round_trip() {
        let text = b"a\nb\rc\r\n\0end\r".repeat(20_000);
        let mut encoded = Vec::new();
        let mut reader = NetasciiReader::new(&text[..]);
        let mut block = [0u8; 7];
        loop {
            let n = read_block(&mut reader, &mut block).unwrap();
            encoded.extend_from_slice(&block[..n]);
            if n < block.len() {
                break;
            }
        }
        assert_eq!(&encoded[..12], b"a\r\nb\r\0c\r\0\r\n\0");
        let mut writer = NetasciiWriter::new(Vec::new());
        for chunk in encoded.chunks(5) {
            writer.write_all(chunk).unwrap();
        }
        assert_eq!(writer.finish().unwrap(), text);
    }

    #[test]
    fn mode_writer_passes_octet_and_decodes_netascii() {
        let mut octet = ModeWriter::new(Vec::new(), Mode::Octet);
        octet.write_all(b"a\r\nb\r").unwrap();
        assert_eq!(octet.finish().unwrap(), b"a\r\nb\r");
        let mut text = ModeWriter::new(Vec::new(), Mode::Netascii);
        text.write_all(b"a\r\nb\r").unwrap();
        assert_eq!(text.finish().unwrap(), b"a\nb\r", "the CR held back at the end is written");
    }

    proptest::proptest! {
        #[test]
        fn netascii_round_trips(text in proptest::collection::vec(proptest::sample::select(vec![b'a', b'\r', b'\n', 0u8]), 0..200), block in 1usize..20, chunk in 1usize..7) {
            let blocks = encode_in_blocks(&text, block, chunk);
            let mut d = NetasciiDecoder::new();
            let mut out = Vec::new();
            for b in &blocks {
                d.decode(b, &mut out);
            }
            d.finish(&mut out);
            proptest::prop_assert_eq!(out, text);
        }
    }
}
