//! Data connections: passive (EPSV, then PASV) and active (EPRT, then PORT), the accept that
//! admits only the server, and the loops that move bytes between the data socket and a file. It
//! parses no replies beyond the ones that set up the connection.

use crate::conn::Conn;
use crate::interrupt;
use crate::session::{ServerError, Session, TICK};
use anyhow::{anyhow, bail, Context, Result};
use common::block::{self, BlockReader};
use common::command::EpsvArg;
use common::hostport::{canonical_ip, parse_227, parse_229};
use common::{Command, Reply};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Instant;

/// Bytes asked of the data socket per read. Large reads mean few system calls per megabyte.
pub const READ_BUF: usize = 1 << 20;

/// The most handed to the local file per write. Not a whole [`READ_BUF`]: measured for a 1 GiB
/// download into a new file on ext4 (Linux 6.18, 2 vCPUs, client and server pinned to separate
/// CPUs, 4-6 alternated runs per variant, three sets), 1 MiB writes cost the client 0.4-2.8 s
/// of CPU and ran at 0.4-2.7 GB/s, mostly copying into new page-cache folios, while 256 KiB
/// writes cost 0.34-0.53 s and ran at 2.0-3.0 GB/s (128 KiB: 0.37-0.41 s; curl's 16 KiB:
/// 0.6-1.1 s). The likely cause is the larger folios a larger write asks for, taken from memory
/// this VM has just handed back to its host (free page reporting).
const WRITE_PIECE: usize = 256 << 10;

/// The active-mode data port cannot be used (taken by another program, or not allowed).
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on data port {addr}: {}", crate::report::io_reason(reason))]
pub struct DataPortError {
    /// The address that was asked for.
    pub addr: SocketAddr,
    /// Why it failed. Not an error `source`: the message already says it, and `{err:#}` would
    /// print it a second time.
    pub reason: io::Error,
}

/// How the data connection is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The client connects to the server (EPSV, then PASV).
    Passive,
    /// The server connects to the client's port (EPRT, then PORT).
    Active(u16),
}

/// A data connection that has been set up but not necessarily established.
#[derive(Debug)]
pub enum Pending {
    /// Passive mode: already connected to the server.
    Connected(TcpStream),
    /// Active mode: waiting for the server to connect.
    Listening(TcpListener),
    /// Block mode: the connection the last transfer ended on, still open.
    Kept(Conn),
}

/// Sets up a data connection in `mode` before the transfer command is sent (in block mode, the
/// one the last transfer kept open, when there is one).
pub fn prepare(session: &mut Session, mode: Mode) -> Result<Pending> {
    if let Some(kept) = session.take_kept() {
        if still_open(&kept) {
            return Ok(Pending::Kept(kept));
        }
        // The server closed it (a refused upload, say): a new one is asked for.
        log::debug!("the kept data connection was closed by the server; opening another");
    }
    match mode {
        Mode::Passive => passive(session).map(Pending::Connected),
        Mode::Active(port) => active(session, port).map(Pending::Listening),
    }
}

/// EPSV (RFC 2428), then PASV for IPv4 servers that refuse it. Like curl and ftplib, the
/// address in a 227 reply is ignored: only the port is used, with the control peer's address,
/// so a server cannot point the client at a third host.
fn passive(session: &mut Session) -> Result<TcpStream> {
    let peer = session.peer();
    let reply = session.command(&Command::Epsv(EpsvArg::Any))?;
    let port = if reply.code == 229 {
        parse_229(&reply.text()).map_err(|e| anyhow!("{e}: {}", ServerError(reply.clone())))?
    } else if peer.is_ipv4() {
        log::info!("EPSV refused ({}), trying PASV", ServerError(reply));
        let reply = session.command(&Command::Pasv)?;
        if reply.code != 227 {
            return Err(ServerError(reply)).context("the server refused passive mode (EPSV and PASV)");
        }
        let announced = parse_227(&reply.text()).map_err(|e| anyhow!("{e}: {}", ServerError(reply.clone())))?;
        if IpAddr::V4(*announced.ip()) != peer.ip() {
            log::info!("ignoring the address {} in the 227 reply, using {}", announced.ip(), peer.ip());
        }
        announced.port()
    } else {
        return Err(ServerError(reply)).context("the server refused extended passive mode (EPSV)");
    };
    let addr = SocketAddr::new(peer.ip(), port);
    log::debug!("connecting to the data port {addr}");
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .context("cannot create the data socket")?;
    connect_within(&socket, addr, session.timeout()).with_context(|| format!("cannot connect to data port {addr}"))?;
    Ok(socket.into())
}

