//! Block mode (`MODE B`, RFC 959 section 3.4.2) on the server's side: sending a file or a
//! listing as blocks ending in the EOF block, receiving an upload up to its EOF block, and the
//! checks a data connection kept between transfers needs. The framing itself is
//! `common::block`'s; the watch (ABOR, stalls, the data timeout) is the same as stream mode's.
//!
//! There is no `sendfile(2)` here: every block's header must go out in front of its data, and
//! a small file's blocks in one write (header, data and the EOF block), which a copy through
//! one buffer gives for free.

use super::{flush_watched, receive_counted, write_watched, ReceiveError, Receiving, Source, Watch};
use crate::conn::Conn;
use crate::storage::FileReader;
use common::ascii::ToNetwork;
use common::block::{frame, BlockReader, END, HEADER, MAX_BLOCK};
use std::io::{self, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Readies a data connection for block mode, once when it is opened. TCP_NODELAY: the point of
/// block mode is many small files back to back on one connection, and with Nagle's algorithm
/// each file's short last segment would wait for the previous one's ACK, one round trip per
/// file. Each block goes out in one write anyway, so nothing gets split into small segments.
pub fn prepare(conn: &Conn) -> io::Result<()> {
    conn.socket().set_nodelay(true)
}

/// Has the client closed or reset a data connection kept since the last transfer? Asked before
/// a download on it: bytes written to a connection the client has left vanish into the socket
/// buffer, and the transfer would look complete. (Before an upload the blocks' reader finds
/// out by itself; a connection that ends before the EOF block is never a file.)
pub fn client_left(conn: &Conn) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    // POLLRDHUP (the client shut down its side, Linux) is built from libc's value, as nix does
    // not name it; `revents` is `None` when the kernel reports a flag nix does not know.
    let rdhup = PollFlags::from_bits_retain(nix::libc::POLLRDHUP);
    let mut fds = [PollFd::new(conn.socket().as_fd(), rdhup)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => false,
        Ok(_) => fds[0].revents().map_or(true, |r| r.intersects(rdhup | PollFlags::POLLHUP | PollFlags::POLLERR)),
        // A socket poll(2) cannot watch: let the transfer find out.
        Err(_) => false,
    }
}

/// A buffer for one block: its header, up to `payload` bytes of data, and room for the EOF
/// block behind them, so a file's last block and its end go out in one write.
fn block_buffer(payload: usize) -> Vec<u8> {
    vec![0u8; HEADER + payload.min(MAX_BLOCK) + HEADER]
}

/// Writes the `n` data bytes at `block[HEADER..]` as one block, followed by the EOF block when
/// `last`, in one write under `watch`. `n` may be 0 only with `last` (an empty file is the EOF
/// block alone).
fn write_block(
    out: &mut Conn,
    block: &mut [u8],
    n: usize,
    last: bool,
    watch: &mut Watch<impl FnMut() -> bool>,
) -> io::Result<()> {
    let start = if n == 0 { HEADER } else { 0 };
    let mut end = HEADER + n;
    if n > 0 {
        frame(block, n);
    }
    if last {
        block[end..end + HEADER].copy_from_slice(&END);
        end += HEADER;
    }
    write_watched(out, &block[start..end], watch)
}

/// Sends `limit` bytes of a file from its current position as blocks, then the EOF block: the
/// block-mode twin of [`super::send_file`], with the same watch, return value and TYPE A
/// conversion (done before framing, so block counts are of bytes on the wire).
///
/// A file that shrank meanwhile gets no EOF block: the caller answers 451 and closes the
/// connection, and the client cannot take the short copy for the whole file.
pub fn send_file(
    file: &mut dyn FileReader,
    limit: u64,
    out: &mut Conn,
    ascii: bool,
    timeout: Duration,
    keep_going: impl FnMut() -> bool,
) -> (u64, io::Result<()>) {
    let mut sent = 0u64;
    let mut watch = Watch::new(keep_going, timeout);
    let result =
        send_counted(file, limit, out, ascii, &mut watch, &mut sent).and_then(|()| flush_watched(out, &mut watch));
    (sent, result)
}

