//! One TFTP transfer on its own socket (a new transfer ID): option negotiation, then the windowed
//! sender of a read request or the receiver of a write request, which are the loops in
//! `common::tftp` (`send_blocks`, `receive_blocks`) run over this socket ([`tftp::Link`]).
//!
//! Retransmission is driven by the timer only, never by a duplicate ACK (RFC 1350's Sorcerer's
//! Apprentice rule); a write's first reply is the exception: it is repeated only when the client
//! repeats its request (see `receive`). Block numbers are tracked as `u64` and put on the wire
//! modulo 65536, so any file size crosses the rollover.

use super::{ActiveGuard, Shared, Signals, TftpConfig};
use crate::storage::error::{io_text, is_disk_full};
use crate::storage::{Opened, Protocol, Start, StorageError, UploadSpec, Uploader};
use common::path::VirtualPath;
use common::text::sanitize;
use common::tftp::{
    self, ErrorCode, Limits, Mode, Negotiated, NetasciiReader, Packet, Request, Stop, Wait, DATA_HEADER,
};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a transfer ended early.
enum Failure {
    /// We refuse or abort: the peer is told with an ERROR packet.
    Refuse(ErrorCode, String),
    /// The peer sent an ERROR packet.
    Peer(u16, String),
    /// No answer after the configured number of retransmissions.
    TimedOut(u32),
    /// The server is shutting down.
    Stopped,
    /// The listener gave the slot of this never-answered transfer to a new client.
    Evicted,
    /// The transfer socket failed.
    Socket(io::Error),
}