/// Connects within `timeout`. On Linux a blocking connect honours SO_SNDTIMEO (it then fails
/// with EINPROGRESS): three system calls, where a non-blocking connect and poll take seven,
/// which counts for trees of thousands of small files.
fn connect_within(socket: &Socket, addr: SocketAddr, timeout: std::time::Duration) -> io::Result<()> {
    if cfg!(target_os = "linux") {
        socket.set_write_timeout(Some(timeout))?;
        return match socket.connect(&addr.into()) {
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINPROGRESS as i32) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, format!("no answer within {} s", timeout.as_secs())))
            }
            other => other,
        };
    }
    socket.connect_timeout(&addr.into(), timeout)
}

/// Listens on `port` at the control connection's local address and announces it with EPRT
/// (RFC 2428), or PORT when an IPv4 server refuses EPRT.
fn active(session: &mut Session, port: u16) -> Result<TcpListener> {
    let addr = SocketAddr::new(session.local().ip(), port);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .context("cannot create the data socket")?;
    // The same data port is used run after run; old connections in TIME_WAIT must not block it.
    socket.set_reuse_address(true).context("cannot set SO_REUSEADDR on the data socket")?;
    socket.bind(&addr.into()).map_err(|reason| DataPortError { addr, reason })?;
    socket.listen(4).map_err(|reason| DataPortError { addr, reason })?;
    // On Linux accept() honours SO_RCVTIMEO: accept waits at most one tick, so Ctrl-C and the
    // accept timeout are noticed.
    socket.set_read_timeout(Some(TICK)).context("cannot set a timeout on the data socket")?;
    let listener: TcpListener = socket.into();
    let reply = session.command(&Command::Eprt(addr))?;
    if !reply.is_success() {
        let SocketAddr::V4(v4) = addr else {
            return Err(ServerError(reply)).context(format!("the server refused active mode (EPRT {addr})"));
        };
        log::info!("EPRT refused ({}), trying PORT", ServerError(reply));
        session.expect_success(&Command::Port(v4), || format!("the server refused active mode (PORT {addr})"))?;
    }
    Ok(listener)
}

/// Is a kept block-mode data connection still usable? Between transfers the server sends
/// nothing on it but, over TLS, session tickets: its end (or an error) means it is gone, and
/// so do stray bytes on a plain one.
fn still_open(conn: &Conn) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let closed = PollFlags::from_bits_retain(nix::libc::POLLRDHUP) | PollFlags::POLLHUP | PollFlags::POLLERR;
    let mut fds = [PollFd::new(conn.socket().as_fd(), PollFlags::POLLIN | closed)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(0) => true,
        Ok(_) => {
            let events = fds[0].revents().unwrap_or(PollFlags::empty());
            !events.intersects(closed) && conn.is_tls()
        }
        Err(_) => false,
    }
}

/// Sends the transfer command `cmd` on a prepared data connection and returns the 1xx reply
/// and the established data stream. `what` names the step for errors.
pub fn start(session: &mut Session, pending: Pending, cmd: &Command, what: &str) -> Result<(Reply, Conn)> {
    let reply = session.command(cmd)?;
    let stream = if matches!(cmd, Command::Stor(_) | Command::Appe(_) | Command::Stou(_)) {
        established_upload(session, pending, reply.clone(), what)?
    } else {
        established(session, pending, reply.clone(), what)?
    };
    Ok((reply, stream))
}

/// [`established`] for an upload command: a server that refused an upload cannot tell whether
/// blocks were already on their way behind the command, so it closes a kept data connection
/// (ftserver does), and so does the client.
pub fn established_upload(session: &mut Session, pending: Pending, reply: Reply, what: &str) -> Result<Conn> {
    let stream = established(session, pending, reply, what);
    if stream.is_err() {
        drop(session.take_kept());
    }
    stream
}

/// Given the reply to a transfer command, requires it to be 1xx and establishes the data
/// connection (accepting it in active mode). With `PROT P` the TLS handshake comes now, after
/// the 1xx reply: servers such as vsftpd start theirs only once the command is accepted.
pub fn established(session: &mut Session, pending: Pending, reply: Reply, what: &str) -> Result<Conn> {
    if !reply.is_preliminary() {
        // A refused command leaves a block-mode connection as it was: the next transfer uses it.
        if let Pending::Kept(kept) = pending {
            session.keep(kept);
        }
        return Err(ServerError(reply)).context(what.to_owned());
    }
    let stream = match pending {
        Pending::Connected(stream) => stream,
        Pending::Listening(listener) => accept(session, &listener)?,
        Pending::Kept(kept) => return Ok(kept),
    };
    stream.set_read_timeout(Some(TICK)).context("cannot set a timeout on the data connection")?;
    stream.set_write_timeout(Some(TICK)).context("cannot set a timeout on the data connection")?;
    if session.block_mode() {
        // An upload's end-of-file block is a short segment of its own: with Nagle's algorithm
        // it would wait for the ACK of the data before it, a round trip per file.
        stream.set_nodelay(true).context("cannot set TCP_NODELAY on the data connection")?;
    }
    session.data_conn(stream)
}

