//! TFTP client transfers (RFC 1350, with RFC 2347-2349 options and RFC 7440 windowsize): `get`
//! a remote file into any `Write`, `put` any `Read` to a remote name.
//!
//! Options are asked for and used only as far as the server grants them: an OACK's values are
//! taken (never above what was asked), a first DATA or ACK 0 without OACK means RFC 1350 defaults
//! (512-byte blocks, lock-step), and an ERROR 0, 4 or 8 answering a request with options makes
//! one more attempt without any options (old servers refuse what they do not understand).
//! Retransmission is on the timer only (never on a duplicate, the Sorcerer's Apprentice rule);
//! a packet from a stranger's address gets error 5 and the transfer goes on.
//!
//! Temporary files, duplicate names, progress display and exit codes are the caller's: this
//! module moves bytes between a socket and a reader or writer, and reports progress through a
//! callback.

use common::tftp::{self, Direction, Mode, NetasciiReader, Packet, Request, Stop, Wait};
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// What to ask the server for.
#[derive(Debug, Clone)]
pub struct TftpOptions {
    /// Block size to ask for (RFC 2348); 512 asks for nothing.
    pub blksize: u16,
    /// Window size to ask for (RFC 7440); 1 asks for nothing.
    pub windowsize: u16,
    /// Retransmission timeout, also sent as the `timeout` option when it is whole seconds.
    pub timeout: Duration,
    /// Retransmissions of one packet before giving up.
    pub retries: u32,
    /// The longest silence of the server: with no datagram from it for this long, the
    /// transfer is given up, however many retransmissions are left (`--timeout`).
    pub give_up: Duration,
    /// Octet or netascii.
    pub mode: Mode,
    /// Asked at every wake-up (at least every 200 ms): true ends the transfer (Ctrl-C).
    pub cancelled: fn() -> bool,
}

impl Default for TftpOptions {
    /// Defaults for speed: Ethernet-sized blocks (1468 fits a 1500-byte MTU) and a window of
    /// 64. Measured through linkem (scripts/wan-bench.py, 8 MiB and 2 MiB gets), windows of 16,
    /// 32, 64, 128 and 256 blocks ran at 0.43, 0.84, 1.54, 2.03 and 2.03 MB/s on a 50 ms,
    /// 100 Mbit/s, 0.1% loss link and at 0.10, 0.18, 0.28, 0.28 and 0.34 MB/s on a 200 ms,
    /// 20 Mbit/s, 1% loss link. 64 (94 KB in flight) takes most of the gain while staying under
    /// Linux's default 208 KiB socket receive buffer, which a server or relay may keep.
    fn default() -> Self {
        TftpOptions {
            blksize: 1468,
            windowsize: 64,
            timeout: Duration::from_secs(1),
            retries: 5,
            give_up: Duration::from_secs(30),
            mode: Mode::Octet,
            cancelled: || false,
        }
    }
}

