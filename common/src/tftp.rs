//! TFTP packets (RFC 1350) with option extensions (RFC 2347 OACK, 2348 blksize, 2349 timeout and
//! tsize, 7440 windowsize): parse from `&[u8]`, format into bytes, netascii conversion that keeps
//! its state across block boundaries, option negotiation as a pure function, and the windowed
//! send and receive loops both programs run ([`send_blocks`], [`receive_blocks`]) over a
//! [`Link`] each implements on its own socket.
//!
//! Parsing is lenient where the RFCs let real clients be sloppy (a missing final NUL, an option
//! name without a value, unknown options) and strict only where the packet cannot be understood
//! (an unknown opcode, a packet shorter than its fixed header, a request without a file name).

use core::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// The largest block size RFC 2348 allows (65535 minus IP and UDP headers).
pub const MAX_BLKSIZE: u16 = 65464;
/// The smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// The RFC 1350 block size, used when no `blksize` option is negotiated.
pub const DEFAULT_BLKSIZE: u16 = 512;
/// The largest possible TFTP packet: a DATA header and a `MAX_BLKSIZE` block.
pub const MAX_PACKET: usize = 4 + MAX_BLKSIZE as usize;
/// The size of a DATA packet's header (opcode and block number).
pub const DATA_HEADER: usize = 4;

/// Opcode of a read request.
pub const OP_RRQ: u16 = 1;
/// Opcode of a write request.
pub const OP_WRQ: u16 = 2;
/// Opcode of a data packet.
pub const OP_DATA: u16 = 3;
/// Opcode of an acknowledgement.
pub const OP_ACK: u16 = 4;
/// Opcode of an error packet.
pub const OP_ERROR: u16 = 5;
/// Opcode of an option acknowledgement (RFC 2347).
pub const OP_OACK: u16 = 6;

/// The error codes of RFC 1350 section 5 and RFC 2347.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    NotDefined = 0,
    /// 1: file not found.
    FileNotFound = 1,
    /// 2: access violation.
    AccessViolation = 2,
    /// 3: disk full or allocation exceeded.
    DiskFull = 3,
    /// 4: illegal TFTP operation.
    IllegalOperation = 4,
    /// 5: unknown transfer ID.
    UnknownTid = 5,
    /// 6: file already exists.
    FileExists = 6,
    /// 7: no such user.
    NoSuchUser = 7,
    /// 8: option negotiation refused (RFC 2347).
    OptionRefused = 8,
}

/// Read or write: the two kinds of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// RRQ: the client reads a file from the server.
    Read,
    /// WRQ: the client writes a file to the server.
    Write,
}

/// The transfer mode named in a request, in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes as they are.
    Octet,
    /// NVT ASCII: LF travels as CR LF and CR as CR NUL (RFC 764).
    Netascii,
}

impl Mode {
    /// The mode a request's mode string selects; `None` for `mail` (obsolete, RFC 1350 says
    /// it must not be used) and anything unknown, which a server refuses with error 4, as
    /// tftpd-hpa does: serving them as octet could hand text-mode clients the wrong bytes.
    pub fn from_name(name: &str) -> Option<Mode> {
        if name.eq_ignore_ascii_case("octet") {
            Some(Mode::Octet)
        } else if name.eq_ignore_ascii_case("netascii") {
            Some(Mode::Netascii)
        } else {
            None
        }
    }

    /// The canonical mode string.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
        }
    }
}

/// An RRQ or WRQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Read or write.
    pub direction: Direction,
    /// The file name as sent (decoded as UTF-8, invalid bytes replaced).
    pub filename: String,
    /// The mode string as sent; see [`Request::mode`].
    pub mode: String,
    /// The options in the order sent, names and values as sent.
    pub options: Vec<(String, String)>,
}

impl Request {
    /// The transfer mode the mode string selects (see [`Mode::from_name`]).
    pub fn mode(&self) -> Option<Mode> {
        Mode::from_name(&self.mode)
    }
}

/// One TFTP packet. DATA borrows its payload from the datagram so receiving needs no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// RRQ or WRQ.
    Request(Request),
    /// DATA: a block number and up to blksize bytes.
    Data {
        /// The block number (wraps from 65535 to 0).
        block: u16,
        /// The payload.
        data: &'a [u8],
    },
    /// ACK of a block number (0 acknowledges a WRQ or an OACK).
    Ack(u16),
    /// ERROR: a code and a message.
    Error {
        /// The error code (kept as a number: peers send codes beyond 8).
        code: u16,
        /// The message (decoded as UTF-8, invalid bytes replaced).
        message: String,
    },
    /// OACK: the options the server accepted, with their values.
    Oack(Vec<(String, String)>),
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the opcode and fixed fields need.
    #[error("packet of {0} bytes is too short")]
    Truncated(usize),
    /// An opcode outside 1..=6.
    #[error("unknown opcode {0}, expected 1 to 6")]
    BadOpcode(u16),
    /// A request without a NUL-terminated file name, or with an empty one.
    #[error("request without a file name")]
    NoFilename,
    /// A request whose file name is not UTF-8. Refused rather than read lossily: two different
    /// names would become one (an upload with overwriting allowed replaced the other's file).
    #[error("file name is not valid UTF-8")]
    FilenameNotUtf8,
    /// A DATA packet with more than the largest block size.
    #[error("data block of {0} bytes is larger than {MAX_BLKSIZE}")]
    Oversized(usize),
}