/// Whether a datagram is an ERROR packet (whatever follows the opcode).
fn is_error(datagram: &[u8]) -> bool {
    datagram.starts_with(&[0, 5])
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Failure {
    Failure::Refuse(code, message.into())
}

/// The TFTP error for a storage failure (`StorageError::tftp_code`).
fn storage_failure(e: StorageError) -> Failure {
    refuse(e.tftp_code(), e.tftp_message())
}

fn io_failure(e: io::Error) -> Failure {
    if let Some(over) = e.get_ref().and_then(|inner| inner.downcast_ref::<OverLimit>()) {
        return refuse(ErrorCode::DiskFull, over.to_string());
    }
    if is_disk_full(&e) {
        return refuse(ErrorCode::DiskFull, "disk full or quota exceeded");
    }
    match e.kind() {
        io::ErrorKind::PermissionDenied => refuse(ErrorCode::AccessViolation, "permission denied"),
        io::ErrorKind::NotFound => refuse(ErrorCode::FileNotFound, "no such file or directory"),
        io::ErrorKind::AlreadyExists => refuse(ErrorCode::FileExists, "file already exists"),
        _ => refuse(ErrorCode::NotDefined, io_text(&e)),
    }
}

/// Runs one transfer on `socket` (its TID) to its end and logs how it ended. `repeats` counts the
/// copies of the request the listener has received since (see [`Wait::RequestAgain`]). When the
/// peer ended the transfer with an ERROR its slot is handed back, with the copies of the request
/// seen since the peer last sent anything else (see [`ActiveGuard::restart`]).
pub(super) fn run(
    guard: ActiveGuard,
    socket: UdpSocket,
    repeats: Arc<Signals>,
    peer: SocketAddr,
    request: Request,
) -> Option<(ActiveGuard, u32)> {
    let shared = guard.shared.clone();
    let shared = &*shared;
    let name = sanitize(&request.filename);
    // Clamped so that no deadline computed from it (doubled on retries) can overflow.
    let timeout = shared.config.timeout.min(crate::config::MAX_TIMEOUT);
    let progress = Progress::new("");
    let mut t = Transfer {
        socket,
        peer,
        shared,
        repeats,
        timeout,
        progress,
        name,
        read_timeout: common::timer::SocketTimeout::new(),
        asked_again: 0,
        answered: false,
    };
    let result = match request.direction {
        tftp::Direction::Read => read(&mut t, &request).map(|()| None),
        tftp::Direction::Write => write(&mut t, &request).map(Some),
    };
    let (peer, name) = (t.peer, &t.name);
    match result {
        Ok(None) => {}
        Ok(Some(last)) => {
            // The upload is complete and in place: the slot is free while we dally.
            drop(guard);
            dally(&mut t, last);
        }
        Err(Failure::Refuse(code, message)) => {
            log::info!("tftp: {peer}: {name}: error {}: {message}", code as u16);
            let _ = t.socket.send_to(&tftp::error_bytes(code, &message), peer);
        }
        Err(Failure::Peer(code, message)) => {
            log::info!("tftp: {peer}: {name}: client ended the transfer: error {code}: {}", sanitize(&message));
            return Some((guard, t.asked_again));
        }
        Err(Failure::TimedOut(retries)) => {
            log::warn!("tftp: {peer}: {name}: no answer after {retries} retransmissions, transfer abandoned");
        }
        Err(Failure::Stopped) => {
            log::info!("tftp: {peer}: {name}: transfer stopped by server shutdown");
            let _ = t.socket.send_to(&tftp::error_bytes(ErrorCode::NotDefined, "server shutting down"), peer);
        }
        Err(Failure::Evicted) => log::debug!("tftp: {peer}: {name}: never answered, slot given to a new client"),
        Err(Failure::Socket(e)) => log::warn!("tftp: {peer}: {name}: transfer socket: {e}"),
    }
    None
}

/// A fresh socket on the listener's IP address and an ephemeral port: the server's transfer ID.
pub(super) fn bind(local_ip: IpAddr) -> io::Result<UdpSocket> {
    UdpSocket::bind(SocketAddr::new(local_ip, 0))
}

/// Sizes the socket buffers to hold a whole window, so a burst is neither dropped by the kernel
/// on the way in nor stalls the sender on the way out. The kernel caps it at its own maximum.
fn size_buffers(socket: &UdpSocket, n: &Negotiated) {
    // Each datagram costs its payload plus roughly 768 bytes of kernel bookkeeping.
    let window_bytes = usize::from(n.windowsize) * (usize::from(n.blksize) + DATA_HEADER + 768);
    let size = (2 * window_bytes).clamp(256 << 10, 16 << 20);
    let sock = socket2::SockRef::from(socket);
    let _ = sock.set_send_buffer_size(size);
    let _ = sock.set_recv_buffer_size(size);
}

/// Retransmissions in a row before a transfer whose peer never answered is given up.
const SILENT_RETRIES: u32 = 2;

/// Longest a receive blocks before the stop flag is looked at again.
const STOP_POLL: Duration = Duration::from_millis(500);

/// The shortest wait for a lost final ACK's retransmitted DATA, see [`dally`].
const MIN_DALLY: Duration = Duration::from_secs(15);

/// The receive buffer for the exchanges outside the data phase, which expect an ACK or a DATA
/// block's number.
const SMALL_PACKET: usize = 1024;

/// Progress is logged each time this many more bytes have been transferred.
const PROGRESS_STEP: u64 = 32 << 20;

/// The state every transfer has: the socket, the peer, the timer, the progress.
struct Transfer<'a> {
    socket: UdpSocket,
    peer: SocketAddr,
    shared: &'a Shared,
    /// Copies of the request the listener received, not yet looked at.
    repeats: Arc<Signals>,
    /// The retransmission timeout (the client's `timeout` option, or the configured one).
    timeout: Duration,
    /// Bytes sent or received so far.
    progress: Progress,
    /// The file name as requested, sanitised for logs.
    name: String,
    /// The socket's read timeout.
    read_timeout: common::timer::SocketTimeout,
    /// Copies of the request seen since our last send and since the peer last sent something
    /// other than an ERROR.
    asked_again: u32,
    /// The peer has sent us something on this transfer's socket.
    answered: bool,
}