/// A connection from `server` already waiting on `listener`, if there is one (strangers' are
/// closed).
fn queued(listener: &TcpListener, server: IpAddr) -> Result<Option<TcpStream>> {
    listener.set_nonblocking(true).context("cannot poll the data socket")?;
    let found = loop {
        match listener.accept() {
            Ok((stream, from)) if canonical_ip(from.ip()) == server => break Ok(Some(stream)),
            Ok((_, from)) => log::warn!("refused a data connection from {from}: only the server {server} may connect"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e).context("cannot accept the data connection"),
        }
    };
    listener.set_nonblocking(false).context("cannot poll the data socket")?;
    found
}

/// Waits for the server's data connection. Connections from any other address are closed
/// unread (RFC 2577 section 5: port theft) and the wait goes on until the timeout.
fn accept(session: &mut Session, listener: &TcpListener) -> Result<TcpStream> {
    let server = canonical_ip(session.peer().ip());
    let deadline = Instant::now() + session.timeout();
    loop {
        interrupt::check()?;
        match listener.accept() {
            Ok((stream, from)) if canonical_ip(from.ip()) == server => {
                log::debug!("data connection from {from}");
                return Ok(stream);
            }
            Ok((stream, from)) => {
                log::warn!("refused a data connection from {from}: only the server {server} may connect");
                drop(stream);
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    bail!(
                        "the server did not connect to data port {} within {} s",
                        listener.local_addr().map_or(0, |a| a.port()),
                        session.timeout().as_secs()
                    );
                }
                // A server that cannot connect says so on the control connection (425). One that
                // connected, sent a small file and replied 226 while we were looking is queued.
                if session.reply_waiting()? {
                    if let Some(stream) = queued(listener, server)? {
                        return Ok(stream);
                    }
                    let reply = session.read_reply()?;
                    return Err(ServerError(reply)).context("the server could not open the data connection");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("cannot accept the data connection"),
        }
    }
}

// `SO_RCVLOWAT` (socket(7)), which neither std nor socket2 offers; nix's macro defines it.
use nix::{libc, setsockopt_impl, sockopt_impl};
sockopt_impl!(RcvLowat, SetOnly, libc::SOL_SOCKET, libc::SO_RCVLOWAT, usize);

/// Large transfers: the kernel wakes the reader only once this much has arrived (or the
/// connection ended, or the read timeout passed, which returns what is there).
const LOW_WATER: usize = READ_BUF / 2;

/// Transfers whose remaining size is unknown or above this get [`LOW_WATER`].
const LOW_WATER_FROM: u64 = 4 << 20;

/// The server sent more bytes than it said the file has: resuming cannot mend that.
#[derive(Debug, thiserror::Error)]
#[error("the server sent more than {0} bytes")]
pub struct TooMuchData(pub u64);

/// Copies the data connection into `sink` until the server closes it (in block mode: until the
/// end-of-file block), at most `limit` bytes (then it fails). `count` is advanced as bytes are
/// written, so after an error it says how far the copy got. `on_data` sees the running total
/// after each write (progress bars).
pub fn receive(
    session: &Session,
    stream: &mut Conn,
    sink: &mut dyn Write,
    count: &mut u64,
    limit: u64,
    on_data: impl FnMut(u64),
) -> Result<()> {
    // Small files (trees of thousands) need no megabyte buffer; one byte more than allowed
    // still shows a server that sends too much.
    let want = limit.saturating_sub(*count).saturating_add(1).max(64 << 10);
    let mut buf = vec![0u8; usize::try_from(want).map_or(READ_BUF, |w| w.min(READ_BUF))];
    let tls = stream.is_tls();
    if session.block_mode() {
        // Blocks are read header by header: a low-water mark would hold every header back.
        let mut blocks = BlockReader::new(stream);
        return copy_in(session, &mut blocks, tls, &mut buf, sink, count, limit, on_data);
    }
    if want > LOW_WATER_FROM {
        // Without it every arriving segment wakes this thread: on loopback that is the
        // sender's CPU doing the wake-ups, and measured with a 1 GiB download the server spent
        // 0.43 s of CPU against 0.33 s with it, and throughput rose from 2.4 to 3.0 GB/s.
        // Only a hint: a kernel that refuses it costs some speed, never correctness.
        if let Err(e) = nix::sys::socket::setsockopt(stream.socket(), RcvLowat, &LOW_WATER) {
            log::debug!("SO_RCVLOWAT refused: {e}");
        }
    }
    copy_in(session, stream, tls, &mut buf, sink, count, limit, on_data)
}

/// The loop of [`receive`], over the connection itself or its blocks.
#[allow(clippy::too_many_arguments)]
fn copy_in(
    session: &Session,
    stream: &mut impl Read,
    tls: bool,
    buf: &mut [u8],
    sink: &mut dyn Write,
    count: &mut u64,
    limit: u64,
    mut on_data: impl FnMut(u64),
) -> Result<()> {
    let mut deadline = Instant::now() + session.timeout();
    loop {
        interrupt::check()?;
        match stream.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                if *count + n as u64 > limit {
                    return Err(TooMuchData(limit).into());
                }
                for piece in buf[..n].chunks(WRITE_PIECE) {
                    sink.write_all(piece).context("cannot write the data")?;
                }
                *count += n as u64;
                on_data(*count);
                deadline = Instant::now() + session.timeout();
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    bail!("no data from the server within {} s", session.timeout().as_secs());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A TLS server that closes without close_notify (many do after a download): the
            // 226 reply and the size check judge whether the data is complete. (In block mode
            // the reader itself fails a connection that ends before the end-of-file block.)
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && tls && !session.block_mode() => {
                log::debug!("the server closed the tls data connection without close_notify");
                return Ok(());
            }
            Err(e) => return Err(e).context("the data connection failed"),
        }
    }
}