impl Packet<'_> {
    /// Parses one datagram.
    pub fn parse(buf: &[u8]) -> Result<Packet<'_>, ParseError> {
        if buf.len() < 2 {
            return Err(ParseError::Truncated(buf.len()));
        }
        let opcode = u16::from_be_bytes([buf[0], buf[1]]);
        let body = &buf[2..];
        match opcode {
            OP_RRQ | OP_WRQ => {
                let direction = if opcode == OP_RRQ { Direction::Read } else { Direction::Write };
                let mut fields = fields(body);
                let filename = match fields.next() {
                    Some(name) if !name.is_empty() => {
                        String::from_utf8(name.to_vec()).map_err(|_| ParseError::FilenameNotUtf8)?
                    }
                    _ => return Err(ParseError::NoFilename),
                };
                let mode = fields.next().map(lossy).unwrap_or_default();
                let options = pairs(fields);
                Ok(Packet::Request(Request { direction, filename, mode, options }))
            }
            OP_DATA => {
                let block = u16_at(body).ok_or(ParseError::Truncated(buf.len()))?;
                let data = &body[2..];
                if data.len() > MAX_BLKSIZE as usize {
                    return Err(ParseError::Oversized(data.len()));
                }
                Ok(Packet::Data { block, data })
            }
            OP_ACK => Ok(Packet::Ack(u16_at(body).ok_or(ParseError::Truncated(buf.len()))?)),
            OP_ERROR => {
                let code = u16_at(body).ok_or(ParseError::Truncated(buf.len()))?;
                let message = fields(&body[2..]).next().map(lossy).unwrap_or_default();
                Ok(Packet::Error { code, message })
            }
            OP_OACK => Ok(Packet::Oack(pairs(fields(body)))),
            other => Err(ParseError::BadOpcode(other)),
        }
    }

    /// Appends the packet's wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Packet::Request(req) => {
                let op = match req.direction {
                    Direction::Read => OP_RRQ,
                    Direction::Write => OP_WRQ,
                };
                out.extend_from_slice(&op.to_be_bytes());
                push_field(out, &req.filename);
                push_field(out, &req.mode);
                for (name, value) in &req.options {
                    push_field(out, name);
                    push_field(out, value);
                }
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&OP_DATA.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack(block) => {
                out.extend_from_slice(&OP_ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&OP_ERROR.to_be_bytes());
                out.extend_from_slice(&code.to_be_bytes());
                push_field(out, message);
            }
            Packet::Oack(options) => {
                out.extend_from_slice(&OP_OACK.to_be_bytes());
                for (name, value) in options {
                    push_field(out, name);
                    push_field(out, value);
                }
            }
        }
    }

    /// The packet's wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// Writes a DATA header for `block` into the first [`DATA_HEADER`] bytes of `buf`, so a sender
/// can read file bytes straight into `buf[DATA_HEADER..]` and send the buffer as it is.
pub fn write_data_header(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&OP_DATA.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

/// An ACK packet for `block`, without allocating.
pub fn ack_bytes(block: u16) -> [u8; 4] {
    let [a, b] = OP_ACK.to_be_bytes();
    let [c, d] = block.to_be_bytes();
    [a, b, c, d]
}

/// An ERROR packet with a standard code and a message.
pub fn error_bytes(code: ErrorCode, message: &str) -> Vec<u8> {
    Packet::Error { code: code as u16, message: message.to_owned() }.to_bytes()
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", *self as u16)
    }
}

fn u16_at(body: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*body.first()?, *body.get(1)?]))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn push_field(out: &mut Vec<u8>, field: &str) {
    out.extend_from_slice(field.as_bytes());
    out.push(0);
}

/// NUL-terminated fields; a last field without its NUL still counts, an empty tail does not.
fn fields(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = body.strip_suffix(&[0]).unwrap_or(body);
    let empty = body.is_empty();
    body.split(|&b| b == 0).filter(move |_| !empty)
}

/// Name/value pairs; a name without a value at the end is dropped (RFC 2347 leniency).
fn pairs<'a>(mut fields: impl Iterator<Item = &'a [u8]>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        out.push((lossy(name), lossy(value)));
    }
    out
}

/// What the server is willing to grant, the bounds of [`negotiate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest block size granted (requests above are clamped to it).
    pub max_blksize: u16,
    /// The largest window granted (requests above are clamped to it).
    pub max_windowsize: u16,
    /// The most bytes one window may hold (`windowsize * blksize`); the window is shrunk to fit,
    /// which bounds the memory a sender keeps for retransmission.
    pub max_window_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_blksize: MAX_BLKSIZE, max_windowsize: u16::MAX, max_window_bytes: u32::MAX }
    }
}

/// The outcome of option negotiation: the transfer parameters and the OACK to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Bytes per DATA block.
    pub blksize: u16,
    /// Blocks sent before waiting for an ACK (1 is RFC 1350 lock-step).
    pub windowsize: u16,
    /// The retransmission timeout in seconds the client asked for, if it did.
    pub timeout: Option<u8>,
    /// The transfer size: the file size on a read, the announced size on a write.
    pub tsize: Option<u64>,
    /// The options to acknowledge, in the client's order; empty means send no OACK.
    pub oack: Vec<(String, String)>,
}

/// Negotiates the options of a request (RFC 2347). Unknown options, options that appear twice
/// (all but the first), unparsable and out-of-range values are ignored; a `blksize` or
/// `windowsize` above the limits is clamped. `file_size` is the size of the file a read serves;
/// a read's `tsize` is acknowledged only when it is known.
pub fn negotiate(request: &Request, limits: Limits, file_size: Option<u64>) -> Negotiated {
    let mut n = Negotiated { blksize: DEFAULT_BLKSIZE, windowsize: 1, timeout: None, tsize: None, oack: Vec::new() };
    let mut seen: [bool; 4] = [false; 4];
    for (name, value) in &request.options {
        let value = value.trim();
        let Ok(number) = value.parse::<u64>() else { continue };
        let name = name.to_ascii_lowercase();
        let slot = match name.as_str() {
            "blksize" => 0,
            "windowsize" => 1,
            "timeout" => 2,
            "tsize" => 3,
            _ => continue,
        };
        if seen[slot] {
            continue;
        }
        let granted = match slot {
            // RFC 2348: 8 to 65464; a server may answer with a smaller value.
            0 if number >= u64::from(MIN_BLKSIZE) => {
                n.blksize = number.min(u64::from(limits.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE))) as u16;
                n.blksize as u64
            }
            // RFC 7440: 1 to 65535; a server may answer with a smaller value.
            1 if number >= 1 => {
                n.windowsize = number.min(u64::from(limits.max_windowsize.max(1))) as u16;
                n.windowsize as u64
            }
            // RFC 2349: 1 to 255 seconds, echoed as it is or not at all.
            2 if (1..=255).contains(&number) => {
                n.timeout = Some(number as u8);
                number
            }
            3 => match request.direction {
                Direction::Read => match file_size {
                    Some(size) => {
                        n.tsize = Some(size);
                        size
                    }
                    None => continue,
                },
                Direction::Write => {
                    n.tsize = Some(number);
                    number
                }
            },
            _ => continue,
        };
        seen[slot] = true;
        n.oack.push((name, granted.to_string()));
    }
    let cap = (limits.max_window_bytes / u32::from(n.blksize)).clamp(1, u32::from(u16::MAX)) as u16;
    if n.windowsize > cap {
        n.windowsize = cap;
        if let Some(entry) = n.oack.iter_mut().find(|(name, _)| name == "windowsize") {
            entry.1 = cap.to_string();
        }
    }
    n
}

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