impl Transfer<'_> {
    fn config(&self) -> &TftpConfig {
        &self.shared.config
    }

    /// Sends to the peer. A datagram the kernel refuses (ENOBUFS, a firewall's EPERM) is treated
    /// as a lost packet: the timer retransmits it, and the retry limit ends a hopeless transfer.
    /// Copies of the request that came before are answered by what goes out now: they are
    /// forgotten, so only a copy sent after it can count as a new request (see `asked_again`).
    fn send_packet(&mut self, packet: &[u8]) {
        // A load first: the swap's locked write would be paid on every DATA packet otherwise.
        if self.repeats.repeats.load(Ordering::Relaxed) > 0 {
            self.repeats.repeats.swap(0, Ordering::AcqRel);
        }
        self.asked_again = 0;
        if let Err(e) = self.socket.send_to(packet, self.peer) {
            log::debug!("tftp: {}: {}: send: {e}", self.peer, self.name);
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_blksize: self.config().max_blksize,
            max_windowsize: u16::MAX,
            max_window_bytes: self.config().max_window_bytes,
        }
    }

    /// Waits until `deadline` for a datagram from the peer (received into `buf`) or a copy of
    /// the request. A datagram from anyone else is answered with error 5 and the wait goes on
    /// (RFC 1350 section 4), except an empty one: the listener's wake-up, or noise.
    fn recv(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Wait, Failure> {
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return Err(Failure::Stopped);
            }
            if self.repeats.evicted.load(Ordering::Acquire) {
                return Err(Failure::Evicted);
            }
            let copies = self.repeats.repeats.swap(0, Ordering::AcqRel);
            if copies > 0 {
                // The client repeating its request is an answer too: it is there, waiting for
                // our first reply (a write waits for exactly that, see `receive`).
                self.answered = true;
                self.repeats.answered.store(true, Ordering::Release);
                self.asked_again = self.asked_again.saturating_add(copies);
                return Ok(Wait::RequestAgain);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Wait::Deadline);
            }
            if let Some(timeout) = self.read_timeout.update((deadline - now).min(STOP_POLL)) {
                self.socket.set_read_timeout(Some(timeout)).map_err(Failure::Socket)?;
            }
            match self.socket.recv_from(buf) {
                Ok((len, from)) if from == self.peer => {
                    self.answered = true;
                    self.repeats.answered.store(true, Ordering::Release);
                    if !is_error(&buf[..len]) {
                        self.asked_again = 0;
                    }
                    return Ok(Wait::Datagram(len));
                }
                Ok((0, _)) => {}
                // Never answer an error (two confused peers would bounce errors forever).
                Ok((len, _)) if is_error(&buf[..len]) => {}
                Ok((_, from)) => {
                    log::debug!("tftp: {}: packet from stranger {from} answered with error 5", self.peer);
                    let _ = self.socket.send_to(&tftp::error_bytes(ErrorCode::UnknownTid, "unknown transfer id"), from);
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // An ICMP error from an earlier send (the peer's port closed) surfaces here.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(Failure::Peer(0, "port unreachable".into()))
                }
                Err(e) => return Err(Failure::Socket(e)),
            }
        }
    }

    /// [`Transfer::recv`] for a read or after the upload: a copy of the request is ignored (a
    /// read's timer repeats its first reply anyway).
    fn recv_datagram(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Option<usize>, Failure> {
        loop {
            match self.recv(buf, deadline)? {
                Wait::Datagram(len) => return Ok(Some(len)),
                Wait::Deadline => return Ok(None),
                Wait::RequestAgain => {}
            }
        }
    }

    /// When to give up waiting for an answer to what was just sent ([`tftp::backoff`]).
    fn deadline(&self, retries: u32) -> Instant {
        crate::config::deadline_after(tftp::backoff(self.timeout, retries))
    }

    /// The retransmissions allowed in a row: the configured number once the peer has answered
    /// at all, fewer before. A request whose sender never answers (a spoofed address, a
    /// flood of requests to fill the transfer slots) is given up after about 7 s instead of 47.
    fn retry_limit(&self) -> u32 {
        if self.answered {
            self.config().retries
        } else {
            self.config().retries.min(SILENT_RETRIES)
        }
    }

    /// Counts one retransmission; fails once the retries are exhausted.
    fn retry(&mut self, retries: &mut u32) -> Result<(), Failure> {
        *retries += 1;
        if *retries > self.retry_limit() {
            return Err(Failure::TimedOut(self.retry_limit()));
        }
        tftp::Link::timed_out(self, *retries);
        Ok(())
    }

    /// Starts counting the bytes of the data phase.
    fn start_progress(&mut self, verb: &'static str) {
        self.progress = Progress::new(verb);
    }

    /// Logs the end of the data phase.
    fn progress_done(&self) {
        let p = &self.progress;
        let secs = p.start.elapsed().as_secs_f64();
        log::info!("tftp: {}: {}: {} {} bytes in {secs:.2}s ({})", self.peer, self.name, p.verb, p.bytes, p.rate());
    }

    /// Applies negotiated options that change the transfer itself.
    fn apply(&mut self, n: &Negotiated) {
        if let Some(secs) = n.timeout {
            self.timeout = Duration::from_secs(u64::from(secs));
        }
        size_buffers(&self.socket, n);
    }
}

