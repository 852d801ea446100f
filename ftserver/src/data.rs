//! Data connections: passive listeners (accepting only the control peer), active connections,
//! and streaming bytes to the client. Nothing here parses or answers commands.

use crate::conn::Conn;
use crate::storage::FileReader;
use common::ascii::{FromNetwork, ToNetwork};
use common::hostport::canonical_ip;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How the next transfer gets its data connection (set by PASV/EPSV or PORT/EPRT, used once).
#[derive(Debug)]
pub enum DataPlan {
    /// The client connects to this listener.
    Passive(PassiveListener),
    /// The server connects to this address (already checked against the control peer).
    Active(SocketAddr),
}

/// A listening socket for one passive data connection.
#[derive(Debug)]
pub struct PassiveListener {
    socket: Socket,
    port: u16,
}

/// Connections from strangers can queue up; a few suffice for the one real client.
const PASSIVE_BACKLOG: i32 = 8;

/// Random ports tried in the ephemeral range before the kernel is asked to choose one.
const RANDOM_TRIES: u32 = 32;

/// An unbound TCP socket for a passive listener on `ip`'s family.
fn passive_socket(ip: IpAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(SocketAddr::new(ip, 0)), Type::STREAM, Some(Protocol::TCP))?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Every finished data connection leaves its port in TIME_WAIT for a minute; without
    // SO_REUSEADDR those ports cannot be listened on again, and a busy server (tens of
    // thousands of small transfers a minute) runs out of passive ports and answers 425.
    // Only this listener's own port is reused; connections are still unique 4-tuples.
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`, which applies to IPv6
/// too): ports no service expects to own, so a passive listener there never keeps a daemon
/// from starting.
fn ephemeral_ports() -> RangeInclusive<u16> {
    static RANGE: std::sync::OnceLock<RangeInclusive<u16>> = std::sync::OnceLock::new();
    RANGE
        .get_or_init(|| {
            let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
            let mut ports = text.split_whitespace().filter_map(|p| p.parse::<u16>().ok());
            match (ports.next(), ports.next()) {
                (Some(lo), Some(hi)) if 1024 <= lo && lo <= hi => lo..=hi,
                _ => 32768..=60999,
            }
        })
        .clone()
}

/// How often a waiting accept looks at the server's stop flag.
const STOP_POLL: Duration = Duration::from_millis(500);

impl PassiveListener {
    /// Listens on `ip`, on a free port from `ports` (tried from a random starting point, so
    /// ports are not predictable) or, without a configured range, from the kernel's ephemeral
    /// port range.
    ///
    /// Why not let the kernel choose (bind to port 0): every finished data connection leaves its
    /// port in TIME_WAIT for a minute, and the kernel's search for a free port walks past all of
    /// them under a lock. Measured on Linux 6.18 with 1000-file tree downloads: 9000 files/s
    /// with few TIME_WAIT sockets fell to 1000 files/s with 15,000, nearly all of the time spent
    /// in `inet_csk_get_port`. Binding a chosen port is one hash lookup, and with SO_REUSEADDR
    /// a port whose only users are in TIME_WAIT is free to listen on (vsftpd picks its passive
    /// ports the same way).
    pub fn bind(ip: IpAddr, ports: Option<&RangeInclusive<u16>>) -> io::Result<PassiveListener> {
        let (range, tries) = match ports {
            Some(range) => (range.clone(), u32::MAX),
            None => (ephemeral_ports(), RANDOM_TRIES),
        };
        let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
        let count = hi - lo + 1;
        let start = (RandomState::new().build_hasher().finish() % u64::from(count)) as u32;
        let socket = passive_socket(ip)?;
        for i in 0..count.min(tries) {
            let port = (lo + (start + i) % count) as u16;
            match socket.bind(&SockAddr::from(SocketAddr::new(ip, port))) {
                Ok(()) => return Self::listen(socket),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => return Err(e),
            }
        }
        if ports.is_some() {
            return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("no free passive port in {lo}-{hi}")));
        }
        // Unlucky every time (a nearly exhausted range): let the kernel search.
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
        Self::listen(socket)
    }

    fn listen(socket: Socket) -> io::Result<PassiveListener> {
        socket.listen(PASSIVE_BACKLOG)?;
        let port = socket.local_addr()?.as_socket().map_or(0, |a| a.port());
        Ok(PassiveListener { socket, port })
    }

    /// The port clients must connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits up to `timeout` for a connection from `peer` (the control connection's client).
    /// Connections from any other address are closed at once without data, and waiting goes
    /// on (RFC 2577 section 5, "port stealing"). Gives up early when `stop` is set.
    pub fn accept_from(&self, peer: IpAddr, timeout: Duration, stop: &AtomicBool) -> io::Result<TcpStream> {
        let peer = canonical_ip(peer);
        let deadline = crate::config::deadline_after(timeout);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "server shutting down"));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no data connection from the client"));
            }
            // On Linux, accept() honours SO_RCVTIMEO, which gives a blocking accept a timeout.
            self.socket.set_read_timeout(Some(remaining.min(STOP_POLL)))?;
            match self.socket.accept() {
                Ok((socket, addr)) => {
                    let from = addr.as_socket();
                    if from.map(|a| canonical_ip(a.ip())) == Some(peer) {
                        return Ok(socket.into());
                    }
                    log::warn!(
                        "dropped a passive data connection from {}: only the control peer {peer} may connect",
                        from.map_or_else(|| "an unknown address".to_owned(), |a| a.to_string())
                    );
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Connects to a client's data port (`PORT`/`EPRT`) within `timeout`, from `local`: the
/// control connection's local address (canonical). The client, its firewall and connection
/// tracking (nf_conntrack_ftp) expect the data connection from the address they logged in to,
/// which on a host with several addresses is not always the one the kernel's route picks.
pub fn connect(local: IpAddr, target: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    // `EPRT |2|::ffff:a.b.c.d|...` from an IPv4 client names an IPv4 peer.
    let target = SocketAddr::new(canonical_ip(target.ip()), target.port());
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, Some(Protocol::TCP))?;
    if local.is_ipv4() == target.is_ipv4() {
        // The port is still chosen at connect time, per destination, as for an unbound socket
        // (binding port 0 would reserve a port for every destination at once).
        if let Err(e) = nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::IpBindAddressNoPort, &true) {
            log::debug!("IP_BIND_ADDRESS_NO_PORT refused: {e}");
        }
        socket.bind(&SocketAddr::new(local, 0).into())?;
    }
    socket.connect_timeout(&target.into(), timeout)?;
    Ok(socket.into())
}

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
    let mut received = 0u64;
    let result = receive_counted(input, file, transfer, keep_going, tap, &mut received);
    (received, result)
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
    input: &mut Conn,
    file: &mut dyn Write,
    Receiving { ascii, room, timeout }: Receiving,
    keep_going: impl FnMut() -> bool,
    mut tap: impl FnMut(&[u8]),
    received: &mut u64,
) -> Result<(), ReceiveError> {
    let mut buf = vec![0u8; SEND_BUFFER];
    // A hint only: a kernel that refuses it costs some speed, never correctness.
    if let Err(e) = nix::sys::socket::setsockopt(input.socket(), RcvLowat, &LOW_WATER) {
        log::debug!("SO_RCVLOWAT refused: {e}");
    }
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
    use std::net::{Ipv4Addr, TcpListener};
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

    #[test]
    fn passive_ports_come_from_the_range() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Find a free port, then ask for exactly that one.
        let probe = TcpListener::bind((ip, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let l = PassiveListener::bind(ip, Some(&(port..=port))).unwrap();
        assert_eq!(l.port(), port);
        // The only port is taken now.
        let err = PassiveListener::bind(ip, Some(&(port..=port))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn accepts_the_peer_and_times_out_without_it() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let l = PassiveListener::bind(ip, None).unwrap();
        assert!(ephemeral_ports().contains(&l.port()), "{} outside {:?}", l.port(), ephemeral_ports());
        let stop = AtomicBool::new(false);
        let _client = TcpStream::connect((ip, l.port())).unwrap();
        assert!(l.accept_from(ip, Duration::from_secs(5), &stop).is_ok());
        let err = l.accept_from(ip, Duration::from_millis(50), &stop).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