/// Reads from `input` until `out` is full or the input ends; returns the bytes read. A block
/// shorter than `out` therefore means the end of the data, as TFTP needs.
pub fn read_block(input: &mut impl Read, out: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < out.len() {
        match input.read(&mut out[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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

/// The sending side's window (RFC 7440; RFC 1350 lock-step is a window of 1). Blocks count from
/// 1 as `u64` and go on the wire as `block as u16`, so any file size crosses the rollover.
/// Retransmission is the caller's timer calling [`SendWindow::rewind`], never a duplicate ACK.
#[derive(Debug, Clone)]
pub struct SendWindow {
    /// The oldest block not yet acknowledged.
    base: u64,
    /// The next block to send.
    next: u64,
    window: u64,
    /// The short final block, once it was read.
    last: Option<u64>,
}

/// What an ACK did to a [`SendWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckEffect {
    /// A duplicate, or an ACK for a block not sent yet: nothing to do.
    Ignored,
    /// Blocks `from..=to` are acknowledged; send the window that now starts after `to`.
    Advanced {
        /// The first block newly acknowledged.
        from: u64,
        /// The last block acknowledged.
        to: u64,
    },
    /// Blocks `from..=to` are acknowledged, `to` being the final block: the transfer is done.
    Done {
        /// The first block newly acknowledged.
        from: u64,
        /// The final block.
        to: u64,
    },
}

impl SendWindow {
    /// A window of `windowsize` blocks (at least 1) before block 1.
    pub fn new(windowsize: u16) -> Self {
        SendWindow { base: 1, next: 1, window: u64::from(windowsize.max(1)), last: None }
    }

    /// The block to send now, or `None` when the window is full or the final block is out.
    pub fn next_to_send(&self) -> Option<u64> {
        let end = self.last.map_or(self.base + self.window, |last| (self.base + self.window).min(last + 1));
        (self.next < end).then_some(self.next)
    }

    /// Records that the block from [`SendWindow::next_to_send`] went out; `is_final` when it
    /// was shorter than the block size.
    pub fn sent(&mut self, is_final: bool) {
        if is_final {
            self.last = Some(self.next);
        }
        self.next += 1;
    }

    /// The buffers a sender's ring needs: the window and the block read ahead.
    pub fn ring_slots(&self) -> usize {
        self.window as usize + 1
    }

    /// The slot of `block` in a ring of [`SendWindow::ring_slots`] buffers.
    pub fn slot(&self, block: u64) -> usize {
        ((block - 1) % (self.window + 1)) as usize
    }

    /// The block to read from the source while the peer answers, `read_upto` being the last
    /// block read: the one after it, if its slot is not taken by a block of the window.
    pub fn read_ahead(&self, read_upto: u64) -> Option<u64> {
        (read_upto < self.base + self.window).then_some(read_upto + 1)
    }

    /// Applies an ACK. An ACK inside the window restarts the window after it (RFC 7440
    /// section 4); a duplicate or an ACK for a block not yet sent is ignored.
    pub fn ack(&mut self, block: u16) -> AckEffect {
        let ahead = u64::from(block.wrapping_sub((self.base - 1) as u16));
        if ahead == 0 || self.base - 1 + ahead >= self.next {
            return AckEffect::Ignored;
        }
        let (from, to) = (self.base, self.base - 1 + ahead);
        self.base = to + 1;
        self.next = self.base;
        if self.last == Some(to) {
            AckEffect::Done { from, to }
        } else {
            AckEffect::Advanced { from, to }
        }
    }

    /// The timer fired: send the window again from the oldest unacknowledged block.
    pub fn rewind(&mut self) {
        self.next = self.base;
    }
}

/// The receiving side's window: which block is expected and when to acknowledge.
#[derive(Debug, Clone)]
pub struct ReceiveWindow {
    expected: u64,
    window: u16,
    in_window: u16,
    reacked: bool,
}

/// What to do with a DATA block, as [`ReceiveWindow::data`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The expected block: keep it; `ack` says whether the window is complete and the block is
    /// to be acknowledged now.
    Accept {
        /// Acknowledge this block now.
        ack: bool,
    },
    /// A duplicate or a block after a gap: acknowledge the last block received in order (once
    /// per ACK sent, so duplicates do not multiply), so the sender restarts there.
    Reack,
    /// Nothing to do.
    Ignore,
}

impl ReceiveWindow {
    /// A window of `windowsize` blocks (at least 1) before block 1.
    pub fn new(windowsize: u16) -> Self {
        ReceiveWindow { expected: 1, window: windowsize.max(1), in_window: 0, reacked: false }
    }

    /// The next block wanted.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// The ACK for the last block received in order (ACK 0 before block 1).
    pub fn last_ack(&self) -> u16 {
        (self.expected - 1) as u16
    }

    /// Decides about DATA `block`.
    pub fn data(&mut self, block: u16) -> Receipt {
        if block == self.expected as u16 {
            self.expected += 1;
            self.in_window += 1;
            let ack = self.in_window == self.window;
            if ack {
                self.in_window = 0;
                self.reacked = false;
            }
            Receipt::Accept { ack }
        } else if !self.reacked {
            self.reacked = true;
            self.in_window = 0;
            Receipt::Reack
        } else {
            Receipt::Ignore
        }
    }

    /// The timer fired: the caller re-sends [`ReceiveWindow::last_ack`] and a new window begins.
    pub fn rewind(&mut self) {
        self.in_window = 0;
    }
}

// ---------------------------------------------------------------------------------------------
// The sending and receiving loops, shared by the server and the client over a `Link`.

/// What a [`Link::wait`] ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// A datagram from the peer, this long, at the start of the buffer.
    Datagram(usize),
    /// The deadline passed.
    Deadline,
    /// The peer sent its request again (a server learns it from its listener): it has not seen
    /// the first reply.
    RequestAgain,
}

/// One side of a transfer as [`send_blocks`] and [`receive_blocks`] see it: a datagram socket
/// to the peer's transfer ID, the timer settings and a progress report. Each program implements
/// it over its own socket, so these loops never touch one.
pub trait Link {
    /// The link's own failures (a socket error, a shutdown).
    type Error;

    /// Sends one datagram to the peer.
    fn send(&mut self, packet: &[u8]) -> Result<(), Self::Error>;

    /// Waits until `deadline` for a datagram from the peer, received into `buf`. A datagram
    /// from anyone else is the link's business (RFC 1350 section 4 answers it with error 5)
    /// and does not end the wait.
    fn wait(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Wait, Self::Error>;

    /// The retransmission timeout before any backing off ([`backoff`]).
    fn timeout(&self) -> Duration;

    /// How many timeouts in a row end the transfer.
    fn retries(&self) -> u32;

    /// `bytes` more were acknowledged by the peer (sending) or received in order (receiving).
    fn progress(&mut self, bytes: u64);

    /// The timer fired for the `retry`th time in a row (for a log line).
    fn timed_out(&mut self, retry: u32) {
        let _ = retry;
    }
}

/// How long to wait after `retries` timeouts in a row: the timeout, doubled after each (up to
/// 16 times it), so a peer whose own timer is slower than ours (tftp-hpa's is 5 s) is waited
/// for and a congested path is not flooded.
pub fn backoff(timeout: Duration, retries: u32) -> Duration {
    timeout * (1u32 << retries.min(4))
}

/// Why [`send_blocks`] or [`receive_blocks`] ended before the final block.
#[derive(Debug)]
pub enum Stop<E> {
    /// The link failed.
    Link(E),
    /// The peer sent an ERROR packet.
    Peer {
        /// Its error code.
        code: u16,
        /// Its message, as sent (not sanitised).
        message: String,
    },
    /// No answer after this many timeouts in a row.
    TimedOut(u32),
    /// Reading the source or writing the sink failed.
    Io(io::Error),
    /// The peer broke the protocol; the message says how (fit for an ERROR 4).
    Protocol(String),
}

/// Counts one timeout; fails once the retries are exhausted.
fn count_timeout<L: Link + ?Sized>(link: &mut L, retries: &mut u32) -> Result<(), Stop<L::Error>> {
    *retries += 1;
    if *retries > link.retries() {
        return Err(Stop::TimedOut(link.retries()));
    }
    link.timed_out(*retries);
    Ok(())
}

/// Sends `source` as DATA blocks of `blksize` bytes, `windowsize` of them at a time (RFC 7440;
/// a window of 1 is RFC 1350 lock-step), until the short final block is acknowledged, and
/// returns the bytes sent. The answer to the request (OACK or ACK 0) is the caller's.
///
/// The window's packets, headers included, are kept in one buffer allocated here, so a
/// retransmission never reads `source` again and sending never allocates. Once the window is
/// out, the block after it is read while the peer answers (as BSD tftpd does), so in lock-step
/// the read is not on the round trip's path. Retransmission is on
/// the timer only, never on a duplicate ACK (the Sorcerer's Apprentice rule, RFC 1123 section
/// 4.2.3.1); an ACK inside the window restarts the window after it ([`SendWindow::ack`]).
/// A repeated request is ignored.
pub fn send_blocks<L: Link + ?Sized>(
    link: &mut L,
    source: &mut impl Read,
    blksize: u16,
    windowsize: u16,
) -> Result<u64, Stop<L::Error>> {
    let blksize = usize::from(blksize);
    let mut window = SendWindow::new(windowsize);
    let slot_len = DATA_HEADER + blksize;
    let mut ring = vec![0u8; slot_len * window.ring_slots()];
    let mut lens = vec![0usize; window.ring_slots()];
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let mut bytes = 0u64;
    // The last block read from the source (a retransmitted one is still in the ring), and
    // whether it was the short final one.
    let mut read_upto = 0u64;
    let mut read_all = false;
    // Reads `block` into slot `s`, the DATA header included; true if it is the final block.
    let mut read_next = |ring: &mut [u8], lens: &mut [usize], s: usize, block: u64| -> io::Result<bool> {
        let packet = &mut ring[s * slot_len..(s + 1) * slot_len];
        lens[s] = read_block(source, &mut packet[DATA_HEADER..])?;
        write_data_header(packet, block as u16);
        Ok(lens[s] < blksize)
    };
    let mut retries = 0;
    loop {
        while let Some(block) = window.next_to_send() {
            let s = window.slot(block);
            if block > read_upto {
                read_all = read_next(&mut ring, &mut lens, s, block).map_err(Stop::Io)?;
                read_upto = block;
            }
            link.send(&ring[s * slot_len..s * slot_len + DATA_HEADER + lens[s]]).map_err(Stop::Link)?;
            window.sent(lens[s] < blksize);
        }
        if let Some(block) = window.read_ahead(read_upto).filter(|_| !read_all) {
            read_all = read_next(&mut ring, &mut lens, window.slot(block), block).map_err(Stop::Io)?;
            read_upto = block;
        }
        let deadline = Instant::now() + backoff(link.timeout(), retries);
        let advanced = loop {
            let len = match link.wait(&mut buf, deadline).map_err(Stop::Link)? {
                Wait::Datagram(len) => len,
                Wait::Deadline => break false,
                Wait::RequestAgain => continue,
            };
            let block = match Packet::parse(&buf[..len]) {
                Ok(Packet::Ack(block)) => block,
                Ok(Packet::Error { code, message }) => return Err(Stop::Peer { code, message }),
                _ => continue,
            };
            let (from, to, done) = match window.ack(block) {
                AckEffect::Ignored => continue,
                AckEffect::Advanced { from, to } => (from, to, false),
                AckEffect::Done { from, to } => (from, to, true),
            };
            let acked: u64 = (from..=to).map(|b| lens[window.slot(b)] as u64).sum();
            bytes += acked;
            link.progress(acked);
            if done {
                return Ok(bytes);
            }
            break true;
        };
        if advanced {
            retries = 0;
        } else {
            count_timeout(link, &mut retries)?;
            window.rewind();
        }
    }
}

/// How [`receive_blocks`] receives.
#[derive(Debug, Clone, Copy)]
pub struct Receiving<'a> {
    /// The negotiated block size.
    pub blksize: u16,
    /// The negotiated window size (1 for lock-step).
    pub windowsize: u16,
    /// The answer that stands until block 1 arrives: the receiving server's OACK or ACK 0, the
    /// receiving client's ACK 0. Sending it the first time is the caller's.
    pub first_reply: &'a [u8],
    /// Whether our timer repeats `first_reply` (a client's ACK 0), or only a repeated request
    /// does (a server's answer to a WRQ: see `ftserver::tftp::transfer` for why).
    pub first_reply_on_timer: bool,
    /// A datagram that already arrived and is to be handled first (a client's DATA 1 that
    /// answered its read request).
    pub pending: Option<&'a [u8]>,
}

/// What [`receive_blocks`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The block number of the short final block, which is written but not acknowledged: the
    /// caller acknowledges it once the data is safe.
    pub last_block: u16,
    /// The bytes written to the sink.
    pub bytes: u64,
}

