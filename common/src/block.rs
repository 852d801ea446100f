//! Block mode (`MODE B`, RFC 959 section 3.4.2): the data is sent as blocks, each a descriptor
//! byte, a 16-bit big-endian byte count and that many bytes. A block whose descriptor has
//! [`EOF`] ends the file, so the data connection need not close after a transfer: trees of small
//! files reuse one data connection (and its grown congestion window) instead of opening one per
//! file, and the end of an upload is a mark the client sent, not a connection's end that a killed
//! client produces as well.
//!
//! [`BlockReader`] never reads past the end of a file's last block: what follows on the
//! connection belongs to the next transfer.

use std::io::{self, Read};

/// Descriptor: the end of a record (a file transfer has no records; ignored).
pub const EOR: u8 = 0x80;
/// Descriptor: the end of the file.
pub const EOF: u8 = 0x40;
/// Descriptor: the sender suspects errors in this block's data (kept, as other servers do).
pub const SUSPECT: u8 = 0x20;
/// Descriptor: this block's data is a restart marker, not file data.
pub const RESTART: u8 = 0x10;

/// The most data one block holds.
pub const MAX_BLOCK: usize = u16::MAX as usize;

/// The bytes of a block's header.
pub const HEADER: usize = 3;

/// The header of a block of `count` bytes.
pub fn header(descriptor: u8, count: u16) -> [u8; HEADER] {
    let [hi, lo] = count.to_be_bytes();
    [descriptor, hi, lo]
}

/// The end-of-file block with no data, which ends a transfer whose data blocks went before.
pub const END: [u8; HEADER] = [EOF, 0, 0];

/// Frames data in place: `buf[HEADER..HEADER + n]` holds `n` (at most [`MAX_BLOCK`]) bytes of
/// data, and the header is written before them, so the block goes out in one write.
///
/// # Panics
/// When `n` is above [`MAX_BLOCK`] or `buf` is shorter than the block.
pub fn frame(buf: &mut [u8], n: usize) -> &[u8] {
    let count = u16::try_from(n).expect("a block holds at most 65535 bytes");
    buf[..HEADER].copy_from_slice(&header(0, count));
    &buf[..HEADER + n]
}

/// Reads one file's data out of a block-mode stream: `read` returns data bytes only, and `Ok(0)`
/// once the block marked [`EOF`] has been read. A stream that ends before that fails with
/// `UnexpectedEof`: in block mode a closed connection is never a complete file.
///
/// A read that times out (`WouldBlock`, `TimedOut`) or is interrupted keeps the reader's place,
/// so the caller may read again.
#[derive(Debug)]
pub struct BlockReader<R> {
    inner: R,
    /// The header being read, and how many of its bytes are in.
    head: [u8; HEADER],
    have: usize,
    /// The descriptor of the block being read, and its bytes not read yet.
    descriptor: u8,
    left: usize,
    /// The EOF block has been read completely.
    done: bool,
}

impl<R: Read> BlockReader<R> {
    /// Reads blocks from `inner`.
    pub fn new(inner: R) -> Self {
        BlockReader { inner, head: [0; HEADER], have: 0, descriptor: 0, left: 0, done: false }
    }

    /// The stream the blocks come from.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The stream the blocks come from.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Has the whole file (up to its EOF block) been read?
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads up to the next block holding data, skipping restart markers and empty blocks;
    /// `false` at the end of the file. Resumable after a timeout at any byte.
    fn next_block(&mut self) -> io::Result<bool> {
        loop {
            if self.left > 0 && self.descriptor & RESTART != 0 {
                self.skip_marker()?;
                continue;
            }
            if self.done {
                return Ok(false);
            }
            if self.left > 0 {
                return Ok(true);
            }
            while self.have < HEADER {
                match self.inner.read(&mut self.head[self.have..])? {
                    0 => return Err(cut("a block header")),
                    n => self.have += n,
                }
            }
            self.have = 0;
            self.descriptor = self.head[0];
            self.left = usize::from(u16::from_be_bytes([self.head[1], self.head[2]]));
            if self.left == 0 && self.descriptor & EOF != 0 {
                self.done = true;
            }
        }
    }

    /// Reads and drops a restart marker's bytes (they name a point to restart from, which a
    /// byte offset with `REST` does here).
    fn skip_marker(&mut self) -> io::Result<()> {
        let mut sink = [0u8; 64];
        while self.left > 0 {
            let want = self.left.min(sink.len());
            match self.inner.read(&mut sink[..want])? {
                0 => return Err(cut("a restart marker")),
                n => self.left -= n,
            }
        }
        if self.descriptor & EOF != 0 {
            self.done = true;
        }
        Ok(())
    }
}

fn cut(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the data connection ended inside {what}, before the end-of-file block"),
    )
}

impl<R: Read> Read for BlockReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if !self.next_block()? {
            return Ok(0);
        }
        let want = self.left.min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(cut("a block"));
        }
        self.left -= n;
        if self.left == 0 && self.descriptor & EOF != 0 {
            self.done = true;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that hands out at most `step` bytes per read, and times out every other read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
        stall: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.stall = !self.stall;
            if self.stall {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn blocks(data: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in data.chunks(size) {
            let mut buf = vec![0u8; HEADER + piece.len()];
            buf[HEADER..].copy_from_slice(piece);
            out.extend_from_slice(frame(&mut buf, piece.len()));
        }
        out.extend_from_slice(&END);
        out
    }

    /// Reads to the end of the file, retrying timeouts; returns the data and what is left of
    /// the stream.
    fn read_file(reader: &mut BlockReader<impl Read>) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1000];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    #[test]
    fn two_files_back_to_back_through_timeouts_and_short_reads() {
        let one: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let two = b"second file".to_vec();
        let mut wire = blocks(&one, MAX_BLOCK);
        wire.extend(blocks(&two, 4));
        wire.extend(blocks(&[], 10));
        for step in [1, 2, 3, 7, 65536, 1 << 20] {
            let mut stream = Trickle { bytes: &wire, step, stall: false };
            for expected in [&one, &two, &Vec::new()] {
                let mut reader = BlockReader::new(&mut stream);
                assert_eq!(&read_file(&mut reader).unwrap(), expected, "step {step}");
                assert!(reader.is_done());
            }
            assert!(stream.bytes.is_empty(), "step {step}: {} bytes not read", stream.bytes.len());
        }
    }

    #[test]
    fn restart_markers_empty_blocks_and_eof_on_a_data_block() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&[RESTART, 0, 3, b'1', b'2', b'3']);
        wire.extend_from_slice(&[0, 0, 0]);
        wire.extend_from_slice(&[SUSPECT | EOR, 0, 2, b'a', b'b']);
        wire.extend_from_slice(&[EOF, 0, 2, b'c', b'd']);
        wire.extend_from_slice(b"next");
        let mut stream = Trickle { bytes: &wire, step: 2, stall: false };
        let mut reader = BlockReader::new(&mut stream);
        assert_eq!(read_file(&mut reader).unwrap(), b"abcd");
        assert_eq!(stream.bytes, b"next");
    }

    #[test]
    fn a_stream_that_ends_before_the_eof_block_is_an_error() {
        let full = blocks(b"hello world", 5);
        for cut_at in 0..full.len() {
            let mut stream = Trickle { bytes: &full[..cut_at], step: 3, stall: false };
            let err = read_file(&mut BlockReader::new(&mut stream)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut_at}");
        }
    }
}
