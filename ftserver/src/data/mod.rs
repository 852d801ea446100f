//! Data connections: how they are made (`open`) and streaming bytes over them, under a watch
//! that looks for ABOR and stalls. Nothing here parses or answers commands.

pub mod block;
mod open;

pub use open::{connect, DataPlan, PassiveListener, PassiveShares, ShareClaim};

use crate::conn::Conn;
use crate::storage::FileReader;
use common::ascii::{FromNetwork, ToNetwork};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The read size for downloads sent by copying, and for uploads. Measured on loopback (curl,
/// 2 GiB file, release build): 256 KiB reads reach about 1.9 GB/s against 1.7 GB/s for
/// `io::copy`'s 8 KiB. (Rust 1.95's `io::copy` does not use `sendfile` for a `TcpStream` writer,
/// as strace shows; [`send_file`] calls it itself when that pays.)
const SEND_BUFFER: usize = 256 * 1024;

/// Bytes moved between two looks at the control connection for an ABOR, at most.
const CHECK_EVERY: u64 = 4 << 20;

/// The longest a read or write of a data connection blocks, and the longest between two looks
/// at the control connection, whatever the data flow: an ABOR (or a shutdown) is answered at
/// once even while the client reads or sends nothing. The socket timeout cannot simply be the
/// data timeout: with SO_RCVLOWAT a read that times out returns the bytes that did arrive, so
/// a stalled upload failed only after a second timeout, and an ABOR waited as long.
pub const WAKE: Duration = Duration::from_millis(200);

/// Why a [`Watch`] ended a transfer.
enum Halt {
    /// `keep_going` said no: ABOR, or the server is stopping.
    Aborted,
    /// Nothing moved for the data timeout.
    Stalled(Duration),
}

impl From<Halt> for io::Error {
    fn from(halt: Halt) -> io::Error {
        match halt {
            Halt::Aborted => io::Error::new(io::ErrorKind::ConnectionAborted, "transfer aborted by the client"),
            Halt::Stalled(timeout) => {
                io::Error::new(io::ErrorKind::TimedOut, format!("no data moved for {} s", timeout.as_secs_f64()))
            }
        }
    }
}

/// The clock of one transfer on a data connection, downloads and uploads alike: asks
/// `keep_going` every [`CHECK_EVERY`] bytes or [`WAKE`], whichever comes first, and fails the
/// transfer once nothing has moved for `timeout` (`--data-timeout`). Before each blocking call
/// the caller sets the socket timeout [`Watch::wake`] asks for.
struct Watch<F> {
    keep_going: F,
    timeout: Duration,
    last_moved: Instant,
    last_check: Instant,
    unchecked: u64,
    socket: common::timer::SocketTimeout,
}

impl<F: FnMut() -> bool> Watch<F> {
    fn new(keep_going: F, timeout: Duration) -> Self {
        let now = Instant::now();
        Watch {
            keep_going,
            timeout,
            last_moved: now,
            last_check: now,
            unchecked: 0,
            socket: common::timer::SocketTimeout::new(),
        }
    }

    /// `n` bytes moved (0: a call returned without moving any, e.g. at its timeout).
    fn moved(&mut self, n: usize) -> Result<(), Halt> {
        let now = Instant::now();
        if n > 0 {
            self.last_moved = now;
            self.unchecked += n as u64;
        }
        if self.unchecked >= CHECK_EVERY || now - self.last_check >= WAKE {
            self.unchecked = 0;
            self.last_check = now;
            if !(self.keep_going)() {
                return Err(Halt::Aborted);
            }
        }
        if now - self.last_moved >= self.timeout {
            return Err(Halt::Stalled(self.timeout));
        }
        Ok(())
    }

    /// The socket timeout to set before the next blocking call, when it must change: at most
    /// [`WAKE`], and never past the data timeout's deadline.
    fn wake(&mut self) -> Option<Duration> {
        let left = self.timeout.saturating_sub(self.last_moved.elapsed());
        // A zero socket timeout means "block forever".
        self.socket.update(left.min(WAKE).max(Duration::from_millis(1)))
    }
}

/// Is this the error of a socket call that reached its timeout (or was interrupted) without
/// moving a byte?
fn is_wake(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted)
}