fn send_counted(
    file: &mut dyn FileReader,
    limit: u64,
    out: &mut Conn,
    ascii: bool,
    watch: &mut Watch<impl FnMut() -> bool>,
    sent: &mut u64,
) -> io::Result<()> {
    // A small file needs no large buffer (see `super::send_counted`).
    let size = usize::try_from(limit).map_or(MAX_BLOCK, |l| l.clamp(1, MAX_BLOCK));
    // TYPE A: the conversion can double the bytes, which then take up to two blocks.
    let mut block = block_buffer(if ascii { 2 * size } else { size });
    let mut raw = if ascii { vec![0u8; size] } else { Vec::new() };
    let mut converted = Vec::new();
    let mut conv = ToNetwork::new();
    if limit == 0 {
        return write_block(out, &mut block, 0, true, watch);
    }
    while *sent < limit {
        let want = usize::try_from(limit - *sent).map_or(size, |left| left.min(size));
        let into = if ascii { &mut raw[..want] } else { &mut block[HEADER..HEADER + want] };
        let n = match file.read(into) {
            // The file shrank: no EOF block.
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        *sent += n as u64;
        let last = *sent == limit;
        if !ascii {
            write_block(out, &mut block, n, last, watch)?;
            continue;
        }
        converted.clear();
        conv.convert(&raw[..n], &mut converted);
        let mut pieces = converted.chunks(MAX_BLOCK).peekable();
        while let Some(piece) = pieces.next() {
            block[HEADER..HEADER + piece.len()].copy_from_slice(piece);
            write_block(out, &mut block, piece.len(), last && pieces.peek().is_none(), watch)?;
        }
    }
    Ok(())
}

/// Sends an in-memory body (a listing) as blocks and the EOF block, under the watch as a file
/// is (a kept connection's socket timeouts are the last transfer's, so an unwatched write
/// could fail at a short one). Returns the body bytes sent and how sending ended.
pub fn send_bytes(
    body: &[u8],
    out: &mut Conn,
    timeout: Duration,
    keep_going: impl FnMut() -> bool,
) -> (u64, io::Result<()>) {
    let mut watch = Watch::new(keep_going, timeout);
    let mut block = block_buffer(body.len().max(1));
    let mut sent = 0u64;
    let mut send = || -> io::Result<()> {
        if body.is_empty() {
            write_block(out, &mut block, 0, true, &mut watch)?;
        }
        let mut pieces = body.chunks(MAX_BLOCK).peekable();
        while let Some(piece) = pieces.next() {
            block[HEADER..HEADER + piece.len()].copy_from_slice(piece);
            write_block(out, &mut block, piece.len(), pieces.peek().is_none(), &mut watch)?;
            sent += piece.len() as u64;
        }
        flush_watched(out, &mut watch)
    };
    let result = send();
    (sent, result)
}

impl Source for BlockReader<&mut Conn> {
    fn socket(&self) -> &TcpStream {
        self.get_ref().socket()
    }
}

/// Receives an upload sent as blocks: the block-mode twin of [`super::receive_file`], with the
/// same watch, limits and TYPE A conversion. `Ok` exactly when the EOF block arrived; a
/// connection that ends before it fails with an `UnexpectedEof` [`ReceiveError::Peer`].
/// Nothing after the EOF block is read: it belongs to the next transfer on the connection.
///
/// No SO_RCVLOWAT here (unlike stream mode): the reader asks for 3-byte headers, and each would
/// wait for a low-water mark that a small file never reaches, up to the wake-up interval.
/// Block-mode connections are opened for block mode and never had it set.
pub fn receive_file(
    input: &mut Conn,
    file: &mut dyn Write,
    transfer: Receiving,
    keep_going: impl FnMut() -> bool,
    tap: impl FnMut(&[u8]),
) -> (u64, Result<(), ReceiveError>) {
    let mut blocks = BlockReader::new(input);
    let mut received = 0u64;
    let result = receive_counted(&mut blocks, file, transfer, keep_going, tap, &mut received);
    (received, result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A file as storage hands it out (no descriptor: block mode never uses one).
    struct Bytes(io::Cursor<Vec<u8>>);

    impl Read for Bytes {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl FileReader for Bytes {
        fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
            None
        }
    }

    /// A connected pair: our side as a `Conn`, the client's as a stream.
    fn pair() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        (Conn::Plain(listener.accept().unwrap().0), client)
    }

    /// Reads one file's blocks from `wire` as a client would.
    fn read_blocks(wire: &mut TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        BlockReader::new(wire).read_to_end(&mut got).unwrap();
        got
    }

    #[test]
    fn files_and_listings_go_out_as_blocks_one_after_another() {
        let (mut out, mut client) = pair();
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let reading = std::thread::spawn(move || {
            let files: Vec<Vec<u8>> = (0..5).map(|_| read_blocks(&mut client)).collect();
            let mut rest = Vec::new();
            client.read_to_end(&mut rest).unwrap();
            (files, rest)
        });
        let timeout = Duration::from_secs(10);
        for bytes in [Vec::new(), big.clone()] {
            let len = bytes.len() as u64;
            let (sent, result) = send_file(&mut Bytes(io::Cursor::new(bytes)), len, &mut out, false, timeout, || true);
            result.unwrap();
            assert_eq!(sent, len);
        }
        // TYPE A: LF becomes CRLF before framing, and a block never holds more than 65535 bytes.
        let lines = b"\n".repeat(MAX_BLOCK + 10);
        let (sent, result) =
            send_file(&mut Bytes(io::Cursor::new(lines.clone())), lines.len() as u64, &mut out, true, timeout, || true);
        result.unwrap();
        assert_eq!(sent, lines.len() as u64);
        assert_eq!(send_bytes(b"a listing\r\n", &mut out, timeout, || true).0, 11);
        assert_eq!(send_bytes(b"", &mut out, timeout, || true).0, 0);
        drop(out);
        let (files, rest) = reading.join().unwrap();
        assert_eq!(files[0], b"");
        assert_eq!(files[1], big);
        assert_eq!(files[2], b"\r\n".repeat(MAX_BLOCK + 10));
        assert_eq!(files[3], b"a listing\r\n");
        assert_eq!(files[4], b"");
        assert!(rest.is_empty(), "{} bytes after the last EOF block", rest.len());
    }

    #[test]
    fn a_file_that_shrank_gets_no_eof_block() {
        let (mut out, mut client) = pair();
        let (sent, result) = send_file(
            &mut Bytes(io::Cursor::new(vec![7u8; 10])),
            100,
            &mut out,
            false,
            Duration::from_secs(10),
            || true,
        );
        result.unwrap();
        assert_eq!(sent, 10);
        drop(out);
        let err = BlockReader::new(&mut client).read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn an_upload_ends_at_its_eof_block_and_not_at_the_connection_end() {
        let receiving = Receiving { ascii: false, room: None, timeout: Duration::from_secs(10) };
        let (mut input, mut client) = pair();
        let mut wire = Vec::new();
        wire.extend_from_slice(&[0, 0, 3, b'o', b'n', b'e']);
        wire.extend_from_slice(&END);
        wire.extend_from_slice(&[0, 0, 3, b't', b'w', b'o']);
        client.write_all(&wire).unwrap();
        let mut first = Vec::new();
        let (n, result) = receive_file(&mut input, &mut first, receiving, || true, |_| {});
        result.unwrap();
        assert_eq!((n, first.as_slice()), (3, &b"one"[..]));
        // The second file's connection ends before its EOF block: not a file.
        drop(client);
        let mut second = Vec::new();
        let (_, result) = receive_file(&mut input, &mut second, receiving, || true, |_| {});
        match result {
            Err(ReceiveError::Peer(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("expected a cut connection, got {other:?}"),
        }
    }

    #[test]
    fn a_closed_kept_connection_is_seen() {
        let (out, client) = pair();
        assert!(!client_left(&out));
        drop(client);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !client_left(&out) {
            assert!(std::time::Instant::now() < deadline, "the client's close was never seen");
            std::thread::yield_now();
        }
    }
}
