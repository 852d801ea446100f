//! TFTP packets (RFC 1350, RFC 2347 OACK): the opcodes and error codes, requests with their
//! mode and options, parsing from `&[u8]` and formatting into bytes.
//!
//! Parsing is lenient where the RFCs let real clients be sloppy (a missing final NUL, an option
//! name without a value, unknown options) and strict only where the packet cannot be understood
//! (an unknown opcode, a packet shorter than its fixed header, a request without a file name).

use core::fmt;

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
    /// The mode a request's mode string selects, in any case. `binary` is an alias of `octet`:
    /// RFC 1350 does not name it, but several clients send it (old BSD and embedded ones among
    /// them) and other servers serve it as octet. `None` for `mail` (obsolete, RFC 1350 says it
    /// must not be used) and anything unknown, which a server refuses with error 4, as
    /// tftpd-hpa does: serving them as octet could hand text-mode clients the wrong bytes.
    pub fn from_name(name: &str) -> Option<Mode> {
        const NAMES: [(&str, Mode); 3] =
            [("octet", Mode::Octet), ("binary", Mode::Octet), ("netascii", Mode::Netascii)];
        NAMES.iter().find(|(known, _)| name.eq_ignore_ascii_case(known)).map(|&(_, mode)| mode)
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
        // RFC 1350 section 1 knows netascii, octet and mail; `binary` is what several clients
        // send for octet, so it is taken as octet. Anything else stays unknown (error 4).
        for (name, mode) in [
            ("octet", Some(Mode::Octet)),
            ("OCTET", Some(Mode::Octet)),
            ("NetAscii", Some(Mode::Netascii)),
            ("binary", Some(Mode::Octet)),
            ("Binary", Some(Mode::Octet)),
            ("BINARY", Some(Mode::Octet)),
            ("mail", None),
            ("image", None),
            ("bin", None),
            ("binary ", None),
            ("", None),
        ] {
            assert_eq!(Mode::from_name(name), mode, "{name}");
            let mut datagram = b"\0\x01f\0".to_vec();
            datagram.extend_from_slice(name.as_bytes());
            datagram.push(0);
            let Ok(Packet::Request(request)) = Packet::parse(&datagram) else { panic!("{datagram:?}") };
            assert_eq!(request.mode(), mode, "{name} in a request");
        }
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
    }
}