/// Ends a transfer whose data has all been read: the server's final reply (226 or 250), and
/// in block mode the data connection kept for the next transfer when the server keeps it open
/// (250). In stream mode the connection is closed first.
pub fn complete(session: &mut Session, stream: Conn) -> Result<Reply> {
    if !session.block_mode() {
        drop(stream);
        return finish(session);
    }
    let reply = finish(session)?;
    if reply.code == 250 {
        session.keep(stream);
    }
    Ok(reply)
}

/// Copies `source` into the data connection until its end (in block mode as blocks, without the
/// end-of-file block: [`end_blocks`] sends that once the caller has checked the source). `count` is advanced as the server takes the data, so after an error
/// it says how far the upload got; `on_data` sees the running total (progress bars).
pub fn send(
    timeout: std::time::Duration,
    block: bool,
    stream: &mut Conn,
    source: &mut dyn Read,
    count: &mut u64,
    mut on_data: impl FnMut(u64),
) -> Result<()> {
    // In block mode each read leaves room for the block's header before it.
    let (head, piece) = if block { (block::HEADER, block::MAX_BLOCK) } else { (0, READ_BUF) };
    let mut buf = vec![0u8; head + piece];
    loop {
        interrupt::check()?;
        let n = match source.read(&mut buf[head..]) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("cannot read the local file"),
        };
        if block {
            // A block counts once all of it went out.
            write_out(timeout, stream, block::frame(&mut buf, n), |_| {})?;
            *count += n as u64;
            on_data(*count);
        } else {
            write_out(timeout, stream, &buf[..n], |k| {
                *count += k as u64;
                on_data(*count);
            })?;
        }
    }
}

/// Sends the end-of-file block that completes a block-mode upload.
pub fn end_blocks(timeout: std::time::Duration, stream: &mut Conn) -> Result<()> {
    write_out(timeout, stream, &block::END, |_| {})
}

/// Writes all of `bytes`, failing when the server takes nothing for `timeout`; `taken` sees
/// each write's count.
fn write_out(
    timeout: std::time::Duration,
    stream: &mut Conn,
    bytes: &[u8],
    mut taken: impl FnMut(usize),
) -> Result<()> {
    let mut sent = 0;
    let mut deadline = Instant::now() + timeout;
    while sent < bytes.len() {
        interrupt::check()?;
        match stream.write(&bytes[sent..]) {
            Ok(0) => bail!("the data connection closed"),
            Ok(k) => {
                sent += k;
                taken(k);
                deadline = Instant::now() + timeout;
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    bail!("the server took no data within {} s", timeout.as_secs());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("the data connection failed"),
        }
    }
    Ok(())
}

/// Ends a data connection with a reset (RST) instead of a clean close (FIN). In stream mode a
/// clean close means "that was the whole file" (RFC 959 3.4.1): an upload that went wrong must
/// not end that way, or the server would store the part it got as the complete file.
pub fn abort(stream: Conn) {
    stream.abort();
}

/// Reads the reply that ends a transfer and requires 226 or 250.
pub fn finish(session: &mut Session) -> Result<Reply> {
    let reply = session.read_reply()?;
    if matches!(reply.code, 226 | 250) {
        Ok(reply)
    } else {
        Err(ServerError(reply).into())
    }
}