/// Receives DATA into `sink` until the short final block (RFC 1350; RFC 7440 windows): blocks
/// in order are written, a full window is acknowledged, a duplicate or a block after a gap is
/// answered once with the last ACK in order ([`ReceiveWindow::data`]), and the timer repeats
/// that ACK (before block 1: `first_reply`, see [`Receiving::first_reply_on_timer`]). Old
/// blocks that keep coming mean our ACK was lost too: they are answered at most once per
/// timeout. The sink is not flushed.
///
/// A block larger than `blksize` ends the transfer, and so does a block 1 that comes again with
/// other bytes (before the block numbers roll over): curl 7.88 sends its *next* block as block
/// 1 whenever an OACK arrives while it sends, so one the network duplicated would cost the file
/// a block, both sides reporting success. Failing is better than storing that.
pub fn receive_blocks<L: Link + ?Sized>(
    link: &mut L,
    sink: &mut impl Write,
    r: Receiving<'_>,
) -> Result<Received, Stop<L::Error>> {
    let blksize = usize::from(r.blksize);
    let mut buf = vec![0u8; MAX_PACKET + 1];
    let mut pending = r.pending.map(|datagram| {
        let len = datagram.len().min(buf.len());
        buf[..len].copy_from_slice(&datagram[..len]);
        len
    });
    let mut window = ReceiveWindow::new(r.windowsize);
    // Block 1 as received, to recognise another block sent under its number.
    let mut first_block = Vec::new();
    let mut bytes = 0u64;
    let mut retries = 0;
    // When an ACK last went out: old blocks are answered at most once per timeout.
    let mut acked_at = Instant::now();
    let mut deadline = acked_at + backoff(link.timeout(), 0);
    loop {
        let wait = match pending.take() {
            Some(len) => Wait::Datagram(len),
            None => link.wait(&mut buf, deadline).map_err(Stop::Link)?,
        };
        let len = match wait {
            Wait::Datagram(len) => len,
            Wait::Deadline => {
                count_timeout(link, &mut retries)?;
                if window.expected() > 1 || r.first_reply_on_timer {
                    reack(link, &window, r.first_reply)?;
                    acked_at = Instant::now();
                }
                window.rewind();
                deadline = Instant::now() + backoff(link.timeout(), retries);
                continue;
            }
            Wait::RequestAgain => {
                if window.expected() == 1 {
                    link.send(r.first_reply).map_err(Stop::Link)?;
                    acked_at = Instant::now();
                }
                continue;
            }
        };
        let (block, size, receipt) = match Packet::parse(&buf[..len]) {
            Ok(Packet::Data { block, data }) => {
                if data.len() > blksize {
                    return Err(Stop::Protocol(format!("block of {} bytes, negotiated blksize {blksize}", data.len())));
                }
                if block == 1 && (2..=1 << 16).contains(&window.expected()) && data != first_block {
                    return Err(Stop::Protocol("block 1 sent again with different data".into()));
                }
                let receipt = window.data(block);
                if let Receipt::Accept { .. } = receipt {
                    if window.expected() == 2 {
                        first_block = data.to_vec();
                    }
                    sink.write_all(data).map_err(Stop::Io)?;
                }
                (block, data.len(), receipt)
            }
            Ok(Packet::Error { code, message }) => return Err(Stop::Peer { code, message }),
            _ => continue,
        };
        match receipt {
            Receipt::Accept { ack } => {
                bytes += size as u64;
                link.progress(size as u64);
                if size < blksize {
                    return Ok(Received { last_block: block, bytes });
                }
                if ack {
                    link.send(&ack_bytes(block)).map_err(Stop::Link)?;
                    acked_at = Instant::now();
                }
                retries = 0;
                deadline = Instant::now() + backoff(link.timeout(), 0);
            }
            Receipt::Reack => {
                reack(link, &window, r.first_reply)?;
                acked_at = Instant::now();
            }
            // The sender keeps retransmitting old blocks: our re-ACK was lost too. Answer again,
            // but no more than once per timeout (a sender that retransmits on its own timer is
            // still ahead of ours, which backs off).
            Receipt::Ignore if acked_at.elapsed() >= link.timeout() => {
                reack(link, &window, r.first_reply)?;
                acked_at = Instant::now();
                window.rewind();
            }
            Receipt::Ignore => {}
        }
    }
}

