//! Helpers shared by the fuzz targets: reading settings off the front of the fuzzer's bytes, and
//! an in-memory stream that hands its input out in fuzzer-chosen chunks.
//!
//! Settings are single bytes so that a seed can choose them with printable characters (see
//! fuzz/README.md): a target reads them with [`Input`] and treats what is left as the payload.

use std::io::{self, Read, Write};

/// The fuzzer's bytes, consumed from the front.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzzer's input.
    pub fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    /// The next byte, or 0 once the input is used up (so short inputs still run).
    pub fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        head
    }

    /// A big-endian `u32` from the next four bytes (missing bytes count as 0).
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// The payload: every byte not yet consumed.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }
}

/// A line limit chosen by one byte: half the values pick a tiny limit (0 to 63) so the fuzzer
/// reaches the over-long-line paths with short inputs, the others the limits the binaries use.
pub fn line_limit(b: u8) -> usize {
    match b & 3 {
        0 | 1 => usize::from(b >> 2),
        2 => common::MAX_COMMAND_LINE,
        _ => common::MAX_REPLY_LINE,
    }
}

/// Reads a chunk schedule: one byte whose low three bits say how many size bytes follow (1 to 8),
/// then the sizes. A size byte 0 stands for one `Interrupted` error, 251 and above for "all that
/// is left". The schedule always lets a reader make progress.
pub fn chunk_sizes(input: &mut Input<'_>) -> Vec<usize> {
    let n = usize::from(input.byte() & 7) + 1;
    let mut sizes: Vec<usize> =
        input.take(n).iter().map(|&b| if b > 250 { usize::MAX } else { usize::from(b) }).collect();
    if sizes.iter().all(|&s| s == 0) {
        sizes.push(1);
    }
    sizes
}

/// Cuts `data` into consecutive pieces whose lengths follow `sizes` cyclically (a size 0 gives
/// an empty piece). The pieces concatenate back to `data`.
pub fn split<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

/// An in-memory duplex stream: reads hand out `data` in the chunk sizes of the schedule (a size
/// 0 is one `ErrorKind::Interrupted`), writes are kept in `written`.
#[derive(Debug)]
pub struct Chunked<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
    /// Everything written to the stream.
    pub written: Vec<u8>,
}

impl<'a> Chunked<'a> {
    /// A stream that yields `data` following `sizes` (see [`chunk_sizes`]).
    pub fn new(data: &'a [u8], sizes: Vec<usize>) -> Self {
        assert!(sizes.iter().any(|&s| s > 0), "a chunk schedule must make progress");
        Chunked { data, sizes, next: 0, written: Vec::new() }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.data.is_empty() || buf.is_empty() {
            return Ok(0);
        }
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        if size == 0 {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The setup of the control-stream targets: reads a line limit and a chunk schedule from the
/// front of `data` and returns a [`common::Control`] over the rest, the rest itself (for the
/// reference model to read) and the line limit.
pub fn control_over(data: &[u8]) -> (common::Control<Chunked<'_>>, &[u8], usize) {
    let mut input = Input::new(data);
    let max_line = line_limit(input.byte());
    let sizes = chunk_sizes(&mut input);
    let stream = input.rest();
    (common::Control::new(Chunked::new(stream, sizes), max_line), stream, max_line)
}