/// Writes all of `buf` to `out` under `watch`.
fn write_watched(out: &mut Conn, mut buf: &[u8], watch: &mut Watch<impl FnMut() -> bool>) -> io::Result<()> {
    while !buf.is_empty() {
        if let Some(wake) = watch.wake() {
            out.socket().set_write_timeout(Some(wake))?;
        }
        match out.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                buf = &buf[n..];
                watch.moved(n)?;
            }
            Err(e) if is_wake(&e) => watch.moved(0)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Flushes what `out` still holds (a TLS connection keeps the last records it could not send
/// before a wake-up) under `watch`.
fn flush_watched(out: &mut Conn, watch: &mut Watch<impl FnMut() -> bool>) -> io::Result<()> {
    loop {
        match out.flush() {
            Ok(()) => return Ok(()),
            Err(e) if is_wake(&e) => watch.moved(0)?,
            Err(e) => return Err(e),
        }
    }
}

/// Sends at most `limit` bytes of a file from its current position. TYPE I sends bytes exactly;
/// TYPE A converts line endings to CRLF on the way (RFC 959 3.1.1.1). Memory use is one buffer,
/// whatever the file size.
///
/// Returns the file bytes sent (for the log, even on failure) and how sending ended. Fewer than
/// `limit` bytes with `Ok` means the file shrank meanwhile; the limit keeps a growing file from
/// sending more than the `150` reply announced.
///
/// `keep_going` is asked every few MiB and every [`WAKE`]; when it says no, sending stops with a
/// `ConnectionAborted` error (the client asked for ABOR). A client that takes nothing for
/// `timeout` fails the transfer with `TimedOut`.
///
/// With `zero_copy` (TYPE I only, a plain connection, a file the storage has a descriptor for)
/// the kernel moves the bytes with `sendfile(2)`, as vsftpd does,
/// instead of a read/write loop. Measured for a 1 GiB download over loopback to ftclient
/// (release builds, 2 CPUs, five alternated runs): the server's CPU time falls from 0.47 s to
/// 0.05-0.15 s, but the receiving process, now the one reading the page cache, spends 0.3-0.6 s
/// instead of 0.1 s, and throughput goes from a steady 2.2 GB/s to anywhere in 1.5-3.0 GB/s.
/// Over a real network the receiver is another machine and its cost does not depend on how we
/// send; so the session asks for zero copy for every peer but a loopback one.
pub fn send_file(
    file: &mut dyn FileReader,
    limit: u64,
    out: &mut Conn,
    ascii: bool,
    zero_copy: bool,
    timeout: Duration,
    keep_going: impl FnMut() -> bool,
) -> (u64, io::Result<()>) {
    let mut sent = 0u64;
    let mut watch = Watch::new(keep_going, timeout);
    if let (true, false, Some(socket), Some(fd)) = (zero_copy, ascii, out.plain(), file.fd()) {
        match send_zero_copy(fd, limit, socket, &mut watch, &mut sent) {
            // This file cannot be sent with sendfile (EINVAL, ENOSYS): copy it instead.
            Err(e) if sent == 0 && !is_peer_error(&e) => {
                log::debug!("sendfile refused ({e}), copying instead");
            }
            other => return (sent, other),
        }
    }
    let result =
        send_counted(file, limit, out, ascii, &mut watch, &mut sent).and_then(|()| flush_watched(out, &mut watch));
    (sent, result)
}

/// Sends up to `limit` bytes from the file's current position with `sendfile(2)`, under
/// `watch` (the socket's send timeout bounds each call as it bounds a write).
fn send_zero_copy(
    file: std::os::fd::BorrowedFd<'_>,
    limit: u64,
    out: &TcpStream,
    watch: &mut Watch<impl FnMut() -> bool>,
    sent: &mut u64,
) -> io::Result<()> {
    while *sent < limit {
        if let Some(wake) = watch.wake() {
            out.set_write_timeout(Some(wake))?;
        }
        let piece = (limit - *sent).min(CHECK_EVERY);
        // `None`: use and advance the file's own position (set by REST).
        match nix::sys::sendfile::sendfile64(out, file, None, piece as usize) {
            // The file shrank: the caller sees fewer bytes than announced.
            Ok(0) => return Ok(()),
            Ok(n) => {
                *sent += n as u64;
                watch.moved(n)?;
            }
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => watch.moved(0)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn send_counted(
    file: &mut dyn FileReader,
    limit: u64,
    out: &mut Conn,
    ascii: bool,
    watch: &mut Watch<impl FnMut() -> bool>,
    sent: &mut u64,
) -> io::Result<()> {
    let mut file = Read::take(file, limit);
    // A small file needs no large buffer, and zeroing one per transfer showed in profiles of
    // trees of small files (a 4 KiB file costing a 256 KiB memset).
    let mut buf = vec![0u8; usize::try_from(limit).map_or(SEND_BUFFER, |l| l.clamp(1, SEND_BUFFER))];
    let mut converted = Vec::new();
    let mut conv = ToNetwork::new();
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if ascii {
            converted.clear();
            conv.convert(&buf[..n], &mut converted);
            write_watched(out, &converted, watch)?;
        } else {
            write_watched(out, &buf[..n], watch)?;
        }
        *sent += n as u64;
    }
}

// `SO_RCVLOWAT` (socket(7)), which neither std nor socket2 offers; nix's macro defines it.
use nix::{libc, setsockopt_impl, sockopt_impl};
sockopt_impl!(RcvLowat, SetOnly, libc::SOL_SOCKET, libc::SO_RCVLOWAT, usize);

/// While an upload is received, the kernel wakes the receiving thread only once this much has
/// arrived (or the connection ended, or the read timeout passed, which returns what is there).
/// Without it every arriving segment is a wake-up, which on loopback the sending process pays
/// for; measured with ftclient downloads of 1 GiB (the same option on the client's side) the
/// sender's CPU fell from 0.43 to 0.35 s and throughput rose from 2.4 to 3.0 GB/s.
const LOW_WATER: usize = SEND_BUFFER;

/// Why receiving an upload stopped before the client's end-of-file.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The data connection failed: reset, or silent for longer than the data timeout.
    #[error("data connection failed: {0}")]
    Peer(io::Error),
    /// Writing the file failed (e.g. the disk is full).
    #[error("cannot write the file: {0}")]
    Disk(io::Error),
    /// The file grew beyond the upload size limit.
    #[error("larger than the upload size limit")]
    TooLarge,
    /// The client sent ABOR, or the server is stopping.
    #[error("aborted")]
    Aborted,
    /// The data ended cleanly, but with another size than the client announced (`ALLO`).
    #[error("another size than the {announced} bytes announced")]
    Short {
        /// The size announced.
        announced: u64,
    },
}

/// Receives an upload: reads the data connection to its end and writes what arrives to `file`
/// at its current position. TYPE A converts CRLF to LF (RFC 959 3.1.1.1). `room` is how many
/// more bytes the file may take (`--max-upload-size`); `keep_going` is asked every few MiB and
/// every [`WAKE`], as for downloads, so an ABOR during a stalled upload is noticed at once. A client silent for `timeout` fails the upload
/// with a `TimedOut` [`ReceiveError::Peer`]. `tap` sees every byte written to the file, in order
/// (to hash them on the way).
///
/// Returns the bytes received from the network (for the log, even on failure) and how receiving
/// ended: `Ok` only on a clean end-of-file from the client.
pub fn receive_file(
    input: &mut Conn,
    file: &mut dyn Write,
    transfer: Receiving,
    keep_going: impl FnMut() -> bool,
    tap: impl FnMut(&[u8]),
) -> (u64, Result<(), ReceiveError>) {
    // A hint only: a kernel that refuses it costs some speed, never correctness.
    if let Err(e) = nix::sys::socket::setsockopt(input.socket(), RcvLowat, &LOW_WATER) {
        log::debug!("SO_RCVLOWAT refused: {e}");
    }
    let mut received = 0u64;
    let result = receive_counted(input, file, transfer, keep_going, tap, &mut received);
    (received, result)
}

/// What an upload is read from: the data connection itself (stream mode, where its end is the
/// file's end) or the blocks on it (block mode, where the EOF block is).
trait Source: Read {
    /// The socket underneath, for its read timeout.
    fn socket(&self) -> &TcpStream;
}

impl Source for Conn {
    fn socket(&self) -> &TcpStream {
        Conn::socket(self)
    }
}

/// How an upload is received, for [`receive_file`].
#[derive(Debug, Clone, Copy)]
pub struct Receiving {
    /// TYPE A: convert CRLF to LF.
    pub ascii: bool,
    /// How many more bytes the file may take; `None`: no limit.
    pub room: Option<u64>,
    /// The longest the client may send nothing (`--data-timeout`).
    pub timeout: Duration,
}

fn receive_counted(
    input: &mut impl Source,
    file: &mut dyn Write,
    Receiving { ascii, room, timeout }: Receiving,
    keep_going: impl FnMut() -> bool,
    mut tap: impl FnMut(&[u8]),
    received: &mut u64,
) -> Result<(), ReceiveError> {
    let mut buf = vec![0u8; SEND_BUFFER];
    let mut watch = Watch::new(keep_going, timeout);
    let halted = |halt: Halt| match halt {
        Halt::Aborted => ReceiveError::Aborted,
        stalled => ReceiveError::Peer(stalled.into()),
    };
    let mut converted = Vec::new();
    let mut conv = FromNetwork::new();
    let mut written = 0u64;
    let mut write = |bytes: &[u8], written: &mut u64| {
        *written += bytes.len() as u64;
        if room.is_some_and(|room| *written > room) {
            return Err(ReceiveError::TooLarge);
        }
        file.write_all(bytes).map_err(ReceiveError::Disk)?;
        tap(bytes);
        Ok(())
    };
    loop {
        if let Some(wake) = watch.wake() {
            input.socket().set_read_timeout(Some(wake)).map_err(ReceiveError::Peer)?;
        }
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if is_wake(&e) => {
                watch.moved(0).map_err(halted)?;
                continue;
            }
            Err(e) => return Err(ReceiveError::Peer(e)),
        };
        watch.moved(n).map_err(halted)?;
        *received += n as u64;
        if ascii {
            converted.clear();
            conv.convert(&buf[..n], &mut converted);
            write(&converted, &mut written)?;
        } else {
            write(&buf[..n], &mut written)?;
        }
    }
    if ascii {
        converted.clear();
        conv.finish(&mut converted);
        write(&converted, &mut written)?;
    }
    Ok(())
}

/// Sends an in-memory body (a listing). Returns the bytes written.
pub fn send_bytes(body: &[u8], out: &mut Conn) -> io::Result<u64> {
    out.write_all(body)?;
    out.flush()?;
    Ok(body.len() as u64)
}

/// Did this error come from the client's side of the data connection (it closed, reset or
/// stalled) rather than from reading the file?
pub fn is_peer_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::WriteZero
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::fd::{AsFd, BorrowedFd};

    /// A file as the local storage hands it out: with its descriptor, for sendfile.
    struct Local<F>(F);

    impl<F: Read> Read for Local<F> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl<F: Read + AsFd + Send> FileReader for Local<F> {
        fn fd(&self) -> Option<BorrowedFd<'_>> {
            Some(self.0.as_fd())
        }
    }

    /// Sends `len` bytes of `bytes` from `offset` and returns what the peer received.
    fn sent_through_a_socket(bytes: &[u8], offset: u64, len: u64, zero_copy: bool) -> (u64, Vec<u8>) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let reader = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut out = Conn::Plain(listener.accept().unwrap().0);
        let reading = std::thread::spawn(move || {
            let mut got = Vec::new();
            (&reader).read_to_end(&mut got).unwrap();
            got
        });
        let (sent, result) =
            send_file(&mut Local(file), len, &mut out, false, zero_copy, Duration::from_secs(30), || true);
        result.unwrap();
        drop(out);
        (sent, reading.join().unwrap())
    }

    /// Both ways of sending (sendfile and the copying loop) end when the client reads nothing:
    /// with `TimedOut` after the data timeout, or with `ConnectionAborted` as soon as
    /// `keep_going` says no (ABOR), although every send blocks on a full socket buffer.
    #[test]
    fn a_client_that_reads_nothing_is_timed_out_or_aborted() {
        let file = tempfile::tempfile().unwrap();
        let len = 256 << 20;
        file.set_len(len).unwrap();
        for zero_copy in [false, true] {
            for abort in [false, true] {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let _reader = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let mut out = Conn::Plain(listener.accept().unwrap().0);
                let mut asked = 0;
                let keep_going = || {
                    asked += 1;
                    !abort || asked < 3
                };
                let mut file = file.try_clone().unwrap();
                std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).unwrap();
                let timeout = Duration::from_millis(if abort { 60_000 } else { 300 });
                let (sent, result) = send_file(&mut Local(file), len, &mut out, false, zero_copy, timeout, keep_going);
                let expected = if abort { io::ErrorKind::ConnectionAborted } else { io::ErrorKind::TimedOut };
                assert_eq!(result.unwrap_err().kind(), expected, "zero copy {zero_copy}, abort {abort}");
                assert!(sent < len, "zero copy {zero_copy}: all {sent} bytes went into the socket");
            }
        }
    }

    #[test]
    fn sendfile_and_the_copying_loop_send_the_same_bytes() {
        let bytes: Vec<u8> = (0..(CHECK_EVERY as usize * 2 + 12345)).map(|i| (i * 7 % 251) as u8).collect();
        let total = bytes.len() as u64;
        for zero_copy in [false, true] {
            assert_eq!(sent_through_a_socket(&bytes, 0, total, zero_copy), (total, bytes.clone()));
            // A REST offset, and a limit that stops before the end (a growing file).
            assert_eq!(
                sent_through_a_socket(&bytes, 1000, 5 << 20, zero_copy),
                (5 << 20, bytes[1000..][..5 << 20].to_vec())
            );
            // A limit beyond the end (a file that shrank) sends what is there.
            assert_eq!(sent_through_a_socket(&bytes[..10], 0, 100, zero_copy), (10, bytes[..10].to_vec()));
        }
    }
}