/// How a transfer went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Bytes written to the writer (get) or read from the reader (put).
    pub bytes: u64,
    /// The block size used.
    pub blksize: u16,
    /// The window size used.
    pub windowsize: u16,
    /// The size the server announced (get with `tsize`), if it did.
    pub tsize: Option<u64>,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TftpError {
    /// The server sent an ERROR packet.
    #[error("server error {code}: {message}")]
    Server {
        /// The TFTP error code.
        code: u16,
        /// The server's message, sanitised.
        message: String,
    },
    /// No answer after all retransmissions.
    #[error("no answer from {0} after {1} retransmissions")]
    TimedOut(SocketAddr, u32),
    /// No datagram from the server for [`TftpOptions::give_up`] (whole seconds).
    #[error("no answer from {0} within {1} s")]
    Silent(SocketAddr, u64),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server's OACK granted what was not asked for (answered with error 8, RFC 2347).
    #[error("protocol error: {0}")]
    Options(String),
    /// [`TftpOptions::cancelled`] said so.
    #[error("interrupted")]
    Cancelled,
    /// A local or socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The longest one receive blocks, so that [`TftpOptions::cancelled`] is asked often.
const POLL: Duration = Duration::from_millis(200);

/// Progress callback: bytes so far and the announced total, if known.
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// Downloads `remote` from the server at `server` into `out`.
pub fn get(
    server: SocketAddr,
    remote: &str,
    out: &mut dyn Write,
    opts: &TftpOptions,
    progress: Progress<'_>,
) -> Result<Outcome, TftpError> {
    let answered = Cell::new(false);
    with_fallback(opts, &answered, |opts, with_options| {
        let mut c = Client::new(server, opts)?;
        let request = c.request(Direction::Read, remote, opts, with_options, Some(0));
        let received = c.receive_file(&request, out, progress).inspect_err(|e| c.abandon(e));
        answered.set(c.answered);
        received
    })
}

/// Uploads `input` (`size` bytes if known, announced as `tsize`) to `remote` on `server`.
pub fn put(
    server: SocketAddr,
    remote: &str,
    input: &mut dyn Read,
    size: Option<u64>,
    opts: &TftpOptions,
    progress: Progress<'_>,
) -> Result<Outcome, TftpError> {
    let answered = Cell::new(false);
    with_fallback(opts, &answered, |opts, with_options| {
        let mut c = Client::new(server, opts)?;
        let request = c.request(Direction::Write, remote, opts, with_options, size);
        let sent = c.send_file(&request, input, size, progress).inspect_err(|e| c.abandon(e));
        answered.set(c.answered);
        sent
    })
}

/// Runs `attempt` with options, and once more without any if the server refused them: its
/// ERROR answered the request itself (`answered`, set by the attempt, says whether the server
/// had accepted the request; after that, bytes have moved, and a second attempt would send or
/// write the rest of a stream as if it were the whole file).
fn with_fallback(
    opts: &TftpOptions,
    answered: &Cell<bool>,
    mut attempt: impl FnMut(&TftpOptions, bool) -> Result<Outcome, TftpError>,
) -> Result<Outcome, TftpError> {
    let asks = opts.blksize != tftp::DEFAULT_BLKSIZE || opts.windowsize > 1;
    match attempt(opts, asks) {
        Err(TftpError::Server { code: 0 | 4 | 8, message }) if asks && !answered.get() => {
            log::info!("tftp: server refused options ({message}), retrying without");
            let plain = TftpOptions { blksize: tftp::DEFAULT_BLKSIZE, windowsize: 1, ..opts.clone() };
            attempt(&plain, false)
        }
        other => other,
    }
}

/// One transfer's socket and state.
struct Client {
    socket: UdpSocket,
    server: SocketAddr,
    /// The server's transfer ID, once its first answer arrived.
    peer: Option<SocketAddr>,
    timeout: Duration,
    retries: u32,
    /// See [`TftpOptions::give_up`].
    give_up: Duration,
    /// When the server was last heard from (or the request first sent).
    heard: Instant,
    /// See [`TftpOptions::cancelled`].
    cancelled: fn() -> bool,
    /// The server accepted the request (its first answer was not an ERROR).
    answered: bool,
    /// The socket's read timeout.
    read_timeout: common::timer::SocketTimeout,
}

impl Client {
    fn new(server: SocketAddr, opts: &TftpOptions) -> io::Result<Client> {
        let any: IpAddr = if server.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
        let socket = UdpSocket::bind(SocketAddr::new(any, 0))?;
        let window_bytes = usize::from(opts.windowsize) * (usize::from(opts.blksize) + 800);
        let sock = socket2::SockRef::from(&socket);
        let _ = sock.set_recv_buffer_size((2 * window_bytes).clamp(256 << 10, 16 << 20));
        let _ = sock.set_send_buffer_size((2 * window_bytes).clamp(256 << 10, 16 << 20));
        Ok(Client {
            socket,
            server,
            peer: None,
            timeout: opts.timeout.max(Duration::from_millis(10)),
            retries: opts.retries,
            give_up: opts.give_up,
            heard: Instant::now(),
            cancelled: opts.cancelled,
            answered: false,
            read_timeout: common::timer::SocketTimeout::new(),
        })
    }

    /// The request datagram, with options (`tsize` among them when given) or without any.
    fn request(
        &self,
        direction: Direction,
        remote: &str,
        opts: &TftpOptions,
        with_options: bool,
        tsize: Option<u64>,
    ) -> Vec<u8> {
        let mut options = Vec::new();
        if with_options {
            if opts.blksize != tftp::DEFAULT_BLKSIZE {
                options.push(("blksize".to_owned(), opts.blksize.to_string()));
            }
            if opts.windowsize > 1 {
                options.push(("windowsize".to_owned(), opts.windowsize.to_string()));
            }
            let secs = opts.timeout.as_secs();
            if opts.timeout.subsec_nanos() == 0 && (1..=255).contains(&secs) {
                options.push(("timeout".to_owned(), secs.to_string()));
            }
            if let Some(size) = tsize {
                options.push(("tsize".to_owned(), size.to_string()));
            }
        }
        let request = Request { direction, filename: remote.to_owned(), mode: opts.mode.name().to_owned(), options };
        Packet::Request(request).to_bytes()
    }

    fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.socket.send_to(packet, self.peer.unwrap_or(self.server)).map(drop)
    }

    /// Waits until `deadline` for a datagram from the server (any port until its TID is known,
    /// then only the TID; strangers get error 5) into `buf`. Returns its length, `None` at the
    /// deadline, and [`TftpError::Silent`] once the server has been silent for `give_up`.
    fn recv(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Option<usize>, TftpError> {
        loop {
            if (self.cancelled)() {
                return Err(TftpError::Cancelled);
            }
            let now = Instant::now();
            let give_up_at = self.heard + self.give_up;
            if now >= give_up_at {
                return Err(TftpError::Silent(self.peer.unwrap_or(self.server), self.give_up.as_secs()));
            }
            if now >= deadline {
                return Ok(None);
            }
            if let Some(timeout) = self.read_timeout.update((deadline.min(give_up_at) - now).min(POLL)) {
                self.socket.set_read_timeout(Some(timeout))?;
            }
            match self.socket.recv_from(buf) {
                Ok((len, from)) => match self.peer {
                    Some(peer) if peer == from => {
                        self.heard = Instant::now();
                        return Ok(Some(len));
                    }
                    None if from.ip() == self.server.ip() => {
                        self.peer = Some(from);
                        self.heard = Instant::now();
                        return Ok(Some(len));
                    }
                    _ => {
                        let error = tftp::error_bytes(tftp::ErrorCode::UnknownTid, "unknown transfer id");
                        let _ = self.socket.send_to(&error, from);
                    }
                },
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Tells the server, once it has answered, that the transfer is given up (so it does not
    /// retransmit into the void until its retries run out): error 8 for an OACK that granted
    /// what was not asked (RFC 2347), 4 for a broken protocol, 3 for a full disk, 0 otherwise.
    /// Not after the server's own ERROR, or when it stopped answering.
    fn abandon(&self, error: &TftpError) {
        let Some(peer) = self.peer else { return };
        let (code, message) = match error {
            TftpError::Server { .. } | TftpError::TimedOut(..) | TftpError::Silent(..) => return,
            TftpError::Options(m) => (tftp::ErrorCode::OptionRefused, m.clone()),
            TftpError::Protocol(m) => (tftp::ErrorCode::IllegalOperation, m.clone()),
            TftpError::Cancelled => (tftp::ErrorCode::NotDefined, "transfer cancelled by the user".to_owned()),
            TftpError::Io(e) if matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded) => {
                (tftp::ErrorCode::DiskFull, "disk full".to_owned())
            }
            TftpError::Io(e) => {
                (tftp::ErrorCode::NotDefined, format!("transfer given up: {}", crate::report::io_reason(e)))
            }
        };
        let _ = self.socket.send_to(&tftp::error_bytes(code, &message), peer);
    }

    /// Sends the request until the first answer, which is returned as owned values.
    fn start(&mut self, request: &[u8]) -> Result<First, TftpError> {
        let mut buf = vec![0u8; tftp::MAX_PACKET + 1];
        let mut retries = 0;
        self.heard = Instant::now();
        loop {
            self.send(request)?;
            let deadline = Instant::now() + tftp::backoff(self.timeout, retries);
            while let Some(len) = self.recv(&mut buf, deadline)? {
                let first = match Packet::parse(&buf[..len]) {
                    Ok(Packet::Oack(options)) => First::Oack(options),
                    Ok(Packet::Ack(0)) => First::Ack0,
                    Ok(Packet::Data { block: 1, .. }) => {
                        buf.truncate(len);
                        First::Data1(buf)
                    }
                    Ok(Packet::Error { code, message }) => return Err(server_error(code, &message)),
                    _ => continue,
                };
                self.answered = true;
                return Ok(first);
            }
            retries += 1;
            if retries > self.retries {
                return Err(TftpError::TimedOut(self.server, self.retries));
            }
        }
    }

    /// The error a shared loop's stop becomes.
    fn stopped(&self, stop: Stop<TftpError>) -> TftpError {
        match stop {
            Stop::Link(e) => e,
            Stop::Peer { code, message } => server_error(code, &message),
            Stop::TimedOut(retries) => TftpError::TimedOut(self.peer.unwrap_or(self.server), retries),
            Stop::Io(e) => TftpError::Io(e),
            Stop::Protocol(message) => TftpError::Protocol(message),
        }
    }

    fn receive_file(
        &mut self,
        request: &[u8],
        out: &mut dyn Write,
        progress: Progress<'_>,
    ) -> Result<Outcome, TftpError> {
        let asked = parse_asked(request);
        let (mut outcome, pending) = match self.start(request)? {
            First::Oack(options) => {
                let outcome = granted(&options, &asked)?;
                self.send(&tftp::ack_bytes(0))?;
                (outcome, None)
            }
            First::Data1(datagram) => (plain_outcome(), Some(datagram)),
            First::Ack0 => return Err(TftpError::Protocol("ACK 0 in answer to a read request".into())),
        };
        let mode = Mode::from_name(&mode_of(request)).unwrap_or(Mode::Octet);
        let mut sink = tftp::ModeWriter::new(out, mode);
        let receiving = tftp::Receiving {
            blksize: outcome.blksize,
            windowsize: outcome.windowsize,
            first_reply: &tftp::ack_bytes(0),
            first_reply_on_timer: true,
            pending: pending.as_deref(),
        };
        let mut link = ClientLink { client: self, progress, bytes: 0, total: outcome.tsize };
        let received = tftp::receive_blocks(&mut link, &mut sink, receiving);
        let received = received.map_err(|stop| self.stopped(stop))?;
        sink.finish()?;
        // Acknowledged once written: a local failure is answered with an ERROR instead.
        self.send(&tftp::ack_bytes(received.last_block))?;
        outcome.bytes = received.bytes;
        Ok(outcome)
    }

    fn send_file(
        &mut self,
        request: &[u8],
        input: &mut dyn Read,
        size: Option<u64>,
        progress: Progress<'_>,
    ) -> Result<Outcome, TftpError> {
        let asked = parse_asked(request);
        let mut outcome = match self.start(request)? {
            First::Oack(options) => granted(&options, &asked)?,
            First::Ack0 => plain_outcome(),
            First::Data1(_) => return Err(TftpError::Protocol("DATA in answer to a write request".into())),
        };
        outcome.tsize = size;
        let mode = Mode::from_name(&mode_of(request)).unwrap_or(Mode::Octet);
        let mut input: Box<dyn Read + '_> =
            if mode == Mode::Netascii { Box::new(NetasciiReader::new(input)) } else { Box::new(input) };
        let mut link = ClientLink { client: self, progress, bytes: 0, total: size };
        let sent = tftp::send_blocks(&mut link, &mut input, outcome.blksize, outcome.windowsize);
        outcome.bytes = sent.map_err(|stop| self.stopped(stop))?;
        Ok(outcome)
    }
}

/// The client as the shared send and receive loops see it: its socket and the progress callback.
struct ClientLink<'c, 'p> {
    client: &'c mut Client,
    progress: Progress<'p>,
    /// Bytes so far, as the callback wants them.
    bytes: u64,
    /// The size announced, if known.
    total: Option<u64>,
}

impl tftp::Link for ClientLink<'_, '_> {
    type Error = TftpError;

    fn send(&mut self, packet: &[u8]) -> Result<(), TftpError> {
        Ok(self.client.send(packet)?)
    }

    fn wait(&mut self, buf: &mut [u8], deadline: Instant) -> Result<Wait, TftpError> {
        Ok(self.client.recv(buf, deadline)?.map_or(Wait::Deadline, Wait::Datagram))
    }

    fn timeout(&self) -> Duration {
        self.client.timeout
    }

    fn retries(&self) -> u32 {
        self.client.retries
    }

    fn progress(&mut self, bytes: u64) {
        self.bytes += bytes;
        (self.progress)(self.bytes, self.total);
    }
}

/// The first answer to a request.
enum First {
    Oack(Vec<(String, String)>),
    Ack0,
    /// DATA 1, the whole datagram.
    Data1(Vec<u8>),
}

fn server_error(code: u16, message: &str) -> TftpError {
    TftpError::Server { code, message: common::text::sanitize(message) }
}

fn plain_outcome() -> Outcome {
    Outcome { bytes: 0, blksize: tftp::DEFAULT_BLKSIZE, windowsize: 1, tsize: None }
}

/// The options a request asked for (name lower-cased, value).
fn parse_asked(request: &[u8]) -> Vec<(String, u64)> {
    match Packet::parse(request) {
        Ok(Packet::Request(r)) => {
            r.options.into_iter().filter_map(|(n, v)| Some((n.to_ascii_lowercase(), v.parse().ok()?))).collect()
        }
        _ => Vec::new(),
    }
}

fn mode_of(request: &[u8]) -> String {
    match Packet::parse(request) {
        Ok(Packet::Request(r)) => r.mode,
        _ => String::new(),
    }
}

/// The transfer parameters an OACK grants. A value above what was asked, or an option that was
/// not asked for, is a protocol error (RFC 2347: the server may only lower them).
fn granted(options: &[(String, String)], asked: &[(String, u64)]) -> Result<Outcome, TftpError> {
    let mut outcome = plain_outcome();
    for (name, value) in options {
        let name = name.to_ascii_lowercase();
        let bad = || TftpError::Options(format!("server granted {name}={value}, not what was asked"));
        let Some(&(_, wanted)) = asked.iter().find(|(n, _)| *n == name) else { return Err(bad()) };
        let value: u64 = value.trim().parse().map_err(|_| bad())?;
        match name.as_str() {
            "blksize" if (u64::from(tftp::MIN_BLKSIZE)..=wanted).contains(&value) => outcome.blksize = value as u16,
            "windowsize" if (1..=wanted).contains(&value) => outcome.windowsize = value as u16,
            "timeout" if value == wanted => {}
            "tsize" => outcome.tsize = Some(value),
            _ => return Err(bad()),
        }
    }
    Ok(outcome)
}