/// The shared send and receive loops' view of a transfer.
impl tftp::Link for Transfer<'_> {
    type Error = Failure;

    fn send(&mut self, packet: &[u8]) -> Result<(), Failure> {
        self.send_packet(packet);
        Ok(())
    }

    fn wait(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Wait, Failure> {
        self.recv(buf, deadline)
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn retries(&self) -> u32 {
        self.retry_limit()
    }

    fn progress(&mut self, bytes: u64) {
        let p = &mut self.progress;
        p.bytes += bytes;
        if p.bytes >= p.next_report {
            p.next_report += PROGRESS_STEP;
            log::info!("tftp: {}: {}: {} MiB {} ({})", self.peer, self.name, p.bytes >> 20, p.verb, p.rate());
        }
    }

    fn timed_out(&mut self, retry: u32) {
        log::debug!("tftp: {}: {}: timeout {retry}", self.peer, self.name);
    }
}

/// The failure a shared loop's stop is.
fn stopped(stop: Stop<Failure>) -> Failure {
    match stop {
        Stop::Link(failure) => failure,
        Stop::Peer { code, message } => Failure::Peer(code, message),
        Stop::TimedOut(retries) => Failure::TimedOut(retries),
        Stop::Io(e) => io_failure(e),
        Stop::Protocol(message) => refuse(ErrorCode::IllegalOperation, message),
    }
}

/// Counts bytes, for a log line every [`PROGRESS_STEP`] and at the end.
struct Progress {
    start: Instant,
    bytes: u64,
    next_report: u64,
    /// "sent" or "received".
    verb: &'static str,
}

impl Progress {
    fn new(verb: &'static str) -> Self {
        Progress { start: Instant::now(), bytes: 0, next_report: PROGRESS_STEP, verb }
    }

    fn rate(&self) -> String {
        let per_sec = self.bytes as f64 / self.start.elapsed().as_secs_f64().max(1e-6);
        if per_sec >= (1 << 20) as f64 {
            format!("{:.1} MiB/s", per_sec / (1 << 20) as f64)
        } else {
            format!("{:.1} KiB/s", per_sec / 1024.0)
        }
    }
}

/// The path a request names. A name ending in `/` or `/.` must be a directory (which a read
/// then refuses as not a file, and a write as existing); `a.txt/` is never `a.txt`.
fn parse_path(storage: &dyn crate::storage::Storage, name: &str) -> Result<VirtualPath, Failure> {
    let vpath =
        VirtualPath::parse(name).map_err(|e| refuse(ErrorCode::AccessViolation, format!("bad file name: {e}")))?;
    crate::storage::check_file_arg(storage, name, &vpath).map_err(storage_failure)?;
    Ok(vpath)
}

/// The request's mode: octet or netascii; anything else (`mail` among them) is error 4.
fn mode(request: &Request) -> Result<Mode, Failure> {
    request.mode().ok_or_else(|| {
        let name = if request.mode.is_empty() { "(none)".to_owned() } else { sanitize(&request.mode) };
        refuse(ErrorCode::IllegalOperation, format!("unsupported mode {name}: use octet or netascii"))
    })
}

/// Read buffer size: large sequential reads, few system calls.
const READ_BUFFER: usize = 256 << 10;

/// The bytes of a file as DATA payloads: as they are, or converted to netascii. Blocks of at
/// least [`DIRECT_READ`] are read straight into the packet (one copy instead of two).
fn source(file: Box<dyn crate::storage::FileReader>, mode: Mode, blksize: u16) -> Box<dyn Read> {
    match mode {
        Mode::Octet if usize::from(blksize) >= DIRECT_READ => Box::new(file),
        Mode::Octet => Box::new(BufReader::with_capacity(READ_BUFFER, file)),
        Mode::Netascii => Box::new(NetasciiReader::new(BufReader::with_capacity(READ_BUFFER, file))),
    }
}

/// The block size from which a read goes to the file directly.
const DIRECT_READ: usize = 16 << 10;

/// Sends the OACK and waits for its ACK 0, retransmitting on the timer. On a read the server is
/// the sender and its timer is the one that recovers a lost OACK or ACK 0 (RFC 1350 section 2);
/// a repeated OACK only makes a client send ACK 0 again, and curl 7.88 copes with it (90 of 90
/// downloads under 5% loss and 2% duplication), unlike the repeated OACK of a write (see
/// `receive`). A copy of the request is therefore ignored here.
fn send_oack(t: &mut Transfer<'_>, n: &Negotiated) -> Result<(), Failure> {
    let oack = Packet::Oack(n.oack.clone()).to_bytes();
    // An ACK or an ERROR: a longer datagram is cut short, which still parses.
    let mut buf = [0u8; SMALL_PACKET];
    let mut retries = 0;
    loop {
        t.send_packet(&oack);
        let deadline = t.deadline(retries);
        while let Some(len) = t.recv_datagram(&mut buf, deadline)? {
            match Packet::parse(&buf[..len]) {
                Ok(Packet::Ack(0)) => return Ok(()),
                Ok(Packet::Error { code, message }) => return Err(Failure::Peer(code, message)),
                _ => {}
            }
        }
        t.retry(&mut retries)?;
    }
}

/// Serves a read request: negotiation, then windows of DATA until the short final block is
/// acknowledged (RFC 1350, RFC 7440).
fn read(t: &mut Transfer<'_>, request: &Request) -> Result<(), Failure> {
    let mode = mode(request)?;
    let vpath = parse_path(&*t.shared.storage, &request.filename)?;
    let Opened { reader: file, meta } = t.shared.storage.open_read(&vpath, 0).map_err(storage_failure)?;
    // tsize is the number of bytes on the wire, known in advance only for octet.
    let size = (mode == Mode::Octet).then_some(meta.len);
    let n = tftp::negotiate(request, t.limits(), size);
    t.apply(&n);
    log::info!(
        "tftp: {}: read {} ({} bytes, {}, blksize {}, windowsize {})",
        t.peer,
        t.name,
        meta.len,
        mode.name(),
        n.blksize,
        n.windowsize
    );
    let mut source = source(file, mode, n.blksize);
    if !n.oack.is_empty() {
        send_oack(t, &n)?;
    }

    t.start_progress("sent");
    tftp::send_blocks(t, &mut source, n.blksize, n.windowsize).map_err(stopped)?;
    t.progress_done();
    Ok(())
}

/// Write buffer size: large sequential writes, few system calls.
const WRITE_BUFFER: usize = 1 << 20;

/// Serves a write request: checks, negotiation, then DATA into the upload's partial file,
/// which is moved into place when the short final block has arrived and deleted otherwise.
fn write(t: &mut Transfer<'_>, request: &Request) -> Result<u16, Failure> {
    let overwrite = t.config().overwrite;
    if !t.config().writable {
        return Err(refuse(ErrorCode::AccessViolation, "server is read-only"));
    }
    let mode = mode(request)?;
    let storage = &*t.shared.storage;
    let vpath = parse_path(storage, &request.filename)?;
    let n = tftp::negotiate(request, t.limits(), None);
    let max = t.config().max_upload_size;
    if let (Some(size), Some(max)) = (n.tsize, max) {
        if size > max {
            return Err(refuse(
                ErrorCode::DiskFull,
                format!("file of {size} bytes is over the upload size limit of {max}"),
            ));
        }
    }
    if let (Some(size), Some(free)) = (n.tsize, storage.free_space(&vpath.parent())) {
        if size > free {
            return Err(refuse(ErrorCode::DiskFull, format!("file of {size} bytes does not fit, {free} bytes free")));
        }
    }
    let uploader = Uploader { peer: t.peer, user: None, protocol: Protocol::Tftp };
    let spec = UploadSpec { start: Start::Private, overwrite, uploader };
    let mut upload = storage.begin_upload(&vpath, spec).map_err(storage_failure)?;
    t.apply(&n);
    log::info!(
        "tftp: {}: write {} ({}, blksize {}, windowsize {})",
        t.peer,
        t.name,
        mode.name(),
        n.blksize,
        n.windowsize
    );
    let file = Capped { inner: BufWriter::with_capacity(WRITE_BUFFER, &mut *upload), written: 0, limit: max };
    let sink = tftp::ModeWriter::new(file, mode);
    match receive(t, &n, sink) {
        Ok(last) => {
            upload.commit().map_err(storage_failure)?;
            t.send_packet(&tftp::ack_bytes(last));
            Ok(last)
        }
        Err(e) => {
            // TFTP cannot resume an upload, so a partial file is of no use to anyone.
            upload.discard();
            Err(e)
        }
    }
}

/// Why [`Capped`] refused a write.
#[derive(Debug, thiserror::Error)]
#[error("over the upload size limit of {0} bytes")]
struct OverLimit(u64);

/// A file being uploaded that refuses bytes beyond the upload size limit ([`OverLimit`]).
struct Capped<W> {
    inner: W,
    written: u64,
    limit: Option<u64>,
}

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(limit) = self.limit.filter(|&limit| self.written + buf.len() as u64 > limit) {
            return Err(io::Error::other(OverLimit(limit)));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Receives DATA into `sink` ([`tftp::receive_blocks`]) until the short final block, which is
/// written and flushed but not acknowledged (the caller does that once the file is in place);
/// returns its block number.
///
/// Until block 1 arrives the first reply (OACK, or ACK 0 without options) is sent again only
/// when the client sends its request again, never on our timer. RFC 1350 (section 2) lets
/// either side recover a loss: "the intended recipient will timeout and may retransmit his last
/// packet"; the client, which sends the data, has both losses of this phase covered by its own
/// timer: a lost reply makes it repeat the WRQ (curl, tftp-hpa, atftp and ours all do), a lost
/// DATA 1 makes it repeat DATA 1. Our repeating the OACK on a timer, as tftpd-hpa does, adds
/// nothing and breaks curl 7.88: it answers every OACK it receives while sending by sending
/// its *next* block numbered 1 (RFC 2347 says an OACK acknowledges the request, not a block),
/// so a lost DATA 1 cost one block of the file and both sides reported success. We wait the
/// whole retry budget (the same backed-off deadlines as a retransmitting sender) and answer
/// each copy of the request the listener hands us (`first_reply_on_timer: false`).
///
/// A block 1 that comes again with other bytes (the same bug, when the network duplicated our
/// OACK or the client's WRQ) ends the upload with error 4: the client's numbering no longer
/// matches its file, and storing a file with a block missing is the one outcome worse than
/// failing.
fn receive(t: &mut Transfer<'_>, n: &Negotiated, mut sink: tftp::ModeWriter<impl Write>) -> Result<u16, Failure> {
    let first_reply =
        if n.oack.is_empty() { tftp::ack_bytes(0).to_vec() } else { Packet::Oack(n.oack.clone()).to_bytes() };
    t.send_packet(&first_reply);
    t.start_progress("received");
    let receiving = tftp::Receiving {
        blksize: n.blksize,
        windowsize: n.windowsize,
        first_reply: &first_reply,
        first_reply_on_timer: false,
        pending: None,
    };
    let received = tftp::receive_blocks(t, &mut sink, receiving).map_err(stopped)?;
    sink.finish().map_err(io_failure)?;
    t.progress_done();
    Ok(received.last_block)
}

/// After the final ACK, answers the final DATA if it comes again (our ACK was lost), as RFC 1350
/// section 6 suggests. The client retransmits on its own timer, which without a negotiated
/// timeout is unknown: tftp-hpa's is 5 s; curl 7.88's is 5 s counted in whole seconds of
/// time(), so its retransmission comes 5 to 7 s later, and the next 10 to 14 s later. This lasts
/// three of our timeouts and at least [`MIN_DALLY`], long enough for two of curl's, and starts
/// again after each answer (a dally of 7 s missed curl's first retransmission now and then
/// under loss: curl waited out its 120 s limit for a file that was in place). The upload is
/// already in place and the transfer slot released.
fn dally(t: &mut Transfer<'_>, last: u16) {
    let period = t.timeout.saturating_mul(3).max(MIN_DALLY);
    let mut deadline = crate::config::deadline_after(period);
    // Only the block number matters: a longer datagram is cut short, which still parses.
    let mut buf = [0u8; SMALL_PACKET];
    while let Ok(Some(len)) = t.recv_datagram(&mut buf, deadline) {
        if matches!(Packet::parse(&buf[..len]), Ok(Packet::Data { block, .. }) if block == last) {
            t.send_packet(&tftp::ack_bytes(last));
            deadline = crate::config::deadline_after(period);
        }
    }
}