/// Acknowledges the last block received in order (`first_reply` before block 1).
fn reack<L: Link + ?Sized>(link: &mut L, window: &ReceiveWindow, first_reply: &[u8]) -> Result<(), Stop<L::Error>> {
    let sent = if window.expected() == 1 { link.send(first_reply) } else { link.send(&ack_bytes(window.last_ack())) };
    sent.map_err(Stop::Link)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn opts(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    fn req(direction: Direction, name: &str, mode: &str, options: &[(&str, &str)]) -> Packet<'static> {
        Packet::Request(Request { direction, filename: name.into(), mode: mode.into(), options: opts(options) })
    }

    fn check(bytes: &[u8], expected: Result<Packet<'_>, ParseError>) {
        assert_eq!(Packet::parse(bytes), expected, "{bytes:?}");
    }

    #[test]
    fn parses_packets() {
        check(b"\0\x01f\0octet\0", Ok(req(Direction::Read, "f", "octet", &[])));
        check(b"\0\x02a/b c\0NetASCII\0", Ok(req(Direction::Write, "a/b c", "NetASCII", &[])));
        check(
            b"\0\x01f\0octet\0blksize\x001468\x00windowsize\x0016\0",
            Ok(req(Direction::Read, "f", "octet", &[("blksize", "1468"), ("windowsize", "16")])),
        );
        // Lenient: no final NUL, a dangling option name, no mode at all.
        check(b"\0\x01f\0octet", Ok(req(Direction::Read, "f", "octet", &[])));
        check(b"\0\x01f\0octet\0tsize\0", Ok(req(Direction::Read, "f", "octet", &[])));
        check(b"\0\x01f\0", Ok(req(Direction::Read, "f", "", &[])));
        check(b"\0\x01\0octet\0", Err(ParseError::NoFilename));
        check(b"\0\x01", Err(ParseError::NoFilename));
        check(b"\0\x02r\xe9sum\xe9.txt\0octet\0", Err(ParseError::FilenameNotUtf8));
        check(b"\0\x03\0\x01abc", Ok(Packet::Data { block: 1, data: b"abc" }));
        check(b"\0\x03\xff\xff", Ok(Packet::Data { block: 65535, data: b"" }));
        check(b"\0\x03\0", Err(ParseError::Truncated(3)));
        check(b"\0\x04\0\x07", Ok(Packet::Ack(7)));
        check(b"\0\x04\0\x07junk", Ok(Packet::Ack(7)));
        check(b"\0\x04", Err(ParseError::Truncated(2)));
        check(b"\0\x05\0\x01no such file\0", Ok(Packet::Error { code: 1, message: "no such file".into() }));
        check(b"\0\x05\0\x02", Ok(Packet::Error { code: 2, message: String::new() }));
        check(b"\0\x06blksize\x00512\0", Ok(Packet::Oack(opts(&[("blksize", "512")]))));
        check(b"\0\x06", Ok(Packet::Oack(vec![])));
        check(b"\0\x07", Err(ParseError::BadOpcode(7)));
        check(b"\0\0", Err(ParseError::BadOpcode(0)));
        check(b"\x01", Err(ParseError::Truncated(1)));
        check(b"", Err(ParseError::Truncated(0)));
        let mut big = vec![0, 3, 0, 1];
        big.resize(4 + MAX_BLKSIZE as usize + 1, b'x');
        check(&big, Err(ParseError::Oversized(MAX_BLKSIZE as usize + 1)));
    }

    #[test]
    fn round_trips() {
        let packets = [
            req(Direction::Read, "dir/file.bin", "octet", &[]),
            req(Direction::Write, "ünï 🚀", "netascii", &[("tsize", "0"), ("blksize", "65464")]),
            Packet::Data { block: 0, data: b"" },
            Packet::Data { block: 65535, data: &[0u8; 512] },
            Packet::Ack(0),
            Packet::Ack(65535),
            Packet::Error { code: 6, message: "file exists".into() },
            Packet::Error { code: 0, message: String::new() },
            Packet::Oack(opts(&[("blksize", "1468"), ("windowsize", "16")])),
        ];
        for packet in packets {
            assert_eq!(Packet::parse(&packet.to_bytes()).as_ref(), Ok(&packet));
        }
        let mut buf = [0u8; 7];
        buf[4..].copy_from_slice(b"abc");
        write_data_header(&mut buf, 258);
        assert_eq!(Packet::parse(&buf), Ok(Packet::Data { block: 258, data: b"abc" }));
        assert_eq!(Packet::parse(&ack_bytes(513)), Ok(Packet::Ack(513)));
        assert_eq!(error_bytes(ErrorCode::UnknownTid, "who?"), b"\0\x05\0\x05who?\0");
    }

    #[test]
    fn selects_modes() {
        for (name, mode) in [
            ("octet", Some(Mode::Octet)),
            ("OCTET", Some(Mode::Octet)),
            ("NetAscii", Some(Mode::Netascii)),
            ("mail", None),
            ("binary", None),
            ("", None),
        ] {
            assert_eq!(Mode::from_name(name), mode, "{name}");
        }
    }

    fn nego(direction: Direction, options: &[(&str, &str)], size: Option<u64>) -> Negotiated {
        let request = Request { direction, filename: "f".into(), mode: "octet".into(), options: opts(options) };
        negotiate(&request, Limits { max_blksize: MAX_BLKSIZE, max_windowsize: 64, max_window_bytes: 1 << 20 }, size)
    }

    #[test]
    fn negotiates_options() {
        let r = Direction::Read;
        let w = Direction::Write;
        let n = nego(r, &[], Some(10));
        assert_eq!((n.blksize, n.windowsize, n.timeout, n.tsize, n.oack), (512, 1, None, None, vec![]));
        let n = nego(r, &[("BLKSIZE", "1468"), ("windowsize", "16"), ("timeout", "3"), ("tsize", "0")], Some(99));
        assert_eq!((n.blksize, n.windowsize, n.timeout, n.tsize), (1468, 16, Some(3), Some(99)));
        assert_eq!(n.oack, opts(&[("blksize", "1468"), ("windowsize", "16"), ("timeout", "3"), ("tsize", "99")]));
        // RFC 2348: larger than 65464 is clamped, smaller than 8 is ignored.
        assert_eq!(nego(r, &[("blksize", "100000")], None).oack, opts(&[("blksize", "65464")]));
        assert_eq!(nego(r, &[("blksize", "7")], None).oack, vec![]);
        assert_eq!(nego(r, &[("blksize", "8")], None).blksize, 8);
        // RFC 7440: 0 is ignored, a value above the server's limit is clamped.
        assert_eq!(nego(r, &[("windowsize", "0")], None).oack, vec![]);
        assert_eq!(nego(r, &[("windowsize", "65535")], None).windowsize, 64);
        // The window is shrunk to the byte budget (1 MiB here), whatever the option order.
        let n = nego(r, &[("windowsize", "64"), ("blksize", "65464")], None);
        assert_eq!((n.windowsize, n.oack), (16, opts(&[("windowsize", "16"), ("blksize", "65464")])));
        // RFC 2349: timeout outside 1..=255 is ignored, not clamped.
        assert_eq!(nego(r, &[("timeout", "0"), ("timeout", "256")], None).oack, vec![]);
        // Unknown options, unparsable values, duplicates after the first are ignored.
        let n = nego(r, &[("color", "blue"), ("blksize", "big"), ("blksize", "1024"), ("blksize", "2048")], None);
        assert_eq!(n.oack, opts(&[("blksize", "1024")]));
        // tsize on a read is answered only when the size is known; on a write it is echoed.
        assert_eq!(nego(r, &[("tsize", "0")], None).oack, vec![]);
        let n = nego(w, &[("tsize", "12345")], None);
        assert_eq!((n.tsize, n.oack), (Some(12345), opts(&[("tsize", "12345")])));
        assert_eq!(nego(w, &[("tsize", "-1")], None).oack, vec![]);
    }

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
    fn send_window_follows_acks() {
        let mut w = SendWindow::new(4);
        let mut sent = Vec::new();
        let send_all = |w: &mut SendWindow, sent: &mut Vec<u64>, final_at: u64| {
            while let Some(block) = w.next_to_send() {
                sent.push(block);
                w.sent(block == final_at);
            }
        };
        send_all(&mut w, &mut sent, 100);
        assert_eq!(sent, [1, 2, 3, 4]);
        // RFC 7440 section 4: an ACK inside the window restarts after it.
        assert_eq!(w.ack(2), AckEffect::Advanced { from: 1, to: 2 });
        sent.clear();
        send_all(&mut w, &mut sent, 100);
        assert_eq!(sent, [3, 4, 5, 6]);
        // Duplicates and ACKs for unsent blocks are ignored (Sorcerer's Apprentice).
        assert_eq!(w.ack(2), AckEffect::Ignored);
        assert_eq!(w.ack(60), AckEffect::Ignored);
        assert_eq!(w.next_to_send(), None);
        w.rewind();
        sent.clear();
        send_all(&mut w, &mut sent, 7);
        assert_eq!(sent, [3, 4, 5, 6]);
        assert_eq!(w.ack(6), AckEffect::Advanced { from: 3, to: 6 });
        sent.clear();
        send_all(&mut w, &mut sent, 7);
        assert_eq!(sent, [7]);
        assert_eq!(w.ack(7), AckEffect::Done { from: 7, to: 7 });
        assert_eq!(w.slot(5), 4);
        assert_eq!(w.slot(6), 0);
    }

    #[test]
    fn send_window_crosses_the_rollover() {
        let mut w = SendWindow::new(1);
        for block in 1..=70_000u64 {
            assert_eq!(w.next_to_send(), Some(block));
            w.sent(block == 70_000);
            let effect = w.ack(block as u16);
            let expected = if block == 70_000 {
                AckEffect::Done { from: block, to: block }
            } else {
                AckEffect::Advanced { from: block, to: block }
            };
            assert_eq!(effect, expected);
        }
    }

    #[test]
    fn receive_window_acks_windows_and_gaps() {
        let mut w = ReceiveWindow::new(2);
        assert_eq!(w.data(1), Receipt::Accept { ack: false });
        assert_eq!(w.data(3), Receipt::Reack);
        assert_eq!(w.last_ack(), 1);
        assert_eq!(w.data(4), Receipt::Ignore);
        assert_eq!(w.data(2), Receipt::Accept { ack: false });
        assert_eq!(w.data(3), Receipt::Accept { ack: true });
        assert_eq!(w.data(3), Receipt::Reack);
        assert_eq!(w.data(3), Receipt::Ignore);
        w.rewind();
        assert_eq!((w.expected(), w.last_ack()), (4, 3));
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

    /// What a scripted peer does next.
    enum Peer {
        Sends(Vec<u8>),
        IsSilent,
        RepeatsItsRequest,
    }

    /// A link to a scripted peer: `wait` takes the next step, `send` records the packet. When the
    /// script runs out the peer is silent, so the retries run out.
    struct Scripted {
        steps: std::collections::VecDeque<Peer>,
        sent: Vec<Vec<u8>>,
        progress: u64,
        /// Bytes read from a [`CountingReader`] sharing this counter.
        read: std::rc::Rc<std::cell::Cell<usize>>,
        /// (packets sent, bytes read) at each wait.
        at_wait: Vec<(usize, usize)>,
    }

    impl Scripted {
        fn new(steps: Vec<Peer>) -> Self {
            Scripted {
                steps: steps.into(),
                sent: Vec::new(),
                progress: 0,
                read: Default::default(),
                at_wait: Vec::new(),
            }
        }

        /// The packets sent, parsed.
        fn sent(&self) -> Vec<Packet<'_>> {
            self.sent.iter().map(|p| Packet::parse(p).unwrap()).collect()
        }
    }

    impl Link for Scripted {
        type Error = ();

        fn send(&mut self, packet: &[u8]) -> Result<(), ()> {
            self.sent.push(packet.to_vec());
            Ok(())
        }

        fn wait(&mut self, buf: &mut [u8], _deadline: Instant) -> Result<Wait, ()> {
            self.at_wait.push((self.sent.len(), self.read.get()));
            Ok(match self.steps.pop_front().unwrap_or(Peer::IsSilent) {
                Peer::Sends(packet) => {
                    buf[..packet.len()].copy_from_slice(&packet);
                    Wait::Datagram(packet.len())
                }
                Peer::IsSilent => Wait::Deadline,
                Peer::RepeatsItsRequest => Wait::RequestAgain,
            })
        }

        /// Long: the script decides when the timer fires, and old blocks are answered at most
        /// once per timeout.
        fn timeout(&self) -> Duration {
            Duration::from_secs(3600)
        }

        fn retries(&self) -> u32 {
            2
        }

        fn progress(&mut self, bytes: u64) {
            self.progress += bytes;
        }
    }

    fn ack(block: u16) -> Peer {
        Peer::Sends(ack_bytes(block).to_vec())
    }

    fn data(block: u16, payload: &[u8]) -> Peer {
        Peer::Sends(Packet::Data { block, data: payload }.to_bytes())
    }

    fn data_packet(block: u16, payload: &[u8]) -> Packet<'_> {
        Packet::Data { block, data: payload }
    }

    /// A window of 2 over 5 bytes in blocks of 2: a lost ACK makes the timer resend the whole
    /// window, an ACK inside the window restarts after it, a duplicate ACK does nothing.
    #[test]
    fn sender_follows_acks_and_its_timer() {
        let mut link = Scripted::new(vec![Peer::IsSilent, ack(1), ack(1), ack(3), ack(3)]);
        let sent = send_blocks(&mut link, &mut &b"abcde"[..], 2, 2).unwrap();
        assert_eq!((sent, link.progress), (5, 5));
        let expected = [
            data_packet(1, b"ab"),
            data_packet(2, b"cd"),
            data_packet(1, b"ab"),
            data_packet(2, b"cd"),
            data_packet(2, b"cd"),
            data_packet(3, b"e"),
        ];
        assert_eq!(link.sent(), expected);
    }

    /// Counts the bytes read from it.
    struct CountingReader<'a> {
        data: &'a [u8],
        read: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl Read for CountingReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.data.read(buf)?;
            self.read.set(self.read.get() + n);
            Ok(n)
        }
    }

    /// Lock-step: each block after the first is read before the ACK of the one before it is
    /// waited for, and a retransmission sends the block the ACK is missing for.
    #[test]
    fn sender_reads_the_next_block_while_the_peer_answers() {
        let mut link = Scripted::new(vec![Peer::IsSilent, ack(1), ack(2), ack(3)]);
        let mut source = CountingReader { data: b"abcde", read: link.read.clone() };
        assert_eq!(send_blocks(&mut link, &mut source, 2, 1).unwrap(), 5);
        let expected = [data_packet(1, b"ab"), data_packet(1, b"ab"), data_packet(2, b"cd"), data_packet(3, b"e")];
        assert_eq!(link.sent(), expected, "the retransmission is block 1, not the block read ahead");
        assert_eq!(link.at_wait, [(1, 4), (2, 4), (3, 5), (4, 5)], "(packets sent, bytes read) at each wait");
    }

    #[test]
    fn sender_stops_on_error_and_after_its_retries() {
        let error = Peer::Sends(error_bytes(ErrorCode::DiskFull, "full"));
        let mut link = Scripted::new(vec![error]);
        let stop = send_blocks(&mut link, &mut &b"abc"[..], 8, 1).unwrap_err();
        assert!(matches!(stop, Stop::Peer { code: 3, ref message } if message == "full"), "{stop:?}");
        let mut link = Scripted::new(vec![Peer::RepeatsItsRequest]);
        assert!(matches!(send_blocks(&mut link, &mut &b"abc"[..], 8, 1), Err(Stop::TimedOut(2))));
        assert_eq!(link.sent.len(), 3, "the block and two retransmissions");
    }

    /// Lock-step, as a server receives a WRQ: before block 1 the timer sends nothing and a
    /// repeated request gets the first reply; afterwards the timer repeats the last ACK. The
    /// final block is not acknowledged (the caller does it).
    #[test]
    fn receiver_repeats_its_first_reply_only_for_a_repeated_request() {
        let oack = Packet::Oack(vec![("blksize".into(), "2".into())]).to_bytes();
        let steps = vec![
            Peer::IsSilent,
            Peer::RepeatsItsRequest,
            data(1, b"ab"),
            Peer::IsSilent,
            Peer::RepeatsItsRequest,
            data(2, b"c"),
        ];
        let mut link = Scripted::new(steps);
        let mut out = Vec::new();
        let r = Receiving { blksize: 2, windowsize: 1, first_reply: &oack, first_reply_on_timer: false, pending: None };
        let received = receive_blocks(&mut link, &mut out, r).unwrap();
        assert_eq!(received, Received { last_block: 2, bytes: 3 });
        assert_eq!((out.as_slice(), link.progress), (&b"abc"[..], 3));
        assert_eq!(link.sent, [oack.clone(), ack_bytes(1).to_vec(), ack_bytes(1).to_vec()]);

        // A client's ACK 0 is repeated by its timer.
        let mut link = Scripted::new(vec![Peer::IsSilent, data(1, b"a")]);
        let r = Receiving { first_reply: &ack_bytes(0), first_reply_on_timer: true, ..r };
        receive_blocks(&mut link, &mut Vec::new(), r).unwrap();
        assert_eq!(link.sent, [ack_bytes(0).to_vec()]);
    }

    /// A pending DATA 1 is handled first; a window of 2 is acknowledged at its end; a block
    /// after a gap gets the last ACK in order once.
    #[test]
    fn receiver_windows_and_pending_block() {
        let first = Packet::Data { block: 1, data: b"ab" }.to_bytes();
        let steps = vec![data(3, b"ef"), data(4, b"gh"), data(2, b"cd"), data(3, b"ef"), data(4, b"")];
        let mut link = Scripted::new(steps);
        let mut out = Vec::new();
        let r = Receiving {
            blksize: 2,
            windowsize: 2,
            first_reply: &[],
            first_reply_on_timer: true,
            pending: Some(&first),
        };
        let received = receive_blocks(&mut link, &mut out, r).unwrap();
        assert_eq!(received, Received { last_block: 4, bytes: 6 });
        assert_eq!(out, b"abcdef");
        assert_eq!(link.sent, [ack_bytes(1).to_vec(), ack_bytes(3).to_vec()]);
    }

    /// curl 7.88's answer to a second OACK: its next block numbered 1. Refused, not stored.
    #[test]
    fn receiver_refuses_a_changed_block_1_and_oversized_blocks() {
        let r = Receiving {
            blksize: 2,
            windowsize: 1,
            first_reply: &ack_bytes(0),
            first_reply_on_timer: false,
            pending: None,
        };
        let mut link = Scripted::new(vec![data(1, b"ab"), data(1, b"ab"), data(1, b"cd")]);
        let stop = receive_blocks(&mut link, &mut Vec::new(), r).unwrap_err();
        assert!(matches!(stop, Stop::Protocol(ref m) if m.contains("block 1")), "{stop:?}");
        let mut link = Scripted::new(vec![data(1, b"abc")]);
        assert!(matches!(receive_blocks(&mut link, &mut Vec::new(), r), Err(Stop::Protocol(_))));
        let mut link = Scripted::new(vec![data(1, b"ab")]);
        assert!(matches!(receive_blocks(&mut link, &mut Vec::new(), r), Err(Stop::TimedOut(2))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Ok(packet) = Packet::parse(&bytes) {
                // Whatever parses formats back into bytes that parse to the same value.
                let again = packet.to_bytes();
                proptest::prop_assert_eq!(Packet::parse(&again), Ok(packet));
            }
        }

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
